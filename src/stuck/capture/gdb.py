"""The native view of a process: gdb in batch mode, with a small gdb Python script.

The script prints each thread's frames and, for every futex a thread sleeps on, the first words
of memory there. For a thread blocked in ``pthread_mutex_lock`` that futex is the mutex itself
(``__data.__lock`` is its first field) and ``__data.__owner``, the owner's thread id, is the
third 32-bit word on every glibc architecture: the owner is read, not guessed. A condition
variable is named by its own address (the waiter's ``cond`` argument, or the ``pthread_cond_t``
variable the futex word lies in), not by the word: glibc's waiters sleep on one of two words
inside it, one per group of waiters, and waiters on one variable must meet.

gdb attaches, reads and detaches; the target goes on as before. Output lines start with
``STUCK-GDB`` and carry JSON, so what gdb itself prints around them is ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stuck.capture import proc, syscalls, tools
from stuck.capture.evidence import Evidence, ProcessEvidence
from stuck.capture.naming import thread_id
from stuck.model import Frame, Resource, Snapshot, Thread
from stuck.stacks.native import classify

if TYPE_CHECKING:
    from stuck.capture.merge import Built

MARK = "STUCK-GDB "
MAX_FRAMES = 48

SCRIPT = r'''
import json, gdb
WANT = set(json.loads(WANT_JSON))
ADDRS = json.loads(ADDRS_JSON)
inf = gdb.selected_inferior()
for th in inf.threads():
    lwp = th.ptid[1]
    if WANT and lwp not in WANT:
        continue
    frames = []
    try:
        th.switch()
        f = gdb.newest_frame()
    except gdb.error:
        f = None
    while f is not None and len(frames) < MAX_FRAMES:
        try:
            name = f.name() or "??"
            sal = f.find_sal()
            fn = sal.symtab.filename if sal.symtab else None
            line = sal.line if sal.symtab and sal.line else None
            lib = gdb.solib_name(f.pc())
        except gdb.error:
            break
        frames.append([name, fn, line, lib])
        try:
            f = f.older()
        except gdb.error:
            break
    out = {"lwp": lwp, "frames": frames}
    try:
        f = gdb.newest_frame()
        depth = 0
        while f is not None and depth < 12:
            if "pthread_cond_" in (f.name() or "") and "cond" not in out:
                try:  # the condition variable itself (libc's debug info names the argument)
                    c = int(f.read_var("cond"))
                    out["cond"] = [c, gdb.execute("info symbol %d" % c,
                                                  to_string=True).strip()[:300]]
                except Exception:
                    pass
            if "pthread_rwlock_" in (f.name() or ""):
                v = f.read_var("rwlock")
                addr = int(v)
                try:
                    writer = int(v.dereference()["__data"]["__cur_writer"])
                except Exception:
                    mem = bytes(inf.read_memory(addr + 24, 4))
                    writer = int.from_bytes(mem, "little", signed=True)
                sym = gdb.execute("info symbol %d" % addr, to_string=True).strip()
                out["rwlock"] = [addr, writer, sym[:300]]
                break
            f = f.older()
            depth += 1
    except Exception:
        pass
    print(MARK + json.dumps(out))
for a in ADDRS:
    try:
        mem = bytes(inf.read_memory(a, 24))
        words = [int.from_bytes(mem[i:i + 4], "little", signed=True) for i in range(0, 24, 4)]
        try:
            sym = gdb.execute("info symbol %d" % a, to_string=True).strip()
        except gdb.error:
            sym = ""
        rec = {"addr": a, "words": words, "symbol": sym[:300]}
        try:  # a futex word inside a variable of type pthread_cond_t: that variable
            name = sym.split(" in section ", 1)[0].split(" + ", 1)[0].strip()
            var = gdb.lookup_global_symbol(name) or gdb.lookup_static_symbol(name)
            if var is not None and str(var.type.strip_typedefs()) != str(var.type) \
                    and str(var.type) == "pthread_cond_t":
                rec["cond"] = int(var.value().address)
        except Exception:
            pass
        print(MARK + json.dumps(rec))
    except Exception as exc:
        print(MARK + json.dumps({"addr": a, "error": str(exc)[:200]}))
'''

# A Go program's goroutines, read from the runtime's own tables (no script of the target's is
# loaded): every g in runtime.allgs with its status, wait reason and stack. A parked goroutine's
# stack is walked by frame pointers from where it parked (x86-64 keeps them: [bp] is the
# caller's bp, [bp+8] the return address), memory reads only; registers are never written. For
# each netpoller descriptor the kernel's epoll lists (POLL), the goroutine parked reading or
# writing its fd (pollDesc.rg / wg hold the g).
GO_SCRIPT = r'''
def _go_int(v):
    try:
        return int(v)
    except gdb.error:
        return int(v["value"])

def _go_sym(name):
    return gdb.lookup_global_symbol(name) or gdb.lookup_static_symbol(name)

def _go_where(pc):
    name, fn, line = "??", None, None
    try:
        b = gdb.block_for_pc(pc)
        while b is not None and b.function is None:
            b = b.superblock
        if b is not None:
            name = b.function.name
        sal = gdb.find_pc_line(pc)
        if sal.symtab:
            fn, line = sal.symtab.filename, sal.line
    except Exception:
        pass
    return [name, fn, line]

def _go_frames(pc):
    """The frames at pc, innermost first: a function the compiler inlined there, then the one it
    was inlined into (gdb's block for an inlined call names the call's file and line), up to the
    function the code belongs to; Go's own traceback prints them the same way."""
    try:
        b = gdb.block_for_pc(pc)
        sal = gdb.find_pc_line(pc)
    except Exception:
        return [_go_where(pc)]
    fn, line = (sal.symtab.filename, sal.line) if sal.symtab else (None, None)
    out = []
    while b is not None and len(out) < 16:
        f = b.function
        sup = b.superblock
        if f is not None:
            out.append([f.name, fn, line])
            if sup is None or sup.is_static or sup.is_global:
                break  # the function itself: not inlined into another
            fn, line = (f.symtab.filename if f.symtab else None), f.line
        b = sup
    return out or [_go_where(pc)]

def _go_word(a):
    return int.from_bytes(bytes(inf.read_memory(a, 8)), "little")

def _go_semas():
    """g address -> the semaphore it waits on: every sudog in the runtime's semaphore table
    (a treap per bucket, children prev/next, waiters on one address chained by waitlink)."""
    out = {}
    sym = _go_sym("runtime.semtable")
    if sym is None:
        return out
    try:
        tab = sym.value()
        lo, hi = tab.type.strip_typedefs().range()
        seen = 0
        for i in range(lo, hi + 1):
            stack = [tab[i]["root"]["treap"]]
            while stack and seen < MAX_GOROUTINES:
                s = stack.pop()
                if not int(s):
                    continue
                node = s.dereference()
                w = s
                while int(w) and seen < MAX_GOROUTINES:
                    wd = w.dereference()
                    out[int(wd["g"])] = int(wd["elem"])
                    w = wd["waitlink"]
                    seen += 1
                stack.append(node["prev"])
                stack.append(node["next"])
    except Exception:
        pass
    return out

def _goroutines():
    sym = _go_sym("runtime.allgs")
    if sym is None:
        try:  # an ELF symbol without DWARF: linked with -w
            gdb.parse_and_eval("(long)&'runtime.allgs'")
            why = "no debug information (DWARF) in the executable: linked with -ldflags=-w"
        except gdb.error:
            why = ("the executable is stripped (no symbol table, no DWARF): `go run` and "
                   "`go build -ldflags=\"-s -w\"` build it so")
        print(MARK + json.dumps({"go": why}))
        return
    allgs = sym.value()
    reasons = []
    rs = _go_sym("runtime.waitReasonStrings")
    if rs is not None:
        v = rs.value()
        lo, hi = v.type.range()
        for i in range(lo, min(hi, 200) + 1):
            n = int(v[i]["len"])
            reasons.append(bytes(inf.read_memory(int(v[i]["str"]), n)).decode("utf-8", "replace")
                           if 0 < n < 100 else "")
    count = 0
    semas = _go_semas()
    for i in range(min(int(allgs["len"]), MAX_GOROUTINES)):
        gp = allgs["array"][i]
        if int(gp) == 0:
            continue
        g = gp.dereference()
        status = _go_int(g["atomicstatus"]) & ~0x1000
        if status == 6:  # dead
            continue
        wr = int(g["waitreason"])
        out = {"goroutine": int(g["goid"]), "g": int(gp), "status": status,
               "reason": reasons[wr] if 0 <= wr < len(reasons) else "", "frames": []}
        if status in (1, 4, 9) and FRAME_POINTERS:  # runnable, waiting, preempted
            pc, bp = int(g["sched"]["pc"]), int(g["sched"]["bp"])
            # A parked goroutine's pc is the return address of its call into the scheduler:
            # the call's own line is at pc - 1, as Go's traceback prints it.
            frames = _go_frames(pc - 1 if status == 4 else pc)
            while bp and len(frames) < MAX_FRAMES:
                try:
                    ret, bp = _go_word(bp + 8), _go_word(bp)
                except Exception:
                    break
                if not ret:
                    break
                more = _go_frames(ret - 1)
                if status == 4 and more[-1][0] in NOTIFY_WAITS and "notify" not in out:
                    # sync.Cond.Wait parks in notifyListWait(l *notifyList, t): l, the
                    # Cond's notify list, in its first argument's slot above the saved bp
                    # and return address, as Go's own traceback reads it.
                    try:
                        out["notify"] = _go_word(bp + 16)
                    except Exception:
                        pass
                if more[-1][0] == "runtime.goexit":
                    frames.extend(more[:-1])
                    break
                frames.extend(more)
            out["frames"] = frames
        if status == 4 and int(gp) in semas:
            out["sema"] = semas[int(gp)]
        if status == 4 and "chan" in out["reason"]:
            # A goroutine parked on a channel lists a sudog per channel in g.waiting; each
            # names its channel (the address a SIGQUIT dump prints as chansend's argument).
            chans = []
            try:
                s = g["waiting"]
                while int(s) and len(chans) < 8:
                    c = int(s.dereference()["c"])
                    if c:
                        chans.append(c)
                    s = s.dereference()["waitlink"]
            except Exception:
                pass
            if chans:
                out["chans"] = chans
        if status in (2, 3):  # running, in a system call: on an OS thread (an M)
            try:
                m = g["m"]
                if int(m):
                    out["tid"] = int(m.dereference()["procid"])
            except Exception:
                pass
        gopc = int(g["gopc"])
        if gopc:
            out["created"] = _go_where(gopc - 1)
        print(MARK + json.dumps(out))
        count += 1
    timers = 0
    try:  # timers pending on every P: one may end a channel receive or a select
        allp = _go_sym("runtime.allp").value()
        for i in range(int(allp["len"])):
            p = allp["array"][i].dereference()
            try:
                timers += int(p["timers"]["len"])
            except gdb.error:
                timers += int(p["timers"]["heap"]["len"])
    except Exception:
        timers = -1  # unknown
    print(MARK + json.dumps({"go": "read", "goroutines": count, "timers": timers}))
    pd_type = gdb.lookup_type("runtime.pollDesc").pointer()
    for a in POLL:
        try:
            pd = gdb.Value(a).cast(pd_type).dereference()
            print(MARK + json.dumps({"pd": a, "fd": int(pd["fd"]), "rg": _go_int(pd["rg"]),
                                     "wg": _go_int(pd["wg"]), "rd": _go_int(pd["rd"]),
                                     "wd": _go_int(pd["wd"])}))
        except Exception as exc:
            print(MARK + json.dumps({"pd": a, "error": str(exc)[:200]}))

try:
    _goroutines()
except Exception as exc:
    print(MARK + json.dumps({"go": "failed: " + str(exc)[:200]}))
'''
MAX_GOROUTINES = 100_000
# The runtime function a sync.Cond waiter parks in, by the name its symbol has (a linkname).
NOTIFY_WAITS = ("sync.runtime_notifyListWait",)


def futex_addresses(pe: ProcessEvidence, machine: str) -> list[int]:
    out = []
    for te in pe.threads:
        call = syscalls.parse(te.syscall, machine)
        if call is not None and call.name == "futex":
            out.append(call.args[0])
    return sorted(set(out))


def epoll_data(lines: list[str]) -> list[int]:
    """The ``data`` word of each fd an epoll instance watches (its fdinfo ``tfd:`` lines): the
    Go runtime stores its pollDesc's address there."""
    out = []
    for line in lines:
        words = line.split()
        if "data:" in words[:-1]:
            with contextlib.suppress(ValueError):
                value = int(words[words.index("data:") + 1], 16)
                if 0 < value < 1 << 64:
                    out.append(value)
    return out


def _own_library_dirs() -> list[str]:
    """The directories this process's own C library was loaded from: the system's."""
    dirs: list[str] = []
    with contextlib.suppress(OSError), open("/proc/self/maps", encoding="utf-8",
                                            errors="replace") as f:
        for line in f:
            path = line.split(None, 5)[5].strip() if len(line.split(None, 5)) > 5 else ""
            name = os.path.basename(path)
            if name.startswith(("libc.so", "libc-", "libpthread")):
                d = os.path.dirname(path)
                if d and d not in dirs:
                    dirs.append(d)
    return dirs


def untrusted_target_options() -> list[str]:
    """gdb options for attaching, as root, to a process that may be hostile. gdb loads scripts
    and a thread library named by what it debugs (a ``NAME-gdb.py`` beside the executable, a
    binary's ``.debug_gdb_scripts`` section, ``libthread_db`` from the directory the target's
    libpthread came from): each would run the target's chosen code inside gdb. No script is
    loaded, and libthread_db only from the directories of this machine's own C library."""
    system = ":".join(_own_library_dirs()) or "/nonexistent"
    return ["-iex", "set auto-load gdb-scripts off",
            "-iex", "set auto-load python-scripts off",
            "-iex", "set auto-load local-gdbinit off",
            "-iex", f"set libthread-db-search-path {system}",
            "-iex", f"set auto-load safe-path {system}"]


def collect(pe: ProcessEvidence, ev: Evidence, timeout: float) -> None:
    exe = tools.find("gdb")
    if exe is None:
        pe.missing.append("gdb is not installed: native stacks and mutex owners of pid "
                          f"{pe.pid} are not read (install gdb)")
        return
    addrs = futex_addresses(pe, ev.machine)
    script = (f"MARK = {MARK!r}\nMAX_FRAMES = {MAX_FRAMES}\nWANT_JSON = {json.dumps('[]')}\n"
              f"ADDRS_JSON = {json.dumps(json.dumps(addrs))}\n" + SCRIPT)
    if pe.runtime == "go":
        poll = sorted({a for f in pe.fds for a in epoll_data(f.epoll)})
        script += (f"MAX_GOROUTINES = {MAX_GOROUTINES}\nPOLL = {poll!r}\n"
                   f"NOTIFY_WAITS = {NOTIFY_WAITS!r}\n"
                   f"FRAME_POINTERS = {ev.machine == 'x86_64'!r}\n" + GO_SCRIPT)
    fd, path = tempfile.mkstemp(prefix="stuck-gdb-", suffix=".py")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(script)
        ran = tools.run([exe, "-nx", "-batch", "-iex", "set debuginfod enabled off",
                         *untrusted_target_options(), "-p", str(pe.pid),
                         "-ex", f"source {path}"], timeout, target=pe.pid)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    if ran.code is None:
        pe.missing.append(f"gdb did not finish reading pid {pe.pid} within {timeout:.0f} s and "
                          "was stopped (the process was continued): native stacks and mutex "
                          "owners are missing; try a longer --timeout")
    if MARK not in ran.out:
        why = tools.first_line(ran.err) or tools.first_line(ran.out) or "no output"
        if "No such process" in why and not os.path.exists(f"/proc/{pe.pid}/task"):
            return  # it exited: the capture already says so, and no privilege would help
        hint = ""
        if "ptrace" in why or "Operation not permitted" in why:
            hint = f" ({proc.ptrace_hint()})"
        pe.missing.append(f"gdb could not read pid {pe.pid}: {why}{hint}; native stacks and "
                          "mutex owners are missing")
        return
    pe.tools["gdb"] = ran.out


@dataclass(slots=True)
class Read:
    """What the gdb script printed: frames by thread id, memory words and symbol names by
    futex address, and for a thread inside an rwlock call, the rwlock and its writer."""

    frames: dict[int, list[Frame]] = field(default_factory=dict)
    words: dict[int, list[int]] = field(default_factory=dict)
    symbols: dict[int, str] = field(default_factory=dict)
    rwlocks: dict[int, tuple[int, int]] = field(default_factory=dict)  # lwp -> (addr, writer)
    # A condition variable waited on: lwp -> its address (the waiter's ``cond`` argument),
    # and futex address -> the pthread_cond_t variable it lies in. glibc's waiters sleep on
    # one of two words inside it (``__g_signals``, one per group of waiters), so waiters on
    # one condition variable meet only by the variable's address.
    conds: dict[int, int] = field(default_factory=dict)
    cond_of: dict[int, int] = field(default_factory=dict)


def _symbol(sym: object) -> str | None:
    """``"a in section .bss of /path/prog"`` -> ``a``; ``ready + 8`` -> ``ready`` (the futex is a
    field inside the object named); None when gdb names no symbol."""
    if isinstance(sym, str) and " in section " in sym and not sym.startswith("No "):
        name = sym.split(" in section ", 1)[0].split(" + ", 1)[0].strip()
        return name or None
    return None


def records(text: str) -> Iterator[dict[str, Any]]:
    """The records the gdb scripts printed (the lines that start with ``MARK``; untrusted:
    saved evidence), each a JSON object; whatever else gdb printed is passed over."""
    for line in text.splitlines():
        if not line.startswith(MARK):
            continue
        try:
            d = json.loads(line[len(MARK):])
        except ValueError:
            continue
        if isinstance(d, dict):
            yield d


def parse(text: str) -> Read:
    read = Read()
    frames = read.frames
    for d in records(text):
        lwp = d.get("lwp")
        if isinstance(lwp, int) and isinstance(d.get("frames"), list):
            out = []
            for fr in d["frames"][:MAX_FRAMES]:
                if not isinstance(fr, list) or len(fr) != 4 or not isinstance(fr[0], str):
                    continue
                out.append(Frame(function=fr[0],
                                 file=fr[1] if isinstance(fr[1], str) else None,
                                 line=fr[2] if isinstance(fr[2], int) else None,
                                 module=os.path.basename(fr[3]) if isinstance(fr[3], str)
                                 else None))
            frames[lwp] = out
            cv = d.get("cond")
            if isinstance(cv, list) and len(cv) == 2 and isinstance(cv[0], int) and cv[0] > 0:
                read.conds[lwp] = cv[0]
                name = _symbol(cv[1])
                if name:
                    read.symbols[cv[0]] = name
            rw = d.get("rwlock")
            if isinstance(rw, list) and len(rw) == 3 and isinstance(rw[0], int) \
                    and isinstance(rw[1], int):
                read.rwlocks[lwp] = (rw[0], rw[1])
                name = _symbol(rw[2])
                if name:
                    read.symbols[rw[0]] = name
        addr = d.get("addr")
        if isinstance(addr, int) and isinstance(d.get("words"), list):
            read.words[addr] = [w for w in d["words"] if isinstance(w, int)]
            name = _symbol(d.get("symbol"))
            if name:
                read.symbols[addr] = name
            cond = d.get("cond")
            if isinstance(cond, int) and 0 < addr - cond < 64:  # the word lies inside it
                read.cond_of[addr] = cond
                if name:
                    read.symbols[cond] = name
    return read


def apply(pe: ProcessEvidence, threads: list[Thread], built: Built, ev: Evidence) -> None:
    read = parse(pe.tools.get("gdb", ""))
    calls = {te.tid: syscalls.parse(te.syscall, ev.machine) for te in pe.threads}
    for t in threads:
        if t.tid is None or t.tid not in read.frames:
            continue
        call = calls.get(t.tid)
        addr = call.args[0] if call is not None and call.name == "futex" else None
        refine_native(t, pe.pid, built.snapshot, read, addr)


# --- gdb's frames applied to a thread the kernel saw waiting -------------------------------------

NATIVE_KINDS = {"mutex", "rwlock", "condition", "semaphore", "thread", "event"}
SYSTEM_LIBS = ("libc.so", "libc-", "ld-linux", "libpthread", "[kernel]", "[vdso]")


def program_frame(frames: list[Frame]) -> Frame | None:
    """The innermost frame outside the C library: where the program itself waits."""
    for f in frames:
        if f.function != "??" and not (f.module or "").startswith(SYSTEM_LIBS):
            return f
    return None


RWLOCK_CALL = re.compile(r"pthread_rwlock_(?:timed|clock)?(?:rd|wr)lock")


def refine_native(t: Thread, pid: int, snap: Snapshot, read: Read, addr: int | None) -> None:
    """Apply gdb's frames (and the memory it read) to a thread the kernel saw waiting: the
    primitive it waits on, where, and for a mutex, an rwlock's writer or a join, who ends it."""
    assert t.tid is not None
    frames = read.frames[t.tid]
    t.frames = frames
    if t.waits is not None and t.waits.direction is not None:
        t.waits.at = program_frame(frames)
    c = classify(frames)
    if c.state == "idle" and t.state in ("io", "sleeping") and t.waits is None:
        # A runtime's own parking (a Go M parked, its netpoller, sysmon): not program work
        # that could end another process's wait.
        t.state, t.detail = "idle", f"{t.detail} (runtime idle loop)"
        return
    if t.state != "blocked" or t.waits is None or not t.waits.resource.startswith("futex:"):
        return
    kind = c.kind
    rw = read.rwlocks.get(t.tid)
    if rw is not None or any(RWLOCK_CALL.search(f.function) for f in frames[:12]):
        kind = "rwlock"
    if kind is None or kind not in NATIVE_KINDS:
        if c.state == "idle":
            t.state, t.waits = "idle", None
        return
    t.waits.at = c.at if c.at is not None else program_frame(frames)
    if kind == "rwlock" and rw is not None:
        addr = rw[0]  # the rwlock itself, not the futex word inside it
    if kind == "condition":  # the condition variable, not the futex word inside it
        cond = read.conds.get(t.tid)
        if cond is None and addr is not None:
            cond = read.cond_of.get(addr)
        if cond is not None and (addr is None or 0 <= addr - cond < 64):
            addr = cond
    if addr is None:
        return
    symbol = read.symbols.get(addr)
    name = f"{symbol} ({addr:#x})" if symbol else f"{addr:#x}"
    rid = f"{kind}:{pid}:{addr:#x}"
    res = snap.resource(rid)
    if res is None:
        res = Resource(id=rid, kind=kind, label=name, address=f"{addr:#x}")
        w = read.words.get(addr)
        if kind == "mutex" and w is not None and len(w) >= 3 and w[0] != 0 and w[2] > 0:
            # glibc: __data.__lock (non-zero: locked), __count, __owner (the owner's tid)
            res.owners = [thread_id(w[2])]
        elif kind == "rwlock" and rw is not None and rw[1] > 0:
            res.owners = [thread_id(rw[1])]  # __data.__cur_writer: the writer holding it
        elif kind == "thread" and w is not None and w and w[0] > 0:
            # pthread_join sleeps on the joined thread's tid word, which the kernel clears
            # when that thread exits: while it runs, the word is its tid.
            res.owners = [thread_id(w[0])]
            res.label = f"thread LWP {w[0]} to finish"
        snap.resources.append(res)
    t.waits.resource = rid

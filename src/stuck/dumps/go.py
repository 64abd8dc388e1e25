"""Go goroutine dumps: SIGQUIT / panic / ``GOTRACEBACK=all`` output and the runtime's own
``fatal error: all goroutines are asleep - deadlock!``, Go 1.3 through current formats.

The header of each goroutine carries most of what analysis needs: the wait reason
(``semacquire``, ``chan send``, ``sync.Mutex.Lock``, ...), how long it has waited
(``5 minutes``) and ``locked to thread``. Go does not print who holds a ``sync.Mutex``; when
exactly one other goroutine runs a method on the very object whose address is the mutex
(``(*store).TxnEnd(0xc82030c1c0)`` against ``(*Mutex).Lock(0xc82030c1c0)``), it is taken as
the likely holder, and the finding says so.

Hot path: one pass over the lines, cheap ``startswith`` dispatch, frames shared between
goroutines through a cache (100,000 goroutines usually have a few hundred distinct frames).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from stuck.analysis import POOL_LOOP
from stuck.dumps import ParseResult
from stuck.model import Finding, Frame, Process, Resource, ResourceKind, Thread, ThreadState, Wait

NAME = "go"

_HEADER = re.compile(r"^goroutine (\d+)(?: gp=\S+)?(?: m=\S+)?(?: mp=\S+)? \[([^\]]{0,200})\]:\s*$")
_MINUTES = re.compile(r"^(\d+) minutes?$")
_ADDR = re.compile(r"^\{?(0x[0-9a-fA-F]+)")

# wait reason -> (state, resource kind, durable)
REASONS: dict[str, tuple[ThreadState, ResourceKind | None, bool]] = {
    "running": ("running", None, False), "runnable": ("running", None, False),
    "syscall": ("io", None, False), "IO wait": ("io", None, False),
    "sleep": ("sleeping", None, False),
    "semacquire": ("blocked", "semaphore", True),
    "sync.Mutex.Lock": ("blocked", "mutex", True),
    "sync.RWMutex.Lock": ("blocked", "rwlock", True),
    "sync.RWMutex.RLock": ("blocked", "rwlock", True),
    "sync.Cond.Wait": ("blocked", "condition", True),
    "sync.WaitGroup.Wait": ("blocked", "waitgroup", True),
    "chan send": ("blocked", "channel", True), "chan receive": ("blocked", "channel", True),
    "chan send (nil chan)": ("blocked", "channel", True),
    "chan receive (nil chan)": ("blocked", "channel", True),
    "select": ("blocked", "channel", True), "select (no cases)": ("blocked", "channel", True),
    "dead": ("dead", None, False), "idle": ("idle", None, False),
    "finalizer wait": ("idle", None, False), "GC worker (idle)": ("idle", None, False),
    "GC sweep wait": ("idle", None, False), "GC scavenge wait": ("idle", None, False),
    "force gc (idle)": ("idle", None, False), "timer goroutine (idle)": ("idle", None, False),
    "trace reader (blocked)": ("idle", None, False), "wait for GC cycle": ("idle", None, False),
    "GC assist wait": ("blocked", "unknown", False), "preempted": ("running", None, False),
    "copystack": ("running", None, False), "debug call": ("running", None, False),
    "stopping the world": ("running", None, False), "panicwait": ("blocked", "unknown", False),
    "sync.(*Cond).Wait": ("blocked", "condition", True),
    "cleanup wait": ("idle", None, False), "synctest": ("blocked", "unknown", True),
}

# Under "semacquire" (Go before 1.20) the frames say which sync primitive it is.
_SEMA_CALLERS: tuple[tuple[str, ResourceKind], ...] = (
    ("sync.(*Mutex).Lock", "mutex"), ("sync.(*Mutex).lockSlow", "mutex"),
    ("sync.(*RWMutex).RLock", "rwlock"), ("sync.(*RWMutex).Lock", "rwlock"),
    ("sync.(*WaitGroup).Wait", "waitgroup"), ("sync.(*Cond).Wait", "condition"),
)

# The frame whose first argument is the address of what the goroutine waits on.
_PRIMITIVE_FRAMES: dict[str, ResourceKind] = {
    "sync.(*Mutex).Lock": "mutex", "sync.(*Mutex).lockSlow": "mutex",
    "sync.(*RWMutex).RLock": "rwlock", "sync.(*RWMutex).Lock": "rwlock",
    "sync.(*WaitGroup).Wait": "waitgroup", "sync.(*Cond).Wait": "condition",
    "runtime.chansend": "channel", "runtime.chansend1": "channel", "runtime.chanrecv": "channel",
    "runtime.chanrecv1": "channel", "runtime.chanrecv2": "channel",
    "internal/sync.(*Mutex).Lock": "mutex", "internal/sync.(*Mutex).lockSlow": "mutex",
}

_RUNTIME_PREFIXES = ("runtime.", "sync.", "internal/", "runtime/")


@dataclass(slots=True)
class _G:
    gid: int
    reason: str
    minutes: int | None
    locked: bool
    frames: list[Frame] = field(default_factory=list)
    first_args: list[str | None] = field(default_factory=list)


@dataclass(slots=True)
class _Dump:
    goroutines: list[_G] = field(default_factory=list)
    ids: set[int] = field(default_factory=set)
    all_asleep: str | None = None


def detect(text: str) -> bool:
    pos = text.find("goroutine ")
    while pos >= 0:
        if pos == 0 or text[pos - 1] == "\n":
            end = text.find("\n", pos)
            if _HEADER.match(text[pos:end if end >= 0 else len(text)]):
                return True
        pos = text.find("goroutine ", pos + 10)
    return False


# One pass over the whole text, in the regex engine: goroutine headers, frame pairs (a
# function line and its indented file line), "..." lines and the runtime's deadlock line.
# Every alternative is a run of [^\n] or a fixed word, so each line is scanned a bounded
# number of times whatever it holds.
_TOKENS = re.compile(
    r"^(?:goroutine (\d+)(?: gp=\S+)?(?: m=\S+)?(?: mp=\S+)? \[([^\]\n]{0,200})\]:[ \t]*(?:\n|\Z)"
    r"|(\S[^\n]*)\n[ \t]+([^\n]*)(?:\n|\Z)"
    r"|(fatal error: all goroutines are asleep[^\n]*)"
    r"|\.\.\.[^\n]*(?:\n|\Z))",
    re.M)


def parse(text: str) -> ParseResult:
    dumps: list[_Dump] = [_Dump()]
    cur: _G | None = None
    cache: dict[tuple[str, str], Frame] = {}
    cache_get = cache.get
    fatal: str | None = None
    last_end = -1
    header_cache: dict[str, tuple[str, int | None, bool]] = {}
    for m in _TOKENS.finditer(text):
        gid_text, bracket, func_line, loc, fatal_line = m.groups()
        if func_line is not None:
            contiguous = m.start() == last_end
            last_end = m.end()
            if cur is None or not contiguous:
                cur = None
                continue
            if func_line.startswith("created by "):
                fn = func_line.rstrip()
                arg = None
            elif func_line.endswith(")"):
                open_at = func_line.rfind("(")
                if open_at <= 0:
                    cur = None
                    continue
                fn = func_line[:open_at]
                args = func_line[open_at + 1:-1]
                comma = args.find(",")
                arg = args if comma < 0 else args[:comma]
            else:
                cur = None
                continue
            key = (fn, loc)
            frame = cache_get(key)
            if frame is None:
                frame = _frame(fn, loc.strip())
                cache[key] = frame
            cur.frames.append(frame)
            cur.first_args.append(arg)
            continue
        if gid_text is not None:
            last_end = m.end()
            gid = int(gid_text)
            dump = dumps[-1]
            if gid in dump.ids or (fatal is not None and dump.goroutines):
                dump = _Dump()
                dumps.append(dump)
            if fatal is not None:
                dump.all_asleep = fatal
                fatal = None
            parsed = header_cache.get(bracket)
            if parsed is None:
                g0 = _goroutine(0, bracket)
                parsed = header_cache[bracket] = (g0.reason, g0.minutes, g0.locked)
            cur = _G(gid, parsed[0], parsed[1], parsed[2])
            dump.goroutines.append(cur)
            dump.ids.add(gid)
            continue
        if fatal_line is not None:
            fatal = fatal_line.strip()
            cur = None
            continue
        if m.start() == last_end:  # "...additional frames elided..."
            last_end = m.end()
    result = ParseResult()
    used: set[str] = set()
    index = 0
    for dump in dumps:
        if dump.goroutines:
            index += 1
            _build(dump, index, used, result)
    return result


def _frame(func: str, loc: str) -> Frame:
    if func.startswith("created by "):
        name = func[11:]
        at = name.find(" in goroutine ")
        if at > 0:
            name = name[:at]
        func = "created by " + name
    sp = loc.find(" ")
    if sp > 0:
        loc = loc[:sp]
    file, _, ln = loc.rpartition(":")
    if file and ln.isdigit():
        return Frame(func, file, int(ln))
    return Frame(func, loc or None, None)


def _goroutine(gid: int, bracket: str) -> _G:
    parts = bracket.split(", ")
    reason = parts[0]
    minutes = None
    locked = False
    for p in parts[1:]:
        m = _MINUTES.match(p)
        if m:
            minutes = int(m.group(1))
        elif p == "locked to thread":
            locked = True
    return _G(gid, reason, minutes, locked)


_RUNTIME_FUNCS: dict[str, bool] = {}


def _runtime_function(name: str) -> bool:
    known = _RUNTIME_FUNCS.get(name)
    if known is None:
        known = (name.startswith(_RUNTIME_PREFIXES) or name in ("runfinq()", "runfinq")
                 or name.startswith("created by runtime"))
        if len(_RUNTIME_FUNCS) < 100_000:
            _RUNTIME_FUNCS[name] = known
    return known


def _is_runtime(g: _G) -> bool:
    """A goroutine of the runtime itself (finalizers, GC, timers): never a finding's subject."""
    return bool(g.frames) and all(_runtime_function(f.function) for f in g.frames)


def _build(dump: _Dump, index: int, used: set[str], result: ParseResult) -> None:
    prefix = f"go{index}:"
    threads: list[Thread] = []
    resources: dict[str, Resource] = {}
    waiting_addr: dict[str, str] = {}  # thread id -> address of the mutex it waits for
    for g in dump.goroutines:
        tid = f"goroutine {g.gid}"
        if tid in used:
            tid = f"goroutine {g.gid} #{index}"
        used.add(tid)
        state, kind, durable = REASONS.get(g.reason, ("unknown", None, False))
        if g.reason == "semacquire" or g.reason.startswith("semacquire"):
            state, kind, durable = "blocked", "semaphore", True
            for f in g.frames[:6]:
                for name, k in _SEMA_CALLERS:
                    if f.function == name:
                        kind = k
                        break
                else:
                    continue
                break
        if state == "blocked" and _is_runtime(g):
            state = "idle"
        elif state == "blocked" and kind == "channel" and any(
                POOL_LOOP.search(f.function) for f in g.frames[:8]
                if not _runtime_function(f.function)):
            state = "idle"  # a pool worker waiting for its next job
        detail = g.reason + (", locked to thread" if g.locked else "")
        t = Thread(id=tid, name=None, state=state, frames=g.frames, detail=detail)
        threads.append(t)
        duration = g.minutes * 60.0 if g.minutes is not None else None
        at = next((f for f in g.frames if not _runtime_function(f.function)), None)
        if state == "blocked" and kind is not None:
            addr = None
            for f, arg in zip(g.frames[:8], g.first_args[:8], strict=False):
                if f.function in _PRIMITIVE_FRAMES and arg:
                    m = _ADDR.match(arg)
                    # Go 1.18+ marks arguments it may have lost with "?": not an address
                    if m and not arg.endswith("?") and int(m.group(1), 16) != 0:
                        addr = m.group(1).lower()
                    break
            key = f"{kind}:{addr}" if addr else f"{kind}:{tid}"
            rid = prefix + key
            if rid not in resources:
                label = (f"{_kind_word(kind)} {addr}" if addr
                         else f"{g.reason} in {at.function if at else '?'}")
                resources[rid] = Resource(id=rid, kind=kind, label=label, address=addr)
            t.waits = Wait(resource=rid, duration=duration, durable=durable, at=at)
            if addr and kind in ("mutex", "rwlock"):
                waiting_addr[tid] = addr
        elif duration is not None and state in ("io", "running"):
            # a goroutine in a system or cgo call for minutes: the wait is outside Go
            rid = prefix + f"syscall:{tid}"
            cgo = next((f.function for f in g.frames if "_Cfunc_" in f.function), None)
            label = f"cgo call {cgo.rsplit('.', 1)[-1]}" if cgo else "system call"
            resources[rid] = Resource(id=rid, kind="unknown", label=label)
            t.waits = Wait(resource=rid, duration=duration, durable=False, at=at)
    _infer_mutex_owners(dump, threads, resources, waiting_addr, result)
    result.processes.append(Process(threads=threads))
    result.resources.extend(resources.values())
    if dump.all_asleep is not None:
        result.stated.append(Finding(
            kind="stall", confidence="certain",
            summary=f"the Go runtime stopped the program with \"{dump.all_asleep}\"",
            threads=[t.id for t in threads], details={"source": "go runtime"}))


def _kind_word(kind: str) -> str:
    return {"mutex": "sync.Mutex", "rwlock": "sync.RWMutex", "waitgroup": "sync.WaitGroup",
            "condition": "sync.Cond", "channel": "channel"}.get(kind, kind)


def _infer_mutex_owners(dump: _Dump, threads: list[Thread], resources: dict[str, Resource],
                        waiting_addr: dict[str, str], result: ParseResult) -> None:
    """A goroutine running a method on the object at a waited mutex's address likely holds it."""
    if not waiting_addr:
        return
    wanted = set(waiting_addr.values())
    candidates: dict[str, list[tuple[str, str]]] = {}
    seen: set[tuple[str, str]] = set()
    for t, g in zip(threads, dump.goroutines, strict=True):
        own_wait = waiting_addr.get(t.id)
        for f, arg in zip(g.frames, g.first_args, strict=False):
            if not arg or f.function.startswith(_RUNTIME_PREFIXES):
                continue
            m = _ADDR.match(arg)
            if m is None or arg.endswith("?"):
                continue
            addr = m.group(1).lower()
            if addr in wanted and addr != own_wait and (addr, t.id) not in seen:
                seen.add((addr, t.id))
                candidates.setdefault(addr, []).append((t.id, f.function))
    by_id = {t.id: t for t in threads}
    for res in resources.values():
        if res.address is None or res.owners or res.kind not in ("mutex", "rwlock"):
            continue
        cands = candidates.get(res.address, [])
        if len(cands) != 1:
            continue
        owner, function = cands[0]
        res.owners.append(owner)
        by_id[owner].holds.append(res.id)
        result.inferred[res.id] = (f"Go does not record mutex owners; {owner} is in {function} "
                                   f"on the object at {res.address}, the mutex's own address, "
                                   "so it probably holds it")

"""``stuck capture PID…``: diagnose a live process from the outside, in any language.

Reading happens in ``collect`` (the kernel's view first, twice; then each runtime's own view:
gdb for native code, py-spy or pystack for CPython, jcmd for a JVM) and building in
``stuck.capture.merge``; the report comes from the same rules as ``stuck analyze``. Processes at
the other end of a pipe or socket a captured thread is blocked on are captured too, so a cycle
across processes closes.

Capture never stops or kills its target: /proc is only read, each tool has a deadline, and
gdb detaches (a target a killed debugger left stopped is continued).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from stuck.capture.evidence import Evidence, ProcessEvidence

if TYPE_CHECKING:
    from stuck.model import Report

INTERVAL = 0.25  # seconds between the two readings of every thread
MAX_PROCESSES = 64  # peers followed at most
TIMEOUT = 20.0  # seconds each outside tool may take


def _waiting_keys(pe: ProcessEvidence, machine: str) -> set[str]:
    """Pipes and sockets that a thread of ``pe`` sleeps reading or writing, and files it waits
    to lock (``file:PATH``)."""
    from stuck.capture import eventloop, syscalls

    fds = {f.fd: f.target for f in pe.fds}
    out = eventloop.waiting_keys(pe, machine)
    if pe.runtime == "go" and "gdb" in pe.tools:  # goroutines parked in the netpoller
        from stuck.capture import goroutines
        view = goroutines.read(pe.tools["gdb"])
        for polled, _ in (goroutines.fd_waits(view).values() if view is not None else ()):
            if fds.get(polled, "").startswith(("pipe:", "socket:")):
                out.add(fds[polled])
    for te in pe.threads:
        call = syscalls.parse(te.syscall, machine)
        fd = call.fd() if call is not None else None
        target = fds.get(fd) if fd is not None else None
        if not target:
            continue
        if call is not None and call.meaning == "file-lock":
            out.add(f"file:{target}")
        elif target.startswith(("pipe:", "socket:")):
            out.add(target)
    return out


def _shared_objects(pe: ProcessEvidence, machine: str) -> set[str]:
    """The shared-memory objects (maj:min:inode) a thread of ``pe`` waits on a futex in."""
    from stuck.capture import shared, syscalls

    out = set()
    for te in pe.threads:
        call = syscalls.parse(te.syscall, machine)
        if call is not None and call.futex_shared():
            m = shared.mapping_of(pe.shared_maps, call.args[0])
            if m is not None:
                out.add(m.object)
    return out


def collect(pids: list[int], tree: bool = False, timeout: float = TIMEOUT,
            interval: float = INTERVAL, runtime_views: bool = True,
            attach_anyway: bool = False) -> Evidence:
    """Read ``pids`` (and their descendants with ``tree``) and whatever they wait on.
    ``attach_anyway``: attach gdb, pystack or py-spy even to a process a stop would change
    (see ``writes_a_stop_would_cut``)."""
    from stuck.capture import peers, proc, shared

    ev = Evidence(taken_at=time.time(), machine=os.uname().machine, interval=interval)
    table = shared.lock_table()
    locked = shared.locked_files(table)
    order: list[tuple[int, str]] = [(p, "asked") for p in dict.fromkeys(pids)]
    if tree:
        for p in list(dict.fromkeys(pids)):
            order.extend((c, f"child of {p}") for c in proc.children(p))
    seen: set[int] = set()
    for pid, why in order:
        if pid not in seen:
            seen.add(pid)
            ev.processes.append(proc.read_process(pid, why, locked))
    unix_all = peers.unix_sockets()
    if not unix_all:
        ev.missing.append("the kernel's socket table (sock_diag) could not be read: unix "
                          "socket peers are not linked")
    ev.unix = unix_all
    ev.net_tcp = peers.read_tcp()
    _follow_peers(ev, seen, locked)
    waited = {f.file_id for pe in ev.processes for f in pe.fds if f.file_id}
    ev.locks = "\n".join(line for line in table.splitlines()
                         if (lk := shared.parse_lock(line)) is not None
                         and lk.file_id in waited)
    time.sleep(interval)
    for pe in ev.processes:
        proc.resample(pe)
    _accept_queue_again(ev)
    if runtime_views:
        _runtime_views(ev, ev.processes, timeout, attach_anyway)
        # What only a runtime's view shows (a goroutine parked on a pipe) leads to more peers.
        known = len(ev.processes)
        _follow_peers(ev, seen, locked)
        if len(ev.processes) > known:
            time.sleep(interval)
            for pe in ev.processes[known:]:
                proc.resample(pe)
            _accept_queue_again(ev)  # the newcomers' queued connections read again too
            _runtime_views(ev, ev.processes[known:], timeout, attach_anyway)
    from stuck.capture import eventloop

    held = proc.eventfd_holders(eventloop.watched_eventfds(ev))
    ev.eventfds = {str(ident): pids for ident, pids in held.items()}
    keep = {int(f.target[8:-1]) for pe in ev.processes for f in pe.fds
            if f.target.startswith("socket:[")}
    ev.unix = [s for s in ev.unix if s.inode in keep or (s.peer or 0) in keep]
    ev.net_tcp = peers.unheld_tcp_rows(ev.net_tcp, keep)
    return ev


def _accept_queue_again(ev: Evidence) -> None:
    """The second reading of the accept queues captured clients wait in, taken with the
    threads' second reading: a connection accepted in between is no wait."""
    from stuck.capture import peers

    held = {int(f.target[8:-1]) for pe in ev.processes for f in pe.fds
            if f.target.startswith("socket:[")}
    first = peers.accept_queue(ev.unix, ev.net_tcp)
    if not held & set(first):
        return
    listeners = {ino for client in held & set(first) for ino in first[client]}
    again = peers.accept_queue(peers.unix_sockets(listeners), peers.read_tcp())
    ev.queued_again = sorted(held & set(again))


def _waited_children(pe: ProcessEvidence, machine: str) -> list[int]:
    """Children a thread of ``pe`` waits for (wait4, waitid)."""
    from stuck.capture import proc, syscalls

    out: list[int] = []
    for te in pe.threads:
        call = syscalls.parse(te.syscall, machine)
        if call is None or call.meaning != "wait-child":
            continue
        which = call.child()
        out.extend([which] if which > 0 else proc.children(pe.pid, depth=1))
    return out


def _follow_peers(ev: Evidence, seen: set[int], locked: set[str]) -> None:
    """Capture the processes holding the other end of what captured threads wait on (a pipe,
    a socket, a file lock, shared memory a futex is in), and the children they wait for."""
    from stuck.capture import peers, proc, shared

    done: set[str] = set()
    objects_done: set[str] = set()
    while len(ev.processes) < MAX_PROCESSES:
        keys: set[str] = set()
        objects: set[str] = set()
        new: list[tuple[int, str]] = []
        for pe in ev.processes:
            keys |= _waiting_keys(pe, ev.machine)
            objects |= _shared_objects(pe, ev.machine)
            new.extend((c, f"waited for by {pe.pid}") for c in _waited_children(pe, ev.machine)
                       if c not in seen)
        keys |= peers.connect_keys(ev)
        files = {k[5:] for k in keys if k.startswith("file:")} - done
        done |= files
        keys = peers.peer_keys(ev, keys) - done
        done |= keys
        found = proc.holders(keys)
        found.update((f"a lock on {path}", pids)
                     for path, pids in shared.lock_holders(files).items())
        objects -= objects_done
        objects_done |= objects
        if objects:
            mapped, unread = shared.mappers(objects)
            for obj in objects:
                ev.mappers[obj] = mapped.get(obj, [])
            ev.maps_unread = sorted(set(ev.maps_unread) | set(unread))
            found.update((f"shared memory {obj}", pids) for obj, pids in mapped.items())
        new += [(pid, f"holds {key}") for key, pids in found.items() for pid in pids
                if pid not in seen]
        if not new:
            return
        for pid, key in new:
            if pid in seen or len(ev.processes) >= MAX_PROCESSES:
                continue
            seen.add(pid)
            ev.processes.append(proc.read_process(pid, key, locked))
    ev.notes.append(f"stopped following pipes and sockets at {MAX_PROCESSES} processes")


def writes_a_stop_would_cut(pe: ProcessEvidence, machine: str) -> list[int]:
    """The threads of ``pe`` blocked writing to a pipe or socket. A ptrace stop (gdb, pystack,
    py-spy without --nonblocking attach that way) interrupts such a write, and a write that
    has already put part of its data in the buffer then returns short: a program that does not
    write the rest loses it, and the wait the capture came to see is gone."""
    from stuck.capture import syscalls

    streams = {f.fd for f in pe.fds if f.target.startswith(("pipe:", "socket:"))}
    out = []
    for te in pe.threads:
        call = syscalls.parse(te.syscall, machine)
        if call is not None and call.meaning == "write" and call.fd() in streams:
            out.append(te.tid)
    return out


def _runtime_views(ev: Evidence, processes: list[ProcessEvidence], timeout: float,
                   attach_anyway: bool = False) -> None:
    from stuck.capture import gdb, jvm, python

    for pe in processes:
        if not pe.threads or pe.state in ("Z", "X", "gone"):
            continue
        writers = [] if attach_anyway or pe.runtime == "jvm" \
            else writes_a_stop_would_cut(pe, ev.machine)
        if writers:
            which = ", ".join(str(t) for t in writers)
            unread = "its Python stacks were read with py-spy --nonblocking, " \
                "and its native stacks and mutex owners are missing" \
                if pe.runtime == "python" else "its native stacks and mutex owners are missing"
            pe.missing.append(
                f"pid {pe.pid} was not stopped to read it: thread {which} is blocked writing "
                "to a pipe or socket, and a stop (gdb, pystack and py-spy attach that way) "
                "would end that write short, which changes what the program does; "
                f"{unread}. `stuck capture --attach-anyway {pe.pid}` reads them anyway")
            if pe.runtime == "python":
                python.collect(pe, timeout, stop=False)
            continue
        if pe.runtime == "python":
            if not python.collect(pe, timeout):
                gdb.collect(pe, ev, timeout)  # the interpreter's own frames, at least
        elif pe.runtime == "jvm":
            jvm.collect(pe, timeout)
        else:
            if any(te.syscall.split()[:1] != ["running"] for te in pe.threads):
                gdb.collect(pe, ev, timeout)
            if pe.runtime == "go":
                from stuck.capture import goroutines
                text = pe.tools.get("gdb", "")
                view = goroutines.read(text)
                if view is None or not view.complete:
                    why = goroutines.problem(text) or (
                        "gdb could not read the runtime's goroutine table")
                    pe.missing.append(
                        f"pid {pe.pid} is a Go program and its goroutines were not read "
                        f"({why}); only its OS threads are shown. To see them: run a binary "
                        "from `go build` with symbols (no -ldflags=-s or -w) and capture it, or "
                        f"`kill -QUIT {pe.pid}` (prints the goroutines, but ends the program)")


def report(ev: Evidence, sources: Iterable[str] = ()) -> Report:
    """The report for captured evidence: built, analysed by the one rules engine, and each
    finding told what could not be read of the processes it involves. ``sources``: where the
    programs' source files can be read when not at the paths their stacks print
    (``--source DIR``), as for ``stuck analyze``."""
    from stuck.analysis import analyze
    from stuck.capture.merge import build
    from stuck.dumps import unsure_facts

    dirs = tuple(sources)
    built = build(ev, dirs)
    # Kept in the report, so `stuck analyze` of its JSON is as unsure as the capture was.
    built.snapshot.facts.extend(unsure_facts(built.unsure))
    rep = analyze(built.snapshot, built.stated, built.inferred, unsure=built.unsure,
                  sources=dirs)
    # A finding the program's own runtime made stands when the rules, from what it handed
    # over, found nothing about its threads: capture under `stuck run` knows at least as much
    # as the run itself.
    covered = {t for f in rep.findings for t in (*f.threads, *f.blocked_behind)}
    for f in built.live_findings:
        if not (set(f.threads) | set(f.blocked_behind)) & covered:
            rep.findings.append(f)
            covered.update((*f.threads, *f.blocked_behind))
    pid_of = {t.id: p.pid for p in built.snapshot.processes for t in p.threads}
    for f in rep.findings:
        pids = dict.fromkeys(pid_of[t] for t in [*f.threads, *f.blocked_behind] if t in pid_of)
        for pid in pids:
            for gap in built.missing.get(pid or 0, []):
                if gap not in f.missing_evidence:
                    f.missing_evidence.append(gap)
    return rep


__all__ = ["collect", "report"]

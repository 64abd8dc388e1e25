"""An event loop seen from outside: a thread of a Python process asleep in its selector with no
timeout, watching nothing but the loop's own wake-up pipe.

asyncio's loop computes the selector's timeout before it sleeps: 0 when a callback is ready,
the time to the nearest timer when one is scheduled, and no timeout only when there is neither.
The selector is whichever the loop was given: epoll by default on Linux (``epoll_wait``,
``epoll_pwait``), or poll or select (``poll``, ``ppoll``, ``select``, ``pselect6``). It watches
every fd the loop waits on, plus the read end of its wake-up pipe: a socket pair whose other
end the loop keeps to write to (``call_soon_threadsafe``, a signal through
``signal.set_wakeup_fd``) and never watches; uvloop's (libuv) adds an eventfd it writes to
wake itself, which only a process holding it can write. When it watches nothing else, no I/O
can wake the loop; when no other thread of the process can run and the program handles no signal that
could, nothing will: whatever its tasks wait for, no code on the loop runs again.

All of it is the kernel's: the system call and its arguments (twice, unchanged), what it
watches (an epoll set's fdinfo ``tfd:`` lines; the pollfd array or fd_sets a poll or select
call was given, read from the process's memory), which process holds each end of a socket pair
(sock_diag and the fd links) and each eventfd (fdinfo ``eventfd-id``), the signals the process catches (``SigCgt``). The tasks are not:
the finding is possible, and says how to see them (``stuck run``). The rule is
``stuck.rules.loop``'s, on a ``model.EventLoop`` whose tasks were not read.

Such a wait is called an event loop only when the evidence shows one: asyncio's or uvloop's
frames on the thread's Python stack, libuv's eventfd, or (no frame read) asyncio's self-pipe,
a socket pair non-blocking at both ends. A program's own ``selectors`` or ``select`` loop on
a socket pair whose peer has gone quiet looks the same to the kernel: it is said as what it
is, a wait for this process to write the other end, which the rules judge as any wait.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

from stuck.capture import syscalls
from stuck.capture.evidence import Evidence, FdEvidence, ProcessEvidence, ThreadEvidence
from stuck.capture.peers import Channel
from stuck.model import EventLoop, Thread
from stuck.rules.knot import can_progress

if TYPE_CHECKING:
    from stuck.capture.merge import Built

MAX_WATCHED = 16  # an epoll set followed to the other ends of what it watches at most
# Signals that are not a way to wake a loop: faults (faulthandler catches them), glibc's own
# (32, 33), SIGINT (Python's default handler: the user's Ctrl-C, not the program's design).
NOT_WAKERS = frozenset({signal.SIGINT, signal.SIGILL, signal.SIGTRAP, signal.SIGABRT,
                        signal.SIGBUS, signal.SIGFPE, signal.SIGSEGV, signal.SIGSYS, 32, 33})


def watched(fe: FdEvidence | None) -> list[int] | None:
    """The fds an epoll instance watches (its fdinfo ``tfd:`` lines); None when unread."""
    if fe is None or fe.target != "anon_inode:[eventpoll]":
        return None
    out = []
    for line in fe.epoll:
        parts = line.split()
        if len(parts) > 1 and parts[0] == "tfd:" and parts[1].isdigit():
            out.append(int(parts[1]))
    return out


def watched_forever(pe: ProcessEvidence, te: ThreadEvidence,
                    call: syscalls.Call | None) -> list[int] | None:
    """What a selector wait with no timeout of ``te`` watches: an epoll set's fds (its
    fdinfo), or those a poll or select call was given (read from its arguments,
    ``ThreadEvidence.polled``); None for any other wait, or when they could not be read."""
    if call is None or not call.polls_forever():
        return None
    epfd = call.epoll_fd()
    if epfd is None:
        return te.polled
    return watched(next((f for f in pe.fds if f.fd == epfd), None))


def waiting_keys(pe: ProcessEvidence, machine: str) -> set[str]:
    """The pipes and sockets a Python thread waits on in a selector with no timeout: the
    processes holding their other ends are captured too (one of them could wake it)."""
    if pe.runtime != "python":
        return set()
    fds = {f.fd: f.target for f in pe.fds}
    out: set[str] = set()
    for te in pe.threads:
        fdset = watched_forever(pe, te, syscalls.parse(te.syscall, machine))
        if fdset is None or len(fdset) > MAX_WATCHED:
            continue
        out.update(fds[fd] for fd in fdset
                   if fds.get(fd, "").startswith(("pipe:", "socket:")))
    return out


def watched_eventfds(ev: Evidence) -> set[int]:
    """The eventfds (by id) that a Python thread's selector wait with no timeout watches:
    whoever holds one could write it and wake the loop (``Evidence.eventfds``)."""
    out: set[int] = set()
    for pe in ev.processes:
        if pe.runtime != "python":
            continue
        ids = {f.fd: f.eventfd for f in pe.fds if f.eventfd is not None}
        for te in pe.threads:
            fdset = watched_forever(pe, te, syscalls.parse(te.syscall, ev.machine))
            out.update(ids[fd] for fd in fdset or () if fd in ids)
    return out


def _own_wakeup(pe: ProcessEvidence, fd: int, fdset: list[int],
                chans: dict[str, Channel], eventfds: dict[str, list[int]]) -> bool:
    """Is ``fd`` one end of a wake-up pipe: a socket pair (or pipe) whose other end only this
    process holds, and not through a watched fd; or an eventfd only this process holds (the
    loop writes the one it watches: libuv's, so uvloop's)?"""
    fe = next((f for f in pe.fds if f.fd == fd), None)
    if fe is not None and fe.eventfd is not None:
        return eventfds.get(str(fe.eventfd)) == [pe.pid]
    target = fe.target if fe is not None else ""
    ch = chans.get(target)
    if ch is None or ch.listening:
        return False
    if ch.kind == "socket":
        other = chans.get(ch.peer) if ch.peer else None
        if other is None:
            return False  # a peer outside this process, or unknown: it may write
        ends = other.ends
    else:
        ends = [e for e in ch.ends if "w" in e.mode]
    return bool(ends) and all(e.pid == pe.pid and e.fd not in fdset for e in ends)


def _caught(pe: ProcessEvidence, stuck_runs: bool) -> list[str]:
    """The signals ``pe`` catches that could wake a loop (by name)."""
    try:
        mask = int(pe.signals_caught, 16) if pe.signals_caught else 0
    except ValueError:
        return []
    out = []
    for n in range(1, 65):
        if not mask >> (n - 1) & 1 or n in NOT_WAKERS:
            continue
        if stuck_runs and n == signal.SIGUSR1:
            continue  # stuck's snapshot signal: it writes a report, it wakes nothing
        try:
            out.append(signal.Signals(n).name)
        except ValueError:
            out.append(f"signal {n}")
    return out


def quiet_loops(ev: Evidence, built: Built, threads_of: dict[int, list[Thread]],
                chans: dict[str, Channel]) -> None:
    """An ``EventLoop`` (tasks not read) for each Python thread seen twice in a selector wait
    (epoll, poll, select) with no timeout watching only its own wake-up pipe; the rule judges
    it."""
    from stuck.capture.naming import thread_id

    for pe in ev.processes:
        if pe.runtime != "python" or "stuck" in pe.tools:
            continue  # under stuck the watchdog handed over the loops it knows (python.py)
        threads = threads_of.get(pe.pid, [])
        by_id = {t.id: t for t in threads}
        for te in pe.threads:
            t = by_id.get(thread_id(te.tid))
            call = syscalls.parse(te.syscall, ev.machine)
            fdset = watched_forever(pe, te, call)
            if t is None or fdset is None or t.state != "io":
                continue  # "io" only when seen in the same call, unchanged, both times
            if not fdset or not all(_own_wakeup(pe, fd, fdset, chans, ev.eventfds)
                                    for fd in fdset):
                continue  # it watches I/O that can wake it
            if not _a_loop(pe, t, fdset, chans):
                _selector_wait(pe, t, call, fdset, chans, built, threads)
                continue
            stuck_runs = any("stuck/runtime/watchdog.py" in text.replace("\\", "/")
                             for text in pe.tools.values())
            others = [o.id for o in threads if o.id != t.id and (can_progress(o)
                                                                 or o.id in built.may_run)]
            built.snapshot.loops.append(EventLoop(
                id=f"loop:{pe.pid}:{te.tid}", thread=t.id, ready=0, timers=0, io=0, idle=True,
                stalled=True, runnable_threads=others,
                signal_handlers=_caught(pe, stuck_runs), tasks_read=False))


NONBLOCK = 0o4000  # O_NONBLOCK in fdinfo's flags (octal)
LOOP_FRAMES = ("/asyncio/", "/uvloop/")


def _a_loop(pe: ProcessEvidence, t: Thread, fdset: list[int],
            chans: dict[str, Channel]) -> bool:
    """Is the thread waiting in the selector an event loop? Where its Python frames were read,
    they say (asyncio's or uvloop's code on its stack); uvloop's loop shows none of its own
    frames, but watches libuv's eventfd. Where no frame was read: the loop's self-pipe, a
    socket pair (or pipe) whose two ends are both non-blocking, as asyncio makes it. A plain
    ``selectors`` or ``select`` loop of the program's own is none of these."""
    files = [(f.file or "").replace("\\", "/") for f in t.frames]
    if any(part in f"/{file}" for file in files for part in LOOP_FRAMES):
        return True
    by_fd = {f.fd: f for f in pe.fds}
    if any(by_fd[fd].eventfd is not None for fd in fdset if fd in by_fd):
        return True
    if any(f.file for f in t.frames) and ("py-spy" in pe.tools or "pystack" in pe.tools):
        return False  # its Python stack was read, and shows no event loop
    for fd in fdset:
        fe = by_fd.get(fd)
        ch = chans.get(fe.target) if fe is not None else None
        if fe is None or ch is None:
            return False
        other = chans.get(ch.peer) if ch.kind == "socket" and ch.peer else ch
        ends = [e for e in (other.ends if other is not None else []) if e.fd != fd]
        flags = [fe.flags, *(next((f.flags for f in pe.fds if f.fd == e.fd), None)
                             for e in ends if e.pid == pe.pid)]
        if not ends or any(fl is None or not fl & NONBLOCK for fl in flags):
            return False
    return True


def _selector_wait(pe: ProcessEvidence, t: Thread, call: syscalls.Call | None,
                   fdset: list[int], chans: dict[str, Channel], built: Built,
                   threads: list[Thread]) -> None:
    """A thread of the program's own (not an event loop) asleep in select, poll or epoll with
    no timeout, on pipes or sockets whose other ends only this process holds: a wait for this
    process to write one of them, said as such (what it watches, and who holds the other
    ends), for the rules to judge as any wait in the process."""
    from stuck.model import Resource, Wait

    by_fd = {f.fd: f for f in pe.fds}
    parts = []
    kinds = set()
    for fd in fdset:
        fe = by_fd.get(fd)
        ch = chans.get(fe.target) if fe is not None else None
        if ch is None:
            continue
        kinds.add(ch.kind)
        if ch.kind == "socket":
            other = chans.get(ch.peer) if ch.peer else None
            held = ", ".join(f"fd {e.fd}" for e in (other.ends if other else []))
            where = f" ({ch.where})" if ch.where else ""
            parts.append(f"socket {ch.inode}{where} (fd {fd}) to be written by its peer "
                         f"{other.inode if other else '?'}, which only pid {pe.pid} holds "
                         f"({held or 'an unknown fd'})")
        else:
            held = ", ".join(f"fd {e.fd}" for e in ch.ends if "w" in e.mode)
            parts.append(f"pipe {ch.inode} (fd {fd}) to be written, its write end held only "
                         f"by pid {pe.pid} ({held or 'an unknown fd'})")
    if not parts:
        return
    name = call.name if call is not None else "a selector"
    rid = f"select:{pe.pid}:{t.tid}"
    # No thread owns it: any other thread of the process could write the other end.
    wakers = [o.id for o in threads if o.id != t.id]
    built.snapshot.resources.append(Resource(
        id=rid, kind="socket" if kinds == {"socket"} else "pipe",
        label="; or ".join(parts), wakers=wakers))
    t.state = "blocked"
    t.waits = Wait(resource=rid, durable=True, direction="read",
                   at=next((f for f in t.frames if f.file), None))
    t.detail = f"{name} with no timeout, watching only " + "; ".join(parts)

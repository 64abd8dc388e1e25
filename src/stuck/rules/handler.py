"""A lock wait inside a signal handler, read from native stacks: the thread may wait for itself.

A signal handler runs on the thread the signal interrupted, on top of that thread's frames (gdb
prints them below a ``<signal handler called>`` frame). Until the handler returns, the code it
interrupted cannot run, so it cannot release anything it holds. A handler that takes a lock
(a mutex of the program, or one of the C library's own: the malloc arena's lock, a stdio
stream's) which the interrupted code holds waits for its own thread: a self-deadlock, and the
reason POSIX lists so few async-signal-safe functions.

Without an owner print the dump does not show who holds the lock, so this is a ``possible``
deadlock of the one thread: another thread may hold it instead. It is claimed only where no
other thread of the process is running code (the holder may be one, in its critical section)
and the dump is not a cut-down excerpt. With the owner printed as the thread itself, the
deadlock rule already proves it (certain).
"""

from __future__ import annotations

from stuck.model import OWNED_KINDS, Edge, Finding, Resource, Thread
from stuck.rules.advice import owner_hint
from stuck.rules.reading import Reading, res_name

SIGNAL_FRAME = "<signal handler called>"


def handler_frame(t: Thread) -> int | None:
    """The index of the ``<signal handler called>`` frame under the thread's innermost
    frames, if its stack runs a signal handler."""
    for i, f in enumerate(t.frames):
        if f.function == SIGNAL_FRAME:
            return i
    return None


def handler_lock_waits(dump: Reading) -> None:
    """A possible self-deadlock for each thread whose lock wait sits above a signal frame,
    where the lock has no printed owner and nothing else in the process runs."""
    for proc in dump.snap.processes:
        if proc.complete is False:
            continue  # an excerpt: the holder may be among the threads it left out
        if any(o.state == "running" for o in proc.threads):
            continue  # a running thread may hold it, inside its critical section
        for t in proc.threads:
            if t.id in dump.covered or t.state != "blocked" or t.waits is None:
                continue
            if not t.waits.durable or t.waits.duration is not None:
                continue
            res = dump.resources.get(t.waits.resource)
            if res is None or res.kind not in OWNED_KINDS or res.owners:
                continue
            below = handler_frame(t)
            if below is None or below == 0:
                continue
            if t.waits.at is not None and t.waits.at not in t.frames[:below]:
                continue  # the wait is the interrupted code's, not the handler's
            name = res_name(res, res.id)
            handler = t.frames[below - 1].function  # the handler: the frame on the signal's
            interrupted = t.frames[below + 1] if below + 1 < len(t.frames) else None
            where = (f" in {interrupted.function} ({interrupted.where()})"
                     if interrupted is not None else "")
            dump.findings.append(Finding(
                kind="deadlock", confidence="possible",
                summary=(f"{t.label()} waits for {name} inside a signal handler"
                         + f" ({handler})"
                         + ": the code it interrupted, on the same thread, may hold it "
                         "(a self-deadlock)"),
                explanation=(
                    f"{t.label()} was interrupted by a signal{where}; its handler waits for "
                    f"{name}. The interrupted code cannot run again until the handler "
                    "returns, so if it holds the lock the thread waits for itself. Locks "
                    "(malloc, stdio, the program's own mutexes) are not async-signal-safe: "
                    "a handler should only set a flag or write to a pipe. No other thread "
                    "of the process is running, but the dump does not show who holds the "
                    "lock: another thread may."),
                threads=[t.id], resources=[res.id],
                cycle=[Edge(thread=t.id, waits_for=res.id, held_by=t.id)],
                missing_evidence=[_who_holds(dump, t, res, below)],
                details={"signal_handler": handler}))
            dump.covered.add(t.id)


def _who_holds(dump: Reading, t: Thread, res: Resource, below: int) -> str:
    """What would show the lock's holder: a pthread mutex's owner print, or, for one of the
    C library's internal locks (lll_lock: no owner recorded), the interrupted frames."""
    if not any("lll_lock_wait_private" in f.function for f in t.frames[:below]):
        return owner_hint(dump.snap, res)
    callers = [f.function for f in t.frames[below + 1:below + 12] if f.file]
    return (f"{res_name(res, res.id)} is one of the C library's internal locks, which record "
            "no owner: the frames under <signal handler called> show what the interrupted "
            "code was doing (" + ", ".join(callers[-3:] or ["?"]) + "); if that code takes "
            "the same lock (malloc, stdio), the thread waits for itself")

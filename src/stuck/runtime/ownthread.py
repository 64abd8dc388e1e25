"""Starting a thread of stuck's own inside the user's process, without taking signals from it.

The kernel delivers a process-directed signal (``kill PID``) to any one thread that does not
block it. A program that blocks a signal with ``pthread_sigmask`` and takes it with ``sigwait``
in a thread of its own (the usual way to handle SIGTERM in a threaded server) blocks it only in
the threads it knows of: a thread stuck started before that still has the signal unblocked, and
the kernel may pick it, where the signal has its default action (SIGTERM ends the process).

So every thread stuck starts blocks every asynchronous signal for itself. It is born with them
blocked (the creating thread blocks them around ``start`` and restores its own mask at once; a
new thread inherits its creator's mask), and blocks them again as its first step. Python signal
handlers are unaffected: CPython runs them in the main thread only, whichever thread the kernel
chose. The synchronous signals a fault raises (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP,
SIGSYS) stay unblocked: they go to the faulting thread anyway, and faulthandler should see a
crash of stuck's own thread.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

_FAULTS = frozenset(getattr(signal, name) for name in (
    "SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGABRT", "SIGTRAP", "SIGSYS")
    if hasattr(signal, name))


def _asynchronous() -> set[signal.Signals]:
    return {s for s in signal.valid_signals() if s not in _FAULTS}


def block_signals() -> None:
    """Block every asynchronous signal in the calling thread (stuck's own threads only)."""
    if hasattr(signal, "pthread_sigmask"):
        with contextlib.suppress(OSError, ValueError):
            signal.pthread_sigmask(signal.SIG_BLOCK, _asynchronous())


@contextlib.contextmanager
def signals_blocked() -> Iterator[None]:
    """The calling thread's asynchronous signals blocked for the block's length, its own mask
    restored after: a thread started inside is born with them blocked. A signal that arrives
    meanwhile stays pending and is delivered once the mask is restored."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _asynchronous())
    except (OSError, ValueError):
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def start_own_thread(target: Callable[[], None], name: str) -> threading.Thread:
    """Start a daemon thread of stuck's that never takes a signal meant for the program."""

    def run() -> None:
        block_signals()
        target()

    thread = threading.Thread(target=run, name=name, daemon=True)
    with signals_blocked():
        thread.start()
    return thread

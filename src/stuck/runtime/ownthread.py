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

import _thread
import contextlib
import signal
from collections.abc import Callable, Iterator
from typing import Any

from stuck.runtime import patch

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


def start_own_thread(target: Callable[..., None], args: tuple[Any, ...] = ()) -> int:
    """Start a thread of stuck's running ``target(*args)``; its ident.

    A bare interpreter thread (``_thread``), not a ``threading.Thread``: the program does not
    see it (``threading.enumerate()``, ``active_count()``, the thread-leak checks of test
    suites count the threads of a plain run), and like a daemon thread it never keeps the
    process alive. It never takes a signal meant for the program. ``target`` must catch what
    it raises (a bare thread prints it as "Exception ignored") and must never call
    ``threading.current_thread()``, which would register a ``_DummyThread`` the program sees;
    reports leave it out by its ident (``registry.own_idents``)."""

    def run(*run_args: Any) -> None:
        block_signals()
        target(*run_args)

    # The real one, not one a stuck backend put in its place (explore's controls new threads).
    start: Any = patch.original(_thread, "start_new_thread")
    with signals_blocked():
        return int(start(run, args))

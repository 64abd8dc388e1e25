"""Batons: how one controlled thread hands the right to run to the next.

A baton is what a parked thread waits on; posting it lets that thread run. Every hand-over
between OS threads is a post of the next thread's baton followed by a wait on one's own, and a
hand-over is most of what a controlled execution costs.

With a lock as the baton (:class:`LockBaton`), the woken thread needs the GIL at once, while
the thread that woke it still holds it until it parks a moment later: the woken thread sleeps
again on the GIL and is woken a second time, two or three OS context switches per hand-over.
``os.eventfd_write`` drops the GIL *before* it wakes the other thread (:class:`EventBaton`):
one context switch per hand-over and about a third of the CPU time. Event batons need Linux
(``os.eventfd``); :func:`make` falls back to a lock elsewhere, or when no file descriptor is
left.

An event baton owns a file descriptor, so it is used only where its end is known: the parked
OS threads of a :class:`~stuck.explore.workers.WorkerPool` close theirs when they exit, after
their last use, and the engine's end-of-execution baton lives as long as its pool.

Posting twice before a wait is the same as posting once (the wait consumes every post); a lock
baton raises ``RuntimeError`` on the second post, which the scheduler's teardown ignores.

A forked child shares the parent's descriptors: there, every event baton is closed at once, so
that nothing in the child can wake a thread of the parent's exploration (its posts and waits
raise ``OSError`` instead).
"""

from __future__ import annotations

import _thread
import contextlib
import os
import select
import weakref
from typing import Any

_allocate_lock = _thread.allocate_lock
_eventfd: Any = getattr(os, "eventfd", None)
_eventfd_read: Any = getattr(os, "eventfd_read", None)
_eventfd_write: Any = getattr(os, "eventfd_write", None)
_poll: Any = getattr(select, "poll", None)
_close = os.close


class LockBaton:
    """A baton on a real lock (held while nobody posted it)."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = _allocate_lock()
        self._lock.acquire()

    def post(self) -> None:
        self._lock.release()

    def wait(self) -> None:
        self._lock.acquire()

    def wait_for(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds; whether the baton was posted."""
        return bool(self._lock.acquire(True, timeout))

    def reset(self) -> None:
        """Forget a post nobody waited for."""
        self._lock.acquire(False)

    def close(self) -> None:
        pass


class EventBaton:
    """A baton on a Linux eventfd (its counter is the number of posts not yet waited for)."""

    __slots__ = ("__weakref__", "_fd", "_poller")

    def __init__(self) -> None:
        self._fd: int = _eventfd(0, os.EFD_CLOEXEC)
        self._poller: Any = None
        _open.add(self)

    def post(self) -> None:
        _eventfd_write(self._fd, 1)

    def wait(self) -> None:
        _eventfd_read(self._fd)

    def _ready(self, timeout_ms: int) -> bool:
        poller = self._poller
        if poller is None:
            poller = self._poller = _poll()
            poller.register(self._fd, select.POLLIN)
        return bool(poller.poll(timeout_ms))

    def wait_for(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds; whether the baton was posted."""
        if not self._ready(max(0, int(timeout * 1000))):
            return False
        _eventfd_read(self._fd)
        return True

    def reset(self) -> None:
        """Forget a post nobody waited for."""
        if self._ready(0):
            _eventfd_read(self._fd)

    def close(self) -> None:
        """Release the file descriptor (only once nothing can post or wait any more)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            _close(fd)

    def __del__(self) -> None:
        # Nothing can post a baton nobody references: its descriptor can go.
        with contextlib.suppress(Exception):
            self.close()


class SpentBaton:
    """Stands for the ``done`` baton of an execution that is over: posts go nowhere.

    An execution's scheduler may outlive it (a program's own structures can keep it), and it
    must not keep a pool's event baton, and its descriptor, alive with it.
    """

    __slots__ = ()

    def post(self) -> None:
        pass

    def wait(self) -> None:  # pragma: no cover - nothing waits on a spent baton
        raise RuntimeError("waiting on the done baton of an execution that is over")

    def wait_for(self, timeout: float) -> bool:
        return False

    def reset(self) -> None:
        pass

    def close(self) -> None:
        pass


SPENT = SpentBaton()

_open: weakref.WeakSet[EventBaton] = weakref.WeakSet()


def _close_in_child() -> None:
    for b in list(_open):
        b.close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)


def events_available() -> bool:
    """Whether event batons can be made here (Linux, Python 3.10+)."""
    return _eventfd is not None and _poll is not None and hasattr(os, "EFD_CLOEXEC")


def make(events: bool = True) -> LockBaton | EventBaton:
    """An event baton where possible (and ``events``), else a lock baton."""
    if events and events_available():
        try:
            return EventBaton()
        except OSError:  # out of file descriptors: a lock works too, only slower
            pass
    return LockBaton()

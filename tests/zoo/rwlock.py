"""A small writer-preferring readers-writer lock built on ``threading.Condition``.

It has the semantics of Go's ``sync.RWMutex`` that the GoKer RWR deadlocks depend on: once a
writer is waiting, new readers queue behind it, even a thread that already holds a read lock.
Read locks are not reentrant in the presence of a waiting writer, and the lock does not know who
holds it (any thread may release).

The primitives are looked up on ``threading`` when the lock is created, so tools that replace
``threading.Condition`` at run time see every wait.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from zoo.points import Points, or_none


class RWLock:
    """Writer-preferring readers-writer lock.

    ``points.at("rw_writer_waiting")`` is called by a writer after it has registered as waiting
    (and before it waits); a schedule may use that point as a dependency for other threads but
    must not make it wait, because it runs under the lock's internal condition.
    """

    def __init__(self, points: Points | None = None) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0
        self._points = or_none(points)

    def acquire_read(self, blocking: bool = True) -> bool:
        with self._cond:
            while self._writer or self._waiting_writers:
                if not blocking:
                    return False
                self._cond.wait()
            self._readers += 1
            return True

    def release_read(self) -> None:
        with self._cond:
            if self._readers <= 0:
                raise RuntimeError("release_read of an RWLock not read-locked")
            self._readers -= 1
            if self._readers == 0:
                self._cond.notify_all()

    def acquire_write(self) -> None:
        with self._cond:
            self._waiting_writers += 1
            self._points.at("rw_writer_waiting")
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._waiting_writers -= 1
            self._writer = True

    def release_write(self) -> None:
        with self._cond:
            if not self._writer:
                raise RuntimeError("release_write of an RWLock not write-locked")
            self._writer = False
            self._cond.notify_all()

    @contextmanager
    def read(self) -> Iterator[None]:
        self.acquire_read()
        try:
            yield
        finally:
            self.release_read()

    @contextmanager
    def write(self) -> Iterator[None]:
        self.acquire_write()
        try:
            yield
        finally:
            self.release_write()

    def rlocker(self) -> RLocker:
        """A lock-like view whose acquire/release take the read side (Go's ``RLocker``)."""
        return RLocker(self)


class RLocker:
    """``acquire``/``release`` mapped to the read side of an :class:`RWLock`."""

    def __init__(self, rw: RWLock) -> None:
        self._rw = rw

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if timeout != -1:
            raise ValueError("RLocker.acquire does not support a timeout")
        return self._rw.acquire_read(blocking)

    def release(self) -> None:
        self._rw.release_read()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

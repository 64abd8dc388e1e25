"""Locks that report to a lock-order checker exactly as the hooks in
``stuck.runtime.hooks`` document: the checker is tested on its own, from real threads, without
the live runtime. Each lock's class is the line that made it, as the runtime does."""

from __future__ import annotations

import _thread
import itertools
import sys
import threading
from collections.abc import Callable
from typing import Any

from stuck.runtime.hooks import LockClass
from stuck.runtime.lockorder import LockOrderChecker
from stuck.runtime.tracked import PrimitiveFacts, tracked_class


def _cls_here(kind: str, name: str | None, depth: int = 2) -> LockClass:
    f = sys._getframe(depth)
    return LockClass(kind, f.f_code.co_filename, f.f_lineno,
                     getattr(f.f_code, "co_qualname", f.f_code.co_name), name)


_serials = itertools.count(1)


@tracked_class
class FakeLock:
    """A mutex (or an RLock with ``reentrant``) that calls the observer hooks; a tracked
    primitive (``stuck.runtime.tracked``), as the runtime's locks are."""

    _stuck_kind = "mutex"

    def __init__(self, checker: LockOrderChecker, cls: LockClass, reentrant: bool = False):
        self._lock = _thread.allocate_lock()
        self._stuck_id = f"fake-{next(_serials)}"  # as the runtime's: in order of creation
        self._stuck_class = cls
        self._stuck_epoch = 0
        self.cls = cls
        self.checker = checker
        self.reentrant = reentrant
        self.owner: int | None = None
        self.count = 0

    def acquire(self, blocking: bool = True, timeout: float = -1, _depth: int = 1) -> bool:
        me = _thread.get_ident()
        if self.reentrant and self.owner == me:
            self.count += 1  # re-entry: not reported
            return True
        frame = sys._getframe(_depth)
        mode: Any = "try" if not blocking else ("timed" if timeout >= 0 else "blocking")
        self.checker.before_acquire(self, self.cls, mode, frame)
        ok = self._lock.acquire(blocking, timeout) if blocking else self._lock.acquire(False)
        if ok:
            self.owner = me
            self.count = 1
            self.checker.acquired(self, self.cls, mode, frame)
        return ok

    def release(self) -> None:
        if self.reentrant:
            self.count -= 1
            if self.count:
                return
        by_owner = self.owner == _thread.get_ident()
        self.owner = None
        self._lock.release()
        self.checker.released(self, self.cls, by_owner)

    def __enter__(self) -> FakeLock:
        self.acquire(_depth=2)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _stuck_owners(self) -> list[tuple[int, Any, int]]:
        return [] if self.owner is None else [(self.owner, None, 0)]

    def _stuck_wakers_of(self, op: str) -> list[int] | None:
        return None if self.owner is None else [self.owner]

    def _stuck_facts(self) -> PrimitiveFacts:
        return PrimitiveFacts()


class FakeCondition:
    """A condition on its own FakeLock; ``wait`` reports released / acquired like the runtime."""

    def __init__(self, checker: LockOrderChecker, cls: LockClass):
        self.lock = FakeLock(checker, cls)
        self._waiters: list[Any] = []

    def __enter__(self) -> FakeCondition:
        self.lock.acquire(_depth=2)
        return self

    def __exit__(self, *exc: object) -> None:
        self.lock.release()

    def wait(self, timeout: float = -1) -> bool:
        lk = self.lock
        waiter = _thread.allocate_lock()
        waiter.acquire()
        self._waiters.append(waiter)
        frame = sys._getframe(1)
        lk.owner = None
        lk._lock.release()
        lk.checker.released(lk, lk.cls, True)
        try:
            return waiter.acquire(True, timeout)
        finally:
            lk._lock.acquire()
            lk.owner = _thread.get_ident()
            lk.checker.acquired(lk, lk.cls, "blocking", frame)

    def notify_all(self) -> None:
        for w in self._waiters:
            w.release()
        self._waiters.clear()


def make_lock(checker: LockOrderChecker, name: str | None = None) -> FakeLock:
    return FakeLock(checker, _cls_here("mutex", name))


def make_rlock(checker: LockOrderChecker, name: str | None = None) -> FakeLock:
    return FakeLock(checker, _cls_here("rlock", name), reentrant=True)


def make_condition(checker: LockOrderChecker, name: str | None = None) -> FakeCondition:
    return FakeCondition(checker, _cls_here("condition", name))


def in_thread(fn: Callable[[], object], name: str) -> None:
    """Run ``fn`` in a thread and wait for it: threads that never overlap."""
    t = threading.Thread(target=fn, name=name, daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive()

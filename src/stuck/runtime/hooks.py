"""Observers of the live instrumentation: how the lock-order checker (and later checkers) see
every lock operation without the tracked primitives knowing about them.

The tracked primitives call the module-level functions below only when ``observers`` is not
empty, so a program with no observer pays one list truth test per operation. Observers run in
the thread doing the operation, must be fast, must never block on anything but their own leaf
lock, and must never raise: a failing observer is removed and the failure is written to stderr.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from types import FrameType
from typing import Literal, Protocol

AcquireMode = Literal["blocking", "timed", "try"]  # try: acquire(blocking=False)


@dataclass(frozen=True, slots=True)
class LockClass:
    """Where a lock was created (its *class*, in lockdep's sense), or an explicit name.

    Locks made by the same line share one class, so locks made in a loop or one per object
    are checked as one: an order seen on any two instances holds for all of them.
    """

    kind: str  # "mutex", "rlock", "condition", "semaphore"
    file: str
    line: int
    function: str
    name: str | None = None  # the name= override

    def label(self) -> str:
        return self.name or f"{self.function}:{self.line}"


class LockObserver(Protocol):
    def before_acquire(self, lock: object, cls: LockClass, mode: AcquireMode,
                       frame: FrameType | None) -> None:
        """The current thread is about to acquire ``lock`` (it may block). Not called for
        re-entry of an RLock the thread already owns."""

    def acquired(self, lock: object, cls: LockClass, mode: AcquireMode,
                 frame: FrameType | None) -> None:
        """The current thread now holds ``lock`` (first acquisition, not an RLock re-entry)."""

    def released(self, lock: object, cls: LockClass, by_owner: bool) -> None:
        """The current thread released ``lock`` fully (for an RLock: the last release).
        ``by_owner`` is False when a thread released a Lock that another thread acquired."""


observers: list[LockObserver] = []


def add_observer(observer: LockObserver) -> None:
    if observer not in observers:
        observers.append(observer)


def remove_observer(observer: LockObserver) -> None:
    if observer in observers:
        observers.remove(observer)


def _failed(observer: LockObserver, exc: BaseException) -> None:
    remove_observer(observer)
    try:
        sys.stderr.write(f"stuck: observer {observer!r} failed and was removed: {exc!r}\n")
    except Exception:
        pass


def before_acquire(lock: object, cls: LockClass, mode: AcquireMode,
                   frame: FrameType | None) -> None:
    for o in tuple(observers):
        try:
            o.before_acquire(lock, cls, mode, frame)
        except Exception as exc:  # an observer must never break the program
            _failed(o, exc)


def acquired(lock: object, cls: LockClass, mode: AcquireMode, frame: FrameType | None) -> None:
    for o in tuple(observers):
        try:
            o.acquired(lock, cls, mode, frame)
        except Exception as exc:
            _failed(o, exc)


def released(lock: object, cls: LockClass, by_owner: bool) -> None:
    for o in tuple(observers):
        try:
            o.released(lock, cls, by_owner)
        except Exception as exc:
            _failed(o, exc)

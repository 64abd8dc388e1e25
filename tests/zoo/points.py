"""Pause points: how a test forces one interleaving of a zoo program without sleeps.

Every zoo program takes an optional ``points`` argument and calls ``points.at("name")`` at the
places where the order of threads matters.  By default that call is a no-op (:data:`NO_POINTS`).

A :class:`Schedule` turns those calls into a script.  Point keys are qualified by the name of the
thread that reaches them, ``"<thread name>:<point>"``.  ``Schedule({"b:has_l2": ["a:has_l1"]})``
means: when thread ``b`` reaches ``has_l2`` it first waits until thread ``a`` has reached
``has_l1``.  Reaching a point is recorded before its own waits, so two threads can rendezvous by
waiting for each other.  Every wait has a timeout, so a script that cannot be followed never hangs
the caller; it is recorded in :attr:`Schedule.timed_out` instead.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence


class Points:
    """The default pause points: every ``at`` is a no-op."""

    def at(self, point: str) -> None:
        """Mark that the current thread reached ``point`` (no-op here)."""


NO_POINTS = Points()


def or_none(points: Points | None) -> Points:
    """Return ``points`` or the shared no-op object."""
    return NO_POINTS if points is None else points


class Schedule(Points):
    """Orders threads at named pause points with events (see the module docstring)."""

    def __init__(self, waits: Mapping[str, Sequence[str]], timeout: float = 5.0) -> None:
        self.waits: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in waits.items()}
        names = set(self.waits) | {d for deps in self.waits.values() for d in deps}
        self.timeout = timeout
        self._events: dict[str, threading.Event] = {n: threading.Event() for n in names}
        self._lock = threading.Lock()
        self.reached: list[str] = []
        self.passed: list[str] = []
        self.timed_out: list[str] = []

    def at(self, point: str) -> None:
        key = f"{threading.current_thread().name}:{point}"
        with self._lock:
            self.reached.append(key)
        event = self._events.get(key)
        if event is not None:
            event.set()
        for dep in self.waits.get(key, ()):
            if not self._events[dep].wait(self.timeout):
                with self._lock:
                    self.timed_out.append(f"{key} <- {dep}")
        with self._lock:
            self.passed.append(key)

    def parked(self) -> list[str]:
        """Keys of threads currently waiting inside :meth:`at`."""
        with self._lock:
            left = list(self.reached)
            for key in self.passed:
                left.remove(key)
            return left

    def unreached(self) -> list[str]:
        """Scripted points that no thread has reached yet."""
        with self._lock:
            seen = set(self.reached)
        return sorted(n for n in self._events if n not in seen)

    def settled(self) -> bool:
        """True when every scripted point was reached and no thread is parked in ``at``."""
        return not self.unreached() and not self.parked()

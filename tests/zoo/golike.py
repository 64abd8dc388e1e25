"""Go's channel and WaitGroup, re-expressed on ``threading.Condition``.

* :class:`Rendezvous` is an unbuffered channel: ``send`` returns only once a receiver took the
  value.  ``try_recv`` is a receive inside ``select { ...; default: }``.
* :class:`WaitGroup` is a counter with a condition, like ``sync.WaitGroup``.

Buffered channels are plain ``queue.Queue(maxsize)`` in the zoo.  All primitives are created in
``__init__`` from the ``threading`` module, never captured at import time.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class Empty(Exception):
    """Raised by :meth:`Rendezvous.try_recv` when no sender is offering a value."""


class Rendezvous(Generic[T]):
    """An unbuffered channel: a sender and a receiver meet, one value at a time."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._item: T | None = None
        self._offered = False
        self._sent = 0
        self._taken = 0

    def send(self, item: T) -> None:
        with self._cond:
            while self._offered:  # another sender is on the slot
                self._cond.wait()
            self._item = item
            self._offered = True
            self._sent += 1
            ticket = self._sent
            self._cond.notify_all()
            while self._taken < ticket:  # wait for a receiver
                self._cond.wait()

    def _take(self) -> T:
        item = self._item
        self._item = None
        self._offered = False
        self._taken += 1
        self._cond.notify_all()
        return item  # type: ignore[return-value]

    def recv(self) -> T:
        with self._cond:
            while not self._offered:
                self._cond.wait()
            return self._take()

    def try_recv(self) -> T:
        """Take a value if a sender is offering one now, else raise :class:`Empty`."""
        with self._cond:
            if not self._offered:
                raise Empty
            return self._take()


class WaitGroup:
    """``sync.WaitGroup``: ``add(n)``, ``done()``, ``wait()`` until the counter is zero."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._count = 0

    def add(self, n: int) -> None:
        with self._cond:
            self._count += n
            if self._count < 0:
                raise ValueError("negative WaitGroup counter")
            if self._count == 0:
                self._cond.notify_all()

    def done(self) -> None:
        self.add(-1)

    def wait(self) -> None:
        with self._cond:
            while self._count:
                self._cond.wait()


def run_threads(*threads: threading.Thread) -> None:
    """Start every thread, then join every thread (the zoo's ``main()`` body)."""
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

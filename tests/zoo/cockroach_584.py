"""cockroach #584: gossip loop leaves its mutex locked on the ``break`` path (missing release).

Origin: https://github.com/cockroachdb/cockroach/pull/584, GoKer kernel
``goker/blocking/cockroach/584``.  ``Gossip.bootstrap`` and ``Gossip.manage`` loop
``mu.Lock(); if closed { break }; ...; mu.Unlock()`` -- the ``break`` leaves ``mu`` locked.  In
the kernel ``closed`` is already true; here a ``stopper`` thread closes the gossip concurrently,
so the bug bites when the close lands before ``bootstrap`` looks.  The gossip thread then blocks
on its own (non-reentrant) lock in ``manage``: a one-thread cycle.  The fixed twin releases the
lock on every path (``with``).
"""

from __future__ import annotations

import threading

from zoo.golike import run_threads
from zoo.meta import Meta
from zoo.points import Points, or_none


class _Gossip:
    def __init__(self, points: Points) -> None:
        self.mu = threading.Lock()
        self.closed = False
        self.rounds = 0
        self.points = points

    def _loop_buggy(self) -> None:
        for _ in range(3):
            self.mu.acquire()
            if self.closed:
                break  # BUG: mu stays locked
            self.rounds += 1
            self.mu.release()

    def _loop_fixed(self) -> None:
        for _ in range(3):
            with self.mu:
                if self.closed:
                    break
                self.rounds += 1

    def run(self, fixed: bool) -> None:
        self.points.at("start")
        loop = self._loop_fixed if fixed else self._loop_buggy
        loop()  # bootstrap
        loop()  # manage

    def close(self) -> None:
        with self.mu:
            self.closed = True
        self.points.at("closed")


def _main(points: Points | None, fixed: bool) -> None:
    g = _Gossip(or_none(points))
    run_threads(
        threading.Thread(target=g.run, args=(fixed,), name="gossip"),
        threading.Thread(target=g.close, name="stopper"),
    )


def buggy(points: Points | None = None) -> None:
    _main(points, fixed=False)


def fixed(points: Points | None = None) -> None:
    _main(points, fixed=True)


META = Meta(
    origin="cockroach #584 (https://github.com/cockroachdb/cockroach/pull/584)",
    kind="missing-release",
    verdict="deadlock",
    threads=("gossip", "stopper"),
    primitives=("mutex Gossip.mu",),
    interleaving=(
        "stopper sets closed under mu before gossip's bootstrap loop looks; bootstrap breaks "
        "out with mu still locked and manage blocks acquiring mu, which gossip itself holds"
    ),
    blocked=("gossip",),
    fix="release mu on the break path too (with-statement)",
    schedule={"gossip:start": ["stopper:closed"]},
    goker="deterministic in the kernel (closed is set before the goroutine starts)",
)

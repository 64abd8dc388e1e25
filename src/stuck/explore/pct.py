"""PCT (probabilistic concurrency testing, depth d).

Each thread gets a random priority when it is created; the highest-priority runnable thread
always runs. At d-1 random steps (change points) the running thread's priority drops below all
initial ones. A bug that needs d ordering constraints is found with probability at least
1/(n * k^(d-1)) per execution (n threads, k steps), far better than a random walk for bugs that
need few but precise preemptions. ``k`` is learned: the longest execution seen so far.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from stuck.explore.strategy import BaseStrategy


class PCT(BaseStrategy):
    name = "pct"

    def __init__(self, seed: int = 0, depth: int = 3) -> None:
        if depth < 1:
            raise ValueError("PCT depth must be at least 1")
        self.seed = seed
        self.depth = depth
        self._rng = random.Random(seed)
        self._prio: dict[int, float] = {}
        self._changes: list[int] = []
        self._low = 0.0
        self._longest = 32
        self._last_step = 0

    def describe(self) -> str:
        return f"pct(depth={self.depth})"

    def begin(self, execution: int) -> None:
        rng = self._rng
        rng.seed((self.seed * 1_000_003 + execution) * 31 + self.depth)
        self._prio = {}
        k = max(self._longest, self.depth)
        self._changes = sorted(rng.sample(range(1, k + 1), self.depth - 1), reverse=True)
        self._low = float(self.depth)
        self._last_step = 0

    def thread_created(self, index: int) -> None:
        self._prio[index] = self.depth + 1.0 + self._rng.random()

    def choose(self, runnable: Sequence[int], current: int, step: int) -> int:
        self._last_step = step
        changes = self._changes
        prio = self._prio
        while changes and step >= changes[-1]:
            changes.pop()
            self._low -= 1.0
            prio[current] = self._low
        best = runnable[0]
        best_p = prio.get(best, 0.0)
        for i in runnable:
            p = prio.get(i, 0.0)
            if p > best_p:
                best, best_p = i, p
        return best

    def end(self, failed: bool) -> bool:
        if self._last_step > self._longest:
            self._longest = self._last_step
        return True

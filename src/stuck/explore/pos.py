"""POS (partial order sampling).

Every thread's *next operation* carries a random priority; the runnable thread whose pending
operation has the highest priority runs. After it runs, its own priority and the priorities of
threads whose pending operation touches the same primitive (the operations that race with the one
just executed) are drawn again. Orders of racing operations are thereby sampled close to
uniformly, which random walk does not do when one thread has many more steps than another.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from stuck.explore.strategy import BaseStrategy


class POS(BaseStrategy):
    name = "pos"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._rng = random.Random(seed)
        self._prio: dict[int, float] = {}

    def begin(self, execution: int) -> None:
        self._rng.seed((self.seed * 1_000_003 + execution) * 17 + 5)
        self._prio = {}

    def thread_created(self, index: int) -> None:
        self._prio[index] = self._rng.random()

    def choose(self, runnable: Sequence[int], current: int, step: int) -> int:
        prio = self._prio
        rnd = self._rng.random
        best = runnable[0]
        best_p = -1.0
        for i in runnable:
            p = prio.get(i)
            if p is None:
                p = prio[i] = rnd()
            if p > best_p:
                best, best_p = i, p
        sched = self.scheduler
        if sched is not None:
            threads = sched.threads
            res = threads[best].pending
            if res is not None:
                for i in runnable:
                    if i != best and threads[i].pending is res:
                        prio[i] = rnd()
        prio[best] = rnd()
        return best

"""Random walk: at every scheduling point, any runnable thread with equal probability.

``stay`` (0 by default) first keeps the running thread with that probability, then picks
uniformly. A uniform walk switches threads at most scheduling points, and each switch is a real
hand-over between OS threads (the dominant cost of an execution); a walk that stays put more
often still reaches every interleaving, switches a fraction of the time, and spends its
switches at random depths, which is what most bugs need (few preemptions, anywhere).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from stuck.explore.strategy import BaseStrategy


class RandomWalk(BaseStrategy):
    name = "random"

    def __init__(self, seed: int = 0, stay: float = 0.0) -> None:
        if not 0.0 <= stay < 1.0:
            raise ValueError(f"the probability of staying must be in [0, 1), not {stay}")
        self.seed = seed
        self.stay = stay
        self._rng = random.Random(seed)
        # Bound once: the walk's choice runs at every scheduling point.
        self._random = self._rng.random

    def describe(self) -> str:
        return f"random(stay={self.stay:g})" if self.stay else self.name

    def begin(self, execution: int) -> None:
        self._rng.seed(self.seed * 1_000_003 + execution)

    def choose(self, runnable: Sequence[int], current: int, step: int) -> int:
        r = self._random()
        stay = self.stay
        if r < stay and current in runnable:
            return current
        if stay:
            # Reuse the draw: past ``stay`` it is uniform on [stay, 1).
            r = (r - stay) / (1.0 - stay) if r >= stay else self._random()
        return runnable[int(r * len(runnable))]

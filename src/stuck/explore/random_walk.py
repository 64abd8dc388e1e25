"""Random walk: at every scheduling point, any runnable thread with equal probability."""

from __future__ import annotations

import random
from collections.abc import Sequence

from stuck.explore.strategy import BaseStrategy


class RandomWalk(BaseStrategy):
    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._rng = random.Random(seed)

    def begin(self, execution: int) -> None:
        self._rng.seed(self.seed * 1_000_003 + execution)

    def choose(self, runnable: Sequence[int], current: int, step: int) -> int:
        return runnable[int(self._rng.random() * len(runnable))]

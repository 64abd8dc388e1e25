"""The default portfolio: rotate several strategies, one execution each in turn.

Random walk finds bugs that need many switches, PCT those that need a few switches at the right
depth, POS those that hinge on the order of racing operations on one primitive. Rotating costs
nothing when one of them is the right one, and no single one is best on every program.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from stuck.explore.strategy import BaseStrategy

NAMES = ("portfolio", "random", "pct", "pos", "dfs")

# The portfolio's random walk keeps the running thread this often before drawing uniformly: a
# real switch between OS threads is most of what an execution costs, and a uniform walk switches
# at most steps. The bug zoo is found as quickly with it (benchmarks/explore.py --acceptance).
PORTFOLIO_STAY = 0.5


class Portfolio(BaseStrategy):
    name = "portfolio"

    def __init__(self, members: Sequence[BaseStrategy]) -> None:
        self.members = list(members)
        self.active: BaseStrategy = self.members[0]

    def begin(self, execution: int) -> None:
        self.active = self.members[execution % len(self.members)]
        self.active.scheduler = self.scheduler
        self.active.begin(execution // len(self.members))

    def choose(self, runnable: Sequence[int], current: int, step: int) -> int:
        return self.active.choose(runnable, current, step)

    def chooser(self) -> Callable[[Sequence[int], int, int], int]:
        return self.active.chooser()

    def thread_created(self, index: int) -> None:
        self.active.scheduler = self.scheduler
        self.active.thread_created(index)

    def end(self, failed: bool) -> bool:
        self.active.end(failed)
        return True

    def describe(self) -> str:
        return "portfolio(" + ", ".join(m.describe() for m in self.members) + ")"


def _number(name: str, text: str, what: str, default: Any, kind: type, low: float,
            high: float | None, example: str) -> Any:
    """The number after ``strategy:``, or a ValueError saying what was expected."""
    if not text:
        return default
    words = "a whole number" if kind is int else "a number"
    limits = (f" from {low:g} up to, not including, {high:g}" if high is not None
              else f" of {low:g} or more")
    base = name.partition(":")[0]
    expected = f"strategy {name!r}: {what} must be {words}{limits}, as in {base}:{example}"
    try:
        value = kind(text)
    except ValueError:
        raise ValueError(expected) from None
    if value < low or (high is not None and value >= high):
        raise ValueError(expected)
    return value


def make(name: str, seed: int = 0) -> BaseStrategy:
    """A strategy by name: ``portfolio``, ``random[:stay]``, ``pct[:depth]``, ``pos``,
    ``dfs[:bound]``."""
    from stuck.explore.random_walk import RandomWalk

    base, _, arg = name.partition(":")
    if base == "random":
        return RandomWalk(seed, stay=_number(name, arg, "STAY (the probability of staying on a thread)",
                                                0.0, float, 0.0, 1.0, "0.5"))
    if base == "pct":
        from stuck.explore.pct import PCT

        return PCT(seed, depth=_number(name, arg, "DEPTH", 3, int, 1, None, "3"))
    if base == "pos":
        from stuck.explore.pos import POS

        return POS(seed)
    if base == "dfs":
        from stuck.explore.dfs import BoundedDFS

        return BoundedDFS(bound=_number(name, arg, "BOUND", 2, int, 0, None, "2"))
    if base == "portfolio":
        from stuck.explore.pct import PCT
        from stuck.explore.pos import POS

        return Portfolio([RandomWalk(seed, stay=PORTFOLIO_STAY), PCT(seed, depth=2), POS(seed),
                          PCT(seed, depth=3)])
    raise ValueError(f"unknown strategy {name!r}; choose one of: portfolio, random[:STAY], pct[:DEPTH], "
                     "pos, dfs[:BOUND]")

"""Bounded depth-first search over schedules (preemption bound).

Explores every schedule with at most ``bound`` preemptions (a switch away from a thread that
could have continued), one execution per schedule, by replaying the prefix of the previous one
and taking the next untried alternative at the deepest decision that has one. When no decision
has an alternative left within the bound, the search is exhausted: *no* schedule with at most
``bound`` preemptions fails. That claim holds because a controlled execution is a function of its
decisions (virtual time, thread identity by creation order).
"""

from __future__ import annotations

from collections.abc import Sequence

from stuck.explore.strategy import BaseStrategy, non_preemptive


class _Decision:
    __slots__ = ("alternatives", "chosen", "current", "preempt_before", "runnable")

    def __init__(self, runnable: tuple[int, ...], current: int, chosen: int,
                 preempt_before: int, bound: int) -> None:
        self.runnable = runnable
        self.current = current
        self.chosen = chosen
        self.preempt_before = preempt_before
        can_continue = current in runnable
        alts = []
        for i in runnable:
            if i == chosen:
                continue
            cost = 1 if can_continue and i != current else 0
            if preempt_before + cost <= bound:
                alts.append(i)
        alts.reverse()  # pop() takes the oldest thread first
        self.alternatives = alts

    def preempt_after(self) -> int:
        extra = 1 if self.current in self.runnable and self.chosen != self.current else 0
        return self.preempt_before + extra


class BoundedDFS(BaseStrategy):
    name = "dfs"

    def __init__(self, bound: int = 2, max_depth: int = 100_000) -> None:
        self.bound = bound
        self.max_depth = max_depth
        self._stack: list[_Decision] = []
        self._pos = 0
        self.schedules = 0
        self.nondeterministic = False

    def describe(self) -> str:
        return f"dfs(preemption bound={self.bound})"

    def begin(self, execution: int) -> None:
        self._pos = 0

    def choose(self, runnable: Sequence[int], current: int, step: int) -> int:
        stack = self._stack
        pos = self._pos
        self._pos = pos + 1
        if pos < len(stack):
            d = stack[pos]
            if d.chosen in runnable:
                return d.chosen
            self.nondeterministic = True  # the program did not repeat itself
            del stack[pos:]
        before = stack[-1].preempt_after() if stack else 0
        chosen = non_preemptive(runnable, current)
        if len(stack) < self.max_depth:
            stack.append(_Decision(tuple(runnable), current, chosen, before, self.bound))
        return chosen

    def end(self, failed: bool) -> bool:
        self.schedules += 1
        stack = self._stack
        del stack[self._pos:]
        while stack:
            top = stack[-1]
            if top.alternatives:
                top.chosen = top.alternatives.pop()
                return True
            stack.pop()
        return False

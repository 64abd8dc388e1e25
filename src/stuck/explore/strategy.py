"""The small interface every search strategy implements.

A strategy sees only thread creation indices: which threads are runnable, which one is running
(``current``; it may be blocked, in which case it is not in ``runnable``) and the step number.
It returns the index of the thread to run next. ``begin`` starts an execution; ``end`` reports
its outcome and returns False when the strategy has nothing left to try (a bounded search that
exhausted its bound).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Strategy(Protocol):
    name: str

    def begin(self, execution: int) -> None: ...

    def choose(self, runnable: Sequence[int], current: int, step: int) -> int: ...

    def thread_created(self, index: int) -> None: ...

    def end(self, failed: bool) -> bool: ...


class BaseStrategy:
    """Defaults for the optional parts of :class:`Strategy`."""

    name = "base"
    scheduler: Any = None  # the running Scheduler, for strategies that look at pending operations

    def begin(self, execution: int) -> None:
        pass

    def choose(self, runnable: Sequence[int], current: int, step: int) -> int:
        raise NotImplementedError

    def thread_created(self, index: int) -> None:
        pass

    def chooser(self) -> Callable[[Sequence[int], int, int], int]:
        """The function the scheduler calls at each scheduling point of the next execution.

        Asked once per execution (after ``begin``), so a strategy that delegates (a portfolio)
        costs no extra call per step.
        """
        return self.choose

    def end(self, failed: bool) -> bool:
        return True

    def describe(self) -> str:
        return self.name


def non_preemptive(runnable: Sequence[int], current: int) -> int:
    """The default choice: keep running the current thread, else the oldest runnable one."""
    for i in runnable:
        if i == current:
            return i
    return runnable[0]

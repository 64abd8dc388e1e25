"""The wait table: which task waits on which tracked asyncio primitive now."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from stuck.runtime import registry
from stuck.runtime.aio.internals import Where, _ref
from stuck.tracebacks import hide_in_pytest as _hide_in_pytest

# --- the wait table ---------------------------------------------------------------------------

TaskWakers = Callable[[Any, str], "list[Any] | None"]


class TaskWait(registry.WaitRecord):
    """One task about to block, or blocked, on a tracked primitive (or, made by a walk, on a
    task). Keeps the task by weak reference and where it waits as text: no frame is held."""

    __slots__ = ("task", "task_wakers", "where")

    def __init__(self, resource: object, op: str, task_wakers: TaskWakers | None, task: Any,
                 where: Where) -> None:
        super().__init__(resource, op, None, None, None)
        self.task = _ref(task)
        self.task_wakers = task_wakers
        self.where = where

    def site(self) -> tuple[str | None, str, int]:
        return self.where

    def wakers_of(self) -> list[Any] | None:
        """The tasks that could end this wait (None: anybody could, or nobody needs to)."""
        if self.task_wakers is None:
            return None
        try:
            return self.task_wakers(self.resource, self.op)
        except Exception:  # a primitive in an odd state must not break the program
            return None


waits: dict[int, TaskWait] = {}  # id(task) -> what it waits for now
_resources: weakref.WeakSet[Any] = weakref.WeakSet()  # every tracked asyncio primitive
# Cycles reported when they formed (TaskCycle.pairs): the watchdog does not report them again.
_cycles_seen: set[frozenset[tuple[str, str]]] = set()


# pytest leaves these frames out of the tracebacks it shows (STUCK_DEBUG=1 keeps them): a
# program's wait passes through them, plain Python's does not (stuck.tracebacks).
__tracebackhide__ = _hide_in_pytest()

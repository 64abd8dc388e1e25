"""asyncio under ``stuck explore``: the loop is watched, not scheduled.

Explore schedules threads. An event loop runs inside one controlled thread, and between two
synchronization points it may wait in its selector, outside the scheduler's control: for a
timer, for I/O, or for nothing at all. Its tasks are not scheduled one by one (that would be a
second scheduler); what happens among them is left to the loop.

Two things make that work:

* the loop keeps real time (``BaseEventLoop.time`` on the real clock): its selector waits in
  real time, and a timer measured on the scheduler's virtual clock, which moves only when a
  controlled thread sleeps, would never fall due (``asyncio.sleep`` would never return);
* the asyncio primitives are the live runtime's tracked ones (``stuck.runtime.aio``: who
  holds each Lock, what each task waits on), so when the engine's watch finds the running
  thread quiet in its loop's selector (no callback ready, no timer scheduled, no I/O: nothing
  in the loop can run again), unchanged across two looks, the loop is marked stalled in the
  execution's snapshot (``stuck.runtime.aio.mark_quiet_loop``) and judged by the rules every
  source uses (``stuck.rules.evaluate``): the same await cycles and stalls as ``stuck run`` and
  ``stuck analyze`` of its saved report.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stuck.explore.scheduler import Scheduler

_real_monotonic = time.monotonic  # bound before any patch (the module is imported first)

# How often the engine's watch looks at a running thread (seconds); a loop is judged stuck
# only when two looks in a row find it quiet with its tasks waiting on the same things.
LOOK = 0.1


def loop_time(loop: Any) -> float:
    """``BaseEventLoop.time`` under explore: the real clock its selector waits on."""
    return _real_monotonic()


def replacements() -> list[tuple[object, str, object]]:
    """The patch points of asyncio under explore (imports asyncio: a program that imports it
    later, inside the explored function, gets the patched classes)."""
    import asyncio.base_events

    from stuck.runtime.aio import REPLACEMENTS
    from stuck.runtime.aio import primitives as tracked

    # No search for a cycle when a task blocks, and so no policy acting on one: the verdict is
    # explore's, reached once the loop is quiet.
    return [*REPLACEMENTS, (asyncio.base_events.BaseEventLoop, "time", loop_time),
            (tracked, "_find_cycle", _no_cycle_yet)]


def _no_cycle_yet(task: Any, record: Any) -> None:
    return None


def forget() -> None:
    """Drop what the tracked primitives remembered across executions (cycles seen when they
    formed, loops seen suspended), so a live run in the same process starts clean."""
    if "stuck.runtime.aio" in sys.modules:
        from stuck.runtime.aio import reset

        reset()


def quiet_loop(sched: Scheduler) -> tuple[Any, tuple[object, ...]] | None:
    """The event loop the running controlled thread waits in, and what each of its tasks waits
    on, when that loop is quiet (nothing in it can run again by itself); None otherwise."""
    cur = sched.current
    if cur is None or cur.ident is None or "asyncio" not in sys.modules:
        return None
    from stuck.runtime.aio import pending_tasks, waits
    from stuck.runtime.aio.internals import _loop_of, _loop_quiet, awaiting, loop_thread

    loop: Any = None
    marks: list[tuple[int, int, int]] = []
    for task in pending_tasks():
        task_loop = _loop_of(task)
        if task_loop is None or loop_thread(task_loop) != cur.ident:
            continue
        if loop is None:
            loop = task_loop
        elif task_loop is not loop:
            continue
        record = waits.get(id(task))
        marks.append((id(task), id(awaiting(task)), id(record) if record is not None else 0))
    if loop is None or not _loop_quiet(loop):
        return None
    return loop, tuple(sorted(marks))


def wake(loop: Any) -> None:
    """Make a loop's selector return (once the execution is given up, so that the exception
    raised into its thread is seen)."""
    with contextlib.suppress(Exception):  # closed meanwhile: nothing to wake
        loop.call_soon_threadsafe(_nothing)


def _nothing() -> None:
    return None

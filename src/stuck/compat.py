"""Everything in stuck that depends on the Python version, in one place.

stuck reads interpreter internals that change between releases (asyncio's current-task lookup,
``threading``'s thread start, where thread-locals live, how many references a call holds).
Each such difference is decided here, once, under a name that says what differs; the modules
that use it (``runtime.aio.internals``, ``runtime.primitives``, ``explore.workers``,
``explore.primitives``, ``runtime.livereport``, ``runtime.lockorder``) ask this module instead of
comparing ``sys.version_info`` themselves. Supporting a new Python version starts here.

Only the standard library is imported: this module sits below everything else (nothing
of stuck's, and never asyncio: a program that does not use asyncio must not pay for importing
it).

Feature tests that read the thing itself (``getattr(asyncio, "TaskGroup", None)``,
``getattr(code, "co_qualname", None)``) stay where the thing is used: they need no version.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

PY = sys.version_info[:2]
CPYTHON = sys.implementation.name == "cpython"

# --- asyncio -----------------------------------------------------------------------------------

# From 3.12 ``asyncio.current_task()`` is a C function that reads the running loop without a
# system call; before, it and ``_get_running_loop()`` call ``getpid()`` every time (to notice a
# fork), which is too slow for the uncontended ``async with lock:`` path.
ASYNCIO_CURRENT_TASK_IS_CHEAP = PY >= (3, 12)


def asyncio_current_task(asyncio: Any, current_tasks: Any, get_ident: Callable[[], int]
                         ) -> Callable[[], Any]:
    """The fastest way on this version to find the task running in the calling thread: a
    function that returns it (None between tasks) and raises RuntimeError where no loop runs
    (from 3.12), or returns None there (before). ``current_tasks``: asyncio's loop -> task
    table (or a stand-in with ``get``). Takes asyncio as an argument: see the module doc."""
    if ASYNCIO_CURRENT_TASK_IS_CHEAP:
        return asyncio.current_task  # type: ignore[no-any-return]
    # Keep the loop last seen running in each thread instead of asking asyncio each time.
    get_running_loop = asyncio.events._get_running_loop
    thread_loops: dict[int, Any] = {}

    def current_task() -> Any:
        ident = get_ident()
        loop = thread_loops.get(ident)
        if loop is None or loop._thread_id != ident:  # not this thread's running loop (now)
            loop = get_running_loop()
            if getattr(loop, "_thread_id", None) == ident:  # only loops that say where they run
                if len(thread_loops) > 256:
                    thread_loops.clear()
                thread_loops[ident] = loop
        return current_tasks.get(loop)

    return current_task


# --- threading ---------------------------------------------------------------------------------

# From 3.13 ``threading.Lock`` is the lock type itself (``_thread.lock``); before, it is a
# factory function and the type cannot be called.
THREADING_LOCK_IS_A_TYPE = PY >= (3, 13)

# 3.10-3.12: ``Thread.start`` registers the thread in ``threading._limbo`` and waits for it on
# ``_started``; 3.13 starts threads through ``_thread.start_joinable_thread`` instead.
THREAD_START_USES_LIMBO = PY < (3, 13)

# 3.10-3.12 (CPython): thread-locals live in the thread-state dictionary
# (``PyThreadState_GetDict``), so emptying it ends them as a thread's end would; 3.13 moved
# them out, and reusing an OS thread for another Thread object could leak them.
THREAD_STATE_DICT_HOLDS_LOCALS = CPYTHON and (3, 10) <= PY < (3, 13)

# --- reference counts --------------------------------------------------------------------------

# CPython only: elsewhere there are no reference counts to read, and what uses them says
# nothing.
refcount: Callable[[object], int] | None = getattr(sys, "getrefcount", None)


def calibrate_refcount(measure: Callable[[], int]) -> int:
    """The reference count a check reads for an object nothing else references. ``measure``
    makes a fresh object, holds it exactly as the real check holds what it looks at (the same
    containers, the same calls) and returns the count it reads: the shape belongs to the check,
    the number to the version (a call holds one more reference to its argument on 3.10 than
    on 3.11+), so it is measured at import, never written down. 0 where there are no
    reference counts."""
    if refcount is None:
        return 0
    return int(measure())

"""Task names as model thread ids (``task:<name>``), stable for a task's life."""

from __future__ import annotations

import _thread
import os
from typing import Any

from stuck.runtime.aio.internals import _loop_of, _ref, loop_thread
from stuck.runtime.aio.waits import waits

# --- task names -------------------------------------------------------------------------------

_names_lock = _thread.allocate_lock()  # a leaf lock: held for dict updates only
_tids: dict[int, tuple[Any, str, str]] = {}  # id(task) -> (weak ref, thread id, name)
_taken: dict[str, Any] = {}  # thread id -> weak ref of the task that has it


def task_tid(task: Any) -> str:
    """The model's thread id of a task: ``task:<name>``, with ``#2``, ``#3`` ... when live tasks
    share a name. Stable for the task's life, so reports of the same tasks match."""
    try:
        name = str(task.get_name())
    except Exception:
        name = f"{id(task):#x}"
    key = id(task)
    with _names_lock:
        entry = _tids.get(key)
        if entry is not None and entry[0]() is task and entry[2] == name:
            return entry[1]
        base = f"task:{name}"
        tid = base
        n = 1
        while True:
            holder = _taken.get(tid)
            other = holder() if holder is not None else None
            if other is None or other is task or other.done():
                break
            n += 1
            tid = f"{base}#{n}"
        ref = _ref(task)
        _taken[tid] = ref
        _tids[key] = (ref, tid, name)
        if len(_tids) > 8192:  # forget finished tasks
            for k, (r, t, _) in list(_tids.items()):
                alive = r()
                if alive is None or alive.done():
                    _tids.pop(k, None)
                    if _taken.get(t) is r:
                        _taken.pop(t, None)
        return tid


def _task_name(task: Any) -> str:
    try:
        return str(task.get_name())
    except Exception:
        return task_tid(task)


def _reset_after_fork() -> None:
    """In a forked child only the forking thread runs: forget waits of other threads' loops."""
    global _names_lock
    _names_lock = _thread.allocate_lock()
    me = _thread.get_ident()
    for key, record in list(waits.items()):
        task = record.task()
        loop = _loop_of(task) if task is not None else None
        if loop is None or loop_thread(loop) != me:
            waits.pop(key, None)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)

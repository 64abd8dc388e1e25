"""The one place that reads asyncio's internals: the running task, the await chain of a
suspended task, what it awaits (a task, a gather, a TaskGroup), what a loop has scheduled, and
whether a loop is idle with nothing left to run.

Everything here only reads attributes: it never calls user code and holds no lock.
"""

from __future__ import annotations

import _thread
import asyncio
import asyncio.events as _events
import asyncio.tasks as _atasks
import concurrent.futures as _cf
import os
import sys
import weakref
from collections.abc import Callable
from types import AsyncGeneratorType, CoroutineType, FrameType, GeneratorType
from typing import Any

from stuck import compat
from stuck.runtime import framewalk, registry

_get_running_loop = _events._get_running_loop
_get_ident = _thread.get_ident


class _CurrentTaskLookup:
    """``asyncio.tasks._current_tasks`` stand-in for interpreters without that dict."""

    @staticmethod
    def get(loop: Any) -> Any:
        if loop is None:
            return None
        return asyncio.current_task(loop)


# loop -> the task running on it (asyncio's own table; empty while no task runs).
_current_tasks: Any = getattr(_atasks, "_current_tasks", None)
if _current_tasks is None:
    _current_tasks = _CurrentTaskLookup()
# The task running in the calling thread: raises RuntimeError outside a running loop (3.12+).
_current_task: Callable[[], Any] = compat.asyncio_current_task(asyncio, _current_tasks,
                                                               _get_ident)


def _task_or_none() -> Any:
    try:
        return _current_task()
    except RuntimeError:  # no running loop (a coroutine driven by hand)
        return None


_TASK_TYPES: tuple[type, ...] = tuple(
    {asyncio.Task, getattr(_atasks, "_PyTask", asyncio.Task), getattr(_atasks, "_CTask",
                                                                       asyncio.Task)})
_GatheringFuture: Any = getattr(_atasks, "_GatheringFuture", None)
_Timeout: Any = getattr(asyncio, "Timeout", None)  # 3.11+
_ref = weakref.ref


_ASYNCIO_DIR = os.path.dirname(os.path.abspath(asyncio.__file__))
# asyncio's own modules that make primitives as plumbing (a Queue's "all done" Event, the
# happy-eyeballs Events): those stay original. asyncio.locks is not among them: the Lock a
# Condition makes for itself is the program's lock.
_PLUMBING_EXEMPT = "asyncio.locks"


MAX_CHAIN = 64  # coroutine frames followed per task


def _made_by_asyncio() -> bool:
    """True when the primitive being constructed is made by asyncio's own modules."""
    try:
        frame = sys._getframe(2)
    except ValueError:
        return False
    name = frame.f_globals.get("__name__")
    return isinstance(name, str) and name.startswith("asyncio.") and name != _PLUMBING_EXEMPT


_plumbing_files: dict[str, bool] = {}


def _is_plumbing(filename: str) -> bool:
    """stuck's own files and asyncio's: skipped when looking for the program's line."""
    known = _plumbing_files.get(filename)
    if known is None:
        path = os.path.abspath(filename)
        known = registry.is_library_file(filename) or path.startswith(_ASYNCIO_DIR + os.sep)
        if len(_plumbing_files) > 4096:
            _plumbing_files.clear()
        _plumbing_files[filename] = known
    return known


Where = tuple["str | None", str, int]
_NOWHERE: Where = (None, "?", 0)


def _where(frame: FrameType | None) -> Where:
    site = registry.user_frame(frame, _is_plumbing)
    if site is None:
        return _NOWHERE
    return site.f_code.co_filename, site.f_code.co_name, site.f_lineno


# --- what a task is waiting for, read from the task -------------------------------------------


def _chain(task: Any) -> list[FrameType]:
    """The frames of a task's await chain, outermost first: the task's coroutine, the coroutine
    it awaits, and so on down to the future it is suspended on. (``Task.get_stack`` shows only
    the outermost frame of a suspended task.)"""
    frames: list[FrameType] = []
    try:
        obj: Any = task.get_coro()
    except Exception:
        return frames
    while obj is not None and len(frames) < MAX_CHAIN:
        kind = type(obj)
        if kind is CoroutineType:
            frame, obj = obj.cr_frame, obj.cr_await
        elif kind is GeneratorType:
            frame, obj = obj.gi_frame, obj.gi_yieldfrom
        elif kind is AsyncGeneratorType:
            frame, obj = obj.ag_frame, obj.ag_await
        else:  # a future's iterator, or an awaitable stuck does not know: the chain ends
            break
        if frame is None:
            break
        frames.append(frame)
    return frames


def _task_where(task: Any) -> Where:
    for frame in reversed(_chain(task)):
        if not _is_plumbing(frame.f_code.co_filename):
            return frame.f_code.co_filename, frame.f_code.co_name, frame.f_lineno
    return _NOWHERE


_HAS_TASK_GROUPS = hasattr(asyncio, "TaskGroup")  # 3.11+


def _task_group_of(task: Any, fut: Any) -> Any:
    """The TaskGroup whose ``async with`` exit ``task`` is suspended in, waiting on ``fut``."""
    if not _HAS_TASK_GROUPS:
        return None
    for frame in _chain(task):
        if not frame.f_code.co_filename.endswith("taskgroups.py"):
            continue
        try:
            group = frame.f_locals.get("self")
        except Exception:
            return None
        if group is not None and getattr(group, "_on_completed_fut", None) is fut:
            return group
    return None


def _is_task(obj: Any) -> bool:
    return isinstance(obj, _TASK_TYPES)


def _awaited(task: Any, fut: Any) -> tuple[Any, str, list[Any]] | None:
    """What a suspended task waits for when it is not a tracked primitive: (resource, op, the
    tasks that could end the wait), or None when that is not a task (I/O, a timer, a future
    anything may complete)."""
    if _is_task(fut):
        return fut, "await", [fut]
    if _GatheringFuture is not None and type(fut) is _GatheringFuture:
        children = list(getattr(fut, "_children", ()))
        if not children or not all(_is_task(c) for c in children):
            return None
        pending = [c for c in children if not c.done()]
        return (fut, "gather", pending) if pending else None
    group = _task_group_of(task, fut)
    if group is not None:
        pending = [t for t in list(getattr(group, "_tasks", ())) if not t.done()]
        return (group, "taskgroup", pending) if pending else None
    return None


class _LoopView:
    """What a walk or a report needs to know about one event loop, read once, lazily."""

    def __init__(self, loop: Any) -> None:
        self.loop = loop
        self._pending: tuple[set[int], set[int]] | None = None
        self._tasks: list[Any] | None = None

    def _read_pending(self) -> tuple[set[int], set[int]]:
        """What the callbacks already scheduled on the loop (ready to run, or on a timer) will
        act on: ids of the objects they are bound to, their arguments and what their closures
        hold (a ``task.cancel``, a ``lock.release``, a ``sleep`` or ``wait_for`` future), and
        the tasks of pending ``asyncio.timeout``s. Also the futures timers will complete."""
        touched: set[int] = set()
        timer_futures: set[int] = set()
        for attribute in ("_scheduled", "_ready"):
            try:
                handles = list(getattr(self.loop, attribute, ()))
            except Exception:  # changed while copied (read from another thread): no claim
                handles = []
            for handle in handles:
                if getattr(handle, "_cancelled", False):
                    continue
                objects = list(getattr(handle, "_args", None) or ())
                if attribute == "_scheduled":
                    timer_futures.update(id(o) for o in objects)
                callback = getattr(handle, "_callback", None)
                func = getattr(callback, "func", None)  # functools.partial
                if func is not None:
                    objects.extend(getattr(callback, "args", ()))
                    callback = func
                owner = getattr(callback, "__self__", None)
                if owner is not None:
                    objects.append(owner)
                    attrs = getattr(owner, "__dict__", None)  # an asyncio.timeout's task
                    if isinstance(attrs, dict) and attrs.get("_task") is not None:
                        objects.append(attrs["_task"])
                for cell in getattr(callback, "__closure__", None) or ():
                    try:
                        objects.append(cell.cell_contents)
                    except ValueError:  # an empty cell
                        continue
                touched.update(id(o) for o in objects)
        return touched, timer_futures

    def scheduled(self, task: Any, resource: Any = None) -> bool:
        """True when a callback already scheduled on the loop (a timer, a timeout, a cancel, a
        release) acts on ``task``, on the future it awaits or on ``resource``: its wait may end
        without any task doing anything."""
        if self._pending is None:
            self._pending = self._read_pending()
        touched = self._pending[0]
        fut = getattr(task, "_fut_waiter", None)
        return id(task) in touched or (fut is not None and id(fut) in touched) \
            or (resource is not None and id(resource) in touched)

    def acts_on(self, obj: Any) -> bool:
        """True when a callback already scheduled on the loop acts on ``obj``."""
        if self._pending is None:
            self._pending = self._read_pending()
        return id(obj) in self._pending[0]

    def timer_future(self, fut: Any) -> bool:
        if self._pending is None:
            self._pending = self._read_pending()
        return id(fut) in self._pending[1]

    def tasks(self) -> list[Any]:
        if self._tasks is None:
            self._tasks = [t for t in pending_tasks() if _loop_of(t) is self.loop]
        return self._tasks

    def current(self) -> Any:
        try:
            return _current_tasks.get(self.loop)
        except Exception:
            return None


def awaiting(task: Any) -> Any:
    """The future a suspended task waits on (``Task._fut_waiter``); None while it runs or is
    ready to."""
    return getattr(task, "_fut_waiter", None)


def source_future(fut: Any) -> Any:
    """The ``concurrent.futures.Future`` an asyncio future mirrors, when ``fut`` was made by
    ``loop.run_in_executor`` or ``asyncio.wrap_future`` (None otherwise).

    Both chain the two with ``asyncio.futures._chain_future``, which puts a done-callback
    (``_call_check_cancel``) on the asyncio future; that callback's closure holds the source
    future (free variable ``source``). The same on 3.10, 3.11, 3.12 and 3.13, for the C and
    the Python Future (``_callbacks`` holds ``(callback, context)`` pairs on all of them).
    Attributes only: the callbacks are looked at, never called."""
    try:
        callbacks = list(getattr(fut, "_callbacks", None) or ())
    except Exception:  # changed while copied (read from another thread): no claim
        return None
    for entry in callbacks:
        callback = entry[0] if isinstance(entry, tuple) and entry else entry
        code = getattr(callback, "__code__", None)
        if code is None or code.co_name != "_call_check_cancel" \
                or os.path.basename(code.co_filename) != "futures.py":
            continue
        try:
            cell = callback.__closure__[code.co_freevars.index("source")]
            source = cell.cell_contents
        except (ValueError, IndexError, TypeError, AttributeError):
            continue
        if isinstance(source, _cf.Future):
            return source
    return None


def ended_with(task: Any) -> BaseException | None:
    """The exception a done task ended with (None: it returned, was cancelled, or is not
    done). Read from the attribute, not with ``Task.exception()``, which would mark it
    retrieved and silence asyncio's "exception was never retrieved" log."""
    try:
        if not task.done() or task.cancelled():
            return None
        exc = getattr(task, "_exception", None)
    except Exception:
        return None
    return exc if isinstance(exc, BaseException) else None


def loop_thread(loop: Any) -> int | None:
    """The ident of the thread a loop runs in (None: not running, or a loop that does not say)."""
    return getattr(loop, "_thread_id", None)


def gather_children(fut: Any) -> list[Any]:
    """The awaitables a ``gather`` waits for."""
    return list(getattr(fut, "_children", ()))


def group_tasks(group: Any) -> list[Any]:
    """The tasks of a TaskGroup."""
    return list(getattr(group, "_tasks", ()))


def has_signal_handlers(loop: Any) -> bool:
    """True when ``loop.add_signal_handler`` installed any (they can complete futures)."""
    return bool(getattr(loop, "_signal_handlers", None))


def _loop_of(task: Any) -> Any:
    try:
        return task.get_loop()
    except Exception:
        return None


def pending_tasks() -> list[Any]:
    """Every task not done yet, of every event loop (readable from any thread)."""
    for _ in range(3):  # another thread may add a task while the set is copied: read again
        try:
            found: list[Any] = []
            for attribute in ("_all_tasks", "_scheduled_tasks", "_eager_tasks"):
                tasks = getattr(_atasks, attribute, None)
                if tasks is not None:
                    found.extend(list(tasks))
            seen: set[int] = set()
            out = []
            for t in found:
                if id(t) not in seen and not t.done():
                    seen.add(id(t))
                    out.append(t)
            return out
        except RuntimeError:
            continue
    return []



_OWN_DIR = registry._HERE + os.sep


def _in_select(frame: Any) -> bool:
    """The innermost frame of the program is the selector's ``select`` (a loop waiting for I/O
    or a timer). Frames of stuck's own above it do not count: a report asked for by signal
    runs in the main thread on top of the selector call of a loop idle there, and is no code
    of the loop's (read within a ``framewalk`` pass: ``f_back`` is safe there)."""
    while frame is not None and frame.f_code.co_filename.startswith(_OWN_DIR):
        frame = frame.f_back
    return frame is not None and frame.f_code.co_name == "select" \
        and frame.f_code.co_filename.endswith("selectors.py")


def loop_state(loop: Any) -> tuple[int, int, int, bool] | None:
    """What could still run code on ``loop`` by itself: (callbacks ready, timers scheduled and
    not cancelled, file descriptors watched besides its own wake-up pipe (what
    ``call_soon_threadsafe`` writes to), whether its thread waits in the selector with no task
    running). None when the loop is not running, or of a kind whose state cannot be read
    (uvloop, proactor). Read from outside the loop's thread: attributes only, never user code."""
    try:
        if not loop.is_running() or loop.is_closed():
            return None
        ready = len(loop._ready)
        timers = sum(1 for h in list(loop._scheduled) if not getattr(h, "_cancelled", False))
        registered = loop._selector.get_map()
        wake_pipe = getattr(loop, "_ssock", None)
        own = 1 if wake_pipe is not None and wake_pipe.fileno() in registered else 0
        io = len(registered) - own
        idle = framewalk.read_one(loop._thread_id, _in_select) \
            and _current_tasks.get(loop) is None
        return ready, timers, io, idle
    except Exception:  # another kind of loop: nothing can be proven
        return None


def _loop_quiet(loop: Any) -> bool:
    """True when nothing inside ``loop`` can run again by itself: it is running, idle in its
    selector with no timeout, with no callback ready, no timer scheduled, no task current, and
    no I/O registered besides its own wake-up pipe (``loop_state``)."""
    try:
        if len(loop._ready):  # the common case of a busy loop, without reading the rest
            return False
    except Exception:
        return False
    state = loop_state(loop)
    return state is not None and state == (0, 0, 0, True)

"""asyncio: tracked Lock, Event, Condition, Semaphore, BoundedSemaphore and Queues, and tasks
in the wait-for graph.

A task is a thread of the model (id ``task:<name>``): it can hold a Lock or a Semaphore permit
and wait for a primitive, for another task (``await task``, ``wait_for(task)``), for a
``gather`` or for the tasks of a ``TaskGroup``.

What is recorded, and when:

- Holding: an uncontended ``async with lock:`` stores the owner task on the lock (one dict
  lookup to find the current task, one attribute store); a Semaphore permit is counted per
  task. Nothing shared is touched.
- Waiting on a tracked primitive: only when the task is about to block (a contended acquire, a
  ``get`` on an empty queue, a ``put`` on a full one, a wait on an Event or Condition) is a wait
  record put in ``waits`` (keyed by ``id(task)``), removed when the wait ends.
- Waiting on a task, a gather or a TaskGroup is not recorded at all: the task's own
  ``_fut_waiter`` (the future it is suspended on) says it, and is read only when the wait-for
  graph is walked, so ``await`` costs nothing extra.

Detection happens at the moment a task would block on a tracked primitive: the walk goes from
the task to the primitive, to the task that could end the wait (a lock's owner, a queue's past
producers or consumers, a semaphore's holders), to what that task waits for, and so on, using
the same knot-and-cycle walk as threads (``stuck.runtime.detect``). A closed cycle is handed to
the configured policy (``stuck.runtime.policy``), whose ``raise`` makes the blocking call raise
``DeadlockError`` inside the task that closed the cycle. A wait that something already scheduled
on the loop will end is never counted as stuck: a timer (``asyncio.timeout``, ``wait_for`` with
a timeout, ``sleep``) or a callback bound to the task, its future or the primitive (a
``call_soon(task.cancel)``, a ``call_later(delay, lock.release)``).

A cycle closed by an ``await`` of a task is not seen at that moment (awaiting a task is not
intercepted); the watchdog's event-loop rule (``loop_findings``) finds it, together with stalls:
every task of a loop waits on a tracked primitive or on another task, and the loop has no
callback ready, no timer and no I/O to watch, so nothing inside the loop can ever run again.

Everything here that reads a loop's or a task's state from outside the hot path (reports, the
watchdog) only reads attributes: it never calls user code and holds no lock while reading.
"""

from __future__ import annotations

import _thread
import asyncio
import asyncio.events as _events
import asyncio.locks as _locks
import asyncio.queues as _queues
import asyncio.tasks as _atasks
import os
import sys
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import AsyncGeneratorType, CoroutineType, FrameType, GeneratorType
from typing import Any

from stuck.model import Edge, Finding, Frame, Resource, Snapshot, Thread, ThreadState, Wait
from stuck.runtime import registry
from stuck.runtime.detect import Cycle, _Walk, op_key
from stuck.runtime.patch import original

_OrigLock: Any = original(_locks, "Lock")
_OrigEvent: Any = original(_locks, "Event")
_OrigCondition: Any = original(_locks, "Condition")
_OrigSemaphore: Any = original(_locks, "Semaphore")
_OrigBoundedSemaphore: Any = original(_locks, "BoundedSemaphore")
_OrigQueue: Any = original(_queues, "Queue")
_OrigLifoQueue: Any = original(_queues, "LifoQueue")
_OrigPriorityQueue: Any = original(_queues, "PriorityQueue")

_orig_lock_acquire: Any = _OrigLock.acquire
_orig_event_wait: Any = _OrigEvent.wait
_orig_event_set: Any = _OrigEvent.set
_orig_condition_wait: Any = _OrigCondition.wait
_orig_queue_get: Any = _OrigQueue.get
_orig_queue_put: Any = _OrigQueue.put
_orig_queue_join: Any = _OrigQueue.join
_CONDITION_WAIT_CODE = _OrigCondition.wait.__code__

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
_current_task: Callable[[], Any]
if sys.version_info >= (3, 12):
    # A C function; raises RuntimeError when no loop runs in this thread.
    _current_task = asyncio.current_task
else:
    # Before 3.12, asyncio.current_task() and _get_running_loop() make a getpid() system call
    # each time (to notice a fork): keep the loop last seen running in each thread instead.
    _thread_loops: dict[int, Any] = {}

    def _current_task() -> Any:
        ident = _get_ident()
        loop = _thread_loops.get(ident)
        if loop is None or loop._thread_id != ident:  # not this thread's running loop (now)
            loop = _get_running_loop()
            if getattr(loop, "_thread_id", None) == ident:  # only loops that say where they run
                if len(_thread_loops) > 256:
                    _thread_loops.clear()
                _thread_loops[ident] = loop
        return _current_tasks.get(loop)


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

MAX_TASKS_SHOWN = 500  # tasks put in one snapshot (tasks that wait or hold come first)
MAX_CHAIN = 64  # coroutine frames followed per task
MAX_WALKS = 500  # walks for one report (victims, cycles among the tasks of a loop)


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
_cycles_seen: set[frozenset[tuple[int, int]]] = set()


def _block_begin(resource: Any, op: str, wakers: TaskWakers | None, frame: FrameType | None,
                 may_raise: bool) -> tuple[int, TaskWait | None] | None:
    """Register the current task's wait and, when it could close a cycle, look for it and apply
    the policy. Returns what ``_block_end`` needs (None outside a task)."""
    task = _task_or_none()
    if task is None:
        return None
    key = id(task)
    record = TaskWait(resource, op, wakers, task, _where(frame))
    previous = waits.get(key)
    waits[key] = record
    if wakers is not None:
        try:
            cycle = _find_cycle(task, record)
        except Exception:  # detection must never break the program
            cycle = None
        if cycle is not None:
            from stuck.runtime import policy

            if len(_cycles_seen) > 1024:
                _cycles_seen.clear()
            _cycles_seen.add(cycle.pairs())
            try:
                policy.on_cycle(key, cycle, may_raise)
            except BaseException:
                _block_end((key, previous))
                raise
    return key, previous


def _block_end(token: tuple[int, TaskWait | None] | None) -> None:
    if token is None:
        return
    key, previous = token
    if previous is None:
        waits.pop(key, None)
    else:
        waits[key] = previous


def _setup(obj: Any, kind: str, name: str | None, frame: FrameType | None) -> None:
    obj._stuck_class = registry.lock_class(kind, name, registry.user_frame(frame, _is_plumbing))
    obj._stuck_id = registry.new_id(kind)
    _resources.add(obj)


def _alive_tasks(book: dict[int, Any]) -> list[Any]:
    out = []
    for ref in list(book.values()):
        task = ref()
        if task is not None and not task.done():
            out.append(task)
    return out


def _remember(book: dict[int, Any], task: Any) -> Any:
    """Add ``task`` to a queue's producers or consumers (by weak reference); returns the
    reference."""
    ref = book.get(id(task))
    if ref is not None and ref() is task:
        return ref
    if len(book) >= 64:  # many short-lived tasks: drop the finished ones
        for k, r in list(book.items()):
            t = r()
            if t is None or t.done():
                book.pop(k, None)
    ref = book[id(task)] = _ref(task)
    return ref


def _nobody() -> None:
    return None


_NOBODY: Any = _nobody  # a "weak reference" to no task


# --- tracked primitives -----------------------------------------------------------------------


def _lock_wakers(resource: Any, op: str) -> list[Any] | None:
    owner = resource._stuck_owner
    return None if owner is None else [owner]


class Lock(_OrigLock):  # type: ignore[misc]
    """A tracked ``asyncio.Lock``: records the task that holds it."""

    _stuck_kind = "mutex"
    _stuck_owner: Any = None
    _locked: bool
    _waiters: Any

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is Lock and _made_by_asyncio():
            return _OrigLock(*args, **kwargs)
        return object.__new__(cls)

    def __init__(self, *args: Any, name: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _setup(self, "mutex", name, sys._getframe(1))

    async def acquire(self) -> bool:
        # The uncontended path is asyncio's own test, plus the owner.
        if not self._locked and (self._waiters is None
                                 or all(w.cancelled() for w in self._waiters)):
            self._locked = True
            try:
                self._stuck_owner = _current_task()
            except RuntimeError:  # no running loop (a coroutine driven by hand)
                self._stuck_owner = None
            return True
        return await self._stuck_acquire(sys._getframe(1))

    async def _stuck_acquire(self, caller: FrameType) -> bool:
        """The contended acquire: register the wait, look for a cycle, then wait."""
        # Condition.wait re-acquires its lock on the way out, and its caller expects to hold
        # it then: never raise there.
        self._get_loop()  # asyncio's own first check on this path (a lock of another loop)
        token = _block_begin(self, "acquire", _lock_wakers, caller,
                             caller.f_code is not _CONDITION_WAIT_CODE)
        try:
            await _orig_lock_acquire(self)
        finally:
            _block_end(token)
        self._stuck_owner = _task_or_none()
        return True

    def release(self) -> None:
        # asyncio.Lock.release, with the owner cleared (the same in 3.10 to 3.13).
        if self._locked:
            self._stuck_owner = None
            self._locked = False
            self._wake_up_first()
        else:
            raise RuntimeError("Lock is not acquired.")

    def _stuck_owners(self) -> list[tuple[int, Any, int]]:
        return []  # owners are tasks: the snapshot names them (add_to_snapshot)


def _semaphore_wakers(resource: Any, op: str) -> list[Any] | None:
    if resource._stuck_signaling:
        return None
    return _alive_tasks({k: v[0] for k, v in list(resource._stuck_holders.items())}) or None


class Semaphore(_OrigSemaphore):  # type: ignore[misc]
    """A tracked ``asyncio.Semaphore``: counts the permits each task holds.

    As with threads, holders mean something only while permits are released by the tasks that
    took them; a semaphore that starts at 0 or is released by a non-holder is a signal, and
    waits on it are left to the stall rule.
    """

    _stuck_kind = "semaphore"

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls in (Semaphore, BoundedSemaphore) and _made_by_asyncio():
            orig = _OrigSemaphore if cls is Semaphore else _OrigBoundedSemaphore
            return orig(*args, **kwargs)
        return object.__new__(cls)

    def __init__(self, value: int = 1, *args: Any, name: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(value, *args, **kwargs)
        self._stuck_holders: dict[int, list[Any]] = {}  # id(task) -> [weak ref, permits]
        self._stuck_signaling = value == 0
        _setup(self, "semaphore", name, sys._getframe(1))

    async def acquire(self) -> bool:
        if not self.locked():  # asyncio's own test for "acquire would not wait"
            self._value -= 1
        else:
            caller = sys._getframe(1)
            self._get_loop()  # asyncio's own first check on this path
            token = _block_begin(self, "acquire", _semaphore_wakers, caller, True)
            try:
                await super().acquire()
            finally:
                _block_end(token)
        task = _task_or_none()
        if task is not None:
            held = self._stuck_holders.get(id(task))
            if held is not None and held[0]() is task:
                held[1] += 1
            else:
                self._stuck_holders[id(task)] = [_ref(task), 1]
        return True

    def release(self) -> None:
        super().release()
        task = _task_or_none()
        holders = self._stuck_holders
        held = holders.get(id(task)) if task is not None else None
        if held is None or held[0]() is not task:
            self._stuck_signaling = True  # released by a task that did not take it
            return
        if held[1] <= 1:
            del holders[id(task)]
        else:
            held[1] -= 1

    def _stuck_owners(self) -> list[tuple[int, Any, int]]:
        return []


class BoundedSemaphore(Semaphore, _OrigBoundedSemaphore):  # type: ignore[misc]
    """A tracked ``asyncio.BoundedSemaphore``."""


class Event(_OrigEvent):  # type: ignore[misc]
    """A tracked ``asyncio.Event``: waits are recorded; who set it last is kept for reports."""

    _stuck_kind = "event"
    _stuck_set_by: str | None = None

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is Event and _made_by_asyncio():
            return _OrigEvent(*args, **kwargs)
        return object.__new__(cls)

    def __init__(self, *args: Any, name: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _setup(self, "event", name, sys._getframe(1))

    async def wait(self) -> bool:
        if self._value:
            return True
        token = _block_begin(self, "wait", None, sys._getframe(1), True)
        try:
            return bool(await _orig_event_wait(self))
        finally:
            _block_end(token)

    def set(self) -> None:
        if not self._value:
            task = _task_or_none()
            self._stuck_set_by = task.get_name() if task is not None else "a callback"
        _orig_event_set(self)

    def _stuck_owners(self) -> list[tuple[int, Any, int]]:
        return []


class Condition(_OrigCondition):  # type: ignore[misc]
    """A tracked ``asyncio.Condition``; its default lock is a tracked Lock."""

    _stuck_kind = "condition"
    _stuck_set_by: str | None = None

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is Condition and _made_by_asyncio():
            return _OrigCondition(*args, **kwargs)
        return object.__new__(cls)

    def __init__(self, *args: Any, name: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _setup(self, "condition", name, sys._getframe(1))

    async def wait(self) -> bool:
        token = _block_begin(self, "wait", None, sys._getframe(1), True)
        try:
            return bool(await _orig_condition_wait(self))
        finally:
            _block_end(token)

    def notify(self, n: int = 1) -> None:
        super().notify(n)
        task = _task_or_none()
        self._stuck_set_by = task.get_name() if task is not None else "a callback"

    def _stuck_owners(self) -> list[tuple[int, Any, int]]:
        return []


def _queue_wakers(resource: Any, op: str) -> list[Any] | None:
    q = resource
    if op == "put":
        if not q.full():
            return None
        return _alive_tasks(q._stuck_getters) or None
    if op == "get":
        if not q.empty():
            return None
        return _alive_tasks(q._stuck_putters) or None
    return None


def _make_queue(orig: Any) -> type:
    """A tracked subclass of asyncio's ``orig`` queue class: records which tasks put and get,
    and the waits of ``get`` on an empty queue, ``put`` on a full one and ``join``."""
    orig_put = orig._put
    orig_get = orig._get

    def __new__(klass: type, *args: Any, **kwargs: Any) -> Any:
        if klass is new_cls and _made_by_asyncio():
            return orig(*args, **kwargs)
        return object.__new__(klass)

    def __init__(self: Any, maxsize: int = 0, *args: Any, name: str | None = None,
                 **kwargs: Any) -> None:
        orig.__init__(self, maxsize, *args, **kwargs)
        self._stuck_putters = {}  # id(task) -> weak ref, for every task that put
        self._stuck_getters = {}
        self._stuck_last_putter = self._stuck_last_getter = _NOBODY  # the same, last one
        _setup(self, "queue", name, sys._getframe(1))

    def _put(self: Any, item: Any) -> None:
        try:
            task = _current_task()
        except RuntimeError:  # no running loop
            task = None
        if self._stuck_last_putter() is not task and task is not None:
            self._stuck_last_putter = _remember(self._stuck_putters, task)
        orig_put(self, item)

    def _get(self: Any) -> Any:
        try:
            task = _current_task()
        except RuntimeError:
            task = None
        if self._stuck_last_getter() is not task and task is not None:
            self._stuck_last_getter = _remember(self._stuck_getters, task)
        return orig_get(self)

    async def put(self: Any, item: Any) -> None:
        if self.full() and not getattr(self, "_is_shutdown", False):
            self._get_loop()  # asyncio's own first check on this path
            token = _block_begin(self, "put", _queue_wakers, sys._getframe(1), True)
            try:
                return await _orig_queue_put(self, item)  # type: ignore[no-any-return]
            finally:
                _block_end(token)
        return self.put_nowait(item)  # type: ignore[no-any-return]

    async def get(self: Any) -> Any:
        if self.empty() and not getattr(self, "_is_shutdown", False):
            self._get_loop()  # asyncio's own first check on this path
            token = _block_begin(self, "get", _queue_wakers, sys._getframe(1), True)
            try:
                return await _orig_queue_get(self)
            finally:
                _block_end(token)
        return self.get_nowait()

    async def join(self: Any) -> None:
        if not self._unfinished_tasks:
            return
        token = _block_begin(self, "queue-join", None, sys._getframe(1), True)
        try:
            await _orig_queue_join(self)
        finally:
            _block_end(token)

    def _stuck_owners(self: Any) -> list[tuple[int, Any, int]]:
        return []

    new_cls = type(orig.__name__, (orig,), {
        "__new__": __new__, "__init__": __init__, "_put": _put, "_get": _get, "put": put,
        "get": get, "join": join, "_stuck_owners": _stuck_owners, "_stuck_kind": "queue",
        "__module__": orig.__module__, "__qualname__": orig.__qualname__,
        "__doc__": f"A tracked asyncio.{orig.__name__}.",
    })
    return new_cls


Queue: Any = _make_queue(_OrigQueue)
LifoQueue: Any = _make_queue(_OrigLifoQueue)
PriorityQueue: Any = _make_queue(_OrigPriorityQueue)

# Named like the classes they stand for, so reprs and introspection read as asyncio's.
for _cls in (Lock, Event, Condition, Semaphore, BoundedSemaphore):
    _cls.__module__ = "asyncio.locks"

REPLACEMENTS: list[tuple[object, str, object]] = []
for _owner, _names in ((_locks, ("Lock", "Event", "Condition", "Semaphore", "BoundedSemaphore")),
                       (_queues, ("Queue", "LifoQueue", "PriorityQueue"))):
    for _name in _names:
        _tracked = globals()[_name]
        REPLACEMENTS.append((asyncio, _name, _tracked))
        REPLACEMENTS.append((_owner, _name, _tracked))




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


class _TaskWalk(_Walk):
    """The wait-for graph among the tasks of one event loop: the knot and cycle logic of
    ``stuck.runtime.detect``, over tasks (keyed by ``id(task)``) instead of threads.

    ``blocking``: the task about to block and its just-registered wait (it is still running,
    so its ``_fut_waiter`` does not show the wait yet)."""

    def __init__(self, root: Any, table: dict[int, TaskWait], view: _LoopView,
                 blocking: tuple[Any, TaskWait] | None = None) -> None:
        super().__init__(id(root), {})
        self.tasks: dict[int, Any] = {id(root): root}
        self.records = table
        self.view = view
        self.blocking = blocking

    def wakers(self, thread: int) -> list[int] | None:
        cache = self._wakers
        if thread in cache:
            return cache[thread]
        task = self.tasks.get(thread)
        found = self._wait_of(task) if task is not None else None
        result: list[int] | None = None
        if found is not None:
            record, targets = found
            self.table[thread] = record
            keys = []
            for target in targets:
                self.tasks.setdefault(id(target), target)
                keys.append(id(target))
            if keys == [thread] and record.op == "acquire" \
                    and getattr(record.resource, "_stuck_kind", None) == "mutex":
                # Its own Lock: any other task of the loop could release it (an asyncio.Lock
                # is not owned); a deadlock only once none of them can run.
                for other in self.view.tasks():
                    if other is not task:
                        self.tasks.setdefault(id(other), other)
                        keys.append(id(other))
            result = keys or None
        cache[thread] = result
        return result

    def holders(self, thread: int) -> list[int]:
        # Among tasks, the cycle's edges are the wakers themselves (an asyncio.Lock has no
        # owner beyond the task that took it, which is what wakers_of names).
        return self.wakers(thread) or []

    def _wait_of(self, task: Any) -> tuple[TaskWait, list[Any]] | None:
        if task.done():
            return None
        if self.blocking is not None and self.blocking[0] is task:
            record = self.blocking[1]
            targets = record.wakers_of()
            return (record, targets) if targets else None
        fut = task._fut_waiter
        if fut is None or fut.done():
            return None  # running, or about to: it can end waits
        registered = self.records.get(id(task))
        if registered is not None and registered.task() is task:
            record = registered
            targets = registered.wakers_of()
        else:
            awaited = _awaited(task, fut)
            if awaited is None:
                return None  # I/O, a timer, a future anything may complete
            resource, op, targets = awaited
            record = TaskWait(resource, op, None, task, _task_where(task))
        if not targets or self.view.scheduled(task, record.resource):  # (read last: costly)
            return None  # anybody could end it, or something already scheduled will
        return record, targets


@dataclass(slots=True)
class TaskCycle(Cycle):
    """A deadlock cycle among asyncio tasks; ``Step.thread`` values are ``id(task)``."""

    tasks: dict[int, Any] = field(default_factory=dict)
    found_by: str = "block"  # "block" | "watchdog" | "snapshot"

    # key() stays the one of Cycle (the wait records): the policy reports each occurrence, and
    # the same tasks deadlocking again on the same locks after a retry is a new one.

    def pairs(self) -> frozenset[tuple[int, int]]:
        """Which task waits for what: the same while the tasks stay in this cycle."""
        return frozenset((s.thread, id(s.record.resource)) for s in self.steps)

    def task(self, key: int) -> Any:
        return self.tasks[key]


def _as_task_cycle(cycle: Cycle, walk: _TaskWalk, timed: bool, found_by: str) -> TaskCycle:
    return TaskCycle(steps=cycle.steps, timed=timed, proven=cycle.proven,
                     tasks={s.thread: walk.tasks[s.thread] for s in cycle.steps}
                     | {s.next_thread: walk.tasks[s.next_thread] for s in cycle.steps},
                     found_by=found_by)


def _find_cycle(task: Any, record: TaskWait) -> TaskCycle | None:
    """The cycle that ``task``'s new wait closes, if any (called before it blocks)."""
    first = record.wakers_of()
    if not first:
        return None
    table = dict(waits)
    for waker in first:  # the common case: whoever could end the wait can run, or waits for
        if waker is not task:  # something other than a task or a tracked primitive
            fut = waker._fut_waiter
            if fut is None or fut.done():
                return None
            registered = table.get(id(waker))
            if (registered is None or registered.task() is not waker) \
                    and _awaited(waker, fut) is None:
                return None
    view = _LoopView(_loop_of(task))
    walk = _TaskWalk(task, table, view, blocking=(task, record))
    cycle = walk.cycle()
    if cycle is None or view.acts_on(record.resource):  # a scheduled release, say
        return None
    # A timeout or a cancel scheduled for the task itself: a timed wait (reported, not raised).
    return _as_task_cycle(cycle, walk, view.scheduled(task), "block")


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
        if loop is None or getattr(loop, "_thread_id", None) != me:
            waits.pop(key, None)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


# --- the model: tasks as threads --------------------------------------------------------------

_OP_WORDS = {
    "acquire": "acquire", "wait": "wait", "get": "get from an empty queue",
    "put": "put on a full queue", "queue-join": "wait for a queue's items to be processed",
    "await": "await a task", "gather": "await a gather", "taskgroup": "wait for a TaskGroup",
}
_AWAIT_OPS = frozenset({"await", "gather", "taskgroup"})
_IO_FILES = frozenset({"streams.py", "selector_events.py", "base_events.py",
                       "proactor_events.py", "sslproto.py", "subprocess.py",
                       "base_subprocess.py", "unix_events.py", "windows_events.py"})


_STUCK_DIR = registry._HERE + os.sep


def _frames(chain: list[FrameType]) -> list[Frame]:
    out: list[Frame] = []
    for frame in reversed(chain):  # innermost first
        code = frame.f_code
        if code.co_filename.startswith(_STUCK_DIR):
            continue  # stuck's own frames (the tracked primitive's wait)
        out.append(Frame(function=code.co_name, file=code.co_filename, line=frame.f_lineno,
                         module=frame.f_globals.get("__name__")))
    return out


def _holders(obj: Any) -> list[Any]:
    """The tasks that hold a tracked Lock or Semaphore permits now."""
    kind = getattr(obj, "_stuck_kind", None)
    if kind == "mutex":
        owner = obj._stuck_owner
        return [owner] if owner is not None and obj._locked and not owner.done() else []
    if kind == "semaphore":
        return _alive_tasks({k: v[0] for k, v in list(obj._stuck_holders.items())})
    return []


def _tracked_primitives() -> list[Any]:
    for _ in range(3):
        try:
            return list(_resources)
        except RuntimeError:  # another thread made a primitive meanwhile
            continue
    return []


def _group_label(kind: str, tasks: Iterable[Any]) -> str:
    names = [_task_name(t) for t in tasks]
    shown = ", ".join(names[:4]) + (f", … {len(names) - 4} more" if len(names) > 4 else "")
    return f"{kind}({shown})"


def resource_for(obj: Any, resources: dict[str, Resource], rid_of: dict[int, str]) -> Resource:
    """The model Resource of a tracked primitive, a task, a gather or a TaskGroup (added to
    ``resources`` and ``rid_of`` once)."""
    rid = rid_of.get(id(obj))
    if rid is not None and rid in resources:
        return resources[rid]
    if _is_task(obj):
        res = Resource(id=registry.foreign_id(obj, "task"), kind="task", label=_task_name(obj),
                       address=f"{id(obj):#x}",
                       owners=[] if obj.done() else [task_tid(obj)])
    elif _GatheringFuture is not None and type(obj) is _GatheringFuture:
        children = [c for c in list(getattr(obj, "_children", ())) if _is_task(c)]
        res = Resource(id=registry.foreign_id(obj, "task"), kind="task",
                       label=_group_label("gather", children), address=f"{id(obj):#x}",
                       owners=[task_tid(c) for c in children if not c.done()])
    elif getattr(obj, "_stuck_kind", None) is None:  # a TaskGroup
        members = [t for t in list(getattr(obj, "_tasks", ())) if _is_task(t)]
        res = Resource(id=registry.foreign_id(obj, "task"), kind="task",
                       label=_group_label("TaskGroup", members), address=f"{id(obj):#x}",
                       owners=[task_tid(t) for t in members if not t.done()])
    else:
        from stuck.runtime.livereport import describe

        res = describe(obj)
        res.owners = [task_tid(t) for t in _holders(obj)]
    resources[res.id] = res
    rid_of[id(obj)] = res.id
    return res


def _io_or_unknown(chain: list[FrameType]) -> tuple[ThreadState, str]:
    if chain:
        code = chain[-1].f_code
        base = os.path.basename(code.co_filename)
        if code.co_filename.startswith(_ASYNCIO_DIR + os.sep):
            if base == "tasks.py" and code.co_name == "sleep":
                return "sleeping", "sleep"
            if base in _IO_FILES:
                return "io", code.co_name
    # Suspended on a future: not running, and nothing in view says who completes it.
    return "blocked", "awaits a future"


def add_to_snapshot(threads: list[Thread], resources: dict[str, Resource],
                    rid_of: dict[int, str], now: float) -> list[str]:
    """Add every pending asyncio task as a Thread of the snapshot (what it holds, what it
    waits for, its await chain), and the resources they name. Returns notes for the snapshot."""
    tasks = pending_tasks()
    if not tasks:
        return []
    table = dict(waits)
    held: dict[int, list[Any]] = {}
    for obj in _tracked_primitives():
        for holder in _holders(obj):
            held.setdefault(id(holder), []).append(obj)

    def involved(task: Any) -> bool:
        fut = getattr(task, "_fut_waiter", None)
        return id(task) in table or id(task) in held or _is_task(fut) or (
            _GatheringFuture is not None and type(fut) is _GatheringFuture)

    tasks.sort(key=lambda t: 0 if involved(t) else 1)
    notes: list[str] = []
    if len(tasks) > MAX_TASKS_SHOWN:
        notes.append(f"{len(tasks) - MAX_TASKS_SHOWN} more asyncio tasks are not shown")
        tasks = tasks[:MAX_TASKS_SHOWN]
    views: dict[int, _LoopView] = {}
    for task in tasks:
        loop = _loop_of(task)
        view = views.get(id(loop))
        if view is None:
            view = views[id(loop)] = _LoopView(loop)
        chain = _chain(task)
        thread = Thread(id=task_tid(task), name=_task_name(task), frames=_frames(chain))
        _describe_wait(thread, task, table.get(id(task)), view, chain, resources, rid_of, now)
        for obj in held.get(id(task), ()):
            thread.holds.append(resource_for(obj, resources, rid_of).id)
        threads.append(thread)
    return notes


def extend_snapshot(snap: Snapshot, rid_of: dict[int, str]) -> None:
    """Add the asyncio tasks to a snapshot taken without them (``livereport.take``)."""
    if not snap.processes:
        return
    resources = snap.resource_map()
    notes = add_to_snapshot(snap.processes[0].threads, resources, rid_of,
                            snap.taken_at or time.time())
    snap.resources = list(resources.values())
    snap.notes.extend(notes)


def _describe_wait(thread: Thread, task: Any, record: TaskWait | None, view: _LoopView,
                   chain: list[FrameType], resources: dict[str, Resource],
                   rid_of: dict[int, str], now: float) -> None:
    current = view.current()
    fut = getattr(task, "_fut_waiter", None)
    if record is not None and record.task() is not task:
        record = None
    if record is not None and (task is current or (fut is not None and not fut.done())):
        res = resource_for(record.resource, resources, rid_of)
        timed = view.scheduled(task)
        file, function, line = record.where
        thread.waits = Wait(resource=res.id, since=record.since,
                            duration=max(0.0, now - record.since), timeout=None,
                            durable=not timed,
                            at=Frame(function=function, file=file, line=line) if file else None)
        thread.state = "sleeping" if timed else "blocked"
        thread.detail = _OP_WORDS.get(record.op, record.op)
        return
    if task is current or fut is None or fut.done():
        thread.state = "running"
        thread.detail = "running" if task is current else "ready to run"
        return
    awaited = _awaited(task, fut)
    if awaited is not None:
        resource, op, _ = awaited
        res = resource_for(resource, resources, rid_of)
        timed = view.scheduled(task)
        file, function, line = _task_where(task)
        thread.waits = Wait(resource=res.id, timeout=None, durable=not timed,
                            at=Frame(function=function, file=file, line=line) if file else None)
        thread.state = "sleeping" if timed else "blocked"
        thread.detail = _OP_WORDS[op]
        return
    if view.timer_future(fut):
        thread.state, thread.detail = "sleeping", "a timer"
        return
    thread.state, thread.detail = _io_or_unknown(chain)


# --- findings ---------------------------------------------------------------------------------


def _snap_resource(snap: Snapshot, rid_of: dict[int, str], obj: Any) -> Resource:
    rid = rid_of.get(id(obj))
    if rid is not None:
        found = snap.resource(rid)
        if found is not None:
            return found
    resources = snap.resource_map()
    res = resource_for(obj, resources, rid_of)
    if snap.resource(res.id) is None:
        snap.resources.append(res)
    return res


def _step_words(record: TaskWait, res: Resource, nxt: str, self_loop: bool) -> str:
    name = res.label or res.id
    op = record.op
    kind = getattr(record.resource, "_stuck_kind", None)
    if op == "acquire" and kind == "mutex":
        if self_loop:
            return f"takes lock {name}, which it already holds (an asyncio.Lock is not " \
                   "reentrant)"
        return f"waits for lock {name} held by {nxt}"
    if op == "acquire":
        return f"waits for semaphore {name}, whose permits {nxt} holds"
    if op == "get":
        return f"gets from empty queue {name}, which only {nxt} puts to"
    if op == "put":
        return f"puts on full queue {name}, which only {nxt} gets from"
    if op == "await":
        return f"awaits task {nxt}"
    if op in ("gather", "taskgroup"):
        return f"awaits {name}, in which {nxt} is not done"
    return f"waits for {name} ({op}), which {nxt} could end"


_CERTAIN_OPS = frozenset({"acquire-mutex", "await", "gather", "taskgroup"})



def _loop_thread_name(loop: Any) -> str:
    ident = getattr(loop, "_thread_id", None)
    if ident is None:
        return "?"
    thread = registry.thread_objects().get(ident)
    return thread.name if thread is not None else f"0x{ident:x}"


def finding_for(cycle: TaskCycle, snap: Snapshot, rid_of: dict[int, str],
                policy: str) -> Finding:
    """The deadlock Finding of a cycle among tasks (the threads of ``snap`` include them)."""
    edges: list[Edge] = []
    parts: list[str] = []
    res_ids: list[str] = []
    for step in cycle.steps:
        task = cycle.task(step.thread)
        nxt = cycle.task(step.next_thread)
        res = _snap_resource(snap, rid_of, step.record.resource)
        res_ids.append(res.id)
        edges.append(Edge(thread=task_tid(task), waits_for=res.id, held_by=task_tid(nxt)))
        record: Any = step.record
        parts.append(f"{_task_name(task)} " + _step_words(record, res, _task_name(nxt),
                                                          step.thread == step.next_thread))
    root = cycle.task(cycle.steps[0].thread)
    loop = _loop_of(root)
    n = len(cycle.steps)
    summary = parts[0] if n == 1 else f"{n} asyncio tasks wait for each other: " + \
        "; ".join(parts)
    ops = {op_key(s.record) for s in cycle.steps}
    confidence: Any = "certain" if ops <= _CERTAIN_OPS else "probable"
    missing: list[str] = []
    if ops & {"get", "put"}:
        missing.append("which tasks will use a queue is inferred from which tasks used it so "
                       "far; a task that never touched it could still end the wait")
    if "acquire-semaphore" in ops:
        missing.append("a semaphore can be released by any task; its holders are the tasks "
                       "that acquired it and have not released it")
    explanation: list[str] = []
    if cycle.timed:
        confidence = "probable" if confidence == "certain" else "possible"
        explanation.append(f"{_task_name(root)} waits under a timeout, or a callback already "
                           "scheduled on the loop acts on its wait: the cycle may end then, if "
                           "the program lets go of what it holds.")
    if cycle.found_by == "block":
        explanation.append(
            f"{_task_name(root)} closed the cycle by starting to wait; "
            + {"raise": "stuck raised DeadlockError in it instead, with every lock left as it "
                        "was.",
               "abort": "stuck is stopping the program.",
               "report": "the tasks keep waiting (policy report)."}.get(policy, ""))
    elif cycle.found_by == "watchdog":
        explanation.append("The cycle was closed by awaiting a task, which stuck does not "
                           "intercept; the watchdog found it once the event loop had nothing "
                           "left to run.")
    if cycle.found_by != "block" or policy == "report":
        explanation.append(f"The event loop (thread {_loop_thread_name(loop)}) goes on running "
                           "its other tasks; these will never resume.")
    in_cycle = set(cycle.tasks)
    victims = [task_tid(t) for t in _victims(loop, in_cycle, cycle)]
    return Finding(kind="deadlock", confidence=confidence, summary=summary,
                   explanation="\n".join(explanation),
                   threads=[task_tid(cycle.task(s.thread)) for s in cycle.steps],
                   resources=res_ids, cycle=edges, blocked_behind=victims,
                   missing_evidence=missing,
                   details={"detected_by": task_tid(root), "policy": policy,
                            "event_loop_thread": _loop_thread_name(loop)})


def _victims(loop: Any, in_cycle: set[int], cycle: TaskCycle) -> list[Any]:
    """Tasks of the loop stuck only behind the cycle."""
    view = _LoopView(loop)
    table = dict(waits)
    blocking = None
    if cycle.found_by == "block":
        root = cycle.task(cycle.steps[0].thread)
        record: Any = cycle.steps[0].record
        blocking = (root, record)
    out = []
    walks = 0
    for task in view.tasks():
        fut = getattr(task, "_fut_waiter", None)
        if id(task) in in_cycle or fut is None or fut.done():
            continue
        walks += 1
        if walks > MAX_WALKS:
            break
        if _TaskWalk(task, table, view, blocking).knot() is not None:
            out.append(task)
    return out


def _stuck_tasks(view: _LoopView, table: dict[int, TaskWait]) -> list[Any]:
    """The tasks of a loop in a knot (in a cycle, or behind one), for on-demand reports."""
    out = []
    for task in view.tasks():
        fut = getattr(task, "_fut_waiter", None)
        if fut is None or fut.done():
            continue
        if _TaskWalk(task, table, view).knot() is not None:
            out.append(task)
            if len(out) >= MAX_WALKS:
                break
    return out


def _cycles(view: _LoopView, candidates: list[Any], table: dict[int, TaskWait],
            found_by: str) -> list[TaskCycle]:
    found: list[TaskCycle] = []
    covered: set[int] = set()
    for task in sorted(candidates, key=_task_name)[:MAX_WALKS]:
        if id(task) in covered:
            continue
        walk = _TaskWalk(task, table, view)
        cycle = walk.cycle()
        if cycle is None:
            continue
        task_cycle = _as_task_cycle(cycle, walk, False, found_by)
        covered.update(task_cycle.tasks)
        found.append(task_cycle)
    return found


def _loops() -> dict[int, tuple[Any, list[Any]]]:
    by_loop: dict[int, tuple[Any, list[Any]]] = {}
    for task in pending_tasks():
        loop = _loop_of(task)
        if loop is None:
            continue
        entry = by_loop.get(id(loop))
        if entry is None:
            entry = by_loop[id(loop)] = (loop, [])
        entry[1].append(task)
    return by_loop


def cycle_findings(snap: Snapshot, rid_of: dict[int, str], policy: str) -> list[Finding]:
    """Every deadlock cycle among tasks now (for a snapshot report asked for by signal or
    ``stuck.snapshot()``)."""
    table = dict(waits)
    out: list[Finding] = []
    for loop, _tasks in _loops().values():
        view = _LoopView(loop)
        for cycle in _cycles(view, _stuck_tasks(view, table), table, "snapshot"):
            out.append(finding_for(cycle, snap, rid_of, policy))
    return out


# --- the event-loop rule (watchdog) -----------------------------------------------------------


def _loop_quiet(loop: Any) -> bool:
    """True when nothing inside ``loop`` can run again by itself: it is running, idle in its
    selector with no timeout, with no callback ready, no timer scheduled, no task current, and
    no I/O registered besides its own wake-up pipe (what ``call_soon_threadsafe`` writes to).
    Read from outside the loop's thread: attributes only, never user code."""
    try:
        if not loop.is_running() or loop.is_closed():
            return False
        if len(loop._ready):
            return False
        if any(not getattr(h, "_cancelled", False) for h in list(loop._scheduled)):
            return False
        registered = loop._selector.get_map()
        wake_pipe = getattr(loop, "_ssock", None)
        own = 1 if wake_pipe is not None and wake_pipe.fileno() in registered else 0
        if len(registered) > own:
            return False
        frame = sys._current_frames().get(loop._thread_id)
        if frame is None or frame.f_code.co_name != "select" \
                or not frame.f_code.co_filename.endswith("selectors.py"):
            return False
        return _current_tasks.get(loop) is None
    except Exception:  # another kind of loop (uvloop, proactor): nothing can be proven
        return False


# A loop found quiet with every task suspended and none on a tracked primitive (tasks awaiting
# each other, or futures): id(loop) -> (what each task waited on, when that was first seen).
# Such a state is reported only once it has held, unchanged, for the settle time.
_suspended_since: dict[int, tuple[tuple[int, ...], float]] = {}


def _suspended_marks(loop: Any, tasks: list[Any]) -> tuple[int, ...] | None:
    """What each task of a quiet ``loop`` is suspended on, when every one is suspended on a
    task, a gather, a TaskGroup or a plain future, and nothing else can end those waits: the
    loop has no signal handler (``add_signal_handler`` could complete a future) and no other
    thread can run (``call_soon_threadsafe`` could). None otherwise."""
    try:
        if not tasks or getattr(loop, "_signal_handlers", None) or not _loop_quiet(loop):
            return None
        marks: list[int] = []
        plain = False
        for task in tasks:
            fut = getattr(task, "_fut_waiter", None)
            if task.done() or fut is None or fut.done():
                return None
            if _awaited(task, fut) is None:
                plain = True
            marks.append(id(fut))
        if plain and _other_runnable_threads(loop):
            return None
        return tuple(marks)
    except Exception:  # a loop or task of another kind: nothing can be proven
        return None


def _suspended_for(loop: Any, tasks: list[Any], now: float) -> float:
    """How long ``loop`` has been in the same all-suspended state (0 when it is not)."""
    marks = _suspended_marks(loop, tasks)
    if marks is None:
        _suspended_since.pop(id(loop), None)
        return 0.0
    earlier = _suspended_since.get(id(loop))
    if earlier is None or earlier[0] != marks:
        if len(_suspended_since) > 256:
            _suspended_since.clear()
        _suspended_since[id(loop)] = (marks, now)
        return 0.0
    return now - earlier[1]


def settled(settle: float) -> bool:
    """True when some task has waited on a tracked primitive for ``settle`` seconds on a loop
    that looks quiet, or when a quiet loop's tasks have all stayed suspended on each other or on
    futures for that long: what makes the watchdog look closer (cheap: no snapshot)."""
    now = time.time()
    cutoff = now - settle
    seen: set[int] = set()
    for record in list(waits.values()):
        if record.since > cutoff:
            continue
        task = record.task()
        loop = _loop_of(task) if task is not None else None
        if loop is None or id(loop) in seen:
            continue
        seen.add(id(loop))
        if _loop_quiet(loop):
            return True
    found = False
    for loop, tasks in _loops().values():
        if id(loop) not in seen and _suspended_for(loop, tasks, now) >= settle:
            found = True  # no early return: every loop's state is brought up to date
    return found


def _stalled(loop: Any, tasks: list[Any], table: dict[int, TaskWait],
             cutoff: float) -> bool:
    """Every task of ``loop`` is suspended on a tracked primitive (for longer than the settle
    time) or on other tasks, and the loop is quiet: read twice, with the same result."""
    def state() -> tuple[int, ...] | None:
        if not _loop_quiet(loop):
            return None
        tracked = False
        marks: list[int] = []
        for task in tasks:
            fut = getattr(task, "_fut_waiter", None)
            if task.done() or fut is None or fut.done():
                return None
            record = table.get(id(task))
            if record is not None and record.task() is task:
                if record.since > cutoff:
                    return None
                tracked = True
            elif _awaited(task, fut) is None:
                return None
            marks.append(id(fut))
        return tuple(marks) if tracked else None

    first = state()
    if first is not None and state() == first:
        return True
    # No task on a tracked primitive: tasks awaiting each other (an await cycle) or futures
    # nothing left can complete, unchanged since an observation at least the settle time ago.
    earlier = _suspended_since.get(id(loop))
    marks = _suspended_marks(loop, tasks)
    return (marks is not None and earlier is not None and earlier[0] == marks
            and earlier[1] <= cutoff)


def _other_runnable_threads(loop: Any) -> list[str]:
    """Threads other than the loop's that could still run code, hence call
    ``loop.call_soon_threadsafe``: not stuck's own, not durably blocked on a tracked primitive,
    not an idle pool worker waiting for a job."""
    from stuck.runtime.watchdog import frame_activity

    loop_ident = getattr(loop, "_thread_id", None)
    names = registry.thread_objects()
    out: list[str] = []
    for ident, frame in sys._current_frames().items():
        if ident == loop_ident or ident in registry.own_idents:
            continue
        record = registry.waits.get(ident)
        if record is not None and record.timeout is None:
            continue
        activity, call = frame_activity(frame)
        if activity == "idle" and call == "_worker":
            continue
        thread = names.get(ident)
        out.append(thread.name if thread is not None else f"0x{ident:x}")
    return sorted(out)


def _what(task: Any, record: TaskWait | None, snap: Snapshot, rid_of: dict[int, str]
          ) -> tuple[str, str | None]:
    """How a stuck task's wait reads in a report, and the resource id it waits on."""
    if record is None:
        fut = getattr(task, "_fut_waiter", None)
        awaited = _awaited(task, fut)
        if awaited is None:
            if fut is not None and not fut.done():
                return "awaits a future that nothing left running can complete", None
            return "waits", None
        resource, op, _pending = awaited
        res = _snap_resource(snap, rid_of, resource)
        if op == "await":
            return f"awaits task {_task_name(resource)}", res.id
        return f"awaits {res.label}", res.id
    obj: Any = record.resource
    res = _snap_resource(snap, rid_of, obj)
    label = res.label or res.id
    op = record.op
    kind = getattr(obj, "_stuck_kind", None)
    if kind == "event":
        setter = obj._stuck_set_by
        return (f"waits for event {label}, "
                + ("which nothing has ever set" if setter is None
                   else f"last set by {setter} and cleared since")), res.id
    if kind == "condition" and op == "wait":
        notifier = obj._stuck_set_by
        return (f"waits on condition {label}, "
                + ("which nothing has ever notified" if notifier is None
                   else f"last notified by {notifier}")), res.id
    if kind == "queue":
        if op == "get":
            producers = [t for t in (r() for r in list(obj._stuck_putters.values()))
                         if t is not None]
            who = ", ".join(_task_name(t) for t in producers[:3])
            return (f"waits to get from empty queue {label}, "
                    + (f"whose producers ({who}) are done or stuck" if producers
                       else "to which nothing has ever been put")), res.id
        if op == "put":
            return f"waits to put on full queue {label}", res.id
        return f"waits for the items of queue {label} to be processed", res.id
    if kind == "mutex":
        owner = obj._stuck_owner
        if owner is not None and owner.done() and obj._locked:
            return (f"waits for lock {label}, held by task {_task_name(owner)}, which ended "
                    "without releasing it"), res.id
        owners = ", ".join(_task_name(t) for t in _holders(obj)) or "nobody"
        return f"waits for lock {label} held by {owners}", res.id
    if kind == "semaphore":
        return f"waits for semaphore {label}", res.id
    return f"waits for {label}", res.id


def loop_findings(snap: Snapshot, rid_of: dict[int, str], settle: float) -> list[Finding]:
    """The event-loop rule, for the watchdog: a loop none of whose tasks can ever run again.

    Cycles among its tasks are reported as deadlocks (unless reported when they formed), and
    the tasks left (waiting on an Event nobody will set, say, or on those) as one stall."""
    table = dict(waits)
    cutoff = time.time() - settle
    out: list[Finding] = []
    for loop, tasks in _loops().values():
        if not _stalled(loop, tasks, table, cutoff):
            continue
        view = _LoopView(loop)
        covered: set[int] = set()
        for cycle in _cycles(view, tasks, table, "watchdog"):
            finding = finding_for(cycle, snap, rid_of, "report")
            members = set(cycle.tasks)
            covered |= members
            covered |= {id(t) for t in tasks if task_tid(t) in finding.blocked_behind}
            if cycle.pairs() not in _cycles_seen:  # not reported when it formed
                out.append(finding)
        rest = sorted((t for t in tasks if id(t) not in covered), key=_task_name)
        if rest:
            out.append(_stall_finding(loop, rest, table, snap, rid_of))
    return out


def _stall_finding(loop: Any, tasks: list[Any], table: dict[int, TaskWait], snap: Snapshot,
                   rid_of: dict[int, str]) -> Finding:
    loop_thread = _loop_thread_name(loop)
    lines: list[str] = []
    resources: list[str] = []
    phrases: list[str] = []

    def record_of(task: Any) -> TaskWait | None:
        record = table.get(id(task))
        return record if record is not None and record.task() is task else None

    # The tasks waiting on primitives first: they say why; those awaiting them follow.
    tasks = sorted(tasks, key=lambda t: (record_of(t) is None, _task_name(t)))
    for task in tasks:
        record = record_of(task)
        words, rid = _what(task, record, snap, rid_of)
        phrase = f"{_task_name(task)} {words}"
        phrases.append(phrase)
        if record is not None:
            lines.append(phrase + ".")
        if rid is not None and rid not in resources:
            resources.append(rid)
    lines.append(f"The event loop (thread {loop_thread}) has no callback ready to run, no "
                 "timer scheduled and no I/O to watch, so no code on it will run again to end "
                 "these waits.")
    others = _other_runnable_threads(loop)
    missing = ["which code was meant to end these waits is not recorded"]
    confidence: Any = "certain"
    if others:
        confidence = "probable"
        lines.append("Threads still able to run: " + ", ".join(others[:5])
                     + ("" if len(others) <= 5 else f", … {len(others) - 5} more") + ".")
        missing.insert(0, "another thread could still wake the loop "
                          "(loop.call_soon_threadsafe); whether one will is not known")
    on_futures = [t for t in tasks if record_of(t) is None
                  and _awaited(t, getattr(t, "_fut_waiter", None)) is None]
    handlers = _python_signal_handlers() if on_futures else []
    if handlers:
        confidence = "probable"
        missing.insert(0, "a Python signal handler (" + ", ".join(handlers[:3]) + ") runs on "
                          "the loop's thread and could complete the futures awaited")
    n = len(tasks)
    summary = (f"{n} asyncio task{'s' if n != 1 else ''} on the event loop in thread "
               f"{loop_thread} wait{'s' if n == 1 else ''} and nothing left can wake "
               f"{'it' if n == 1 else 'them'}: " + "; ".join(phrases[:3])
               + ("" if n <= 3 else f"; … {n - 3} more"))
    return Finding(kind="stall", confidence=confidence, summary=summary,
                   explanation="\n".join(lines), threads=[task_tid(t) for t in tasks],
                   resources=resources, missing_evidence=missing,
                   details={"rule": "event-loop-stall", "event_loop_thread": loop_thread,
                            "tasks": n})


def _python_signal_handlers() -> list[str]:
    """The signals with a handler of the program's, written in Python: such a handler runs on
    the main thread and could complete a future (report time only). Python's default SIGINT
    handler, asyncio's (``asyncio.run`` cancels the main task on Ctrl-C: an interruption, not
    the end of a wait) and stuck's snapshot handler do not count."""
    import signal

    out: list[str] = []
    for sig in signal.valid_signals():
        try:
            handler = signal.getsignal(sig)
        except (ValueError, OSError):
            continue
        inner = getattr(handler, "func", handler)  # asyncio.run's is a functools.partial
        module = str(getattr(inner, "__module__", None) or "")
        if (callable(handler) and handler is not signal.default_int_handler
                and not module.startswith(("asyncio.", "stuck."))):
            out.append(signal.Signals(sig).name if sig in signal.Signals._value2member_map_
                       else str(int(sig)))
    return out


def raise_in_task(finding: Finding, error: BaseException) -> bool:
    """Raise ``error`` in the first task of ``finding`` that waits on a tracked primitive, at
    its ``await`` (the watchdog's ``raise`` policy). The primitive's future gets the error,
    set by the loop's own thread (``call_soon_threadsafe``), so the primitive cleans up as for
    any failed wait and the task can recover. False when no such task is found."""
    by_tid: dict[str, Any] = {}
    for record in list(waits.values()):
        task = record.task()
        if task is not None and not task.done():
            by_tid[task_tid(task)] = task
    for tid in finding.threads:
        task = by_tid.get(tid)
        fut = getattr(task, "_fut_waiter", None)
        if task is None or fut is None or fut.done() or _is_task(fut):
            continue

        def throw(task: Any = task, fut: Any = fut) -> None:
            if task._fut_waiter is fut and not fut.done():  # still the same wait
                fut.set_exception(error)

        try:
            _loop_of(task).call_soon_threadsafe(throw)
        except Exception:  # the loop has closed meanwhile
            continue
        return True
    return False


def reset() -> None:
    """Forget the cycles already reported (``stuck.runtime.uninstall``)."""
    _cycles_seen.clear()
    _suspended_since.clear()

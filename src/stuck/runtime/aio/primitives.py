"""The tracked asyncio primitives (Lock, Event, Condition, Semaphore, BoundedSemaphore and
the Queues): who holds them, who puts and gets, and the wait a task registers just before it
blocks, when a cycle it closes is looked for."""

from __future__ import annotations

import asyncio
import asyncio.locks as _locks
import asyncio.queues as _queues
import sys
from types import FrameType
from typing import Any

from stuck.model import Finding
from stuck.runtime import detect, registry
from stuck.runtime.aio.internals import (
    _current_task,
    _is_plumbing,
    _is_task,
    _loop_of,
    _made_by_asyncio,
    _ref,
    _task_or_none,
    _where,
    awaiting,
    pending_tasks,
)
from stuck.runtime.aio.names import task_tid
from stuck.runtime.aio.waits import TaskWait, TaskWakers, _cycles_seen, _resources, waits
from stuck.runtime.aio.walk import _find_cycle
from stuck.runtime.patch import original
from stuck.runtime.tracked import PrimitiveFacts, as_tracked, tracked_class
from stuck.tracebacks import hide_in_pytest as _hide_in_pytest

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
            if len(_cycles_seen) > 1024:
                _cycles_seen.clear()
            _cycles_seen.add(cycle.pairs())
            try:
                detect.cycle_closed(key, cycle, may_raise)
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
    obj._stuck_class, owner = registry.lock_class_and_owner(
        kind, name, registry.user_frame(frame, _is_plumbing))
    obj._stuck_parent = registry.owner_ref(owner)
    obj._stuck_id = registry.new_id(kind)
    obj._stuck_epoch = 0  # moves at every release, set, notify, put and get
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


@tracked_class
class Lock(_OrigLock):  # type: ignore[misc]
    """A tracked ``asyncio.Lock``: records the task that holds it."""

    _stuck_kind = "mutex"
    _stuck_wakers_of = _lock_wakers
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
            self._stuck_epoch += 1
            self._stuck_owner = None
            self._locked = False
            self._wake_up_first()
        else:
            raise RuntimeError("Lock is not acquired.")

    def _stuck_owners(self) -> list[tuple[int, Any, int]]:
        return []  # owners are tasks: the snapshot names them (add_to_snapshot)

    def _stuck_facts(self) -> PrimitiveFacts:
        owner = self._stuck_owner
        if owner is None or not self._locked:
            return PrimitiveFacts()
        if owner.done():  # it ended without releasing the lock
            return PrimitiveFacts(held_by_ended=owner)
        return PrimitiveFacts(holders=[owner])


def _semaphore_wakers(resource: Any, op: str) -> list[Any] | None:
    if resource._stuck_signaling:
        return None
    return _alive_tasks({k: v[0] for k, v in list(resource._stuck_holders.items())}) or None


@tracked_class
class Semaphore(_OrigSemaphore):  # type: ignore[misc]
    """A tracked ``asyncio.Semaphore``: counts the permits each task holds.

    As with threads, holders mean something only while permits are released by the tasks that
    took them; a semaphore that starts at 0 or is released by a non-holder is a signal, and
    waits on it are left to the stall rule.
    """

    _stuck_kind = "semaphore"
    _stuck_wakers_of = _semaphore_wakers

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
        self._stuck_epoch += 1
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

    def _stuck_facts(self) -> PrimitiveFacts:
        return PrimitiveFacts(holders=_alive_tasks({k: v[0] for k, v in list(self._stuck_holders.items())}))


@tracked_class
class BoundedSemaphore(Semaphore, _OrigBoundedSemaphore):  # type: ignore[misc]
    """A tracked ``asyncio.BoundedSemaphore``."""


@tracked_class
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
        self._stuck_epoch += 1
        if not self._value:
            task = _task_or_none()
            self._stuck_set_by = task.get_name() if task is not None else "a callback"
        _orig_event_set(self)

    def _stuck_owners(self) -> list[tuple[int, Any, int]]:
        return []

    def _stuck_wakers_of(self, op: str) -> list[Any] | None:
        return None  # any task or callback may set it

    def _stuck_facts(self) -> PrimitiveFacts:
        return PrimitiveFacts(set_by=self._stuck_set_by)


@tracked_class
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
        self._stuck_epoch += 1
        super().notify(n)
        task = _task_or_none()
        self._stuck_set_by = task.get_name() if task is not None else "a callback"

    def _stuck_owners(self) -> list[tuple[int, Any, int]]:
        return []

    def _stuck_wakers_of(self, op: str) -> list[Any] | None:
        return None  # any task or callback may notify it

    def _stuck_facts(self) -> PrimitiveFacts:
        return PrimitiveFacts(set_by=self._stuck_set_by)


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
        self._stuck_epoch += 1
        if self._stuck_last_putter() is not task and task is not None:
            self._stuck_last_putter = _remember(self._stuck_putters, task)
        orig_put(self, item)

    def _get(self: Any) -> Any:
        try:
            task = _current_task()
        except RuntimeError:
            task = None
        self._stuck_epoch += 1
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

    def _stuck_facts(self: Any) -> PrimitiveFacts:
        def tasks(book: dict[int, Any]) -> list[Any]:
            return [t for t in (r() for r in list(book.values())) if t is not None]

        return PrimitiveFacts(putters=tasks(self._stuck_putters), getters=tasks(self._stuck_getters))

    new_cls = type(orig.__name__, (orig,), {
        "__new__": __new__, "__init__": __init__, "_put": _put, "_get": _get, "put": put,
        "get": get, "join": join, "_stuck_owners": _stuck_owners, "_stuck_kind": "queue",
        "_stuck_wakers_of": _queue_wakers, "_stuck_facts": _stuck_facts,
        "__module__": orig.__module__, "__qualname__": orig.__qualname__,
        "__doc__": f"A tracked asyncio.{orig.__name__}.",
    })
    return tracked_class(new_cls)


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




def _holders(obj: Any) -> list[Any]:
    """The tasks that hold a tracked Lock or Semaphore permits now."""
    tracked = as_tracked(obj)
    return tracked._stuck_facts().holders if tracked is not None else []


def _tracked_primitives() -> list[Any]:
    for _ in range(3):
        try:
            return list(_resources)
        except RuntimeError:  # another thread made a primitive meanwhile
            continue
    return []



def raise_in_task(finding: Finding, error: BaseException) -> bool:
    """Raise ``error`` in the first task of ``finding`` that waits on a future other than a
    task, at its ``await`` (the watchdog's ``raise`` policy): a tracked primitive's, or a
    future the program made (``loop.create_future()``) that nothing left can complete. That
    future gets the error, set by the loop's own thread (``call_soon_threadsafe``), so a
    primitive cleans up as for any failed wait, and the task, and those awaiting it, can
    recover. A task awaiting another task is passed over: the error reaches it through the
    task it awaits. False when no such task is found."""
    by_tid: dict[str, Any] = {}
    for task in pending_tasks():
        by_tid[task_tid(task)] = task
    for tid in finding.threads:
        task = by_tid.get(tid)
        fut = awaiting(task)
        if task is None or fut is None or fut.done() or _is_task(fut):
            continue

        def throw(task: Any = task, fut: Any = fut) -> None:
            if awaiting(task) is fut and not fut.done():  # still the same wait
                fut.set_exception(error)

        try:
            _loop_of(task).call_soon_threadsafe(throw)
        except Exception:  # the loop has closed meanwhile
            continue
        return True
    return False


# pytest leaves these frames out of the tracebacks it shows (STUCK_DEBUG=1 keeps them): a
# program's wait passes through them, plain Python's does not (stuck.tracebacks).
__tracebackhide__ = _hide_in_pytest()

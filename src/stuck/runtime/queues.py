"""Tracked queue.Queue, LifoQueue, PriorityQueue and SimpleQueue.

A queue is tracked as a queue, not as the lock and conditions inside it: a thread blocked in
``put`` waits for "queue X (full)", and the threads that could end that wait are those that
have taken items from it so far (for ``get`` on an empty queue: those that have put items).
That is inferred from the program's behaviour, so cycles through queues are reported as
probable. A waker set is used only while the queue is still full (or empty), so a waiter that
is merely about to be woken never counts as stuck.
"""

from __future__ import annotations

import _thread
import queue
import sys
import threading
from typing import Any

from stuck.runtime import detect, registry
from stuck.runtime import stall as _stall
from stuck.runtime.patch import original
from stuck.runtime.tracked import PrimitiveFacts, tracked_class
from stuck.tracebacks import hide_in_pytest as _hide_in_pytest

_get_ident = _thread.get_ident
_note = _stall.note_participant  # named in reports after it ends; by Thread, not just ident
_threads_by_ident = _stall._threads_by_ident  # threading's own table: ident -> Thread
_OrigCondition: Any = original(threading, "Condition")
_OrigQueue: Any = original(queue, "Queue")
_OrigLifoQueue: Any = original(queue, "LifoQueue")
_OrigPriorityQueue: Any = original(queue, "PriorityQueue")
_OrigSimpleQueue: Any = original(queue, "SimpleQueue")


def _alive(participants: dict[int, Any]) -> list[int]:
    """The threads in ``participants`` (ident -> mark) still running: by the mark, so a new
    thread given the ident of one that ended is not taken for it."""
    return [t for t, mark in list(participants.items()) if mark is not None
            and _stall.is_current_mark(t, mark)]


def _queue_wakers(resource: object, op: str) -> list[int] | None:
    # Read the size without the queue's mutex: the waiting thread may hold it right now.
    q: Any = resource
    size = q._qsize() if hasattr(q, "_qsize") else q.qsize()
    if op == "put":
        if not (0 < q.maxsize <= size):
            return None
        return _alive(q._stuck_getters) or None
    if op == "get":
        if size > 0:
            return None
        return _alive(q._stuck_putters) or None
    return None


class _QueueCondition(_OrigCondition):  # type: ignore[misc]
    """One of a queue's conditions: a wait on it is recorded as a wait on the queue."""

    def __init__(self, lock: Any, owner: Any, op: str) -> None:
        super().__init__(lock)
        self._stuck_queue = owner
        self._stuck_op = op

    def wait(self, timeout: float | None = None) -> bool:
        me = _get_ident()
        frame = sys._getframe(1)
        wakers = _queue_wakers if self._stuck_op in ("put", "get") else None
        record = registry.WaitRecord(self._stuck_queue, self._stuck_op, wakers, frame, timeout)
        # The queue's mutex is held here; detection does not touch it, and under policy raise
        # the error propagates out of put/get, whose ``with`` releases the mutex.
        previous = detect.block_begin(me, record, True) if wakers else registry.begin_wait(
            me, record)
        try:
            return bool(super().wait(timeout))
        finally:
            registry.end_wait(me, previous)


class _Tracking:
    """Mixin for the Queue classes: record who puts and who gets, and the logical waits."""

    _stuck_kind = "queue"
    _stuck_wakers_of = _queue_wakers  # its consumers while full, its producers while empty
    maxsize: int
    mutex: Any

    def _stuck_setup(self, name: str | None) -> None:
        # ident -> mark (stall.thread_mark) of every thread that got / put so far
        self._stuck_getters: dict[int, Any] = {}
        self._stuck_putters: dict[int, Any] = {}
        self._stuck_epoch = 0  # moves at every put and get (see registry.epoch_of)
        mutex = self.mutex
        self.not_empty = _QueueCondition(mutex, self, "get")
        self.not_full = _QueueCondition(mutex, self, "put")
        self.all_tasks_done = _QueueCondition(mutex, self, "queue-join")
        self._stuck_class, owner = registry.lock_class_and_owner("queue", name, sys._getframe(2))
        self._stuck_parent = registry.owner_ref(owner)
        self._stuck_id = registry.register(self, "queue")

    def _put(self, item: Any) -> None:
        self._stuck_epoch += 1
        me = _get_ident()
        # The common case inline (this thread already recorded as itself): two dict reads
        # and a weak-reference call, no function call; note_participant does the rest.
        mark = self._stuck_putters.get(me)
        if mark is None or mark() is not _threads_by_ident.get(me):
            _note(self._stuck_putters, me)
        super()._put(item)  # type: ignore[misc]

    def _get(self) -> Any:
        self._stuck_epoch += 1
        me = _get_ident()
        mark = self._stuck_getters.get(me)
        if mark is None or mark() is not _threads_by_ident.get(me):
            _note(self._stuck_getters, me)
        return super()._get()  # type: ignore[misc]

    def _stuck_owners(self) -> list[tuple[int, Any, int]]:
        return []

    def _stuck_facts(self) -> PrimitiveFacts:
        return PrimitiveFacts(putters=dict(self._stuck_putters), getters=dict(self._stuck_getters))


def _make(cls: type, orig: Any) -> type:
    def __new__(klass: type, *args: Any, **kwargs: Any) -> Any:
        if klass is new_cls and registry.created_by_library():
            return orig(*args, **kwargs)
        return object.__new__(klass)

    def __init__(self: Any, maxsize: int = 0, *, name: str | None = None) -> None:
        orig.__init__(self, maxsize)
        self._stuck_setup(name)

    new_cls = type(orig.__name__, (cls, orig), {
        "__new__": __new__, "__init__": __init__, "__module__": __name__,
        "__doc__": f"A tracked queue.{orig.__name__}.",
    })
    return tracked_class(new_cls)


Queue: Any = _make(_Tracking, _OrigQueue)
LifoQueue: Any = _make(_Tracking, _OrigLifoQueue)
PriorityQueue: Any = _make(_Tracking, _OrigPriorityQueue)


@tracked_class
class SimpleQueue(_OrigSimpleQueue):  # type: ignore[misc]
    """A tracked queue.SimpleQueue (unbounded: only ``get`` can block)."""

    _stuck_kind = "queue"

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is SimpleQueue and registry.created_by_library():
            return _OrigSimpleQueue()
        return super().__new__(cls)

    def __init__(self, *, name: str | None = None) -> None:
        self._stuck_putters: dict[int, Any] = {}  # as for Queue: ident -> mark
        self._stuck_getters: dict[int, Any] = {}
        self._stuck_epoch = 0  # moves at every put and get (see registry.epoch_of)
        self.maxsize = 0
        self._stuck_class, owner = registry.lock_class_and_owner("queue", name, sys._getframe(1))
        self._stuck_parent = registry.owner_ref(owner)
        self._stuck_id = registry.register(self, "queue")

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        me = _get_ident()
        _note(self._stuck_putters, me)
        self._stuck_epoch += 1
        super().put(item, block, timeout)

    def put_nowait(self, item: Any) -> None:
        self.put(item, False)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        me = _get_ident()
        _note(self._stuck_getters, me)
        try:
            item = super().get(False)
            self._stuck_epoch += 1
            return item
        except queue.Empty:
            if not block:
                raise
        if timeout is not None and timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        record = registry.WaitRecord(self, "get", _queue_wakers, sys._getframe(1), timeout)
        previous = detect.block_begin(me, record, True)
        try:
            item = super().get(True, timeout)
            self._stuck_epoch += 1
            return item
        finally:
            registry.end_wait(me, previous)

    def get_nowait(self) -> Any:
        return self.get(False)

    def _stuck_owners(self) -> list[tuple[int, Any, int]]:
        return []

    def _stuck_wakers_of(self, op: str) -> list[int] | None:
        return _queue_wakers(self, op)

    def _stuck_facts(self) -> PrimitiveFacts:
        return PrimitiveFacts(putters=dict(self._stuck_putters), getters=dict(self._stuck_getters))


REPLACEMENTS: list[tuple[object, str, object]] = [
    (queue, "Queue", Queue),
    (queue, "LifoQueue", LifoQueue),
    (queue, "PriorityQueue", PriorityQueue),
    (queue, "SimpleQueue", SimpleQueue),
]


# pytest leaves these frames out of the tracebacks it shows (STUCK_DEBUG=1 keeps them): a
# program's wait passes through them, plain Python's does not (stuck.tracebacks).
__tracebackhide__ = _hide_in_pytest()

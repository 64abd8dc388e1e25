"""Controlled primitives: what ``threading.Lock()`` & co. return inside a controlled run.

Only three primitives are implemented here -- Lock, RLock and Condition -- plus
``queue.SimpleQueue`` (written in C, so it cannot be reached otherwise). Everything else in the
standard library is built on those and looks them up in the ``threading`` module when it is
*created*: ``Event``, ``Semaphore``, ``BoundedSemaphore`` and ``Barrier`` make a
``Condition(Lock())``; ``queue.Queue`` makes a ``threading.Lock()`` and three
``threading.Condition``; ``concurrent.futures.Future`` makes a ``threading.Condition()`` and
``ThreadPoolExecutor`` a ``SimpleQueue`` and a ``Semaphore``. Replacing the three factories (and
the module-level clocks those classes captured) therefore controls all of them, without a second
implementation of each that could drift from the original.

The factories return the *original* primitive to any thread the scheduler does not control, so
installing them for a whole exploration never changes the rest of the process.

A primitive holds no reference to its scheduler's threads beyond the execution that made it: a
controlled primitive used after its execution ended (or by a thread outside it) behaves like a
non-blocking version of itself and raises ``RuntimeError`` where it would have to block.
"""

from __future__ import annotations

import _thread
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from stuck import compat
from stuck.errors import StuckError
from stuck.explore import aio
from stuck.explore.scheduler import SLEEP, Aborted, CThread, Scheduler, _active, active, controlled
from stuck.runtime import patch
from stuck.tracebacks import hide_in_pytest

# pytest leaves these frames out of the tracebacks it shows (STUCK_DEBUG=1 keeps them).
__tracebackhide__ = hide_in_pytest()

_get_ident = _thread.get_ident

BACKEND = "explore"

_orig_lock: Callable[[], Any] = threading.Lock
_orig_rlock: Callable[..., Any] = threading.RLock
_orig_condition: Any = threading.Condition
_orig_simple_queue: Any = queue.SimpleQueue
_orig_event: Any = threading.Event
_orig_monotonic = time.monotonic
_orig_time = time.time
_orig_perf_counter = time.perf_counter
_orig_sleep = time.sleep
_orig_thread_start = threading.Thread.start
_orig_thread_join = threading.Thread.join
_orig_thread_is_alive = threading.Thread.is_alive
_orig_event_is_set = threading.Event.is_set
_orig_start_new_thread = _thread.start_new_thread


class NotControlled(StuckError, RuntimeError):
    """A controlled primitive was made to block outside its controlled execution."""


def _outside(what: str) -> NotControlled:
    sched = active()
    if sched is not None:
        sched.uncontrolled.append(f"a thread the scheduler does not control used {what}")
    return NotControlled(
        f"stuck explore: {what} would block in a thread the scheduler does not control; "
        "create primitives inside the explored function and use them only from its threads"
    )


class _Controlled:
    """A primitive of one exploration: the scheduler it belongs to."""

    __slots__ = ("_sched",)
    _sched: Scheduler

    def _ctx(self) -> CThread | None:
        """The controlled thread calling, or None: a thread the scheduler does not control, or
        a call after its exploration ended. In a controlled thread of an exploration being
        aborted, raises Aborted."""
        sched = self._sched
        if sched is not _active[0]:
            return None
        me = sched.by_ident.get(_get_ident())
        if me is not None and sched.aborting:
            raise Aborted
        return me


class Lock(_Controlled):
    """A controlled ``threading.Lock``: ownership is scheduler state, blocking is a switch."""

    kind = "mutex"
    __slots__ = ("__weakref__", "_owner", "key")

    def __init__(self, sched: Scheduler, me: CThread | None) -> None:
        self._sched = sched
        self._owner: CThread | None = None
        self.key = sched.new_key(me)

    def __repr__(self) -> str:
        state = "locked" if self._owner is not None else "unlocked"
        return f"<stuck.explore controlled {type(self).__name__} {state} {self.key}>"

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        me = self._ctx()
        if me is None:
            return self._acquire_outside(blocking)
        sched = self._sched
        # A plain blocking acquire tells the scheduler which lock comes next, so that a thread
        # chosen while another holds that lock is blocked without being woken for it.
        sched.yield_point(me, "acquire", self,
                          self if blocking and (timeout is None or timeout < 0) else None)
        return self._acquire_now(me, blocking, timeout)

    def _acquire_now(self, me: CThread, blocking: bool, timeout: float) -> bool:
        sched = self._sched
        deadline = None if timeout is None or timeout < 0 else sched.now + timeout
        while self._owner is not None:
            if not blocking:
                return False
            if not sched.block(me, self, "acquire", deadline,
                               self if deadline is None else None):
                if self._is_free():
                    break
                return False
        self._owner = me
        return True

    def _acquire_outside(self, blocking: bool) -> bool:
        if self._owner is None:
            self._owner = _OUTSIDE
            return True
        if not blocking:
            return False
        raise _outside(f"{self!r}.acquire()")

    def release(self) -> None:
        me = self._ctx()
        if me is None:
            if self._owner is None:
                raise RuntimeError("release unlocked lock")
            self._owner = None
            return
        self._sched.yield_point(me, "release", self)
        self._release_now(me)

    def _release_now(self, me: CThread) -> None:
        if self._owner is None:
            raise RuntimeError("release unlocked lock")
        self._owner = None
        sched = self._sched
        woke = sched.wakers.get(self.key)  # who woke it, and in which execution (History)
        if woke is None:
            woke = sched.wakers[self.key] = {}
        woke[me.index] = sched.serial
        for t in sched.threads:
            if t.waiting is self:
                sched.wake(t)

    def _is_free(self) -> bool:
        return self._owner is None

    def locked(self) -> bool:
        me = self._ctx()
        if me is not None:
            self._sched.yield_point(me, "locked", self)
        return self._owner is not None

    __enter__ = acquire

    def __exit__(self, *exc: object) -> None:
        self.release()

    # The Condition protocol (used by ``Condition.wait``): no scheduling point of their own.
    def _is_owned(self) -> bool:
        return self._owner is not None

    def _release_save(self) -> Any:
        self._owner = None
        sched = self._sched
        for t in sched.threads:
            if t.waiting is self:
                sched.wake(t)
        return None

    def _acquire_restore(self, state: Any, me: CThread) -> None:
        self._acquire_now(me, True, -1)

    def owners(self) -> list[CThread]:
        return [self._owner] if isinstance(self._owner, CThread) else []


class _Outside:
    index = -1
    name = "outside"


_OUTSIDE: Any = _Outside()


class RLock(Lock):
    """A controlled ``threading.RLock``."""

    kind = "rlock"
    __slots__ = ("_count",)

    def __init__(self, sched: Scheduler, me: CThread | None) -> None:
        super().__init__(sched, me)
        self._count = 0

    def _acquire_now(self, me: CThread, blocking: bool, timeout: float) -> bool:
        if self._owner is me:
            self._count += 1
            return True
        if super()._acquire_now(me, blocking, timeout):
            self._count = 1
            return True
        return False

    def _acquire_outside(self, blocking: bool) -> bool:
        if self._owner is _OUTSIDE:
            self._count += 1
            return True
        if super()._acquire_outside(blocking):
            self._count = 1
            return True
        return False

    def _release_now(self, me: CThread) -> None:
        if self._owner is not me:
            raise RuntimeError("cannot release un-acquired lock")
        self._count -= 1
        if self._count == 0:
            super()._release_now(me)

    def release(self) -> None:
        me = self._ctx()
        if me is None:
            if self._owner is None:
                raise RuntimeError("cannot release un-acquired lock")
            self._count -= 1
            if self._count == 0:
                self._owner = None
            return
        self._sched.yield_point(me, "release", self)
        self._release_now(me)

    def _is_owned(self) -> bool:
        me = self._sched.by_ident.get(_get_ident())
        return self._owner is not None and (self._owner is me or me is None)

    def _release_save(self) -> Any:
        count = self._count
        self._count = 0
        super()._release_save()
        return count

    def _acquire_restore(self, state: Any, me: CThread) -> None:
        Lock._acquire_now(self, me, True, -1)
        self._count = state


class Condition(_Controlled):
    """A controlled ``threading.Condition``."""

    kind = "condition"

    def __init__(self, lock: Any = None) -> None:
        ctx = controlled()
        assert ctx is not None
        sched, me = ctx
        if lock is None:
            lock = RLock(sched, me)
        self._sched = sched
        self._lock = lock
        self.acquire = lock.acquire
        self.release = lock.release
        self._waiters: deque[CThread] = deque()
        self.key = sched.new_key(me)
        lock_key = getattr(lock, "key", None)
        if lock_key is not None:
            sched.monitors[lock_key] = sched.monitors.get(lock_key, 0) + 1

    def __repr__(self) -> str:
        return f"<stuck.explore controlled Condition({self._lock!r}, {len(self._waiters)})>"

    def __enter__(self) -> bool:
        return bool(self._lock.acquire())

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def _is_owned(self) -> bool:
        lock = self._lock
        if isinstance(lock, Lock):
            return lock._is_owned()
        if lock.acquire(False):  # a foreign lock: the stdlib's own test
            lock.release()
            return False
        return True

    def wait(self, timeout: float | None = None) -> bool:
        me = self._ctx()
        if me is None:
            raise _outside(f"{self!r}.wait()")
        if not self._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        sched = self._sched
        sched.yield_point(me, "wait", self)
        lock = self._lock
        if not isinstance(lock, Lock):
            raise _outside("a Condition built on a lock created outside the explored function")
        saved = lock._release_save()
        self._waiters.append(me)
        sched.waited.add(self.key)
        deadline = None if timeout is None else sched.now + max(timeout, 0.0)
        try:
            # Once notified, the first thing the waiter does is take the lock back.
            notified = sched.block(me, self, "wait", deadline, lock)
        finally:
            if me in self._waiters:
                self._waiters.remove(me)
        lock._acquire_restore(saved, me)
        return notified

    def wait_for(self, predicate: Callable[[], Any], timeout: float | None = None) -> Any:
        endtime = None
        waittime = timeout
        result = predicate()
        while not result:
            if waittime is not None:
                if endtime is None:
                    endtime = self._sched.now + waittime
                else:
                    waittime = endtime - self._sched.now
                    if waittime <= 0:
                        break
            self.wait(waittime)
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        me = self._ctx()
        if me is None:
            if self._waiters:
                raise _outside(f"{self!r}.notify()")
            return
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        sched = self._sched
        sched.yield_point(me, "notify", self)
        woke = sched.wakers.get(self.key)  # who woke it, and in which execution (History)
        if woke is None:
            woke = sched.wakers[self.key] = {}
        woke[me.index] = sched.serial
        waiters = self._waiters
        if not waiters:
            sched.hand_over(me, self)
        while waiters and n > 0:
            t = waiters.popleft()
            sched.wake(t)
            n -= 1

    def notify_all(self) -> None:
        self.notify(len(self._waiters) or 1)

    notifyAll = notify_all


class SimpleQueue(_Controlled):
    """A controlled ``queue.SimpleQueue`` (unbounded FIFO; ``get`` blocks while empty)."""

    kind = "queue"

    def __init__(self) -> None:
        ctx = controlled()
        assert ctx is not None
        sched, me = ctx
        self._sched = sched
        self._items: deque[Any] = deque()
        self.key = sched.new_key(me)

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        me = self._ctx()
        if me is None:
            self._items.append(item)
            return
        sched = self._sched
        sched.yield_point(me, "put", self)
        self._items.append(item)
        woke = sched.wakers.get(self.key)  # who woke it, and in which execution (History)
        if woke is None:
            woke = sched.wakers[self.key] = {}
        woke[me.index] = sched.serial
        for t in sched.threads:
            if t.waiting is self:
                sched.wake(t)
                break
        else:
            sched.hand_over(me, self)

    def put_nowait(self, item: Any) -> None:
        self.put(item, False)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        me = self._ctx()
        if me is None:
            if self._items:
                return self._items.popleft()
            if not block:
                raise queue.Empty
            raise _outside("SimpleQueue.get()")
        sched = self._sched
        sched.yield_point(me, "get", self)
        deadline = None if timeout is None else sched.now + max(timeout, 0.0)
        while not self._items:
            if block:
                sched.waited.add(self.key)
            if not block or not sched.block(me, self, "get", deadline):
                if self._items:
                    break
                raise queue.Empty
        return self._items.popleft()

    def get_nowait(self) -> Any:
        return self.get(False)

    def empty(self) -> bool:
        me = self._ctx()
        if me is not None:
            self._sched.yield_point(me, "empty", self)
        return not self._items

    def qsize(self) -> int:
        me = self._ctx()
        if me is not None:
            self._sched.yield_point(me, "qsize", self)
        return len(self._items)


# -- factories and patched functions ---------------------------------------------------------


def lock_factory() -> Any:
    ctx = controlled()
    if ctx is None:
        return _orig_lock()
    return Lock(ctx[0], ctx[1])


def rlock_factory(*args: Any, **kwargs: Any) -> Any:
    ctx = controlled()
    if ctx is None:
        return _orig_rlock(*args, **kwargs)
    return RLock(ctx[0], ctx[1])


def condition_factory(lock: Any = None) -> Any:
    if controlled() is None:
        return _orig_condition(lock)
    return Condition(lock)


def simple_queue_factory() -> Any:
    if controlled() is None:
        return _orig_simple_queue()
    return SimpleQueue()


def monotonic() -> float:
    ctx = controlled()
    if ctx is None:
        return _orig_monotonic()
    return ctx[0].now + 1000.0


def wall_time() -> float:
    ctx = controlled()
    if ctx is None:
        return _orig_time()
    return 1_700_000_000.0 + ctx[0].now


def perf_counter() -> float:
    ctx = controlled()
    if ctx is None:
        return _orig_perf_counter()
    return ctx[0].now + 1000.0


def sleep(seconds: float) -> None:
    ctx = controlled()
    if ctx is None:
        _orig_sleep(seconds)
        return
    sched, me = ctx
    sched.yield_point(me, "sleep", SLEEP)
    if seconds > 0:
        sched.block(me, SLEEP, "sleep", sched.now + seconds)


def real_event() -> threading.Event:
    """A genuine ``threading.Event`` on real primitives, even while the factories are patched."""
    ev = threading.Event.__new__(threading.Event)
    ev._cond = _orig_condition(_orig_lock())  # type: ignore[attr-defined]
    ev._flag = False  # type: ignore[attr-defined]
    return ev


_limbo: Any = getattr(threading, "_limbo", None)
_limbo_lock: Any = getattr(threading, "_active_limbo_lock", None)


def _start_without_waiting(thread: threading.Thread) -> None:
    """``Thread.start`` minus its wait for the new thread to run (3.10-3.12 internals).

    The new controlled thread waits for its baton anyway, so waiting for it to start is one
    context switch per thread creation spent for nothing. Other versions use ``start`` itself.
    """
    if not thread._initialized:  # type: ignore[attr-defined]
        raise RuntimeError("thread.__init__() not called")
    if thread._started.is_set():  # type: ignore[attr-defined]
        raise RuntimeError("threads can only be started once")
    with _limbo_lock:
        _limbo[thread] = thread
    try:
        _orig_start_new_thread(thread._bootstrap, ())  # type: ignore[attr-defined]
    except Exception:
        with _limbo_lock:
            del _limbo[thread]
        raise


def _starter() -> Callable[[threading.Thread], None]:
    if compat.THREAD_START_USES_LIMBO and _limbo is not None and _limbo_lock is not None:
        return _start_without_waiting
    return _orig_thread_start  # pragma: no cover - 3.13+


_start_controlled = _starter()


def thread_start(self: threading.Thread) -> None:
    ctx = controlled()
    if ctx is None:
        _orig_thread_start(self)
        return
    sched, me = ctx
    sched.spawn(me, self, _start_controlled, real_event)


def thread_join(self: threading.Thread, timeout: float | None = None) -> None:
    ctx = controlled()
    if ctx is None:
        _orig_thread_join(self, timeout)
        return
    sched, me = ctx
    target = sched.by_thread.get(id(self))
    if target is None:
        if self.ident is None:
            raise RuntimeError("cannot join thread before it is started")
        sched.uncontrolled.append(f"joined thread {self.name!r}, which the scheduler does not control")
        _orig_thread_join(self, timeout)
        return
    if target is me:
        raise RuntimeError("cannot join current thread")
    # An untimed join tells the scheduler which thread it waits for (see Lock.acquire).
    sched.yield_point(me, "join", target, target if timeout is None else None)
    deadline = None if timeout is None else sched.now + max(timeout, 0.0)
    from stuck.explore.scheduler import FINISHED

    while target.state != FINISHED:
        if not sched.block(me, target, "join", deadline, target if deadline is None else None):
            return


def thread_is_alive(self: threading.Thread) -> bool:
    ctx = controlled()
    if ctx is None:
        return bool(_orig_thread_is_alive(self))
    sched, me = ctx
    target = sched.by_thread.get(id(self))
    if target is None:
        return bool(_orig_thread_is_alive(self))
    sched.yield_point(me, "is_alive", target)
    from stuck.explore.scheduler import FINISHED

    return target.state != FINISHED


def event_is_set(self: threading.Event) -> bool:
    cond = self._cond  # type: ignore[attr-defined]
    if type(cond) is Condition:
        ctx = controlled()
        if ctx is not None:
            ctx[0].yield_point(ctx[1], "is_set", cond)
    return bool(self._flag)  # type: ignore[attr-defined]


def start_new_thread(function: Any, args: Any, kwargs: Any = None) -> int:
    sched = active()
    if sched is not None and controlled() is not None:
        sched.uncontrolled.append(
            f"_thread.start_new_thread({getattr(function, '__qualname__', function)!r}) "
            "started a thread the scheduler cannot control"
        )
    if kwargs is None:
        return int(_orig_start_new_thread(function, args))
    return int(_orig_start_new_thread(function, args, kwargs))


def replacements() -> list[tuple[object, str, object]]:
    """Every patch point of the controlled run (installed once per exploration)."""
    items: list[tuple[object, str, object]] = [
        (threading, "Lock", lock_factory),
        (threading, "RLock", rlock_factory),
        (threading, "Condition", condition_factory),
        (threading, "_time", monotonic),
        (queue, "SimpleQueue", simple_queue_factory),
        (queue, "time", monotonic),
        (time, "monotonic", monotonic),
        (time, "time", wall_time),
        (time, "perf_counter", perf_counter),
        (time, "sleep", sleep),
        (threading.Thread, "start", thread_start),
        (threading.Thread, "join", thread_join),
        (threading.Thread, "is_alive", thread_is_alive),
        (threading.Event, "is_set", event_is_set),
        (_thread, "start_new_thread", start_new_thread),
    ]
    try:
        import concurrent.futures.thread as cft

        # submit() holds this module-level lock across work that yields; a controlled twin
        # keeps a switch inside it from parking the baton holder on a real lock.
        items.append((cft, "_global_shutdown_lock", _GlobalShutdownLock()))
    except ImportError:  # pragma: no cover
        pass
    items.extend(_program_starters())
    items.extend(aio.replacements())
    return items


def _program_starters() -> list[tuple[object, str, object]]:
    """The functions that start programs, run with the original CPU affinity from a worker the
    exploration pinned to one CPU (a started program would inherit it: see affinity)."""
    from stuck.explore import affinity, workers

    if not (affinity.available() and workers.available()):
        return []
    owners: list[tuple[object, str]] = [(os, name) for name in (
        "posix_spawn", "posix_spawnp", "system", "execv", "execve")]
    try:
        import _posixsubprocess

        owners.append((_posixsubprocess, "fork_exec"))
    except ImportError:  # pragma: no cover - not POSIX
        pass
    import subprocess

    owners.append((subprocess, "_fork_exec"))  # 3.11+: subprocess's own reference to it
    return [(owner, name, affinity.unpinning(getattr(owner, name)))
            for owner, name in owners if callable(getattr(owner, name, None))]


class _GlobalShutdownLock:
    """``concurrent.futures.thread._global_shutdown_lock`` during an exploration.

    Controlled threads share one controlled lock per execution; every other thread uses the real
    lock it replaced, so executors outside the exploration keep working.
    """

    def __init__(self) -> None:
        import concurrent.futures.thread as cft

        self._real = cft._global_shutdown_lock
        self._per_run: dict[int, Lock] = {}

    def _pick(self) -> Any:
        ctx = controlled()
        if ctx is None:
            return self._real
        sched = ctx[0]
        lk = self._per_run.get(id(sched))
        if lk is None:
            self._per_run.clear()
            lk = self._per_run[id(sched)] = Lock(sched, None)
        return lk

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return bool(self._pick().acquire(blocking, timeout))

    def release(self) -> None:
        self._pick().release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def locked(self) -> bool:
        return bool(self._pick().locked())


_installed = [0]


def install() -> None:
    """Install the controlled primitives (idempotent per nesting level)."""
    if _installed[0] == 0:
        patch.install(BACKEND, replacements())
    _installed[0] += 1


def uninstall() -> None:
    _installed[0] -= 1
    if _installed[0] == 0:
        patch.uninstall(BACKEND)
        aio.forget()

"""Tracked Lock, RLock, Condition, Semaphore, BoundedSemaphore, Event and Barrier.

Each behaves like the standard one (same arguments, results, exceptions, timeouts) and in
addition records who holds it and, when a thread is about to block on it, who waits for it.

Hot path: an uncontended ``acquire``/``with`` tries the real lock without blocking and, on
success, stores the owner's ident (for a Lock, also its Thread: idents are reused once a thread
ends) and the caller's code object and line: no walk, no shared state, no allocation beyond
the frame lookup. Only when the try fails does the slow path
register the wait and look for a deadlock cycle (``stuck.runtime.detect``) before blocking.

Objects made by the standard library's own plumbing (the lock inside a ``queue.Queue``, the
condition inside a ``Future``, the event inside a ``Thread``) stay original: they are tracked at
the level that means something to the program (the queue, the future, the thread).
"""

from __future__ import annotations

import _thread
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, cast

from stuck import compat
from stuck.runtime import detect, registry
from stuck.runtime import hooks as _hooks
from stuck.runtime import stall as _stall
from stuck.runtime.patch import original
from stuck.runtime.tracked import PrimitiveFacts, tracked_class
from stuck.tracebacks import hide_in_pytest

# pytest leaves these frames out of the tracebacks it shows (STUCK_DEBUG=1 keeps them).
__tracebackhide__ = hide_in_pytest()

_allocate = _thread.allocate_lock
_LockType: type = _thread.LockType
_OrigRLockFactory: Any = original(threading, "RLock")
_RLockType: type = type(_OrigRLockFactory())
_LIBRARY_MODULES = registry.LIBRARY_MODULES
_get_ident = _thread.get_ident
_getframe = sys._getframe
# threading's own table of running threads (ident -> Thread), read, never changed. An ident is
# reused as soon as its thread ends; a Lock keeps the Thread that took it (``_holder``) beside
# the ident, so a later thread given the same ident is not taken for its holder.
_threads: dict[int, threading.Thread] = threading._active  # type: ignore[attr-defined]

# The observer hooks (stuck.runtime.hooks), rebound when observers come and go: None when
# nobody observes, so an unobserved operation pays one global load and an ``is`` test.
_before: _hooks.BeforeHook | None = None
_acquired: _hooks.BeforeHook | None = None
_took: _hooks.TookHook | None = None
_released: _hooks.ReleasedHook | None = None
# The sole observer's per-thread state (``hooks.InlineState.threads``: ident -> the thread's
# stack ``[top entry, ...]``) or None. With it, Lock and RLock do the lock-order checker's
# common case themselves, as plain data updates without a call: a blocking acquire that got
# the lock at once finds ``hit`` in the cache level of the entry on top (``top[1][2]``, by the
# lock's class serial), stores ``(lock, hit, code, lasti, top)`` as the new top, and remembers
# the stack in the lock's ``_pushed`` (until released: None whenever the lock is not held by an
# inline push), so the owner's release pops the entry on top without looking the thread up.
# Anything else calls the hooks, which use the same lists and dicts.
_inline: dict[int, list[Any]] | None = None


def _rebind(dispatch: _hooks.Dispatch) -> None:
    global _before, _acquired, _took, _released, _inline
    _before, _acquired, _took, _released, inline = dispatch
    _inline = None if inline is None else inline.threads


_hooks.subscribe(_rebind)


def _notify_before(lock: Any, mode: _hooks.AcquireMode, frame: FrameType | None) -> None:
    hook = _before
    if hook is not None:
        try:
            hook(lock, lock._stuck_class, mode, frame)
        except Exception as exc:  # an observer must never break the program
            _hooks.failed(hook, exc)


def _notify_acquired(lock: Any, mode: _hooks.AcquireMode, frame: FrameType | None) -> None:
    hook = _acquired
    if hook is not None:
        try:
            hook(lock, lock._stuck_class, mode, frame)
        except Exception as exc:
            _hooks.failed(hook, exc)


def _notify_released(lock: Any, by_owner: bool) -> None:
    hook = _released
    if hook is not None:
        try:
            hook(lock, lock._stuck_class, by_owner)
        except Exception as exc:
            _hooks.failed(hook, exc)

_OrigRLock: Any = original(threading, "RLock")
_OrigCondition: Any = original(threading, "Condition")
_OrigSemaphore: Any = original(threading, "Semaphore")
_OrigBoundedSemaphore: Any = original(threading, "BoundedSemaphore")
_OrigEvent: Any = original(threading, "Event")
_OrigBarrier: Any = original(threading, "Barrier")


class _InnerCondition(_OrigCondition):  # type: ignore[misc]
    """The original Condition, for the conditions inside other objects (a Semaphore's, an
    Event's, a Barrier's, a Future's). Pickling one fails as the original's does, on its lock:
    while installed, pickle would look its class up as ``threading.Condition``, find the
    replacement and fail with a PicklingError that names it, not the lock."""

    __slots__ = ()

    def __reduce_ex__(self, protocol: Any) -> Any:
        # The original's pickling fails on its lock (the first item of its state) for every
        # protocol; its lock's own reduction fails the same way (a TypeError, or for protocols
        # 0 and 1 a PicklingError on the lock's class).
        return self._lock.__reduce_ex__(protocol)


def _validate(blocking: object, timeout: object) -> None:
    """Raise exactly what the real lock raises for these arguments, without blocking."""
    scratch = _allocate()
    if scratch.acquire(blocking, timeout):  # type: ignore[arg-type]
        scratch.release()


def line_of(code: Any, lasti: int) -> int:
    """The line of the instruction at byte offset ``lasti`` (the hot path records the offset:
    cheaper than ``f_lineno``, which is computed on each read)."""
    if code is None:
        return 0
    line = 0
    for start, end, lineno in code.co_lines():
        if start <= lasti < end:
            return lineno or line
        if lineno:
            line = lineno
    return line or code.co_firstlineno


# A contended Lock or RLock is first waited for by giving the GIL away a few times
# (``time.sleep(0)``), trying the lock after each, before the thread is registered as
# waiting and blocks. Why: a tracked acquire and release are Python functions, so the
# interpreter may switch threads while the lock is held (a plain lock's ``with`` never
# switches there). The holder then waits for the GIL while others find the lock taken; if
# they block, every release wakes a sleeping thread that in turn needs the GIL, and the
# program falls into a convoy it never leaves: 200 threads x 20,000 ``with lock:`` went from
# 0.8 s plain to 27 s. Giving the GIL away lets the holder finish its few lines instead.
# Too few yields keeps the convoy (3 made 20 contending threads slower still); 40, the
# spin limit of WebKit's ParkingLot locks, kept 4 to 1000 threads at the uncontended cost
# (benchmarks/busy.py, workload many). A wait of the program (a lock held across I/O) pays
# 40 short syscalls, once, before it blocks. The thread is registered as waiting before it
# spins: the deadlock check runs at once, and the watchdog sees a wait, not a thread stuck in
# stuck's own code.
_SPIN_YIELDS = 40
# explore replaces time.sleep with its scheduler's; the spin needs the real one
_yield_gil = cast("Callable[[float], None]", original(time, "sleep"))
_OWN_LOCK_GRACE = 0.05  # seconds a thread waiting on a Lock it holds waits before the check


def ended_holder(lock: Any) -> threading.Thread | None:
    """The Thread that took ``lock`` and ended holding it, when its ident now belongs to
    another running thread (None otherwise: held by a running thread, free, or held by an
    ended thread whose ident nobody has, which reports name by that ident already).

    The holder's Thread is kept when the lock is taken by ``acquire()`` (or after a wait),
    not by a ``with`` block's fast path: a with block releases the lock before its thread
    can end (a generator suspended inside one, never resumed, is the exception), and
    ``with lock:`` is the path whose every instruction counts. Every release clears it."""
    owner = getattr(lock, "_owner", None)
    holder = getattr(lock, "_holder", None)
    if owner is None or holder is None or getattr(holder, "_ident", None) != owner \
            or lock._owner != owner:  # released or taken again meanwhile
        return None
    current = _threads.get(owner)
    return holder if current is not None and current is not holder else None


def _owner_wakers(resource: object, op: str) -> list[int] | None:
    owner = getattr(resource, "_owner", None)
    if owner is None:
        return None
    holder = getattr(resource, "_holder", None)
    if (holder is not None and _threads.get(owner) is not holder
            and ended_holder(resource) is not None):
        # Held by a thread that has ended (the thread now running as its ident does not hold
        # it): no running holder; the watchdog's stall rules judge that wait.
        return None
    return [owner]


def _wait_to_acquire(lock: Lock | RLock, me: int, timeout: float, frame: FrameType | None,
                     may_raise: bool) -> bool:
    """Block on a Lock's or RLock's real lock, registered as waiting for it: the deadlock
    check runs first (``detect.block_begin``), the record goes when the wait ends."""
    real = lock._lock
    record = registry.WaitRecord(lock, "acquire", _owner_wakers, frame,
                                 None if timeout == -1 else float(timeout))
    previous = detect.block_begin(me, record, may_raise)
    try:
        if not record.pending:
            if timeout == -1:
                # Registered first: a thread giving the GIL away here waits for the lock, and
                # the watchdog must see that wait, not a thread making no progress in stuck's
                # code (under --hang-policy raise it raised HangError into such a thread).
                for _ in range(_SPIN_YIELDS):  # see _SPIN_YIELDS
                    _yield_gil(0)
                    if real.acquire(False):
                        return True
            return bool(real.acquire(True, timeout))
        return detect.wait(me, record,
                           lambda t: bool(real.acquire(True, -1 if t is None else t)),
                           None if timeout == -1 else float(timeout), may_raise)
    finally:
        registry.end_wait(me, previous)


@tracked_class
class Lock:
    """A tracked ``threading.Lock``: non-reentrant, releasable by any thread."""

    __slots__ = ("__weakref__", "_code", "_holder", "_line", "_lock", "_owner", "_pushed",
                 "_stuck_class", "_stuck_epoch", "_stuck_id", "_stuck_parent", "_stuck_serial")
    _stuck_kind = "mutex"
    _stuck_wakers_of = _owner_wakers  # its holder (any thread may release a Lock: see detect)

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if not _LOCK_IS_A_CLASS:
            # As the original type: before 3.13 threading.Lock is a function and the lock
            # type cannot be called (install() puts make_lock in threading.Lock).
            raise TypeError("cannot create '_thread.lock' instances")
        if cls is Lock and registry.created_by_library():
            return _allocate()
        return object.__new__(cls)

    def __init__(self, *, name: str | None = None) -> None:
        self._setup(name, _getframe(1))

    def _setup(self, name: str | None, frame: FrameType) -> None:
        self._lock = _allocate()
        self._owner: int | None = None
        self._holder: threading.Thread | None = None  # the owner's Thread (see _threads)
        self._code: Any = None
        self._line = 0
        self._pushed: list[Any] | None = None  # see _inline
        self._stuck_epoch = 0  # moves at every release (see registry.epoch_of)
        self._stuck_class, owner = registry.lock_class_and_owner(self._stuck_kind, name, frame)
        self._stuck_parent = registry.owner_ref(owner)
        self._stuck_serial = self._stuck_class.serial  # the key of the inline path's cache
        self._stuck_id = registry.register(self, self._stuck_kind)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        f = _getframe(1)
        if blocking is True and timeout == -1:
            me = _get_ident()  # before the lock is taken: see __enter__
            if not self._lock.acquire(False):
                return self._acquire(True, -1, f, True)
            self._owner = me
            try:  # a lock taken by acquire() may outlive its thread: see ended_holder
                self._holder = _threads[me]
            except KeyError:  # a thread threading does not know (started with _thread)
                self._holder = None
            self._code = f.f_code
            self._line = f.f_lasti
            if _took is not None:  # read again below: an observer may go meanwhile
                inline = _inline
                if inline is not None:  # see _inline; the same lines in each fast path
                    try:  # a miss (new thread or pattern) raises KeyError: rare, costs there
                        stack = inline[me]
                        top = stack[0]
                        hit = top[1][2][self._stuck_serial]
                    except KeyError:
                        pass
                    else:
                        stack[0] = (self, hit, self._code, self._line, top)
                        self._pushed = stack
                        return True
                took = _took
                if took is not None:
                    try:
                        took(self, self._stuck_class, f)
                    except Exception as exc:  # an observer must never break the program
                        _hooks.failed(took, exc)
            return True
        return self._acquire(blocking, timeout, f, True)

    def __enter__(self) -> bool:
        # The calls the fast path needs (frame, ident) come before the lock is taken: a call
        # lets the interpreter switch threads, and a switch while the lock is held makes every
        # thread that runs meanwhile wait for it (under contention, a convoy of waits).
        f = _getframe(1)
        me = _get_ident()
        if self._lock.acquire(False):
            self._owner = me  # no _holder: the with block releases it before its thread ends
            self._code = f.f_code
            self._line = f.f_lasti
            if _took is not None:  # read again below: an observer may go meanwhile
                inline = _inline
                if inline is not None:  # see _inline; the same lines in each fast path
                    try:  # a miss (new thread or pattern) raises KeyError: rare, costs there
                        stack = inline[me]
                        top = stack[0]
                        hit = top[1][2][self._stuck_serial]
                    except KeyError:
                        pass
                    else:
                        stack[0] = (self, hit, self._code, self._line, top)
                        self._pushed = stack
                        return True
                took = _took
                if took is not None:
                    try:
                        took(self, self._stuck_class, f)
                    except Exception as exc:
                        _hooks.failed(took, exc)
            return True
        return self._acquire(True, -1, f, True)

    def _acquire(self, blocking: Any, timeout: Any, frame: FrameType | None,
                 may_raise: bool) -> bool:
        if timeout != -1:
            _validate(blocking, timeout)
        mode: _hooks.AcquireMode = ("try" if not blocking
                                    else "blocking" if timeout == -1 else "timed")
        _notify_before(self, mode, frame)
        if self._lock.acquire(False):
            ok = True
        elif not blocking:
            ok = False
        else:
            me = _get_ident()
            ok = False
            if self._owner == me and (timeout == -1 or timeout > _OWN_LOCK_GRACE) \
                    and ended_holder(self) is None:
                # Waiting on a Lock it holds, a thread usually waits for a signal: another
                # thread will release it, maybe one started a moment ago (``_thread`` returns
                # before the new thread runs, and a thread not yet running cannot be seen).
                # Give it that moment before judging, instead of calling it a deadlock.
                ok = self._lock.acquire(True, _OWN_LOCK_GRACE)
                if not ok and timeout != -1:
                    timeout -= _OWN_LOCK_GRACE
            if not ok:
                ok = _wait_to_acquire(self, me, timeout, frame, may_raise)
        if ok:
            self._owner = me = _get_ident()
            self._holder = _threads.get(me)
            site = registry.user_frame(frame) or frame
            if site is not None:
                self._code = site.f_code
                self._line = site.f_lasti
            _notify_acquired(self, mode, frame)
        return ok

    def release(self) -> None:
        if self._pushed is not None:  # pushed by the inline path (see _inline): pop it so
            stack = self._pushed
            self._pushed = None
            top = stack[0]
            if top[0] is self and self._owner == _get_ident():
                self._owner = self._holder = None
                self._stuck_epoch += 1
                self._lock.release()
                stack[0] = top[4]
                return
        if _released is not None:  # read again below: an observer may go meanwhile
            released = _released
            by_owner = self._owner == _get_ident()
            self._owner = self._holder = None
            self._stuck_epoch += 1
            self._lock.release()
            if released is not None:
                try:
                    released(self, self._stuck_class, by_owner)
                except Exception as exc:
                    _hooks.failed(released, exc)
            return
        self._owner = self._holder = None
        self._stuck_epoch += 1
        self._lock.release()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._pushed is not None:  # pushed by the inline path (see _inline): pop it so
            stack = self._pushed
            self._pushed = None
            top = stack[0]
            if top[0] is self and self._owner == _get_ident():
                self._owner = self._holder = None
                self._stuck_epoch += 1
                self._lock.release()
                stack[0] = top[4]
                return
        if _released is not None:  # read again below: an observer may go meanwhile
            released = _released
            by_owner = self._owner == _get_ident()
            self._owner = self._holder = None
            self._stuck_epoch += 1
            self._lock.release()
            if released is not None:
                try:
                    released(self, self._stuck_class, by_owner)
                except Exception as exc_:
                    _hooks.failed(released, exc_)
            return
        self._owner = self._holder = None
        self._stuck_epoch += 1
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    acquire_lock = acquire
    release_lock = release
    locked_lock = locked

    # Used by threading.Condition when this lock is its lock: re-acquiring after a wait never
    # raises DeadlockError (the caller expects to hold the lock when wait() returns).
    def _release_save(self) -> None:
        self.release()

    def _acquire_restore(self, state: object) -> None:
        self._acquire(True, -1, _getframe(1), False)

    def _at_fork_reinit(self) -> None:
        self._lock._at_fork_reinit()  # type: ignore[attr-defined]
        self._owner = self._holder = None
        self._pushed = None

    def _stuck_owners(self) -> list[tuple[int, Any, int]]:
        owner = self._owner
        return [] if owner is None else [(owner, self._code, line_of(self._code, self._line))]

    def _stuck_facts(self) -> PrimitiveFacts:
        return PrimitiveFacts(ended_holder=ended_holder(self))

    def __repr__(self) -> str:
        # The format of _thread.lock's repr, so programs and tests that read it see no change.
        state = "locked" if self._lock.locked() else "unlocked"
        return f"<{state} _thread.lock object at {id(self):#x}>"

    # What the program can ask of a lock answers as for the original: isinstance() consults
    # ``__class__`` after ``type()``, so ``isinstance(lock, _thread.LockType)`` holds (and
    # ``isinstance(lock, Lock)`` still does); a lock cannot be copied or pickled, and its type
    # cannot be subclassed.
    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return _LockType

    def __getstate__(self) -> Any:
        raise TypeError("cannot pickle '_thread.lock' object")

    def __reduce_ex__(self, protocol: Any) -> Any:
        # The original lock's own answer: a TypeError from protocol 2 on; for protocols 0
        # and 1 a reduction naming ``_thread.lock``, which pickle then fails to look up
        # (PicklingError), exactly as it does for a lock made without stuck.
        return self._lock.__reduce_ex__(protocol)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        raise TypeError("type '_thread.lock' is not an acceptable base type")


_LOCK_IS_A_CLASS = compat.THREADING_LOCK_IS_A_TYPE


def make_lock(*, name: str | None = None) -> Any:
    """``threading.Lock()`` after install() on Python < 3.13, where the original is a function
    too: a tracked Lock (an original one when threading's own plumbing asks)."""
    if registry.created_by_library():
        return _allocate()
    lock: Lock = object.__new__(Lock)
    lock._setup(name, _getframe(1))
    return lock


# Named as what it stands for: ``threading.Lock.__name__`` is "allocate_lock" as before, and
# pickle, which looks a function up by ``__module__`` and ``__qualname__``, finds it as
# ``threading.Lock`` (multiprocessing's managers pickle their registry for spawn/forkserver;
# the child unpickles the plain ``threading.Lock``).
make_lock.__module__ = "threading"
make_lock.__name__ = "allocate_lock"
make_lock.__qualname__ = "Lock"


@tracked_class
class RLock:
    """A tracked ``threading.RLock``: reentrant, released only by its owner."""

    __slots__ = ("__weakref__", "_code", "_count", "_line", "_lock", "_owner", "_pushed",
                 "_stuck_class", "_stuck_epoch", "_stuck_id", "_stuck_parent", "_stuck_serial")
    _stuck_kind = "rlock"
    _stuck_wakers_of = _owner_wakers  # only its owner can release it

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is RLock and registry.created_by_library():
            return _OrigRLock()
        return object.__new__(cls)

    def __init__(self, *, name: str | None = None, _frame: FrameType | None = None) -> None:
        self._lock = _allocate()
        self._owner: int | None = None
        self._count = 0
        self._code: Any = None
        self._line = 0
        self._pushed: list[Any] | None = None  # see _inline
        self._stuck_epoch = 0  # moves at every last release (see registry.epoch_of)
        self._stuck_class, owner = registry.lock_class_and_owner(self._stuck_kind, name, _frame or _getframe(1))
        self._stuck_parent = registry.owner_ref(owner)
        self._stuck_serial = self._stuck_class.serial  # the key of the inline path's cache
        self._stuck_id = registry.register(self, self._stuck_kind)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        me = _get_ident()
        if self._owner == me and timeout == -1:
            self._count += 1
            return True
        f = _getframe(1)  # before the lock is taken: see Lock.__enter__
        if blocking is True and timeout == -1 and self._lock.acquire(False):
            self._owner = me
            self._count = 1
            self._code = f.f_code
            self._line = f.f_lasti
            if _took is not None:  # read again below: an observer may go meanwhile
                inline = _inline
                if inline is not None:  # see _inline; the same lines in each fast path
                    try:  # a miss (new thread or pattern) raises KeyError: rare, costs there
                        stack = inline[me]
                        top = stack[0]
                        hit = top[1][2][self._stuck_serial]
                    except KeyError:
                        pass
                    else:
                        stack[0] = (self, hit, self._code, self._line, top)
                        self._pushed = stack
                        return True
                took = _took
                if took is not None:
                    try:
                        took(self, self._stuck_class, f)
                    except Exception as exc:
                        _hooks.failed(took, exc)
            return True
        return self._acquire(blocking, timeout, f, True)

    def __enter__(self) -> bool:
        me = _get_ident()
        if self._owner == me:
            self._count += 1
            return True
        f = _getframe(1)  # before the lock is taken: see Lock.__enter__
        if self._lock.acquire(False):
            self._owner = me
            self._count = 1
            self._code = f.f_code
            self._line = f.f_lasti
            if _took is not None:  # read again below: an observer may go meanwhile
                inline = _inline
                if inline is not None:  # see _inline; the same lines in each fast path
                    try:  # a miss (new thread or pattern) raises KeyError: rare, costs there
                        stack = inline[me]
                        top = stack[0]
                        hit = top[1][2][self._stuck_serial]
                    except KeyError:
                        pass
                    else:
                        stack[0] = (self, hit, self._code, self._line, top)
                        self._pushed = stack
                        return True
                took = _took
                if took is not None:
                    try:
                        took(self, self._stuck_class, f)
                    except Exception as exc:
                        _hooks.failed(took, exc)
            return True
        return self._acquire(True, -1, f, True)

    def _acquire(self, blocking: Any, timeout: Any, frame: FrameType | None,
                 may_raise: bool, count: int = 1) -> bool:
        if timeout != -1:
            _validate(blocking, timeout)
        me = _get_ident()
        if self._owner == me:
            self._count += 1
            return True
        mode: _hooks.AcquireMode = ("try" if not blocking
                                    else "blocking" if timeout == -1 else "timed")
        _notify_before(self, mode, frame)
        if self._lock.acquire(False):
            ok = True
        elif not blocking:
            ok = False
        else:
            ok = _wait_to_acquire(self, me, timeout, frame, may_raise)
        if ok:
            self._owner = me
            self._count = count
            site = registry.user_frame(frame) or frame
            if site is not None:
                self._code = site.f_code
                self._line = site.f_lasti
            _notify_acquired(self, mode, frame)
        return ok

    def release(self) -> None:
        me = _get_ident()
        if self._owner != me:
            raise RuntimeError("cannot release un-acquired lock")
        self._count = count = self._count - 1
        if count:
            return
        self._owner = None
        self._stuck_epoch += 1
        if self._pushed is not None:  # pushed by the inline path (see _inline): pop it so
            stack = self._pushed  # read while the lock is held: then no other thread pushed it
            self._pushed = None
            self._lock.release()
            top = stack[0]
            if top[0] is self:
                stack[0] = top[4]
                return
        else:
            self._lock.release()
        if _released is not None:
            _notify_released(self, True)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        me = _get_ident()
        if self._owner != me:
            raise RuntimeError("cannot release un-acquired lock")
        self._count = count = self._count - 1
        if count:
            return
        self._owner = None
        self._stuck_epoch += 1
        if self._pushed is not None:  # pushed by the inline path (see _inline): pop it so
            stack = self._pushed  # read while the lock is held: then no other thread pushed it
            self._pushed = None
            self._lock.release()
            top = stack[0]
            if top[0] is self:
                stack[0] = top[4]
                return
        else:
            self._lock.release()
        if _released is not None:
            _notify_released(self, True)

    def _is_owned(self) -> bool:
        return self._owner == _get_ident()

    def _release_save(self) -> tuple[int, int | None]:
        if self._owner != _get_ident():
            raise RuntimeError("cannot release un-acquired lock")
        state = (self._count, self._owner)
        self._count = 0
        self._owner = None
        self._pushed = None  # the hook finds it in the held stack
        self._stuck_epoch += 1
        self._lock.release()
        if _released is not None:
            _notify_released(self, True)
        return state

    def _acquire_restore(self, state: tuple[int, int | None]) -> None:
        self._acquire(True, -1, _getframe(1), False, count=state[0])

    def _recursion_count(self) -> int:
        return self._count if self._owner == _get_ident() else 0

    def _at_fork_reinit(self) -> None:
        self._lock._at_fork_reinit()  # type: ignore[attr-defined]
        self._owner = None
        self._pushed = None
        self._count = 0

    def _stuck_owners(self) -> list[tuple[int, Any, int]]:
        owner = self._owner
        return [] if owner is None else [(owner, self._code, line_of(self._code, self._line))]

    def _stuck_facts(self) -> PrimitiveFacts:
        return PrimitiveFacts()

    # As for Lock: isinstance(rlock, _thread.RLock) holds, copy and pickle fail the same way.
    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return _RLockType

    def __getstate__(self) -> Any:
        raise TypeError("cannot pickle '_thread.RLock' object")

    def __repr__(self) -> str:
        # The format of _thread.RLock's repr (owner 0 when unowned).
        state = "locked" if self._owner is not None else "unlocked"
        return (f"<{state} _thread.RLock object owner={self._owner or 0} "
                f"count={self._count} at {id(self):#x}>")


_TRACKED_LOCKS = (Lock, RLock)


@tracked_class
class Condition(_OrigCondition):  # type: ignore[misc]
    """A tracked ``threading.Condition``; its default lock is a tracked RLock."""

    _stuck_kind = "condition"

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        # registry.created_by_library(), inlined: every Future makes a Condition
        if cls is Condition and _getframe(1).f_globals.get("__name__") in _LIBRARY_MODULES:
            if not args and not kwargs:  # one check, not a second one for its RLock
                # What threading.RLock() makes, without the call of its factory function.
                return _InnerCondition(_RLockType())
            return _InnerCondition(*args, **kwargs)
        return object.__new__(cls)

    def __init__(self, lock: Any = None, *, name: str | None = None) -> None:
        frame = _getframe(1)
        if lock is None:
            lock = RLock(name=name, _frame=frame)
        super().__init__(lock)
        self._stuck_epoch = 0  # moves at every notify (see registry.epoch_of)
        self._stuck_class, owner = registry.lock_class_and_owner(self._stuck_kind, name, frame)
        self._stuck_parent = registry.owner_ref(owner)
        self._stuck_id = registry.register(self, self._stuck_kind)

    def __enter__(self) -> bool:
        lock = self._lock
        if type(lock) in _TRACKED_LOCKS:
            if type(lock) is RLock and lock._owner == _get_ident():
                lock._count += 1
                return True
            return bool(lock._acquire(True, -1, _getframe(1), True))
        return bool(lock.__enter__())

    def wait(self, timeout: float | None = None) -> bool:
        me = _get_ident()
        record = registry.WaitRecord(self, "wait", None, _getframe(1), timeout)
        previous = registry.begin_wait(me, record)
        try:
            return bool(super().wait(timeout))
        finally:
            registry.end_wait(me, previous)

    def notify(self, n: int = 1) -> None:
        waiters = len(self._waiters)
        self._stuck_epoch += 1
        super().notify(n)
        _stall.note_signal(self, "notify", waiters)  # who can wake its waiters (stall rules)

    def _stuck_owners(self) -> list[tuple[int, Any, int]]:
        return []

    def _stuck_wakers_of(self, op: str) -> list[int] | None:
        return None  # any thread may notify it

    def _stuck_facts(self) -> PrimitiveFacts:
        return PrimitiveFacts()


def _semaphore_wakers(resource: object, op: str) -> list[int] | None:
    sem: Semaphore = resource  # type: ignore[assignment]
    if sem._stuck_signaling:
        return None
    return sem._stuck_live_holders() or None


@tracked_class
class Semaphore(_OrigSemaphore):  # type: ignore[misc]
    """A tracked ``threading.Semaphore``.

    Who holds a permit is known only while every release comes from a thread that acquired:
    once a thread releases a permit it did not take (a signalling semaphore), or when the
    semaphore starts at 0, waits on it are not used for deadlock cycles. Even then a semaphore
    has no owner: any thread may release it, so a holder is only one of the threads that could
    end a wait on it. Each holder is kept with its thread's mark (``stall.thread_mark``): an
    ident is reused once a thread ends, and the permits of an ended thread are not held by
    the later thread that got its ident.
    """

    _stuck_kind = "semaphore"
    _stuck_wakers_of = _semaphore_wakers

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls in (Semaphore, BoundedSemaphore) and registry.created_by_library():
            orig = _OrigSemaphore if cls is Semaphore else _OrigBoundedSemaphore
            return orig(*args, **kwargs)
        return object.__new__(cls)

    def __init__(self, value: int = 1, *, name: str | None = None) -> None:
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        self._cond = _InnerCondition(_allocate())
        self._value = value
        self._stuck_holders: dict[int, int] = {}  # ident -> permits it holds
        self._stuck_marks: dict[int, Any] = {}  # ident -> the holder's mark (stall.thread_mark)
        # Permits of threads that ended holding them: id(mark) -> (ident, mark, permits).
        self._stuck_ended: dict[int, tuple[int, Any, int]] = {}
        self._stuck_signaling = value == 0
        self._stuck_epoch = 0  # moves at every release and acquire (see registry.epoch_of)
        self._stuck_class, owner = registry.lock_class_and_owner(self._stuck_kind, name, _getframe(1))
        self._stuck_parent = registry.owner_ref(owner)
        self._stuck_id = registry.register(self, self._stuck_kind)

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        return self._acquire(blocking, timeout, _getframe(1))

    def _acquire(self, blocking: bool, timeout: float | None, frame: FrameType) -> bool:
        if not blocking and timeout is not None:
            raise ValueError("can't specify timeout for non-blocking acquire")
        ok = super().acquire(False)
        mode: _hooks.AcquireMode = ("try" if not blocking
                                    else "blocking" if timeout is None else "timed")
        if ok:
            if mode == "blocking":
                took = _took
                if took is not None:
                    try:
                        took(self, self._stuck_class, frame)
                    except Exception as exc:  # an observer must never break the program
                        _hooks.failed(took, exc)
            elif _before is not None:
                _notify_before(self, mode, frame)
                _notify_acquired(self, mode, frame)
        elif blocking:
            _notify_before(self, mode, frame)
            me = _get_ident()
            record = registry.WaitRecord(self, "acquire", _semaphore_wakers, frame, timeout)
            previous = detect.block_begin(me, record, True)
            try:
                ok = super().acquire(True, timeout)
            finally:
                registry.end_wait(me, previous)
            if ok:
                _notify_acquired(self, mode, frame)
        else:
            _notify_before(self, mode, frame)
        if ok:
            self._stuck_epoch += 1
            me = _get_ident()
            holders = self._stuck_holders
            held = holders.get(me, 0)
            if held and not _stall.is_current_mark(me, self._stuck_marks.get(me)):
                self._stuck_forget(me)  # an ended thread's permits, not this one's
                held = 0
            if not held:  # its mark, and its name for reports after it ends
                _stall.note_participant(self._stuck_marks, me)
            holders[me] = held + 1
        return bool(ok)

    def _stuck_forget(self, ident: int) -> None:
        """File the permits ``ident`` holds under the ended thread that took them."""
        held = self._stuck_holders.pop(ident, 0)
        mark = self._stuck_marks.pop(ident, None)
        if held > 0:
            self._stuck_ended[id(mark)] = (ident, mark, held)

    def _stuck_live_holders(self) -> list[int]:
        """The idents of the threads, still running, that hold permits."""
        marks = self._stuck_marks
        return [t for t, n in list(self._stuck_holders.items())
                if n > 0 and _stall.is_current_mark(t, marks.get(t))]

    def _stuck_all_holders(self) -> list[tuple[int, Any]]:
        """(ident, mark) of every thread that holds permits, ended or not."""
        marks = self._stuck_marks
        out = [(t, marks.get(t)) for t, n in list(self._stuck_holders.items()) if n > 0]
        return out + [(t, mark) for t, mark, _ in list(self._stuck_ended.values())]

    def __enter__(self) -> bool:
        return self._acquire(True, None, _getframe(1))

    def release(self, n: int = 1) -> None:
        self._stuck_epoch += 1
        super().release(n)
        _stall.note_waker(self)  # who can wake its waiters (stall rules)
        me = _get_ident()
        holders = self._stuck_holders
        held = holders.get(me, 0)
        if held and not _stall.is_current_mark(me, self._stuck_marks.get(me)):
            self._stuck_forget(me)  # an ended thread's permits, not this one's
            held = 0
        if held < n:
            self._stuck_signaling = True
        if held <= n:
            holders.pop(me, None)
            self._stuck_marks.pop(me, None)
        else:
            holders[me] = held - n
        if _released is not None:
            # A permit released by a thread that did not take it: a signal, not a mutex (the
            # lock-order checker then leaves the semaphore's class out of its graph).
            by_owner = held >= n
            for _ in range(min(n, max(held, 1))):
                _notify_released(self, by_owner)

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _stuck_owners(self) -> list[tuple[int, Any, int]]:
        return [(t, None, 0) for t in self._stuck_live_holders()]

    def _stuck_facts(self) -> PrimitiveFacts:
        return PrimitiveFacts()


@tracked_class
class BoundedSemaphore(Semaphore, _OrigBoundedSemaphore):  # type: ignore[misc]
    """A tracked ``threading.BoundedSemaphore``."""

    def __init__(self, value: int = 1, *, name: str | None = None) -> None:
        Semaphore.__init__(self, value, name=name)
        self._stuck_class, owner = registry.lock_class_and_owner(self._stuck_kind, name, _getframe(1))
        self._stuck_parent = registry.owner_ref(owner)
        self._initial_value = value


@tracked_class
class Event(_OrigEvent):  # type: ignore[misc]
    """A tracked ``threading.Event``: waits are recorded (nobody in particular can set it)."""

    _stuck_kind = "event"

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is Event and registry.created_by_library():
            return _OrigEvent()
        return object.__new__(cls)

    def __init__(self, *, name: str | None = None) -> None:
        self._cond = _InnerCondition(_allocate())
        self._flag = False
        self._stuck_epoch = 0  # moves at every set and clear (see registry.epoch_of)
        self._stuck_class, owner = registry.lock_class_and_owner(self._stuck_kind, name, _getframe(1))
        self._stuck_parent = registry.owner_ref(owner)
        self._stuck_id = registry.register(self, self._stuck_kind)

    def wait(self, timeout: float | None = None) -> bool:
        if self._flag:
            return True
        me = _get_ident()
        record = registry.WaitRecord(self, "wait", None, _getframe(1), timeout)
        previous = registry.begin_wait(me, record)
        try:
            return bool(super().wait(timeout))
        finally:
            registry.end_wait(me, previous)

    def set(self) -> None:
        waiters = len(self._cond._waiters)
        self._stuck_epoch += 1
        super().set()
        _stall.note_signal(self, "set", waiters)  # who can wake its waiters (stall rules)

    def clear(self) -> None:
        self._stuck_epoch += 1
        super().clear()

    def _stuck_owners(self) -> list[tuple[int, Any, int]]:
        return []

    def _stuck_wakers_of(self, op: str) -> list[int] | None:
        return None  # any thread may set it

    def _stuck_facts(self) -> PrimitiveFacts:
        return PrimitiveFacts()


@tracked_class
class Barrier(_OrigBarrier):  # type: ignore[misc]
    """A tracked ``threading.Barrier``: waits are recorded."""

    _stuck_kind = "barrier"

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is Barrier and registry.created_by_library():
            return _OrigBarrier(*args, **kwargs)
        return object.__new__(cls)

    def __init__(self, parties: int, action: Any = None, timeout: float | None = None, *,
                 name: str | None = None) -> None:
        super().__init__(parties, action, timeout)  # its condition is made by threading: original
        self._stuck_epoch = 0  # moves at every arrival (see registry.epoch_of)
        self._stuck_class, owner = registry.lock_class_and_owner(self._stuck_kind, name, _getframe(1))
        self._stuck_parent = registry.owner_ref(owner)
        self._stuck_id = registry.register(self, self._stuck_kind)

    def wait(self, timeout: float | None = None) -> int:
        self._stuck_epoch += 1
        _stall.note_waker(self)  # an arrival: who can complete the barrier (stall rules)
        me = _get_ident()
        record = registry.WaitRecord(self, "wait", None, _getframe(1), timeout)
        previous = registry.begin_wait(me, record)
        try:
            return int(super().wait(timeout))
        finally:
            registry.end_wait(me, previous)

    def _stuck_owners(self) -> list[tuple[int, Any, int]]:
        return []

    def _stuck_wakers_of(self, op: str) -> list[int] | None:
        return None  # any thread may arrive

    def _stuck_facts(self) -> PrimitiveFacts:
        return PrimitiveFacts()


# Named like the classes they stand for: reprs read ``<threading.Semaphore at 0x...: value=1>``
# as the originals' do, and introspection (``threading.__all__`` checks, pickling by name)
# finds them in ``threading``, where install() puts them.
for _cls in (Lock, RLock, Condition, Semaphore, BoundedSemaphore, Event, Barrier):
    _cls.__module__ = "threading"
if not _LOCK_IS_A_CLASS:
    # Before 3.13 threading.Lock is a function (make_lock stands in for it), and the type of
    # the locks it makes reads ``<class '_thread.lock'>``: so does this one.
    Lock.__module__, Lock.__name__, Lock.__qualname__ = "_thread", "lock", "lock"
else:
    # From 3.13 threading.Lock is the type _thread.lock itself: the name is the original's,
    # while module and qualified name stay threading.Lock, where pickle (multiprocessing's
    # managers, under spawn) finds the replacement while it is installed.
    Lock.__name__ = "lock"

REPLACEMENTS: list[tuple[object, str, object]] = [
    (threading, "Lock", Lock if _LOCK_IS_A_CLASS else make_lock),
    (threading, "RLock", RLock),
    (threading, "Condition", Condition),
    (threading, "Semaphore", Semaphore),
    (threading, "BoundedSemaphore", BoundedSemaphore),
    (threading, "Event", Event),
    (threading, "Barrier", Barrier),
]

"""Observers of the live instrumentation: how the lock-order checker (and later checkers) see
every lock operation without the tracked primitives knowing about them.

Dispatch is chosen when the set of observers changes, not on every operation: the tracked
primitives hold the current ``Dispatch`` in module globals (they subscribe with ``subscribe``).
With no observer every hook is None and a lock operation pays one ``is None`` test; with one
observer the hooks are that observer's own bound methods (no fan-out loop, no copy); with two or
more they are the fan-out functions below.

Observers run in the thread doing the operation, must be fast, must never block on anything but
their own leaf lock, and must never raise: a failing observer is removed and the failure is
written to stderr (``failed``; the primitives call it when a directly bound hook raises).

The order of calls for one lock, in one thread:

- a blocking or timed acquire that has to wait, or a try: ``before_acquire`` (before it may
  block), then ``acquired`` if it got the lock;
- a blocking acquire that got the lock at once: usually ``took`` (if the observer has it),
  which stands for ``before_acquire`` + ``acquired`` in one call; observers without ``took`` get
  the pair, and some paths (``with condition:``) send the pair to every observer: an observer
  must give both the same meaning;
- re-acquiring a Condition's lock when ``wait()`` returns: ``before_acquire`` (mode
  ``blocking``) then ``acquired``, like any blocking acquire: the order the thread really takes
  its locks in is the one recorded; the matching release is the ``released`` of ``wait()``;
- the last release: ``released``.

Re-entry of an RLock its owner holds is not reported, nor its inner releases.

A sole observer that offers ``inline_state`` (the lock-order checker) is not called at all for
its common case: Lock and RLock update its per-thread data themselves (``InlineState``), and
call ``took`` / ``released`` only when that data has no answer.
"""

from __future__ import annotations

import _thread
import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Literal, NamedTuple, Protocol

from stuck.tracebacks import hide_in_pytest as _hide_in_pytest

AcquireMode = Literal["blocking", "timed", "try"]  # try: acquire(blocking=False)


@dataclass(frozen=True, slots=True)
class LockClass:
    """Where a lock was created (its *class*, in lockdep's sense), or an explicit name.

    Locks made by the same line share one class, so locks made in a loop or one per object
    are checked as one: an order seen on any two instances holds for all of them.
    """

    kind: str  # "mutex", "rlock", "condition", "semaphore"
    file: str
    line: int
    function: str
    name: str | None = None  # the name= override
    # A small number unique to this object (0: none), for observers' caches: an int key is
    # hashed for free, where hashing the class hashes all its fields. Not part of equality.
    serial: int = field(default=0, compare=False, repr=False)
    # The refinement of a creation site (see ``registry.lock_class``): the name the new lock
    # is bound to (``lock`` for ``self.lock = RLock()``, ``b`` for ``b = Lock()``, the
    # caller's name for a lock a factory returns), and the concrete class of the object it
    # is an attribute of (``module.QualName``). Two handlers' ``self.lock``, or two locks made
    # on one line, are then two classes.
    binding: str | None = None
    owner: str | None = None

    def label(self) -> str:
        if self.name:
            return self.name
        if self.binding:
            owner = self.owner.rsplit(".", 1)[-1] if self.owner else None
            return f"{owner}.{self.binding}" if owner else self.binding
        return f"{self.function}:{self.line}"


class LockObserver(Protocol):
    def before_acquire(self, lock: object, cls: LockClass, mode: AcquireMode,
                       frame: FrameType | None) -> None:
        """The current thread is about to acquire ``lock`` (it may block). Not called for
        re-entry of an RLock the thread already owns. ``frame`` is the frame that called the
        acquire (for a Condition's re-acquire after ``wait``: the frame of ``wait``); an
        observer wanting the program's own line walks outwards from it itself."""

    def acquired(self, lock: object, cls: LockClass, mode: AcquireMode,
                 frame: FrameType | None) -> None:
        """The current thread now holds ``lock`` (first acquisition, not an RLock re-entry)."""

    def released(self, lock: object, cls: LockClass, by_owner: bool) -> None:
        """The current thread released ``lock`` fully (for an RLock: the last release).
        ``by_owner`` is False when a thread released a lock (or semaphore permit) that another
        thread acquired."""

    # Optional: ``took(lock, cls, frame)``: a blocking acquire succeeded without waiting; the
    # same as before_acquire(lock, cls, "blocking", frame) followed by acquired(...).
    # Optional: ``references(lock) -> int``: how many strong references to ``lock`` the
    # observer keeps (a checker's held stacks), so reports can tell a lock the program dropped.
    # Optional: ``inline_state() -> InlineState``: the data a sole observer lets the tracked
    # primitives update themselves on the common path (see ``InlineState``).


BeforeHook = Callable[[object, LockClass, AcquireMode, "FrameType | None"], None]
ReleasedHook = Callable[[object, LockClass, bool], None]
TookHook = Callable[[object, LockClass, "FrameType | None"], None]


class InlineState(NamedTuple):
    """A lock-order checker's per-thread state as plain data the tracked Lock and RLock
    update inline, without calling the observer, on the common path: a blocking acquire that
    got its lock at once on top of a pattern already checked for this thread, and the release
    by its owner of the lock on top of the stack. Everything else (a new pattern, a try or
    timed acquire, an out-of-order or foreign release) calls the observer's hooks as usual,
    and the hooks read and write the same lists and dicts.

    ``threads``: thread ident -> that thread's ``stack``, a list whose item 0 is the entry on
    top of the locks it holds (the rest is the observer's):

    - an entry is ``(lock, hit, code, lasti, below)``; the bottom entry is the thread's root,
      whose ``below`` is None and whose lock is None;
    - ``hit`` is ``(node, chain, level)``: ``level`` maps a class serial to the ``hit`` of a
      lock of that class pushed on top of this entry, for patterns already checked; the
      observer empties levels (never replaces them) whenever an answer in them may change.

    Pushing is ``stack[0] = (lock, level[serial], code, lasti, top)``, popping the top is
    ``stack[0] = top[4]``: no method call, nothing to look up but the one level.

    A thread missing from ``threads`` takes the hooks' path (which adds it); an entry is
    removed when its thread ends, so an ident reused by a new thread never finds a stack.
    """

    threads: dict[int, list[Any]]


class Dispatch(NamedTuple):
    """What the tracked primitives call; all None when nobody observes."""

    before_acquire: BeforeHook | None
    acquired: BeforeHook | None
    took: TookHook | None
    released: ReleasedHook | None
    inline: InlineState | None = None


NO_DISPATCH = Dispatch(None, None, None, None, None)

observers: list[LockObserver] = []
_listeners: list[Callable[[Dispatch], None]] = []
_mutex = _thread.allocate_lock()  # leaf: guards observers/_listeners changes
dispatch: Dispatch = NO_DISPATCH


def _compute() -> Dispatch:
    if not observers:
        return NO_DISPATCH
    if len(observers) == 1:
        o = observers[0]
        own_took = getattr(o, "took", None)
        inline_state = getattr(o, "inline_state", None)
        inline = None
        if callable(own_took) and callable(inline_state):
            try:
                inline = inline_state()
            except Exception:  # an observer must never break the program: no inline path
                inline = None
            if not isinstance(inline, InlineState):
                inline = None
        return Dispatch(o.before_acquire, o.acquired,
                        own_took if callable(own_took) else took, o.released, inline)
    return Dispatch(before_acquire, acquired, took, released, None)


def _changed() -> None:
    global dispatch
    dispatch = _compute()
    for listener in tuple(_listeners):
        listener(dispatch)


def subscribe(listener: Callable[[Dispatch], None]) -> None:
    """Call ``listener(dispatch)`` now and whenever the observers change."""
    with _mutex:
        _listeners.append(listener)
        listener(dispatch)


def add_observer(observer: LockObserver) -> None:
    with _mutex:
        if observer not in observers:
            observers.append(observer)
            _changed()


def remove_observer(observer: LockObserver) -> None:
    with _mutex:
        if observer in observers:
            observers.remove(observer)
            _changed()


def failed(hook: object, exc: BaseException) -> None:
    """A hook raised: remove its observer (the hook is a bound method of it, or a fan-out
    function, which handles its observers' failures itself) and say so on stderr."""
    observer: Any = getattr(hook, "__self__", None)
    if observer is None:
        return
    _failed(observer, exc)


def _failed(observer: Any, exc: BaseException) -> None:
    remove_observer(observer)
    with contextlib.suppress(Exception):
        sys.stderr.write(f"stuck: observer {observer!r} failed and was removed: {exc!r}\n")


def observer_references(obj: object) -> int:
    """Strong references to ``obj`` kept by the observers (see ``references``)."""
    total = 0
    for o in tuple(observers):
        fn = getattr(o, "references", None)
        if callable(fn):
            with contextlib.suppress(Exception):
                total += int(fn(obj))
    return total


# Fan-out, for two or more observers (or one without ``took``).

def before_acquire(lock: object, cls: LockClass, mode: AcquireMode,
                   frame: FrameType | None) -> None:
    for o in tuple(observers):
        try:
            o.before_acquire(lock, cls, mode, frame)
        except Exception as exc:  # an observer must never break the program
            _failed(o, exc)


def acquired(lock: object, cls: LockClass, mode: AcquireMode, frame: FrameType | None) -> None:
    for o in tuple(observers):
        try:
            o.acquired(lock, cls, mode, frame)
        except Exception as exc:
            _failed(o, exc)


def took(lock: object, cls: LockClass, frame: FrameType | None) -> None:
    for o in tuple(observers):
        try:
            fn = getattr(o, "took", None)
            if callable(fn):
                fn(lock, cls, frame)
            else:
                o.before_acquire(lock, cls, "blocking", frame)
                o.acquired(lock, cls, "blocking", frame)
        except Exception as exc:
            _failed(o, exc)


def released(lock: object, cls: LockClass, by_owner: bool) -> None:
    for o in tuple(observers):
        try:
            o.released(lock, cls, by_owner)
        except Exception as exc:
            _failed(o, exc)


# pytest leaves these frames out of the tracebacks it shows (STUCK_DEBUG=1 keeps them): a
# program's wait passes through them, plain Python's does not (stuck.tracebacks).
__tracebackhide__ = _hide_in_pytest()

"""The tracked-primitive contract: what every instrumented primitive tells stuck about itself.

The snapshot (``livereport``), the stall rules' live adapter (``stall``), the wait-for walks
(``detect``, ``aio.walk``), the epochs (``registry.epoch_of``) and the lock-order checker read
a primitive only through this contract: ``as_tracked(obj)`` says whether ``obj`` is one, and
the members of ``Tracked`` are all they read. A class joins with ``@tracked_class``, which
checks that it declares every member; ``tests/test_layout.py`` checks that every class the
runtime installs has joined, and that instances carry the per-object members.

The members keep the ``_stuck_`` prefix: the classes stand in for the program's own
(``threading.Lock``, ``asyncio.Queue``), and a program's subclass may use any public name.

- ``_stuck_kind``: the model's resource kind ("mutex", "rlock", "semaphore", "condition",
  "event", "barrier", "queue", "future").
- ``_stuck_id``: the resource id in reports; ``_stuck_class``: the creation site (the lock
  class, in lockdep's sense), or None for what the program did not create.
- ``_stuck_epoch``: an integer the primitive's own operations move whenever they could end a
  wait on it (a release, a notify, a set or clear, a put or get, an arrival). The increment is
  the whole cost on the hot path; a finding rests only on waits whose epochs did not move
  between two observations (``registry.Observation``).
- ``_stuck_owners()``: the threads holding it, as (ident, code, line of the acquire); empty for
  what nobody holds (an Event) and for asyncio primitives, whose holders are tasks (``facts``).
- ``_stuck_wakers_of(op)``: the waker declaration: who could end a wait ``op`` on it (thread
  idents, or tasks for asyncio primitives), or None when anybody may (an Event anyone can
  set, a semaphore released by threads that did not take it).
- ``_stuck_facts()``: what else the rules may use about it (``PrimitiveFacts``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar, cast

from stuck.runtime.hooks import LockClass
from stuck.tracebacks import hide_in_pytest as _hide_in_pytest


@dataclass(slots=True)
class PrimitiveFacts:
    """What a tracked primitive knows beyond its owners, read at report time only."""

    # Who has put on / taken from a queue: thread ident -> mark (``stall.note_participant``)
    # for the threading queues, the tasks for asyncio's.
    putters: Collection[Any] = ()
    getters: Collection[Any] = ()
    holders: list[Any] = field(default_factory=list)  # asyncio: the tasks holding it now
    set_by: str | None = None  # asyncio: the task that last set / notified it
    held_by_ended: Any = None  # asyncio: a task that ended holding the lock (never released)
    # threading.Lock: the Thread that took it and ended holding it, when its ident now belongs
    # to another running thread (which does not hold it): its owner is that ended thread.
    ended_holder: Any = None
    label: str | None = None  # a label for what has no creation site (a set of futures)


class Tracked(Protocol):
    """The members every instrumented primitive declares (see the module's docstring)."""

    _stuck_kind: ClassVar[str]
    _stuck_id: str
    _stuck_class: LockClass | None
    _stuck_epoch: int

    def _stuck_owners(self) -> list[tuple[int, Any, int]]: ...

    def _stuck_wakers_of(self, op: str) -> list[Any] | None: ...

    def _stuck_facts(self) -> PrimitiveFacts: ...


# Members a class must declare itself (the others are set on each instance by its __init__).
CLASS_MEMBERS = ("_stuck_kind", "_stuck_owners", "_stuck_wakers_of", "_stuck_facts")
INSTANCE_MEMBERS = ("_stuck_id", "_stuck_class", "_stuck_epoch")

_classes: set[type] = set()
_is_tracked: dict[type, bool] = {}  # every type asked about (subclasses of tracked classes too)

T = TypeVar("T", bound=type)


def tracked_class(cls: T) -> T:
    """Register ``cls`` as an instrumented primitive; it must declare the whole contract."""
    missing = [m for m in CLASS_MEMBERS if not hasattr(cls, m)]
    if missing:
        raise TypeError(f"{cls.__qualname__} is a tracked primitive without "
                        f"{', '.join(missing)}: declare them (see stuck.runtime.tracked)")
    _classes.add(cls)
    _is_tracked.clear()
    return cls


def classes() -> list[type]:
    """Every registered tracked primitive class."""
    return sorted(_classes, key=lambda c: f"{c.__module__}.{c.__qualname__}")


def as_tracked(obj: object) -> Tracked | None:
    """``obj`` as a tracked primitive (an instance of a registered class or of a subclass the
    program made of one), or None. ``type()``, not ``isinstance``: a tracked Lock answers
    ``__class__`` as ``_thread.lock``."""
    t = type(obj)
    known = _is_tracked.get(t)
    if known is None:
        known = any(c in _classes for c in t.__mro__)
        if len(_is_tracked) > 4096:
            _is_tracked.clear()
        _is_tracked[t] = known
    return cast(Tracked, obj) if known else None


def is_tracked_type(t: type) -> bool:
    """True for a registered class and for any subclass of one."""
    return any(c in _classes for c in t.__mro__)


def kind_of(obj: object) -> str | None:
    t = as_tracked(obj)
    return t._stuck_kind if t is not None else None


def lock_class_of(obj: object) -> LockClass | None:
    t = as_tracked(obj)
    cls = t._stuck_class if t is not None else None
    return cls if isinstance(cls, LockClass) else None



# pytest leaves these frames out of the tracebacks it shows (STUCK_DEBUG=1 keeps them): a
# program's wait passes through them, plain Python's does not (stuck.tracebacks).
__tracebackhide__ = _hide_in_pytest()

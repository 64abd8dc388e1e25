"""Names for live locks that tell them apart in a report.

A lock's class (``registry.lock_class``) already knows the name it was bound to when it was
made (``lock`` for ``self.lock = Lock()``, ``a`` and ``b`` for two locks made on one line) and
the class of the object it is an attribute of. Two accounts' ``self.lock`` share all of that,
so a report names the owning object by its own ``name`` when it has a short one
(``Account('x').lock``, ``BackgroundPool('compaction').jobs``), else by a short tag
(``Account#1.lock``, ``Account#2.lock``). Tags are given in the order the owners are made
(when a primitive is first made an attribute of one: ``note_owner``, so the account made
first is #1 whichever a report meets first) and kept while the owner lives, so one account
keeps its tag from one report to the next. The owning object is the one the lock's
constructor saw it assigned to (kept weakly on the lock), never found by asking the garbage
collector who refers to the lock: that walks every object of the process, from the watchdog's
thread, and may meet objects another thread is still building.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Iterator
from typing import Any

from stuck.runtime.hooks import LockClass

MAX_TAGGED = 10_000  # live owners tagged as they are made; beyond that, when first named
MAX_NAMED = 1_000  # owners tagged when a report first names them, past MAX_TAGGED

# (owner's class name, id(owner)) -> (tag, weak reference to the owner). The reference's
# callback forgets the entry when the owner is gone, before its id can be reused. No lock:
# each step is one atomic dict or counter operation, so a weak reference callback (which may
# run in any thread, at any allocation) never waits on stuck.
_tags: dict[tuple[str, int], tuple[int, Any]] = {}
_counters: dict[str, Iterator[int]] = {}


def note_owner(owner: object, class_name: str, limit: int = MAX_TAGGED) -> None:
    """Give ``owner`` its tag now, as a primitive is made its attribute: tags follow the order
    in which owners are made (while fewer than ``limit`` live owners have one)."""
    key = (class_name, id(owner))
    if key in _tags or len(_tags) >= limit:
        return
    def forget(_gone: object, key: tuple[str, int] = key) -> None:
        _tags.pop(key, None)

    try:
        ref = weakref.ref(owner, forget)
    except TypeError:
        return  # not weakly referable: no entry that could outlive it
    counter = _counters.get(class_name) or _counters.setdefault(class_name, itertools.count(1))
    _tags.setdefault(key, (next(counter), ref))


def parent_of(obj: object) -> Any:
    """The object ``obj`` was made an attribute of (``self`` in ``self.lock = Lock()``), as
    its constructor recorded it (``registry.lock_class_and_owner``), or None: gone, or never
    known. Read from the primitive, never by asking the garbage collector who refers to it
    (that walks every object of the process, and may meet objects still being built)."""
    ref = getattr(obj, "_stuck_parent", None)
    if ref is None:
        return None
    try:
        return ref()
    except TypeError:
        return None


def attribute_holding(owner: object, obj: object) -> str | None:
    """The name of ``owner``'s attribute (in its instance dict) that is ``obj``, or None. The
    dict is read through ``object.__getattribute__``: no method of the owner's class runs."""
    try:
        attrs = object.__getattribute__(owner, "__dict__")
    except Exception:
        return None
    if not isinstance(attrs, dict):
        return None
    for key, value in list(attrs.items()):
        if value is obj and isinstance(key, str):
            return key
    return None


def owner_of(obj: object, attribute: str) -> Any:
    """The object whose ``attribute`` is ``obj`` (its parent, while the parent still holds
    it there), or None."""
    owner = parent_of(obj)
    if owner is None or isinstance(owner, type):
        return None
    try:
        attrs = object.__getattribute__(owner, "__dict__")
    except Exception:
        return None
    return owner if isinstance(attrs, dict) and attrs.get(attribute) is obj else None


def instance_tag(owner: object, class_name: str) -> int | None:
    """``owner``'s tag among the objects of its class (given now if it has none yet: a
    program holding more than MAX_TAGGED owners still tells the ones in a report apart)."""
    note_owner(owner, class_name, MAX_TAGGED + MAX_NAMED)
    entry = _tags.get((class_name, id(owner)))
    return entry[0] if entry is not None else None


def lock_label(obj: object, cls: LockClass | None) -> str | None:
    """``Account#2.lock``, ``a``, ``cache_lock``: the name ``obj`` is bound to, with its
    owner's class and tag when it is an object's attribute; None when it was bound to nothing
    (a lock passed straight to a call)."""
    if cls is None or not cls.binding:
        return None
    if not cls.owner:
        return cls.binding
    class_name = cls.owner.rsplit(".", 1)[-1]
    owner = owner_of(obj, cls.binding)
    if owner is None:
        return owned_name(cls.binding, class_name)
    name = _own_name(owner)
    return owned_name(cls.binding, class_name, name,
                      instance_tag(owner, class_name) if name is None else None)


def owned_name(binding: str, class_name: str | None = None, owner_name: str | None = None,
               tag: int | None = None) -> str:
    """How every report names a primitive bound to ``binding``: ``lock`` (a plain name),
    ``Account.lock`` (an attribute of an Account), ``BackgroundPool('compaction').jobs``
    (the owner has a short ``name`` of its own), ``Account#2.lock`` (else the owner's tag, in
    the order the owners were made). ``stuck explore`` names its locks with it too."""
    if not class_name:
        return binding
    if owner_name is not None:
        return f"{class_name}({owner_name!r}).{binding}"
    return f"{class_name}#{tag}.{binding}" if tag is not None else f"{class_name}.{binding}"


def own_name(owner: object) -> str | None:
    """The owner's own short name, as reports use it (see ``_own_name``)."""
    return _own_name(owner)


def _own_name(owner: object) -> str | None:
    """The owner's own short ``name`` (an instance attribute holding a string of at most 40
    characters), read from its instance dict: no property or method of its class runs."""
    try:
        name = object.__getattribute__(owner, "__dict__").get("name")
    except Exception:
        return None
    return name if isinstance(name, str) and 0 < len(name) <= 40 else None


def reset() -> None:
    _tags.clear()
    _counters.clear()

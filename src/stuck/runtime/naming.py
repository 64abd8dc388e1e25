"""Names for live locks that tell them apart in a report.

A lock's class (``registry.lock_class``) already knows the name it was bound to when it was
made (``lock`` for ``self.lock = Lock()``, ``a`` and ``b`` for two locks made on one line) and
the class of the object it is an attribute of. Two accounts' ``self.lock`` share all of that,
so a report adds a short tag for the owning object: ``Account#1.lock``, ``Account#2.lock``.
Tags are given in the order objects are first named and kept for the process's life, so one
account keeps its tag from one report to the next. Report time only (it asks the garbage
collector who refers to the lock); never on a lock operation.
"""

from __future__ import annotations

import contextlib
import gc
from typing import Any

from stuck.runtime.hooks import LockClass

MAX_TAGGED = 10_000  # owner objects remembered; beyond that, owners are named without a tag

# (owner's class name, id(owner)) -> tag. An id is only reused once its object is gone, and
# the object that then takes the id is one more owner with a fresh tag only if it is new.
_tags: dict[tuple[str, int], int] = {}
_counts: dict[str, int] = {}


def owner_of(obj: object, attribute: str) -> Any:
    """The object whose ``attribute`` is ``obj`` (its instance dict, or 3.11+ inline values),
    or None."""
    with contextlib.suppress(Exception):
        for holder in gc.get_referrers(obj):
            if isinstance(holder, dict):
                if holder.get(attribute) is not obj:
                    continue
                for owner in gc.get_referrers(holder):
                    if getattr(owner, "__dict__", None) is holder and not isinstance(owner, type):
                        return owner
            elif getattr(holder, attribute, None) is obj and not isinstance(holder, type):
                return holder
    return None


def instance_tag(owner: object, class_name: str) -> int | None:
    key = (class_name, id(owner))
    tag = _tags.get(key)
    if tag is None:
        if len(_tags) >= MAX_TAGGED:
            return None
        tag = _counts[class_name] = _counts.get(class_name, 0) + 1
        _tags[key] = tag
    return tag


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
    tag = instance_tag(owner, class_name) if owner is not None else None
    return f"{class_name}#{tag}.{cls.binding}" if tag is not None else f"{class_name}.{cls.binding}"


def reset() -> None:
    _tags.clear()
    _counts.clear()

"""Who holds what and who waits for what, at any moment, in a live process.

Holding is recorded on the tracked object itself (a lock's ``_owner`` and acquisition site), so
the uncontended acquire touches nothing shared. Waiting is recorded here, in ``waits`` (thread
ident -> ``WaitRecord``), only on the slow path, when a thread is about to block. A snapshot
for a report is built on demand from these two, plus ``sys._current_frames()``.

Nothing here keeps a user's object alive: tracked resources are listed in a ``WeakSet``, a wait
record lives only while its thread waits, and an owner is a thread ident (an int).

The leaf lock ``leaf`` serialises the deadlock walks and the bookkeeping of findings already
reported. It is an original ``_thread`` lock, held for short sections that never call user code.
"""

from __future__ import annotations

import _thread
import itertools
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

from stuck.runtime.hooks import LockClass

# Waker function: given the waited-for resource and the operation, the idents of the threads
# that could end the wait, or None when that cannot be known (anybody could: an Event, a
# Condition) or when the wait is no longer justified (the queue is no longer full).
Wakers = Callable[[object, str], "list[int] | None"]

leaf = _thread.allocate_lock()
waits: dict[int, WaitRecord] = {}
resources: weakref.WeakSet[object] = weakref.WeakSet()
_ids = itertools.count(1)
_time = time.time
# Resource ids of objects the registry does not create (threads, futures): id(obj) -> weak entry.
_foreign_ids: weakref.WeakKeyDictionary[object, str] = weakref.WeakKeyDictionary()

_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../stuck
_THREADING_FILE = os.path.abspath(threading.__file__)
_LIB_DIR = os.path.dirname(_THREADING_FILE)
# Modules whose own primitives are plumbing, not the program's resources: objects they create
# stay original (a queue is tracked as a queue, not as the condition inside it).
LIBRARY_MODULES = frozenset({
    "threading", "queue", "concurrent.futures._base", "concurrent.futures.thread",
    "concurrent.futures.process", "multiprocessing.queues", "multiprocessing.pool",
    "asyncio.base_events", "asyncio.events", "_threading_local", "importlib._bootstrap",
})
# Files skipped when looking for the program's own line (creation, wait and acquisition sites).
_SKIP_FILES_CACHE: dict[str, bool] = {}


def is_library_file(filename: str) -> bool:
    """True for stuck's own files and the standard library's threading plumbing."""
    known = _SKIP_FILES_CACHE.get(filename)
    if known is not None:
        return known
    path = os.path.abspath(filename)
    skip = path.startswith(_HERE + os.sep) or (
        os.path.dirname(path) in (_LIB_DIR, os.path.join(_LIB_DIR, "concurrent", "futures"))
        and os.path.basename(path) in ("threading.py", "queue.py", "_base.py", "thread.py")
    )
    _SKIP_FILES_CACHE[filename] = skip
    return skip


def tasks_module() -> Any:
    """``stuck.runtime.tasks`` once the program uses asyncio (it is imported with asyncio, see
    ``stuck.runtime``), else None: no task can exist then, and importing it would import
    asyncio, tens of milliseconds a program that never uses it should not pay."""
    return sys.modules.get("stuck.runtime.tasks")


def user_frame(frame: FrameType | None,
               plumbing: Callable[[str], bool] | None = None) -> FrameType | None:
    """The first frame, going outwards, that belongs to the program rather than to plumbing
    (``plumbing``: a test on a file name; default ``is_library_file``)."""
    skip = plumbing or is_library_file
    while frame is not None and skip(frame.f_code.co_filename):
        frame = frame.f_back
    return frame


def created_by_library(depth: int = 2) -> bool:
    """True when the object being constructed is made by threading/queue/futures internals."""
    try:
        frame = sys._getframe(depth)
    except ValueError:
        return False
    return frame.f_globals.get("__name__") in LIBRARY_MODULES


# Code objects where a thread's stack stops being the program's: ``stuck run`` adds its own
# entry point, so reports do not show the command line's frames under the program's.
boundary_codes: set[CodeType] = set()

_classes: dict[tuple[str, CodeType | None, int, str | None], LockClass] = {}
_class_serials = itertools.count(1)


def lock_class(kind: str, name: str | None, frame: FrameType | None) -> LockClass:
    """The LockClass (creation site) of a new primitive whose constructor's caller is ``frame``."""
    site = user_frame(frame)
    code = site.f_code if site is not None else None
    line = site.f_lineno if site is not None else 0
    key = (kind, code, line, name)
    cls = _classes.get(key)
    if cls is None:
        if code is None:
            cls = LockClass(kind, "?", 0, "?", name, next(_class_serials))
        else:
            cls = LockClass(kind, code.co_filename, line or 0, code.co_name, name,
                            next(_class_serials))
        _classes[key] = cls
    return cls


def new_id(kind: str) -> str:
    return f"{kind}-{next(_ids)}"


def register(obj: object, kind: str) -> str:
    """Give a tracked object its resource id and list it for snapshots."""
    resources.add(obj)
    return new_id(kind)


def foreign_id(obj: object, kind: str) -> str:
    """A stable resource id for an object stuck does not construct (a Thread, a Future)."""
    try:
        rid = _foreign_ids.get(obj)
        if rid is None:
            rid = new_id(kind)
            _foreign_ids[obj] = rid
        return rid
    except TypeError:  # not weak-referenceable
        return f"{kind}-{id(obj):x}"


class WaitRecord:
    """One thread about to block, or blocked: on what, where, since when, for how long.

    The caller's frame is kept only while the thread waits (the record is dropped when the wait
    ends); it is blocked at the waiting line all that time, so where it waits is read from it
    only when a report is built.
    """

    __slots__ = ("_frame", "op", "resource", "since", "timeout", "wakers")

    def __init__(self, resource: object, op: str, wakers: Wakers | None,
                 frame: FrameType | None, timeout: float | None) -> None:
        self.resource = resource
        self.op = op  # "acquire", "join", "put", "get", "wait", "result"
        self.wakers = wakers
        self.timeout = timeout
        self.since = _time()
        self._frame = frame

    def site(self) -> tuple[str | None, str, int]:
        """(file, function, line) of the program's own frame where the wait happens."""
        site = user_frame(self._frame)
        if site is None:
            return None, "?", 0
        return site.f_code.co_filename, site.f_code.co_name, site.f_lineno

    def waker_idents(self) -> list[int] | None:
        if self.wakers is None:
            return None
        try:
            return self.wakers(self.resource, self.op)
        except Exception:  # a resource in an odd state must not break the program
            return None


def begin_wait(me: int, record: WaitRecord) -> WaitRecord | None:
    """Register that ``me`` is about to block; returns the record it replaces (nested waits)."""
    previous = waits.get(me)
    waits[me] = record
    return previous


def end_wait(me: int, previous: WaitRecord | None) -> None:
    if previous is None:
        waits.pop(me, None)
    else:
        waits[me] = previous


# Threads stuck runs itself (the watchdog): not the program's, so left out of every report.
own_idents: set[int] = set()


def alive_idents() -> set[int]:
    return set(threading._active)  # type: ignore[attr-defined]


def thread_objects() -> dict[int, threading.Thread]:
    return dict(threading._active)  # type: ignore[attr-defined]


def _reset_after_fork() -> None:
    """In a forked child only the forking thread exists: forget the others' waits."""
    global leaf
    leaf = _thread.allocate_lock()
    me = _thread.get_ident()
    for ident in list(waits):
        if ident != me:
            waits.pop(ident, None)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)

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
import bisect
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
from stuck.runtime.naming import note_owner
from stuck.runtime.tracked import as_tracked
from stuck.tracebacks import hide_in_pytest as _hide_in_pytest

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


# Called once ``stuck.runtime.aio`` has been imported whole: an import of asyncio made from
# inside that import is tracked then (``stuck.runtime._track_asyncio``).
after_aio_import: list[Callable[[], None]] = []


def tasks_module() -> Any:
    """``stuck.runtime.aio`` once the program uses asyncio (it is imported with asyncio, see
    ``stuck.runtime``), else None: no task can exist then, and importing it would import
    asyncio, tens of milliseconds a program that never uses it should not pay. Not while
    another thread is still importing it (the module is in ``sys.modules`` from the start of
    its import; its ``LOADED`` is set last): the watchdog would find names not there yet."""
    module = sys.modules.get("stuck.runtime.aio")
    return module if getattr(module, "LOADED", False) else None


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

# Every class made, by what defines it; emptied past _MAX_CLASSES (a class made again is a new
# object equal to the first: the lock-order checker finds it by value), so a program making a
# class per request or plugin does not grow it without end.
_classes: dict[tuple[Any, ...], LockClass] = {}
_MAX_CLASSES = 200_000
_class_serials = itertools.count(1)
# (kind, id(code), offset of the call) -> the class of every lock made there, for sites whose
# class depends on nothing else (no owner): one lookup instead of reading the line number.
_by_site: dict[tuple[str, int, int], LockClass] = {}
_site_codes: list[CodeType] = []
# (kind, id(code), offset) -> the local an attribute binding stores into, and
# ((kind, id(code), offset), id(owner's class)) -> the class of locks made there for it.
_attr_sites: dict[tuple[str, int, int], str] = {}
# The owner's class is kept weakly beside its class and checked on every hit: an id is reused
# once a class is gone (classes made in a test function, or per request), and a new class at
# that address must not take the old one's lock class.
_by_owner: dict[tuple[tuple[str, int, int], int], tuple[Any, LockClass]] = {}

# What the instruction after a call does with the value the call returns, by (code, offset of
# the call): bind it to a name, bind it to an attribute of a local (``self.lock = ...``),
# return it (a factory: its caller binds it), or something else (None). Read once per call
# site from the bytecode; bounded (past the bound, sites are read but not remembered).
Binding = tuple[str, str, str | None] | None  # (how: "name" | "attr" | "return", name, local)
_bindings: dict[tuple[CodeType, int], Binding] = {}
_offsets: dict[CodeType, tuple[list[int], list[Binding]]] = {}
_MAX_BINDING_SITES = 20000
_STORES = frozenset({"STORE_NAME", "STORE_FAST", "STORE_GLOBAL", "STORE_DEREF"})
_FACTORY_DEPTH = 2  # factories followed outwards to the name their result is bound to


def _read_bindings(code: CodeType) -> tuple[list[int], list[Binding]]:
    """For every instruction of ``code``: its offset and what the instructions from there
    do with the value on top of the stack (see ``_bindings``)."""
    import dis  # only on the first lock made by a code object

    ins = [(i.offset, i.opname, i.argval) for i in dis.get_instructions(code)]
    out: list[Binding] = []
    for k, (_, op, arg) in enumerate(ins):
        nxt = ins[k + 1] if k + 1 < len(ins) else None
        if op in _STORES and isinstance(arg, str):
            out.append(("name", arg, None))
        elif ((op.startswith("LOAD_FAST") or op == "LOAD_DEREF") and isinstance(arg, str)
              and nxt is not None
              and nxt[1] == "STORE_ATTR" and isinstance(nxt[2], str)):
            out.append(("attr", nxt[2], arg))
        elif op == "RETURN_VALUE":
            out.append(("return", "", None))
        else:
            out.append(None)
    return [o for o, _, _ in ins], out


def binding_at(code: CodeType, lasti: int) -> Binding:
    """What the code after the call running at ``lasti`` in ``code`` does with its result."""
    key = (code, lasti)
    try:
        return _bindings[key]
    except KeyError:
        pass
    table = _offsets.get(code)
    if table is None:
        try:
            table = _read_bindings(code)
        except Exception:  # a code object dis cannot read: no refinement
            table = ([], [])
        if len(_offsets) < _MAX_BINDING_SITES:
            _offsets[code] = table
    offsets, found = table
    i = bisect.bisect_right(offsets, lasti)  # the first instruction after the call
    result = found[i] if i < len(found) else None
    if len(_bindings) < _MAX_BINDING_SITES:
        _bindings[key] = result
    return result


def _type_name(t: type) -> str:
    """``module.QualName`` of a class, read from the type's own slots (a metaclass's
    ``__getattribute__`` is never called)."""
    try:
        module = type.__dict__["__module__"].__get__(t, type)
        qualname = type.__dict__["__qualname__"].__get__(t, type)
        return f"{module}.{qualname}" if isinstance(module, str) else str(qualname)
    except Exception:
        return "?"


type_name = _type_name  # for stuck.explore, which names owners as the runtime does


def _refinement(site: FrameType) -> tuple[str | None, str | None, Any, bool, Any]:
    """(binding, owner, key, fixed, owner object) for a lock made at ``site``: the name the new lock is
    bound to and the concrete class of the object holding it, following factories outwards
    (``self._jobs_lock = self._create_lock()``). ``key`` tells classes apart in ``_classes``;
    ``fixed``: every lock made at ``site`` gets this answer (no owner, no factory's caller).
    Reads the bytecode once per site and the frame's locals only for an attribute binding."""
    frame: FrameType | None = site
    for _ in range(_FACTORY_DEPTH + 1):
        if frame is None:
            return None, None, None, False, None
        b = binding_at(frame.f_code, frame.f_lasti)
        if b is None:
            return None, None, None, frame is site, None
        how, name, local = b
        if how == "return":
            frame = frame.f_back
            continue
        where = None if frame is site else (frame.f_code, frame.f_lasti)
        if how == "name":
            return name, None, (name, where), where is None, None
        owner_obj = frame.f_locals.get(local) if local is not None else None
        if owner_obj is None:
            return name, None, (name, where), False, None
        t = type(owner_obj)
        owner = _type_name(t)
        # id(t), not t: hashing a class may call its metaclass's __hash__
        return name, owner, (name, where, owner, id(t)), False, owner_obj
    return None, None, None, False, None


def lock_class(kind: str, name: str | None, frame: FrameType | None) -> LockClass:
    """The LockClass (creation site) of a new primitive whose constructor's caller is ``frame``
    (see ``lock_class_and_owner``)."""
    return lock_class_and_owner(kind, name, frame)[0]


_weakref = weakref.ref


def owner_ref(owner: Any) -> Any:
    """A weak reference to ``owner`` (None when there is none or it cannot be referenced
    weakly): what a primitive keeps of the object it was made an attribute of, so a report
    names that object without asking the garbage collector who refers to the primitive."""
    if owner is None:
        return None
    try:
        ref = _weakref(owner)
    except TypeError:
        return None
    note_owner(owner, _type_name(type(owner)).rsplit(".", 1)[-1])  # tags in creation order
    return ref


def lock_class_and_owner(kind: str, name: str | None, frame: FrameType | None
                         ) -> tuple[LockClass, Any]:
    """The LockClass (creation site) of a new primitive whose constructor's caller is
    ``frame``, and the object it is being made an attribute of (``self`` in ``self.lock =
    Lock()``; None when it is bound to a plain name or to nothing). Both are read from the
    constructing thread's own frames, the only frames whose locals stuck reads.

    The site is refined by the name the lock is bound to and the concrete class of its owner
    (``_refinement``): locks made by one line for different names or different classes of
    owner are distinct classes, as lockdep's static keys would make them."""
    site = user_frame(frame)
    code: CodeType | None = None
    site_key: tuple[str, int, int] | None = None
    if site is not None and name is None:
        code = site.f_code
        site_key = (kind, id(code), site.f_lasti)
        cls = _by_site.get(site_key)
        if cls is not None:  # a site whose class depends on nothing else (the common case)
            return cls, None
        local = _attr_sites.get(site_key)
        if local is not None:  # ``self.lock = Lock()``: by the concrete class of ``self``
            owner_obj = site.f_locals.get(local)
            owner_type = type(owner_obj)
            hit = _by_owner.get((site_key, id(owner_type)))
            if hit is not None and hit[0]() is owner_type:
                return hit[1], owner_obj
    line = site.f_lineno if site is not None else 0
    binding: str | None = None
    owner: str | None = None
    refined: Any = None
    fixed = False
    owner_obj = None
    if site is not None and site_key is not None:
        binding, owner, refined, fixed, owner_obj = _refinement(site)
    elif site is not None:
        code = site.f_code
    key = (kind, code, line, name, refined)
    cls = _classes.get(key)
    if cls is None:
        if site is None:
            cls = LockClass(kind, "?", 0, "?", name, next(_class_serials))
        else:
            c = site.f_code
            cls = LockClass(kind, c.co_filename, line or 0, c.co_name, name,
                            next(_class_serials), binding, owner)
        if len(_classes) >= _MAX_CLASSES:
            _classes.clear()
        _classes[key] = cls
    if site_key is not None and code is not None and len(_by_site) < _MAX_BINDING_SITES:
        if fixed:
            _by_site[site_key] = cls
            _site_codes.append(code)  # its id must not be reused by another code object
        elif owner is not None and refined[1] is None and len(_by_owner) < _MAX_BINDING_SITES:
            b = binding_at(code, site_key[2])
            type_ref = owner_ref(type(owner_obj))
            if b is not None and b[2] is not None and type_ref is not None:
                _attr_sites[site_key] = b[2]
                _by_owner[(site_key, refined[3])] = (type_ref, cls)
                _site_codes.append(code)
    return cls, owner_obj


def new_id(kind: str) -> str:
    return f"{kind}-{next(_ids)}"


# How many tracked primitives of each kind were made (reports say how much was checked).
made: dict[str, int] = {}


def register(obj: object, kind: str) -> str:
    """Give a tracked object its resource id and list it for snapshots."""
    resources.add(obj)
    made[kind] = made.get(kind, 0) + 1
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


# Each wait's serial number: what names it in a cycle's key. Not its id(): a record freed when
# its wait ended and a new one made at the same address (the same tasks deadlocking again after
# a retry) would read as the cycle already reported, and the policy would not act on it.
_serials = itertools.count()


class WaitRecord:
    """One thread about to block, or blocked: on what, where, since when, for how long.

    The caller's frame is kept only while the thread waits (the record is dropped when the wait
    ends); it is blocked at the waiting line all that time, so where it waits is read from it
    only when a report is built.
    """

    __slots__ = ("_frame", "op", "pending", "resource", "serial", "since", "timeout", "wakers")

    def __init__(self, resource: object, op: str, wakers: Wakers | None,
                 frame: FrameType | None, timeout: float | None) -> None:
        self.resource = resource
        self.op = op  # "acquire", "join", "put", "get", "wait", "result"
        self.wakers = wakers
        self.timeout = timeout
        self.since = _time()
        self._frame = frame
        self.pending = False  # closes a cycle not proven yet (see detect.wait)
        self.serial = next(_serials)

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


# Told of each wait before it is registered, in the waiting thread, once a kind of primitive
# needs to learn something only that thread can read (a pool worker's task: see
# ``futures.note_runner``); None until then. It must be cheap and never raise.
on_wait: Callable[[int], None] | None = None


def begin_wait(me: int, record: WaitRecord) -> WaitRecord | None:
    """Register that ``me`` is about to block; returns the record it replaces (nested waits)."""
    note = on_wait
    if note is not None:
        note(me)
    previous = waits.get(me)
    waits[me] = record
    return previous


def end_wait(me: int, previous: WaitRecord | None) -> None:
    if previous is None:
        waits.pop(me, None)
    else:
        waits[me] = previous


# ---------------------------------------------------------------------------------------------
# Epochs: a finding may rest only on a state that was true at one instant.
#
# Every tracked primitive keeps ``_stuck_epoch``, an integer its own operations move whenever
# they could end somebody's wait: a release, a notify, a set or clear, a put or get, an
# arrival. The increment is the whole cost on the hot path. A thread's wait is its WaitRecord,
# a new object for every wait. Two observations that find the same records and the same epochs
# prove that nothing those waits rest on moved in between: each of those threads was in that
# wait, and each primitive in that state, during the whole interval, so all of them together
# at any instant of it. (The increment is not atomic for primitives whose operations are not
# serialised by a lock of their own; a lost increment still moves the value.)


def epoch_of(obj: object) -> object:
    """A value that changes whenever ``obj`` does something that could end a wait on it."""
    tracked = as_tracked(obj)
    if tracked is not None:
        return tracked._stuck_epoch
    if isinstance(obj, threading.Thread):
        return obj.is_alive()
    return getattr(obj, "_state", None)  # a Future: PENDING, RUNNING, FINISHED, ...


class Observation:
    """The wait records and the epochs of the tracked primitives at one moment."""

    __slots__ = ("_seen", "epochs", "waits")

    def __init__(self) -> None:
        self.waits: dict[int, WaitRecord] = dict(waits)
        self.epochs: dict[int, object] = {}
        # What each id in ``epochs`` was: by weak reference where the object allows it, so an
        # observation adds no reference a report counts (``livereport._dropped`` tells a lock
        # the program dropped by its references). A waited-on object stays alive in its record.
        self._seen: list[Any] = []
        try:
            tracked = list(resources)
        except RuntimeError:  # the set changed while copied: read what the waits name
            tracked = []
        for obj in [r.resource for r in self.waits.values()] + tracked:
            key = id(obj)
            if key not in self.epochs:
                self.epochs[key] = epoch_of(obj)
                try:
                    self._seen.append(weakref.ref(obj))
                except TypeError:
                    self._seen.append(lambda obj=obj: obj)

    def objects(self) -> list[object]:
        """The objects observed that are still alive."""
        return [obj for ref in self._seen if (obj := ref()) is not None]

    def same_as(self, later: Observation, idents: set[int], objs: list[object]) -> bool:
        """True when each of ``idents`` is in the same wait in both observations and none of
        ``objs`` (nor what those waits are on) has moved in between."""
        for ident in idents:
            record = self.waits.get(ident)
            if record is None or later.waits.get(ident) is not record:
                return False
            objs = [*objs, record.resource]
        for obj in objs:
            key = id(obj)
            if key in self.epochs and later.epochs.get(key, self.epochs[key]) != \
                    self.epochs[key]:
                return False
            if key not in self.epochs and key in later.epochs:
                return False  # not seen at the first observation: it is new
        return True


# Threads stuck runs itself (the watchdog): not the program's, so left out of every report.
own_idents: set[int] = set()

# Threads started with ``_thread.start_new_thread`` (``runtime.threads.start_counted``) that
# have not begun to run: each can still release any Lock, though no stack and no wait of it can
# be seen yet. (A ``threading.Thread`` is running when its ``start()`` returns.)
_starting_lock = _thread.allocate_lock()  # a leaf lock: only the count below, under it
_starting = 0


def threads_starting() -> int:
    """How many threads started with ``_thread.start_new_thread`` have not begun to run."""
    return _starting


def thread_starting() -> None:
    global _starting
    with _starting_lock:
        _starting += 1


def thread_begun() -> None:
    global _starting
    with _starting_lock:
        _starting -= 1


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


# pytest leaves these frames out of the tracebacks it shows (STUCK_DEBUG=1 keeps them): a
# program's wait passes through them, plain Python's does not (stuck.tracebacks).
__tracebackhide__ = _hide_in_pytest()

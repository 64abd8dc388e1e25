"""The lock-order checker: lockdep for Python.

A deadlock needs two threads taking the same locks in opposite orders *at the same time*; the
orders themselves show up in any run that executes both code paths once, even one after the
other. This checker records, for every lock *class* (where the lock was made, see
``stuck.runtime.hooks.LockClass``), which classes were held when it was taken: an edge
``held -> taken`` in the order graph. A cycle in that graph is a potential deadlock, reported
with both witness stacks of every edge, long before the program hangs in production.

Rules that keep it from crying wolf (each is tested in ``tests/lockorder``):

- ``acquire(blocking=False)`` cannot block, so it adds no edge *into* the tried lock; once
  held, later blocking acquires add edges *out of* it.
- a timed acquire (``acquire(timeout=...)``) gives up instead of deadlocking: a cycle through
  such an edge is reported separately, as a latency / livelock risk (``strict`` reports it as a
  deadlock).
- re-entering an RLock its owner holds adds nothing (the runtime does not report re-entry).
- a class whose locks are ever released by a thread other than the one that took them is used
  as a signal, not as a mutex: it is dropped from the graph, and cycles through it retracted.
- ``Condition.wait`` releases its lock for the duration of the wait.
- nesting two locks of the same class is its own finding (*same-class nesting*), unless the
  program declares their order with ``order_by(lock, key)``: keyed locks of one class become
  distinct nodes ``Class[key]``, so a consistent key order is silent and an inconsistent one is a
  cycle like any other.
- an order seen only within one thread is reported with lower confidence (``possible``) than
  one whose edges were taken by two or more threads (``probable``).

Cost: the held stack of each thread carries a *chain id* (the interned sequence of classes
held), and each thread caches the ``(chain, class)`` patterns already checked for it, so a
repeated pattern costs one dictionary lookup and one tuple; stacks are walked only when a new
edge appears. The stack is a linked list of immutable entries (see ``Entry``) rather than a
Python list: pushing and popping are then a store into a one-item list, with no method call. When this checker is the only observer, the tracked Lock and RLock do that
common case themselves, without calling it (``inline_state``, ``hooks.InlineState``): the
checker's hooks run only for new patterns, try and timed acquires, out-of-order releases and
releases by another thread. Memory is bounded (``max_edges``, ``max_classes``, ``max_chains``,
``max_findings``); reaching a bound is written to stderr once and listed in ``notes()``.
A class (or a keyed sub-class) costs about 250 bytes; an edge about 1 KB plus its witness
stacks (at most 3 witnesses of 24 frames each: up to about 10 KB); the defaults (100,000
classes, 20,000 edges, 100,000 chains) keep the graph under about 25 MB for classes and
200 MB for edges in the worst case, far less in practice. Interning a class, declaring an
order and pushing a pattern are O(1) amortised. Past ``max_classes``, locks given an
``order_by`` key are checked as instances of their class (see ``_nest``) rather than as
keyed sub-classes, and a new class makes room by forgetting the least recently used eighth
of the classes with their edges (``_evict_locked``), and so does a new edge past
``max_edges``: never a class a thread holds, one a
finding names or one dropped as a signal. So memory stays within the bounds above however many
classes a run makes (a program generating a class per request, per plugin), new classes keep
being checked, and the cost is O(1) amortised per new class. What is lost is said once, on
stderr and in the report: an order seen only before its classes were forgotten is not compared
with the reverse order seen after.

Same-class nesting (two locks of one class held at once) is decided per *instance*: each
class keeps the order in which its instances were nested, and reports only instances seen
nested both ways, or, past ``MAX_INSTANCE_EDGES`` pairs, pairs that do not follow the order
the locks were made in. A lock's class is its creation site refined by the name it is bound to
and its owner's concrete class (``registry.lock_class``), so a handler's ``self.lock`` nesting
its target handler's ``self.lock`` is an order between two classes.
"""

from __future__ import annotations

import _thread
import contextlib
import itertools
import linecache
import os
import re
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Final, Literal

from stuck import compat
from stuck.model import Confidence, Finding
from stuck.runtime import hooks, patch, registry
from stuck.runtime.hooks import AcquireMode, LockClass
from stuck.runtime.tracked import as_tracked
from stuck.tracebacks import hide_in_pytest as _hide_in_pytest

Variant = Literal["deadlock", "timed", "same-class"]
StackEntry = tuple[str, str, int]  # function, file, line; innermost first
# One lock a thread holds: (lock, node, code and instruction offset of the acquiring frame
# (``f_lasti``: reading ``f_lineno`` costs a line-table scan on every acquire), that frame's
# caller, chain id, mode). The acquiring frame itself is not kept: it may have the lock in a
# local variable, and keeping it would keep the lock alive after the program dropped it.
Held = tuple[object, int, Any, int, int]
CHAIN: Final = 4
# The same, as a thread's stack keeps it: ``(lock, hit, code, lasti, below)``, where ``below``
# is the entry under it (the thread's root entry at the bottom, whose ``below`` is None) and
# ``hit`` is ``(node, chain, level)``: ``level`` is the thread's cache for patterns on top of
# ``chain`` (class serial -> the ``hit`` of a lock of that class pushed there). A hit is shared
# by every entry of its pattern, so a cached push builds one tuple and stores it.
Entry = tuple[object, tuple[int, int, "Level"], Any, int, Any]
Level = dict[int, tuple[int, int, Any]]
_NO_LEVEL: Level = {}  # the level of an uncached chain: never written, so every lookup misses

_allocate_lock: Any = patch.original(_thread, "allocate_lock")

MAX_WITNESS_FRAMES = 24
MAX_HELD = 48  # locks held at once by one thread that are tracked (lockdep: MAX_LOCK_DEPTH)
MAX_WITNESSES_PER_EDGE = 3  # first seen, first from another thread, first blocking
CYCLES_PER_EDGE = 16  # distinct cycles reported for one new edge
SEARCH_BUDGET = 20000  # graph steps spent enumerating the cycles one new edge closes
_MULTI = -1  # chain-cache value: checked by two or more threads
_CHAIN_BASE = 1 << 40  # chain ids of two or more locks; a single lock's chain is its node id

# ---------------------------------------------------------------------------------------------
# Declared order keys (``order_by``), shared by every checker.

_order_keys: dict[int, Hashable] = {}
_order_refs: dict[int, object] = {}  # strong refs to locks that cannot be weakly referenced


def _plain_key(key: object) -> bool:
    if type(key) in (int, str, float, bool):
        return True
    return type(key) is tuple and all(_plain_key(k) for k in key)


def _forget_key(lock_id: int) -> None:
    _order_keys.pop(lock_id, None)


OrderKey = int | str | float | tuple[Any, ...]


def order_by(lock: object, key: OrderKey) -> object:
    """Declare where ``lock`` stands among the locks of its class; returns ``lock``.

    Nesting two locks made by the same line (one per account, one per fork) is reported as
    *same-class nesting* unless the program takes them in a declared order: give each an
    ordering key (``stuck.order_by(account.lock, account.id)``) and the checker treats
    ``Class[key]`` as distinct classes, silent while every thread takes them in one order and
    reporting a cycle when two orders meet.

    ``key`` is an int, str, float or a tuple of them: it is hashed inside the checker, where
    calling the program's own ``__hash__`` could take a lock.
    """
    if not _plain_key(key):
        raise TypeError(f"stuck.order_by: the key must be an int, str, float or a tuple of "
                        f"them, not {type(key).__name__}; pass a plain value such as an id")
    lock_id = id(lock)
    first = not _order_keys
    _order_keys[lock_id] = key
    if first and _checker is not None:
        # Keyed locks take the slow path (their node depends on the key), and nothing is
        # cached while any key exists: the caches are emptied once, when the first key comes,
        # so each declaration costs O(1) (emptying them on every call made n declarations
        # cost O(n^2) once the caches had grown).
        _checker._clear_fast()
    try:
        weakref.finalize(lock, _forget_key, lock_id)
    except TypeError:  # not weakly referenceable: keep it alive so its id is not reused
        _order_refs[lock_id] = lock
    return lock


# ---------------------------------------------------------------------------------------------
# The graph's records. Everything here is created on the slow path only.


@dataclass(slots=True)
class Witness:
    """One observation of an edge: thread ``thread`` held ``held`` (taken at ``held_at``) and
    took the new lock at ``taken_at``."""

    thread: str
    thread_serial: int
    time: float
    mode: AcquireMode
    held_at: tuple[StackEntry, ...]
    taken_at: tuple[StackEntry, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "thread": self.thread,
            "time": self.time,
            "mode": self.mode,
            "held_at": [{"function": f, "file": p, "line": n} for f, p, n in self.held_at],
            "taken_at": [{"function": f, "file": p, "line": n} for f, p, n in self.taken_at],
        }


@dataclass(slots=True)
class OrderEdge:
    src: int
    dst: int
    timed: bool  # every acquisition seen along this edge had a timeout
    first_serial: int
    multi_thread: bool = False
    witnesses: list[Witness] = field(default_factory=list)


@dataclass(slots=True)
class _Node:
    cls: LockClass
    base: int  # the node of the class itself (differs for keyed sub-classes)
    key: Hashable | None = None
    keyed: bool = False


@dataclass(slots=True)
class _Cycle:
    nodes: tuple[int, ...]  # n0 -> n1 -> ... -> n0
    variant: Variant
    signature: str
    found_at: float


@dataclass(slots=True)
class _SameClass:
    node: int
    witness: Witness
    serials: set[int]
    signature: str
    # "both-orders": instances seen nested both ways (``other``: the reverse order's first
    # step, None when its stack was not kept); "no-order": more pairs than are tracked and
    # they do not follow the order the locks were made in; "untracked": more classes nest
    # their own locks than are tracked, so no instance order was kept for this one.
    reason: str = "both-orders"
    other: Witness | None = None
    instances: tuple[int, int] = (0, 0)
    other_to: int = 0  # the instance ``other`` took after #y on the way back to #x


_SAME_CLASS_REASONS = ("both-orders", "no-order", "untracked")

MAX_INSTANCE_EDGES = 4096  # pairs of instances of one class remembered in nesting order
MAX_INSTANCE_WITNESSES = 64  # of those, the pairs whose stacks are kept
# Over all classes: about 100 bytes a pair and up to 4 KB a kept witness, so at most about
# 20 MB and 8 MB; past them a class orders its new pairs by creation order only.
MAX_INSTANCE_EDGES_TOTAL = 200_000
MAX_INSTANCE_WITNESSES_TOTAL = 2_000
MAX_INSTANCE_CLASSES = 1000  # classes whose instances are ordered


@dataclass(slots=True)
class _Instances:
    """In which order the locks (instances) of one class were nested, so that nesting two locks
    of a class is reported only when an order between them cannot be shown (see ``_nest``).
    Instances are named by their creation serial (never reused)."""

    out: dict[int, dict[int, int]] = field(default_factory=dict)  # x -> y -> thread serial
    witnesses: dict[tuple[int, int], Witness] = field(default_factory=dict)
    edges: int = 0
    full: bool = False  # no more pairs are remembered (a bound): creation order decides
    ascending: int = 0  # pairs nested in the order the locks were made in
    descending: int = 0  # pairs nested in the reverse order

    def path(self, start: int, goal: int) -> list[int] | None:
        """A path ``start ~> goal`` in the nesting order (at most ``edges`` steps)."""
        return shortest_path(self.out, start, goal)


def shortest_path(out: Mapping[int, Iterable[int]], start: int, goal: int) -> list[int] | None:
    """The shortest path ``start ~> goal`` along ``out`` (node -> the nodes it leads to), both
    ends included; None when there is none. Breadth first, each node visited once."""
    parent = {start: start}
    todo = deque([start])
    while todo:
        n = todo.popleft()
        if n == goal:
            path = [n]
            while n != start:
                n = parent[n]
                path.append(n)
            path.reverse()
            return path
        for m in out.get(n, ()):
            if m not in parent:
                parent[m] = n
                todo.append(m)
    return None


def _instance(lock: object) -> int:
    """A lock's creation serial (its resource id's number: unique, in order of creation)."""
    tracked = as_tracked(lock)
    rid = tracked._stuck_id if tracked is not None else None
    if isinstance(rid, str):
        tail = rid.rpartition("-")[2]
        if tail.isdigit():
            return int(tail)
    return id(lock)


# A thread's cache of ``took``: chain on top of its held stack (0: empty) -> its level (see
# ``Entry``), for patterns checked for this thread or for every thread. Levels are emptied,
# never replaced, when an answer in them may change: entries keep pointing at them.
Successors = dict[int, Level]
# What hooks.InlineState.threads maps an ident to: ``[top entry, successors]``.
ThreadEntry = list[Any]


def _entries(stack: ThreadEntry) -> list[Held]:
    """A thread's held stack as a list, bottom first (for the slow paths)."""
    out: list[Held] = []
    e = stack[0]
    while e[4] is not None:
        hit = e[1]
        out.append((e[0], hit[0], e[2], e[3], hit[1]))
        e = e[4]
    out.reverse()
    return out


class _ForgetAtExit:
    """Kept in a thread's ``_ThreadState``: dropped when the thread ends, and then removes the
    thread's entry from the entries by ident, so a new thread given the same ident is never
    matched to it (the primitives would otherwise push onto the dead thread's stack)."""

    __slots__ = ("entry", "ident", "threads")

    def __init__(self, threads: dict[int, ThreadEntry], ident: int, entry: ThreadEntry) -> None:
        self.threads = threads
        self.ident = ident
        self.entry = entry

    def __del__(self) -> None:
        try:  # no module globals: this may run at interpreter shutdown
            if self.threads.get(self.ident) is self.entry:
                self.threads.pop(self.ident, None)
        except Exception:
            pass


class _ThreadState(_thread._local):
    """Per-thread state; ``_thread._local`` is cleaned up by the interpreter at thread exit."""

    stack: ThreadEntry
    fast: Successors
    root: Entry
    serial: int
    forget: _ForgetAtExit | None

    def __init__(self, threads: dict[int, ThreadEntry] | None = None) -> None:
        self.fast = {0: {}}
        self.root = (None, (0, 0, self.fast[0]), None, -1, None)
        self.stack = [self.root, self.fast]
        self.serial = next(_serials)
        self.forget = None
        if threads is not None:  # the checker's view of all threads
            ident = _thread.get_ident()
            threads[ident] = self.stack
            self.forget = _ForgetAtExit(threads, ident, self.stack)


_serials = itertools.count(1)
_THREADING_FILE = threading.__file__
_BOOTSTRAP = frozenset({"run", "_bootstrap_inner", "_bootstrap"})


def _qualname(code: Any, frame: FrameType | None) -> str:
    """``Class.method`` for a witness line. Python 3.11+ keeps it on the code object; on 3.10 a
    method's class is read from its first argument when the frame is at hand (slow path only)."""
    qualname = getattr(code, "co_qualname", None)
    if qualname is not None:
        return str(qualname)
    name = str(code.co_name)
    if frame is not None and code.co_argcount and code.co_varnames[0] in ("self", "cls"):
        first = frame.f_locals.get(code.co_varnames[0])
        if first is not None:
            owner = first if isinstance(first, type) else type(first)
            return f"{owner.__name__}.{name}"
    return name


def _stack(frame: FrameType | None, line: int, limit: int = MAX_WITNESS_FRAMES
           ) -> tuple[StackEntry, ...]:
    """A compact stack from ``frame`` outwards; ``line`` is the line the frame was at."""
    out: list[StackEntry] = []
    f = frame
    while f is not None and len(out) < limit:
        code = f.f_code
        if code.co_filename == _THREADING_FILE and code.co_name in _BOOTSTRAP:
            break  # Thread.run and the bootstrap below it say nothing
        if code in registry.boundary_codes:
            break  # where `stuck run` starts the program
        name = _qualname(code, f)
        out.append((name, code.co_filename, line if f is frame else (f.f_lineno or 0)))
        f = f.f_back
    return tuple(out)


def _line_at(code: Any, lasti: int) -> int:
    """The source line of the instruction at byte offset ``lasti`` in ``code``."""
    if lasti >= 0:
        for start, end, line in code.co_lines():
            if start <= lasti < end and line is not None:
                return int(line)
    return int(code.co_firstlineno)


def _held_stack(code: Any, lasti: int, now: FrameType | None) -> tuple[StackEntry, ...]:
    """The stack where a held lock was taken: its frame as it was then, its callers as now.

    The hot path keeps only the acquiring frame's code and offset (keeping a frame would keep
    its locals, and reading ``f_back`` can allocate), so the callers are found on the slow path
    in the stack of the acquire being checked (``now``): below the frame running that code when
    it is still running (the usual case: the lock is held inside the function that took it),
    else below ``now`` (the function that took it has returned to a caller still running)."""
    if code is None:
        return ()
    callers = now
    f = now
    while f is not None:
        if f.f_code is code:
            callers = f.f_back
            break
        f = f.f_back
    first = (_qualname(code, f), code.co_filename, _line_at(code, lasti))
    return (first, *_stack(callers, callers.f_lineno if callers is not None else 0,
                           MAX_WITNESS_FRAMES - 1))


_refcount: Any = compat.refcount  # CPython only


def _only_held_by_us(entry: Held, entries: int = 1) -> bool:
    """True when nothing but the ``entries`` entries of this thread's stack (each in its
    ``Entry`` and in the ``Held`` list of the slow path) references the lock."""
    return bool(_refcount(entry[0]) - 2 * (entries - 1) <= _ABANDONED_REFS)


def _held_shape() -> int:
    """The reference count ``_only_held_by_us`` sees for an object only one stack entry holds
    (its ``Entry`` and the ``Held`` tuple made from it)."""
    linked: Entry = (object(), (0, 0, _NO_LEVEL), None, 0, None)
    entry: Held = (linked[0], 0, None, 0, 0)
    return int(_refcount(entry[0]))


_ABANDONED_REFS = compat.calibrate_refcount(_held_shape)


def _thread_name() -> str:
    t = threading._active.get(_thread.get_ident())  # type: ignore[attr-defined]
    if t is not None:
        return str(t.name)
    return f"thread {_thread.get_ident()}"


class LockOrderChecker:
    """A ``hooks.LockObserver`` that builds the lock-order graph and reports its cycles."""

    def __init__(self, *, strict: bool = False, max_edges: int = 20000,
                 max_classes: int = 100000, max_chains: int = 100000,
                 max_findings: int = 1000) -> None:
        self.strict = strict
        self.max_edges = max_edges
        self.max_classes = max_classes
        self.max_chains = max_chains
        self.max_findings = max_findings
        self._mutex = _allocate_lock()
        # every live thread's held stack by ident (removed when the thread ends): the tracked
        # primitives' inline path (inline_state) and references() read it; the hooks reach a
        # thread's own stack through _tls
        self._threads: dict[int, ThreadEntry] = {}
        self._tls = _ThreadState(self._threads)
        # interning: LockClass -> node id (by identity first, by value on a miss)
        self._node_by_cls_id: dict[int, int] = {}
        # id(cls) -> cls for every id in _node_by_cls_id: its id must not be reused by another
        # object while it is a key there
        self._cls_keepalive: dict[int, LockClass] = {}
        self._node_by_cls: dict[LockClass, int] = {}
        self._node_by_key: dict[tuple[int, Hashable], int] = {}
        # node id -> node. Ids are never reused (node 0 means "not checked"): an id a thread
        # read before its class was evicted names nothing afterwards (see ``_evict_locked``).
        self._nodes: dict[int, _Node] = {}
        self._node_ids = itertools.count(1)
        # Eviction (past max_classes): the round in which each node was last used on a slow
        # path; every round empties the caches, so a class in use is seen again in the next.
        self._used: dict[int, int] = {}
        self._round = 1
        self._evicted = 0
        self._chain_ids = itertools.count(_CHAIN_BASE)
        self._signals: set[int] = set()  # base nodes dropped as signals
        self._signal_nodes: set[int] = set()  # those and their keyed sub-classes
        self._signal_labels: dict[int, str] = {}
        # the graph
        self._out: dict[int, dict[int, OrderEdge]] = {}
        self._edge_count = 0
        # caches: stack chains and the (chain, node, mode) triples already checked
        self._chains: dict[tuple[int, int], int] = {}
        self._checked: dict[tuple[int, int, str], int] = {}
        # results
        self._cycles: dict[str, _Cycle] = {}
        self._same_class: dict[int, _SameClass] = {}
        self._instances: dict[int, _Instances] = {}  # base node -> its instances' order
        self._instance_edges = 0  # pairs remembered over all classes
        self._instance_witnesses = 0
        self._notes: list[str] = []
        self._bounds_hit: set[str] = set()
        self._retracted = 0
        self.generation = 0  # bumps whenever a finding is added: cheap "anything new?" check

    # -- hot path ------------------------------------------------------------------------

    def _node(self, lock: object, cls: LockClass) -> int:
        n = self._node_by_cls_id.get(id(cls))
        if n is None:
            n = self._intern(cls)
        if _order_keys:
            k = _order_keys.get(id(lock))
            if k is not None:
                n = self._node_by_key.get((n, k)) or self._intern_key(n, k)
        self._used[n] = self._round
        return n

    # The three hooks below run on every acquire and release of a tracked lock: they are
    # written for speed (locals over attributes, no helper calls on the common path).

    def before_acquire(self, lock: object, cls: LockClass, mode: AcquireMode,
                       frame: FrameType | None) -> None:
        if mode == "try":
            return  # cannot block: no edge into the tried lock
        st = self._tls
        top = st.stack[0]
        if top[4] is None:  # nothing held
            return
        node = self._node_by_cls_id.get(id(cls))
        if node is None or _order_keys:
            node = self._node(lock, cls)
        if not node or node in self._signal_nodes:
            return
        self._used[node] = self._round
        done = self._checked.get((top[1][1], node, mode))
        if done is not None and (done == _MULTI or done == st.serial):
            return
        self._check(st, lock, node, mode, frame)

    def acquired(self, lock: object, cls: LockClass, mode: AcquireMode,
                 frame: FrameType | None) -> None:
        node = self._node_by_cls_id.get(id(cls))
        if node is None or _order_keys:
            node = self._node(lock, cls)
        if not node or node in self._signal_nodes:
            return
        self._used[node] = self._round
        self._push(self._tls, lock, node, frame)

    def took(self, lock: object, cls: LockClass, frame: FrameType | None) -> None:
        """A blocking acquire that succeeded at once: ``before_acquire`` + ``acquired`` in one
        call. A pattern already checked (the same class taken on top of the same chain of held
        classes) is one dictionary lookup and one tuple."""
        st = self._tls
        stack = st.stack
        top = stack[0]
        hit = top[1][2].get(cls.serial)  # never filled while order keys exist
        if hit is not None:
            if frame is not None:
                stack[0] = (lock, hit, frame.f_code, frame.f_lasti, top)
            else:
                stack[0] = (lock, hit, None, -1, top)
            return
        self._took_slow(st, lock, cls, frame)

    def _took_slow(self, st: _ThreadState, lock: object, cls: LockClass,
                   frame: FrameType | None) -> None:
        node = self._node(lock, cls)
        if not node or node in self._signal_nodes:
            return
        top = st.stack[0]
        before = top[1][1]
        if top[4] is not None:
            done = self._checked.get((before, node, "blocking"))
            if done is None or (done != _MULTI and done != st.serial):
                self._check(st, lock, node, "blocking", frame)
        if not self._push(st, lock, node, frame) or _order_keys:
            return
        # Cache the pattern when the held stack was left as it was (nothing abandoned) and
        # the check is recorded for this thread (or for all).
        pushed = st.stack[0]
        below = pushed[4][1]
        prev = below[1]
        if prev != before or pushed[1][1] < 0 or not cls.serial:
            return
        done = _MULTI if prev == 0 else self._checked.get((prev, node, "blocking"))
        if done == _MULTI or done == st.serial:
            level = below[2]
            if level is not _NO_LEVEL and len(level) < self.max_classes:
                level[cls.serial] = pushed[1]

    def _level(self, fast: Successors, chain: int) -> Level:
        """The thread's cache level on top of ``chain`` (made on first use, within bounds)."""
        if chain < 0:
            return _NO_LEVEL
        level = fast.get(chain)
        if level is None:
            if len(fast) >= self.max_chains:
                return _NO_LEVEL
            level = fast[chain] = {}
        return level

    def _store(self, st: _ThreadState, held: list[Held]) -> None:
        """Make ``held`` (bottom first) the thread's stack (after a slow-path change)."""
        e = st.root
        fast = st.fast
        for lock, node, code, lasti, chain in held:
            e = (lock, (node, chain, self._level(fast, chain)), code, lasti, e)
        st.stack[0] = e

    def _push(self, st: _ThreadState, lock: object, node: int,
              frame: FrameType | None) -> bool:
        top = st.stack[0]
        depth = 0
        e = top
        while e[4] is not None:
            depth += 1
            e = e[4]
        if depth >= MAX_HELD:
            held = _entries(st.stack)
            if self._drop_abandoned(held):
                self._store(st, held)
            if len(held) >= MAX_HELD:
                self._bound("held", f"a thread held more than {MAX_HELD} locks at once; "
                                    "locks taken deeper than that are not checked")
                return False
            top = st.stack[0]
        if top[4] is not None:  # the chain of one lock is its node; longer chains are interned
            prev = top[1][1]
            chain = self._chains.get((prev, node))
            if chain is None:
                chain = self._new_chain(prev, node)
        else:
            chain = node
        hit = (node, chain, self._level(st.fast, chain))
        if frame is not None:
            st.stack[0] = (lock, hit, frame.f_code, frame.f_lasti, top)
        else:
            st.stack[0] = (lock, hit, None, -1, top)
        return True

    def released(self, lock: object, cls: LockClass, by_owner: bool) -> None:
        st = self._tls
        top = st.stack[0]
        if top[0] is lock and by_owner:
            st.stack[0] = top[4]
            return
        held = _entries(st.stack)
        for i in range(len(held) - 1, -1, -1):
            if held[i][0] is lock:
                del held[i]
                self._rechain(held, i)
                self._store(st, held)
                break
        if not by_owner:
            self._mark_signal(lock, cls)

    def references(self, lock: object) -> int:
        """How many held-stack entries, over all threads, keep ``lock`` alive (for reports:
        a lock only the checker references was dropped by the program)."""
        count = 0
        for stack in list(self._threads.values()):  # a thread's entry goes when it ends
            e = stack[0]
            while e[4] is not None:
                count += e[0] is lock
                e = e[4]
        return count

    def inline_state(self) -> hooks.InlineState:
        """The held stacks and the cache of ``took`` for the tracked primitives to update
        inline on the common path (``hooks.InlineState``): the same objects the hooks use,
        so the two paths see one state. ``took`` fills the caches; ``released`` pops like the
        inline release."""
        return hooks.InlineState(self._threads)

    def _clear_fast(self) -> None:
        """Forget every thread's cache of ``took`` (an answer it holds may have changed).
        The levels are emptied in place: stack entries point at them."""
        for stack in list(self._threads.values()):
            for level in list(stack[1].values()):
                level.clear()

    # -- slow path -----------------------------------------------------------------------

    def _intern(self, cls: LockClass) -> int:
        with self._mutex:
            n = self._node_by_cls.get(cls)
            if n is None:
                if len(self._nodes) >= self.max_classes and not self._evict_locked():
                    self._bound_locked("classes", f"more than {self.max_classes} lock classes "
                                       "held or named by a finding at once; locks of new "
                                       "classes are not checked until some are released")
                    return 0
                n = next(self._node_ids)
                self._nodes[n] = _Node(cls, n)
                self._node_by_cls[cls] = n
                self._used[n] = self._round
            if len(self._node_by_cls_id) < 4 * self.max_classes:
                self._node_by_cls_id[id(cls)] = n
                self._cls_keepalive[id(cls)] = cls
            return n

    def _evict_locked(self, keep: set[int] | None = None) -> bool:
        """Make room for new classes: forget about an eighth of ``max_classes``, the classes
        least recently used (not used since the last eviction first), with their edges.
        Never a class a thread holds a lock of, one a finding names, one dropped as a signal,
        or one whose ``order_by`` sub-classes are still known. Their orders are forgotten:
        an order seen only before a class was evicted and its reverse only after is not
        found (said once, on stderr and in the report). Every cache is emptied, so the classes
        in use are seen again, and marked as used, in the next round. Mutex held.

        O(classes + edges) per round, once per ``max_classes // 8`` new classes: O(1)
        amortised per new class."""
        keep = set(keep or ())
        keep.update(self._signal_nodes)
        keep.update(self._same_class)
        for cyc in self._cycles.values():
            keep.update(cyc.nodes)
        for stack in list(self._threads.values()):
            e = stack[0]
            while e[4] is not None:
                keep.add(e[1][0])
                e = e[4]
        keep.update(rec.base for rec in self._nodes.values() if rec.keyed)
        want = max(1, self.max_classes // 8)
        victims: set[int] = set()
        for old in (True, False):  # not used since the last round first, then the rest
            for n in list(self._nodes):
                if len(victims) >= want:
                    break
                if n not in keep and (self._used.get(n, 0) < self._round) == old:
                    victims.add(n)
        if not victims:
            return False
        for n in victims:
            rec = self._nodes.pop(n)
            self._used.pop(n, None)
            if rec.keyed:
                self._node_by_key.pop((rec.base, rec.key), None)
            elif self._node_by_cls.get(rec.cls) == n:
                del self._node_by_cls[rec.cls]
            inst = self._instances.pop(n, None)
            if inst is not None:
                self._instance_edges -= inst.edges
                self._instance_witnesses -= len(inst.witnesses)
            self._edge_count -= len(self._out.pop(n, {}))
        for out in self._out.values():
            for n in victims & out.keys():
                del out[n]
                self._edge_count -= 1
        for cid, n in list(self._node_by_cls_id.items()):
            if n in victims:
                del self._node_by_cls_id[cid]
                self._cls_keepalive.pop(cid, None)
        # Chains and checked patterns may name an evicted node: start them afresh (chain ids
        # keep counting up, so an id a held stack still carries is never given again).
        self._chains.clear()
        self._checked.clear()
        self._clear_fast()
        self._round += 1
        self._evicted += len(victims)
        self._bound_locked("evicted", f"more than {self.max_classes} lock classes or "
                           f"{self.max_edges} orders: the least recently used classes are "
                           "forgotten with their orders to make room (an order seen only "
                           "before its classes were forgotten is not compared with what came "
                           "after)")
        return True

    def _intern_key(self, base: int, key: Hashable) -> int:
        if not base:
            return 0
        with self._mutex:
            n = self._node_by_key.get((base, key))
            if n is None:
                if len(self._nodes) >= self.max_classes:
                    self._bound_locked("keys", f"more than {self.max_classes} lock classes; "
                                       "locks given an order_by key since are checked as "
                                       "locks of their class (the order of their instances)")
                    return base
                rec = self._nodes.get(base)
                if rec is None:
                    return 0  # its class was just forgotten (evicted)
                n = next(self._node_ids)
                self._nodes[n] = _Node(rec.cls, base, key, True)
                self._node_by_key[(base, key)] = n
                self._used[n] = self._round
            return n

    def _new_chain(self, prev: int, node: int) -> int:
        with self._mutex:
            chain = self._chains.get((prev, node))
            if chain is None:
                if len(self._chains) >= self.max_chains:
                    self._bound_locked("chains", f"more than {self.max_chains} distinct "
                                       "lock chains; repeated patterns are re-checked edge by "
                                       "edge (slower, still correct)")
                    return -2  # uncached: never matches a cached triple
                chain = next(self._chain_ids)
                self._chains[(prev, node)] = chain
            return chain

    def _rechain(self, held: list[Held], start: int) -> None:
        """Recompute the chain ids after an out-of-order release at ``start``."""
        prev = held[start - 1][CHAIN] if start > 0 else 0
        for i in range(start, len(held)):
            lock, node, code, line, _ = held[i]
            if i == 0:
                chain = node
            else:
                chain = self._chains.get((prev, node)) or self._new_chain(prev, node)
            held[i] = (lock, node, code, line, chain)
            prev = chain

    def _drop_abandoned(self, held: list[Held]) -> bool:
        """Forget held locks the program no longer references (acquired, never released,
        then dropped): nobody can release them, and they are not held in any useful sense.
        Without this, a test that leaves a lock acquired makes every later lock of that
        thread look ordered after it. ``held`` is the list ``_entries`` made; True when it
        changed (the caller stores it back)."""
        if _refcount is None:
            return False
        times: dict[int, int] = {}  # a semaphore taken twice is in two entries
        for entry in held:
            times[id(entry[0])] = times.get(id(entry[0]), 0) + 1
        changed = False
        for i in range(len(held) - 1, -1, -1):
            if _only_held_by_us(held[i], times[id(held[i][0])]):
                del held[i]
                self._rechain(held, i)
                changed = True
        return changed

    def _check(self, st: _ThreadState, lock: object, node: int, mode: AcquireMode,
               frame: FrameType | None) -> None:
        """Add the edges from every held class to ``node``; report what they close."""
        held = _entries(st.stack)
        if self._drop_abandoned(held):
            self._store(st, held)
        if not held:
            return
        serial = self._tls.serial
        nodes = self._nodes
        rec = nodes.get(node)
        if rec is None:
            return  # its class was forgotten (evicted) since this thread looked it up
        new_base = rec.base
        cacheable = True
        taken_at: tuple[StackEntry, ...] | None = None
        name: str | None = None
        for h_lock, h_node, h_code, h_lasti, _ in held:
            if h_lock is lock:
                cacheable = False  # the same lock again (a semaphore): not an order
                continue
            h_rec = nodes.get(h_node)
            if h_rec is None:
                continue
            h_base = h_rec.base
            if h_base in self._signals:
                continue
            if h_base == new_base and not (h_rec.keyed and rec.keyed):
                cacheable = False  # each pair of instances is checked: see _nest
                self._nest(h_lock, h_code, h_lasti, lock, node, frame, serial, mode)
                continue
            edge = self._out.get(h_node, {}).get(node)
            timed = mode == "timed"
            if (edge is not None and (edge.multi_thread or edge.first_serial == serial)
                    and (timed or not edge.timed)):
                continue  # nothing new
            if taken_at is None:
                taken_at, name = _stack(frame, frame.f_lineno if frame else 0), _thread_name()
            assert name is not None
            witness = Witness(name, serial, time.time(), mode,
                              _held_stack(h_code, h_lasti, frame), taken_at)
            self._add_edge(h_node, node, timed, serial, witness)
        if cacheable and held[-1][CHAIN] > 0:
            key = (held[-1][CHAIN], node, mode)
            with self._mutex:
                before = self._checked.get(key)
                if before is None and len(self._checked) < self.max_chains:
                    self._checked[key] = serial
                elif before is not None and before != serial:
                    self._checked[key] = _MULTI

    def _add_edge(self, src: int, dst: int, timed: bool, serial: int, witness: Witness) -> None:
        search = False
        with self._mutex:
            src_rec, dst_rec = self._nodes.get(src), self._nodes.get(dst)
            if src_rec is None or dst_rec is None:
                return  # a class forgotten (evicted) since the caller looked it up
            if src_rec.base in self._signals or dst_rec.base in self._signals:
                return
            out = self._out.setdefault(src, {})
            edge = out.get(dst)
            if edge is None:
                if self._edge_count >= self.max_edges:
                    # Make room as for classes: forget the least recently used classes and
                    # their edges (never the two this edge joins).
                    self._evict_locked(keep={src, dst})
                    out = self._out.setdefault(src, {})
                if self._edge_count >= self.max_edges:
                    self._bound_locked("edges", f"the lock-order graph reached {self.max_edges} "
                                       "edges between classes all in use; new orders are not "
                                       "checked until some are released")
                    return
                edge = OrderEdge(src, dst, timed, serial, witnesses=[witness])
                out[dst] = edge
                self._edge_count += 1
                search = True
            else:
                if serial != edge.first_serial and not edge.multi_thread:
                    edge.multi_thread = True
                    if len(edge.witnesses) < MAX_WITNESSES_PER_EDGE:
                        edge.witnesses.append(witness)
                if edge.timed and not timed:
                    edge.timed = False  # a blocking acquire along a timed edge: upgrade
                    search = True
                    if len(edge.witnesses) < MAX_WITNESSES_PER_EDGE:
                        edge.witnesses.append(witness)
            if search:
                self._find_cycles(src, dst)

    def _find_cycles(self, u: int, v: int) -> None:
        """Report the cycles the edge ``u -> v`` closes: paths ``v ~> u``. Mutex held."""
        found: list[tuple[int, ...]] = []
        path_found = shortest_path(self._out, v, u)
        if path_found is None:
            return
        shortest = tuple(path_found)
        found.append(shortest)
        # Further distinct simple paths, within a budget: one new edge can close several.
        budget = SEARCH_BUDGET
        path = [v]
        on_path = {v}
        stack = [iter(self._out.get(v, {}))]
        truncated = False
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                on_path.discard(path.pop())
                continue
            budget -= 1
            if budget <= 0:
                truncated = True
                break
            if nxt == u:
                p = (*path, u)
                if p != shortest:
                    found.append(p)
                    if len(found) >= CYCLES_PER_EDGE:
                        truncated = True
                        break
                continue
            if nxt in on_path:
                continue
            path.append(nxt)
            on_path.add(nxt)
            stack.append(iter(self._out.get(nxt, {})))
        if truncated:
            self._bound_locked("search", "one new lock order closed more cycles than are "
                               f"enumerated ({CYCLES_PER_EDGE} per edge, or a search budget of "
                               f"{SEARCH_BUDGET} steps); the shortest ones are reported")
        for p in found:
            self._record_cycle((u, *p[:-1]))

    def _record_cycle(self, nodes: tuple[int, ...]) -> None:
        edges = [self._out[a][b] for a, b in zip(nodes, nodes[1:] + nodes[:1], strict=True)]
        timed = not self.strict and any(e.timed for e in edges)
        variant: Variant = "timed" if timed else "deadlock"
        signature = variant + ":" + _signature([self._class_key(n) for n in nodes])
        if signature in self._cycles:
            return
        if len(self._cycles) >= self.max_findings:
            self._bound_locked("findings", f"more than {self.max_findings} lock-order cycles; "
                               "further ones are not recorded")
            return
        self._cycles[signature] = _Cycle(nodes, variant, signature, time.time())
        self.generation += 1

    def _nest(self, h_lock: object, h_code: Any, h_lasti: int, lock: object, node: int,
              frame: FrameType | None, serial: int, mode: AcquireMode) -> None:
        """``lock`` is taken while ``h_lock``, of the same class, is held.

        Lockdep reports every such nesting, because the kernel cannot afford to tell instances
        apart. Here each pair of instances is an edge in the class's own instance order; a
        finding needs two instances seen nested both ways (X before Y somewhere, Y before X
        elsewhere, or a longer cycle such as dining philosophers), or, once more pairs were
        seen than are remembered (``MAX_INSTANCE_EDGES``), pairs that do not all follow the
        order the locks were made in. A list of locks always taken by index, a handler that
        nests its target's lock, two locks made on one line and nested one way: no finding.
        """
        rec = self._nodes.get(node)
        if rec is None:
            return
        base = rec.base
        x, y = _instance(h_lock), _instance(lock)
        known = self._same_class.get(base)
        if known is not None:
            known.serials.add(serial)
            return
        inst = self._instances.get(base)
        if inst is not None:
            succ = inst.out.get(x)
            if succ is not None and y in succ:
                return  # this pair, in this order, is known
            if inst.full and not (inst.ascending if x > y else inst.descending):
                return  # past the bound, and in the one creation order seen so far
        taken_at = _stack(frame, frame.f_lineno if frame else 0)
        witness = Witness(_thread_name(), serial, time.time(), mode,
                          _held_stack(h_code, h_lasti, frame), taken_at)
        with self._mutex:
            if base in self._same_class:
                return
            inst = self._instances.get(base)
            if inst is None:
                if len(self._instances) >= MAX_INSTANCE_CLASSES:
                    self._bound_locked("instances", f"more than {MAX_INSTANCE_CLASSES} lock "
                                       "classes nest two of their own locks; for further ones "
                                       "any nesting is reported (no instance order is kept)")
                    self._record_same_class(base, witness, "untracked", None, (x, y), serial)
                    return
                inst = self._instances[base] = _Instances()
            reverse = inst.path(y, x)
            if x < y:
                inst.ascending += 1
            else:
                inst.descending += 1
            if (inst.edges >= MAX_INSTANCE_EDGES
                    or self._instance_edges >= MAX_INSTANCE_EDGES_TOTAL):
                inst.full = True
            if not inst.full:
                inst.out.setdefault(x, {})[y] = serial
                inst.edges += 1
                self._instance_edges += 1
                if (len(inst.witnesses) < MAX_INSTANCE_WITNESSES
                        and self._instance_witnesses < MAX_INSTANCE_WITNESSES_TOTAL):
                    inst.witnesses[(x, y)] = witness
                    self._instance_witnesses += 1
            if reverse is not None:
                first = (reverse[0], reverse[1])
                other = inst.witnesses.get(first)
                other_serial = inst.out[first[0]][first[1]]
                self._record_same_class(base, witness, "both-orders", other, (x, y), serial,
                                        other_serial)
                if base in self._same_class:
                    self._same_class[base].other_to = first[1]
            elif inst.full and inst.ascending and inst.descending:
                self._record_same_class(base, witness, "no-order", None, (x, y), serial)

    def _record_same_class(self, base: int, witness: Witness, reason: str,
                           other: Witness | None, instances: tuple[int, int],
                           *serials: int) -> None:
        """Record a same-class nesting finding. Mutex held."""
        if len(self._same_class) >= self.max_findings:
            self._bound_locked("findings", f"more than {self.max_findings} same-class "
                               "nestings; further ones are not recorded")
            return
        signature = "same-class:" + self._class_key(base)
        self._same_class[base] = _SameClass(base, witness, set(serials), signature, reason,
                                            other, instances)
        self.generation += 1

    def _mark_signal(self, lock: object, cls: LockClass) -> None:
        node = self._node(lock, cls)
        rec = self._nodes.get(node)
        if rec is not None:
            self._mark_signal_node(rec.base)

    def _mark_signal_node(self, base: int) -> None:
        if base in self._signals:
            return
        with self._mutex:
            self._signals.add(base)
            self._signal_labels[base] = self._class_key(base)
            dropped = {n for n, rec in self._nodes.items() if rec.base == base}
            self._signal_nodes |= dropped
            for n in dropped:
                self._edge_count -= len(self._out.pop(n, {}))
            for out in self._out.values():
                for n in dropped & out.keys():
                    del out[n]
                    self._edge_count -= 1
            for sig, cyc in list(self._cycles.items()):
                if dropped & set(cyc.nodes):
                    del self._cycles[sig]
                    self._retracted += 1
            self._instances.pop(base, None)
            if base in self._same_class:
                del self._same_class[base]
                self._retracted += 1
            self._checked.clear()
            self._clear_fast()

    def _bound(self, what: str, message: str) -> None:
        with self._mutex:
            self._bound_locked(what, message)

    def _bound_locked(self, what: str, message: str) -> None:
        if what in self._bounds_hit:
            return
        self._bounds_hit.add(what)
        self._notes.append(message)
        # Straight to the file descriptor: sys.stderr may be the program's own object, and
        # calling into it while holding the checker's mutex could re-enter the checker.
        with contextlib.suppress(Exception):
            os.write(2, f"stuck: lock-order: {message}\n".encode("utf-8", "replace"))

    # -- results -------------------------------------------------------------------------

    def _class_key(self, node: int) -> str:
        rec = self._nodes[node]
        c = rec.cls
        key = f"{c.name or ''}@{c.file}:{c.line}:{c.function}"
        if c.binding:
            key += f"={c.owner or ''}.{c.binding}"
        if rec.keyed:
            key += f"[{rec.key!r}]"
        return key

    def notes(self) -> list[str]:
        """Bounds reached and other limits of what was checked, for reports."""
        with self._mutex:
            out = list(self._notes)
            if self._retracted:
                out.append(f"{self._retracted} lock-order finding(s) retracted: their classes "
                           "were later released by a thread that had not taken them (signals)")
        return out

    def signal_classes(self) -> list[str]:
        with self._mutex:
            return sorted(self._signal_labels.values())

    def edge_count(self) -> int:
        return self._edge_count

    def stats(self) -> dict[str, int]:
        """How much was checked: for reports, so an empty result can be told from no data."""
        with self._mutex:
            return {"classes": len(self._nodes), "evicted": self._evicted,
                    "edges": self._edge_count,
                    "signal_classes": len(self._signals), "chains": len(self._chains),
                    "cycles": len(self._cycles), "same_class": len(self._same_class),
                    "retracted": self._retracted}

    def findings(self) -> list[Finding]:
        """Every distinct cycle and same-class nesting seen so far, as ``Finding`` values."""
        with self._mutex:
            cycles = list(self._cycles.values())
            same = list(self._same_class.values())
            data = [(c, [self._out[a][b] for a, b in zip(c.nodes, c.nodes[1:] + c.nodes[:1], strict=True)])
                    for c in cycles]
            nodes = dict(self._nodes)
        out = [_cycle_finding(c, edges, nodes) for c, edges in data]
        out.extend(_same_class_finding(s, nodes) for s in same)
        return out

    def export_state(self) -> dict[str, Any]:
        """The graph as JSON-compatible data, for ``merge_state`` in another process (the
        pytest-xdist controller merges its workers' graphs, so an order taken by a test on one
        worker and the reverse order taken on another still form a cycle)."""
        with self._mutex:
            nodes = dict(self._nodes)
            edges = [e for out in self._out.values() for e in out.values()]
            same = list(self._same_class.values())
            signals = sorted(self._signals)

            def node_info(n: int) -> dict[str, Any]:
                rec = nodes[n]
                c = rec.cls
                return {"kind": c.kind, "file": c.file, "line": c.line, "function": c.function,
                        "name": c.name, "binding": c.binding, "owner": c.owner,
                        "key": repr(rec.key) if rec.keyed else None}

            return {
                "edges": [{"src": node_info(e.src), "dst": node_info(e.dst), "timed": e.timed,
                           "first_serial": e.first_serial, "multi_thread": e.multi_thread,
                           "witnesses": [_witness_state(w) for w in e.witnesses]}
                          for e in edges],
                # Everything the finding says, not only where it was seen: the instance
                # numbers, why it holds and the reverse order's stack (a worker's numbers are
                # its own process's; the controller shows them as the worker saw them).
                "same_class": [{"node": node_info(r.node), "serials": sorted(r.serials),
                                "witness": _witness_state(r.witness), "reason": r.reason,
                                "instances": list(r.instances), "other_to": r.other_to,
                                "other": (_witness_state(r.other) if r.other is not None
                                          else None)} for r in same],
                "signals": [node_info(n) for n in signals],
                "notes": list(self._notes),
            }

    def merge_state(self, state: dict[str, Any], origin: str) -> None:
        """Add a graph exported by ``export_state`` (from the process named ``origin``)."""
        serials: dict[int, int] = {}

        def serial(n: int) -> int:
            if n not in serials:
                serials[n] = next(_serials)
            return serials[n]

        def node(info: dict[str, Any]) -> int:
            binding, owner = info.get("binding"), info.get("owner")
            cls = LockClass(str(info["kind"]), str(info["file"]), int(info["line"]),
                            str(info["function"]), info.get("name"), 0,
                            binding if isinstance(binding, str) else None,
                            owner if isinstance(owner, str) else None)
            n = self._node_by_cls.get(cls) or self._intern(cls)
            key = info.get("key")
            if key is not None and n:
                n = self._node_by_key.get((n, key)) or self._intern_key(n, key)
            return n

        for info in state.get("signals", []):
            n = node(info)
            if n in self._nodes:
                self._mark_signal_node(self._nodes[n].base)
        for e in state.get("edges", []):
            src, dst = node(e["src"]), node(e["dst"])
            if not src or not dst:
                continue
            witnesses = [_witness_from_state(w, serial, origin) for w in e.get("witnesses", [])]
            if not witnesses:
                continue
            for i, w in enumerate(witnesses):
                timed = bool(e.get("timed")) if i == 0 else w.mode == "timed"
                self._add_edge(src, dst, timed, w.thread_serial, w)
            if e.get("multi_thread"):
                edge = self._out.get(src, {}).get(dst)
                if edge is not None:
                    edge.multi_thread = True
        for r in state.get("same_class", []):
            n = node(r["node"])
            if n not in self._nodes:
                continue
            base = self._nodes[n].base
            w = _witness_from_state(r["witness"], serial, origin)
            raw_other = r.get("other")
            other = (_witness_from_state(raw_other, serial, origin)
                     if isinstance(raw_other, dict) else None)
            reason = r.get("reason")
            raw_pair = r.get("instances")
            pair = ((int(raw_pair[0]), int(raw_pair[1]))
                    if isinstance(raw_pair, list) and len(raw_pair) == 2 else (0, 0))
            with self._mutex:
                rec = self._same_class.get(base)
                if rec is None:
                    self._same_class[base] = _SameClass(
                        base, w, {serial(x) for x in r.get("serials", [])},
                        "same-class:" + self._class_key(base),
                        reason if reason in _SAME_CLASS_REASONS else "both-orders",
                        other, pair, int(r.get("other_to", 0) or 0))
                    self.generation += 1
                else:
                    rec.serials.update(serial(x) for x in r.get("serials", []))
        with self._mutex:
            for note in state.get("notes", []):
                text = f"{origin}: {note}"
                if text not in self._notes:
                    self._notes.append(text)

    def reset(self) -> None:
        """Forget the graph and the findings (the classes and chains stay interned)."""
        with self._mutex:
            self._out.clear()
            self._edge_count = 0
            self._checked.clear()
            self._clear_fast()
            self._cycles.clear()
            self._same_class.clear()
            self._instances.clear()
            self._instance_edges = self._instance_witnesses = 0
            self._signals.clear()
            self._signal_nodes.clear()
            self._signal_labels.clear()
            self._notes.clear()
            self._bounds_hit.clear()
            self._retracted = 0
            self.generation += 1

    def _after_fork_in_child(self) -> None:
        self._mutex = _allocate_lock()
        me = _thread.get_ident()
        for ident in list(self._threads):  # only the forking thread lives on
            if ident != me:
                self._threads.pop(ident, None)


def _witness_state(w: Witness) -> dict[str, Any]:
    return {"thread": w.thread, "serial": w.thread_serial, "time": w.time, "mode": w.mode,
            "held_at": [list(x) for x in w.held_at], "taken_at": [list(x) for x in w.taken_at]}


_merged_main: list[int] = []


def _merged_main_serial() -> int:
    """The one thread serial that stands for the main thread of every merged process."""
    if not _merged_main:
        _merged_main.append(next(_serials))
    return _merged_main[0]


def _witness_from_state(d: dict[str, Any], serial: Any, origin: str) -> Witness:
    def stack(raw: Any) -> tuple[StackEntry, ...]:
        return tuple((str(f), str(p), int(n)) for f, p, n in raw or [])

    mode = d.get("mode")
    # Every worker runs its tests in its main thread, as a serial run does in its one main
    # thread: orders taken there are one thread's, however the tests were split (otherwise
    # `-n 2` would make 'probable' of what a serial run calls 'possible').
    thread_serial = (_merged_main_serial() if d.get("thread") == "MainThread"
                     else serial(int(d.get("serial", 0))))
    return Witness(f"{d.get('thread')} ({origin})", thread_serial,
                   float(d.get("time", 0.0)),
                   mode if mode in ("blocking", "timed", "try") else "blocking",
                   stack(d.get("held_at")), stack(d.get("taken_at")))


def _signature(keys: list[str]) -> str:
    """The class sequence of a cycle, rotated to start at its smallest key: one per cycle."""
    i = min(range(len(keys)), key=keys.__getitem__)
    return " -> ".join(keys[i:] + keys[:i])


# ---------------------------------------------------------------------------------------------
# Findings: names for classes, the witnesses, the interleaving.

_ASSIGN = re.compile(r"\s*([A-Za-z_][\w.]{0,200})\s*(?::[^=]{0,200})?=[^=]")


_CLASS_LINE = re.compile(r"([ \t]*)class[ \t]+([A-Za-z_]\w*)")
_DEF_LINE = re.compile(r"([ \t]*)(?:async[ \t]+)?def[ \t]+([A-Za-z_]\w*)")


def _enclosing_class(file: str, line: int, function: str) -> str | None:
    """The class whose method ``function`` (defined above ``line`` in ``file``) is, if any.

    The runtime names a lock class by its code object's name (``__init__``), so for
    ``self._lock = Lock()`` the owner is found in the source: the nearest ``def function``
    above the line, then the nearest ``class`` indented less than that ``def``. Report time
    only; at most a few hundred lines are looked at.
    """
    if "." in function:  # a qualified name already: Cache.__init__
        owner = function.rsplit(".", 1)[0]
        return owner.rsplit(".", 1)[-1] if "<" not in owner else None
    def_indent: int | None = None
    for n in range(line, max(0, line - 400), -1):
        text = linecache.getline(file, n)
        if def_indent is None:
            m = _DEF_LINE.match(text)
            if m and m.group(2) == function:
                def_indent = len(m.group(1).expandtabs())
                if def_indent == 0:
                    return None
            continue
        m = _CLASS_LINE.match(text)
        if m and len(m.group(1).expandtabs()) < def_indent:
            return m.group(2)
        if text.strip() and len(text) - len(text.lstrip()) == 0:
            return None  # back at module level without a class
    return None


def class_label(cls: LockClass, key: Hashable | None = None, keyed: bool = False) -> str:
    """A name for people: the ``name=`` given, else the variable the lock was assigned to
    (``Cache._lock`` for ``self._lock = Lock()`` in ``Cache.__init__``), else ``function:line``.
    """
    label = cls.name
    if not label and cls.binding:  # known from the bytecode when the lock was made
        label = cls.label()
    if not label:
        target = None
        try:
            source = linecache.getline(cls.file, cls.line)
        except Exception:
            source = ""
        m = _ASSIGN.match(source) if source else None
        if m:
            target = m.group(1)
        if target and target.startswith("self."):
            try:
                owner = _enclosing_class(cls.file, cls.line, cls.function)
            except Exception:
                owner = None
            label = (owner + target[4:]) if owner else target
        elif target:
            label = target
        else:
            label = cls.label()
    if keyed:
        label += f"[{key!r}]"
    return label


def _where(stack: tuple[StackEntry, ...] | list[StackEntry]) -> str:
    if not stack:
        return "?"
    _, file, line = stack[0]
    return f"{os.path.basename(file)}:{line}"


def _class_info(node: _Node, label: str) -> dict[str, object]:
    c = node.cls
    info: dict[str, object] = {"label": label, "kind": c.kind, "file": c.file, "line": c.line,
                               "function": c.function}
    if c.binding:
        info["binding"] = c.binding
    if c.owner:
        info["owner"] = c.owner
    if c.name:
        info["name"] = c.name
    if node.keyed:
        info["key"] = repr(node.key)
    return info


def _pick_witnesses(edges: list[OrderEdge]) -> list[Witness]:
    """One witness per edge, spreading over threads when the edges allow it."""
    picked: list[Witness] = []
    used: set[int] = set()
    for e in edges:
        choice = next((w for w in e.witnesses if w.thread_serial not in used), e.witnesses[0])
        if not e.timed:
            blocking = [w for w in e.witnesses if w.mode == "blocking"]
            fresh = [w for w in blocking if w.thread_serial not in used]
            choice = (fresh or blocking or [choice])[0]
        picked.append(choice)
        used.add(choice.thread_serial)
    return picked


def _run_words() -> str:
    """How this run went, as far as the lock order matters: only say it did not hang when no
    deadlock was reported in it."""
    from stuck.runtime import policy

    if any(f.kind == "deadlock" for r in policy.findings_seen for f in r.findings):
        return "This run did deadlock (see its deadlock report); beyond that run, "
    return "This run did not hang, but "


def _cycle_finding(cycle: _Cycle, edges: list[OrderEdge], nodes: dict[int, _Node]
                   ) -> Finding:
    labels = [class_label(nodes[n].cls, nodes[n].key, nodes[n].keyed) for n in cycle.nodes]
    witnesses = _pick_witnesses(edges)
    serials = {w.thread_serial for e in edges for w in e.witnesses}
    multi = any(e.multi_thread for e in edges) or len(serials) > 1
    confidence: Confidence = "probable" if multi else "possible"
    k = len(labels)
    chain = " -> ".join(f"`{x}`" for x in [*labels, labels[0]])
    if cycle.variant == "timed":
        summary = (f"lock-order cycle through a timed acquire: {chain}; threads taking these "
                   "paths at once would wait until a timeout (latency or livelock risk)")
    else:
        summary = (f"lock-order cycle: {chain}; threads taking these paths at once would "
                   "deadlock")
    edge_lines = []
    details_edges = []
    for i, (e, w) in enumerate(zip(edges, witnesses, strict=True)):
        held, taken = labels[i], labels[(i + 1) % k]
        line = (f"thread {w.thread} holds `{held}` ({_where(w.held_at)}) and takes "
                f"`{taken}` ({_where(w.taken_at)})" + (" with a timeout" if e.timed else ""))
        edge_lines.append(line)
        details_edges.append({
            "from": held, "to": taken, "timed": e.timed, "multi_thread": e.multi_thread,
            "line": line, "witness": w.to_dict(),
            "other_witnesses": [x.to_dict() for x in e.witnesses if x is not w],
        })
    interleaving = [f"T{i + 1} takes `{labels[i]}`" for i in range(k)]
    interleaving += [f"T{i + 1} waits for `{labels[(i + 1) % k]}`, held by T{(i + 1) % k + 1}"
                     for i in range(k)]
    if not multi:
        note = ("Every edge was seen in one thread only; if these paths can never run in two "
                "threads at once this cannot deadlock, hence confidence 'possible'.")
    else:
        note = "The edges were taken by different threads in this run."
    explanation = (
        "These lock classes were taken in an order that forms a cycle. " + _run_words()
        + "threads running these paths at the same time can each hold one lock of the cycle "
        "and wait for the next. " + note + " Fix: take them in one global order, or do not "
        "hold one while taking the other.")
    details: dict[str, object] = {
        "variant": cycle.variant,
        "signature": cycle.signature,
        "classes": [_class_info(nodes[n], lab) for n, lab in zip(cycle.nodes, labels, strict=True)],
        "edges": details_edges,
        "interleaving": interleaving,
    }
    return Finding(kind="lock-order", confidence=confidence, summary=summary,
                   explanation=explanation,
                   threads=sorted({w.thread for w in witnesses}),
                   resources=labels, details=details,
                   missing_evidence=(["the edges were seen in one thread only"]
                                     if not multi else []))


def _same_class_finding(rec: _SameClass, nodes: dict[int, _Node]) -> Finding:
    node = nodes[rec.node]
    label = class_label(node.cls)
    w = rec.witness
    x, y = rec.instances
    confidence: Confidence = "probable" if len(rec.serials) > 1 else "possible"
    line = (f"thread {w.thread} holds `{label}` #{x} ({_where(w.held_at)}) and takes "
            f"`{label}` #{y} ({_where(w.taken_at)})")
    edges: list[dict[str, object]] = [{"from": f"{label} #{x}", "to": f"{label} #{y}",
                                       "timed": w.mode == "timed",
                                       "multi_thread": len(rec.serials) > 1, "line": line,
                                       "witness": w.to_dict(), "other_witnesses": []}]
    missing: list[str] = []
    if rec.reason == "both-orders":
        summary = (f"same-class nesting: two locks of class `{label}` were taken in both "
                   "orders; two threads doing so at once would deadlock")
        why = (f"Lock #{x} was taken before lock #{y} of the same class, and elsewhere #{y} "
               f"(or a lock nested after it) before #{x}: no order between them holds.")
        o = rec.other
        if o is not None:
            z = rec.other_to
            other_line = (f"thread {o.thread} holds `{label}` #{y} ({_where(o.held_at)}) and "
                          f"takes `{label}` #{z} ({_where(o.taken_at)})"
                          + ("" if z == x else f" on the way back to #{x}"))
            edges.append({"from": f"{label} #{y}", "to": f"{label} #{z}",
                          "timed": o.mode == "timed",
                          "multi_thread": len(rec.serials) > 1, "line": other_line,
                          "witness": o.to_dict(), "other_witnesses": []})
        else:
            missing.append(f"the stack of the reverse order (#{y} first) was not kept: more "
                           f"than {MAX_INSTANCE_WITNESSES} pairs of this class were seen")
    elif rec.reason == "no-order":
        summary = (f"same-class nesting: locks of class `{label}` are nested in no order "
                   "that could be shown; two threads nesting two of them in opposite orders "
                   "would deadlock")
        why = ("More pairs of this class were nested than are remembered, and they do "
               "not all follow the order in which the locks were made.")
        missing.append("the full order between instances (too many pairs to keep)")
    else:
        summary = (f"same-class nesting: two locks of class `{label}` held at once, in no "
                   "declared order; two threads nesting them in opposite orders would "
                   "deadlock")
        why = (f"More than {MAX_INSTANCE_CLASSES} classes nest their own locks; for this one "
               "the order between instances was not kept.")
        missing.append("the order between instances of this class (not kept)")
    if len(rec.serials) < 2:
        missing.append("the nestings were seen in one thread only")
    explanation = (
        "Locks made by the same line and bound to the same name form one class; " + why + " "
        "If two threads can take two of them the opposite way round at once, they deadlock. "
        "Fix: take them in one order (by account id, by index). If the order cannot be "
        "seen in one run, declare it with stuck.order_by(lock, key) and the checker will "
        "verify that order instead.")
    details: dict[str, object] = {
        "variant": "same-class",
        "reason": rec.reason,
        "signature": rec.signature,
        "classes": [_class_info(node, label)],
        "edges": edges,
        "interleaving": [f"T1 takes `{label}` #{x}", f"T2 takes `{label}` #{y}",
                         f"T1 waits for `{label}` #{y}, held by T2",
                         f"T2 waits for `{label}` #{x}, held by T1"],
    }
    threads = sorted({w.thread} | ({rec.other.thread} if rec.other is not None else set()))
    return Finding(kind="lock-order", confidence=confidence, summary=summary,
                   explanation=explanation, threads=threads, resources=[label],
                   details=details, missing_evidence=missing)


# ---------------------------------------------------------------------------------------------
# Module-level switch: one checker per process.

_checker: LockOrderChecker | None = None


def enable(*, strict: bool = False, max_edges: int = 20000, max_classes: int = 100000,
           max_findings: int = 1000) -> LockOrderChecker:
    """Start checking lock order: adds the checker as an observer of the live instrumentation.

    Locks are only seen while ``stuck.install()`` (or ``stuck run``) has the tracked
    primitives in place; enabling before or after installing both work. Calling it again
    returns the running checker unchanged.
    """
    global _checker
    if _checker is None:
        _checker = LockOrderChecker(strict=strict, max_edges=max_edges,
                                    max_classes=max_classes, max_findings=max_findings)
    hooks.add_observer(_checker)
    return _checker


def disable() -> None:
    """Stop observing; the findings so far stay available from ``findings()``."""
    if _checker is not None:
        hooks.remove_observer(_checker)


def enabled() -> bool:
    return _checker is not None and _checker in hooks.observers


def checker() -> LockOrderChecker | None:
    return _checker


def findings() -> list[Finding]:
    """The lock-order findings of the checker enabled in this process (empty if none)."""
    return _checker.findings() if _checker is not None else []


def reset() -> None:
    """Forget every finding and the whole graph (keeps the checker enabled)."""
    if _checker is not None:
        _checker.reset()


def _reinit_after_fork() -> None:
    if _checker is not None:
        _checker._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)


# ---------------------------------------------------------------------------------------------
# The end-of-run report (``stuck run --lock-order``, ``python -m stuck.runtime.lockorder``).


def summary_notes() -> list[str]:
    """What the checker covered, then the bounds it reached."""
    c = _checker
    if c is None:
        return []
    st = c.stats()
    made = dict(registry.made)
    tracked = ", ".join(f"{n} {kind}" for kind, n in sorted(made.items())) or "none"
    from stuck.runtime import prebound

    escaped = ([f"not tracked, so not checked: what is made through "
                f"{', '.join(prebound.escaped[:10])}"] if prebound.escaped else [])
    return [f"checked {st['classes']} lock classes and {st['edges']} orders between them; "
            f"{st['signal_classes']} classes dropped as signals (released by another thread); "
            f"primitives tracked: {tracked}",
            *escaped, *c.notes()]


if __name__ == "__main__":
    # Run as a program: the module is __main__ then, not the checker the runner imports.
    from stuck.interrupt import end_by_sigint_while_starting
    end_by_sigint_while_starting()  # as stuck run does: Ctrl-C before the program ends it
    from stuck.runner import lock_order_main

    sys.exit(lock_order_main(sys.argv[1:]))


# pytest leaves these frames out of the tracebacks it shows (STUCK_DEBUG=1 keeps them): a
# program's wait passes through them, plain Python's does not (stuck.tracebacks).
__tracebackhide__ = _hide_in_pytest()

"""The live facts the stall rules need, gathered from the running program.

The rules themselves (the knot of waiters nothing able to run can wake, cycles, stall reasons,
confidence, wording) live in ``stuck.rules`` and read the model only. This module is the live
source's side:

- what the tracked primitives record as the program runs (``note_waker``, ``note_signal``,
  ``note_thread_name``): who ever notified, set, released or arrived at a primitive, and a
  short signal history (cheap: one dict per primitive);
- ``LiveChecker``, used by the watchdog thread: reads the registry into facts, decides by
  reachability (in the spirit of Go's GC-based goroutine leak detector) which primitives
  nobody ever signalled no thread able to run can reach, writes all of it into the snapshot as
  model fields (``record_facts``: ``Resource.recorded``, ``Wait.op``, ``Thread.ended``) and
  asks ``stuck.rules.evaluate``, so a saved report given to ``stuck analyze`` gets the very
  same verdict; then confirms each finding by a second observation.

Everything here runs in the watchdog thread or at report time, never in the hot path.
"""

from __future__ import annotations

import _thread
import contextlib
import gc
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from types import FrameType, ModuleType
from typing import Any

from stuck.model import Finding, Recorded, Resource, Snapshot, Thread, Wait
from stuck.model import Signal as ModelSignal
from stuck.rules import evaluate
from stuck.rules.facts import (
    INTERPRETER_EXIT,
    WAIT_OPS,
    ExecutorFacts,
    Facts,
    ResourceFacts,
    Signal,
    ThreadFacts,
    ThreadWait,
)
from stuck.rules.knot import stuck_set
from stuck.runtime import detect, framewalk
from stuck.runtime.registry import epoch_of as registry_epoch
from stuck.runtime.registry import thread_objects as registry_threads
from stuck.runtime.tracked import (
    PrimitiveFacts,
    as_tracked,
    kind_of,
    lock_class_of,
)
from stuck.tracebacks import hide_in_pytest as _hide_in_pytest

# ---------------------------------------------------------------------------------------------
# Reachability


def reachability(targets: dict[str, object], roots: Iterable[object],
                 budget: int = 200_000) -> set[str] | None:
    """Which ``targets`` (resource id -> primitive) no object in ``roots`` leads to.

    A breadth-first walk over ``gc.get_referents``; returns None when the budget ran out (then
    nothing is claimed unreachable)."""
    if not targets:
        return set()
    want = {id(obj): rid for rid, obj in targets.items()}
    found: set[str] = set()
    seen: set[int] = set(want)  # never walk through a target itself
    # ... nor through stuck's own modules: its registry refers to every primitive waited on,
    # which no code of the program uses to reach one (``sys.modules`` would lead there).
    for name, module in list(sys.modules.items()):
        if _is_own_module(name) and isinstance(module, ModuleType):
            seen.add(id(module))
            seen.add(id(module.__dict__))
    queue: deque[object] = deque()
    for r in roots:
        if id(r) in want:
            found.add(want[id(r)])
        elif id(r) not in seen:
            seen.add(id(r))
            queue.append(r)
    steps = 0
    while queue and len(found) < len(want):
        obj = queue.popleft()
        steps += 1
        if steps > budget:
            return None
        for ref in gc.get_referents(obj):
            i = id(ref)
            if i in want:
                found.add(want[i])
            elif i not in seen:
                if isinstance(ref, (int, float, str, bytes, bool, type(None))):
                    continue
                seen.add(i)
                queue.append(ref)
    return set(targets) - found


_ROOT_DEPTH = 64  # frames of a runnable thread read for roots (framewalk.chain's default)


def runnable_roots(runnable_idents: set[int], stacks: dict[int, list[FrameType]],
                   extra: Iterable[object] = ()) -> list[object] | None:
    """Roots of the reachability pass: the stacks (with their locals) of threads able to run,
    every module's globals, and ``extra`` (their Thread objects, say).

    Only the calling thread's own frames have their locals read. Reading ``f_locals`` of a
    frame another thread is running writes that frame's locals dict (on 3.12 and earlier),
    which the program may be using (``locals()``, a debugger), and may run code of the
    program (a class body's namespace). A runnable thread whose stack has a function frame
    could hold anything in its locals: None, nothing can be shown out of its reach."""
    me = _thread.get_ident()
    roots: list[object] = []
    for ident in runnable_idents:
        stack = framewalk.chain(sys._getframe(), limit=_ROOT_DEPTH) if ident == me \
            else stacks.get(ident, [])
        if len(stack) >= _ROOT_DEPTH:
            return None  # a stack deeper than was read: what its frames hold is not known
        for f in stack:
            code = f.f_code
            roots.append(code)
            if ident == me:
                with contextlib.suppress(Exception):
                    roots.append(dict(f.f_locals))
            elif code.co_nlocals or code.co_cellvars or code.co_freevars:
                return None
            else:  # module-level code: its namespace is its globals
                roots.append(f.f_globals)
    for name, module in list(sys.modules.items()):
        # stuck's own modules are no way for the program to a primitive: its registry keeps
        # every wait record, and so every primitive waited on, but no program code uses it.
        if isinstance(module, ModuleType) and not _is_own_module(name):
            roots.append(module.__dict__)
    roots.extend(extra)
    return roots


def _is_own_module(name: str) -> bool:
    return name == "stuck" or name.startswith("stuck.")


# ---------------------------------------------------------------------------------------------
# Waker history: what the tracked primitives record (cheap: one set per primitive)

_names: dict[int, str] = {}  # thread ident -> name, kept for threads that signalled and died
_names_by_thread: dict[int, str] = {}  # id(thread mark) -> name


_wall = time.time
_weakref = weakref.ref
_UNSEEN = object()
_threads_by_ident: dict[int, threading.Thread] = threading._active  # type: ignore[attr-defined]


@dataclass(slots=True)
class SignalNote:
    """One signal as a condition or event records it (``note_signal``): who, when, how many
    waited then, and which Thread it was (its ident may be reused once it ends)."""

    op: str  # "notify", "notify_all", "set", "clear"
    thread: str
    at: float
    waiters: int
    thread_mark: Any = None  # see thread_mark


def _current_thread(me: int) -> tuple[Any, str]:
    """The current thread's mark (``thread_mark``) and name, read from threading's own table.
    Never through ``threading.current_thread()``: it calls ``threading.get_ident``, a name a
    program may replace with a function that signals a tracked primitive (pebble's
    ``waitforthreads`` does), which would come back here and recurse. A thread threading does
    not know (started with ``_thread``) is (None, its ident)."""
    t = _threads_by_ident.get(me)
    if t is None:
        return None, f"0x{me:x}"
    return _weakref(t), str(getattr(t, "_name", me))  # not `name`: a subclass may compute it


def thread_mark(ident: int) -> Any:
    """What tells the thread now running as ``ident`` from every other thread that ever had
    that ident (idents are reused as soon as a thread ends): a weak reference to its Thread,
    which never refers to a later Thread (None for a thread threading does not know)."""
    t = _threads_by_ident.get(ident)
    return None if t is None else _weakref(t)


def is_current_mark(ident: int, mark: Any) -> bool:
    """True when ``mark`` (from ``thread_mark``) is the mark of the thread now running as
    ``ident``: the same Thread, not a later one that was given the ident of an ended one."""
    t = _threads_by_ident.get(ident)
    if mark is None:
        return t is None
    return t is not None and mark() is t


def note_participant(record: dict[int, Any], me: int) -> None:
    """Record in ``record`` (ident -> mark: a queue's putters or getters) that the current
    thread used the object, unless it is already recorded as this same thread. Names the
    thread for reports after it ends. Never raises."""
    try:
        mark = record.get(me, _UNSEEN)
        if mark is not _UNSEEN and is_current_mark(me, mark):
            return
        mark, name = _current_thread(me)
        record[me] = mark
        _names[me] = name
        if mark is not None:
            _names_by_thread[id(mark)] = name
            if len(_names_by_thread) > 4096:
                _names_by_thread.clear()
    except Exception:
        pass


def note_waker(obj: object, op: str = "") -> None:
    """Record that the current thread did something that ends waits on ``obj`` (notified it,
    set it, released it, arrived at it). Called by the tracked primitives; never raises, and
    never calls anything the program can replace."""
    me = _thread.get_ident()
    try:
        wakers: dict[int, Any] | None = obj.__dict__.get("_stuck_wakers")
        if wakers is None:
            obj._stuck_wakers = wakers = {}  # type: ignore[attr-defined]
        # Thread idents are reused once a thread ends: keep which Thread it was.
        note_participant(wakers, me)
    except Exception:
        pass


def note_thread_name(ident: int | None = None) -> None:
    """Remember the current thread's name, so a report can name it after it has ended (the
    queues record their producers and consumers by ident)."""
    me = _thread.get_ident() if ident is None else ident
    if me not in _names:
        with contextlib.suppress(Exception):
            _names[me] = _current_thread(me)[1]
            if len(_names) > 4096:
                _names.clear()


def remember_thread_names() -> None:
    """Remember the names of the threads alive now (the watchdog does it at every check)."""
    with contextlib.suppress(Exception):
        for ident, t in list(threading._active.items()):  # type: ignore[attr-defined]
            _names[ident] = t.name


def note_signal(obj: object, op: str, waiters: int) -> None:
    """Record a notify / set on a condition or event: the waker, and a short history (who,
    when, how many waited) for the lost wake-up rule."""
    note_waker(obj)
    try:
        history: deque[SignalNote] | None = obj.__dict__.get("_stuck_signals")
        if history is None:
            obj._stuck_signals = history = deque(maxlen=4)  # type: ignore[attr-defined]
        me = _thread.get_ident()
        history.append(SignalNote(op, f"0x{me:x}", _wall(), waiters, _current_thread(me)[0]))
    except Exception:
        pass


# ---------------------------------------------------------------------------------------------
# The live adapter: registry -> facts -> findings

# Seconds between the two observations a stall or deadlock must agree on. A waiter woken just
# before the first one has had this long to leave its wait.
CONFIRM_AFTER = 0.15


def _tid(ident: int) -> str:
    return f"0x{ident:x}"


def _idents(values: object) -> set[str]:
    try:
        return {_tid(i) for i in list(values)}  # type: ignore[call-overload]
    except Exception:
        return set()


def how_ended(ident: int, alive: set[int]) -> str:
    """``returned``, ``died of ValueError at feed.py:12`` or ``has ended`` (not known how)."""
    from stuck.runtime.endings import ending

    try:
        end = ending(ident, alive)
    except Exception:
        end = None
    if end is None:
        return "has ended"
    if end.error is None:
        return "returned"
    return f"died of {end.error}" + (f" at {end.where}" if end.where else "")


def ended_threads(alive: set[int], limit: int = 5) -> list[str]:
    """The program's threads that have ended, with how: those that died (recorded as they
    died) and those whose Thread objects the program still holds (report time only)."""
    named = [f"{thread.name} ({how})" for thread, how in ended_thread_objects(limit)]
    named.extend(f"{name} ({how})" for _, name, how in dropped_threads(limit - len(named)))
    return named[:limit]


def dropped_threads(limit: int = 5) -> list[tuple[int, str, str]]:
    """The ended threads the program no longer holds (``endings.gone_threads``): (ident,
    name, how it ended in the model's words), those that died of an exception first."""
    from stuck.runtime import endings

    out: list[tuple[int, str, str]] = []
    if limit <= 0:
        return out
    with contextlib.suppress(Exception):
        for ident, end in endings.gone_threads(limit):
            how = "returned" if end.error is None else \
                f"died of {end.error}" + (f" at {end.where}" if end.where else "")
            out.append((ident, end.name, how))
    return out


def ended_thread_objects(limit: int = 5) -> list[tuple[threading.Thread, str]]:
    """The Thread objects behind ``ended_threads``, each with how it ended. A thread
    ``is_alive()`` calls stopped that still runs under its ident is not one: the main thread
    at interpreter exit, and (Python 3.10 to 3.12) a thread whose ``join()`` was interrupted
    by an exception, which that join marks stopped while it still waits."""
    from stuck.runtime import endings

    out: list[tuple[threading.Thread, str]] = []
    seen: set[int] = set()
    with contextlib.suppress(Exception):
        died = {id(thread): end for ref, end in list(endings._ended.values())
                if (thread := ref()) is not None}
        running = framewalk.idents()
        active = registry_threads()
        for obj in endings.known_threads():
            if len(out) >= limit:
                break
            if obj.ident is not None and id(obj) not in seen and not obj.is_alive() \
                    and not (obj.ident in running and active.get(obj.ident) is obj):
                seen.add(id(obj))
                end = died.get(id(obj))
                how = "returned" if end is None or end.error is None else \
                    f"died of {end.error}" + (f" at {end.where}" if end.where else "")
                out.append((obj, how))
    return out[:limit]


def job_names(q: Any, limit: int = 3) -> list[str]:
    """Names of the callables among a queue's first items (a job, or a tuple starting with
    one, or an object with a ``fn``/``func``/``target``): read without the queue's mutex."""
    names: list[str] = []
    try:
        items = list(q.queue)[:limit] if hasattr(q, "queue") else []
    except Exception:
        return names
    for item in items:
        fn: Any = item
        if isinstance(item, (tuple, list)) and item:
            fn = item[0]
        for attr in ("fn", "func", "target"):
            if not callable(fn) and callable(getattr(fn, attr, None)):
                fn = getattr(fn, attr)
        if callable(fn):
            name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
            if isinstance(name, str):
                names.append(name)
    return names


def _served(cond: object, signals: deque[SignalNote] | None) -> bool | None:
    """Whether a thread was ever seen waiting on a condition: one waits now, or a notify found
    one waiting. False only while its history of notifies is complete (shorter than the
    history's bound) and every one found nobody waiting; None when that cannot be told."""
    if getattr(cond, "_waiters", None):
        return True
    if not signals:
        return None
    if any(s.waiters for s in signals):
        return True
    if signals.maxlen is not None and len(signals) >= signals.maxlen:
        return None
    return False


def _queue_size(q: Any) -> int | None:
    """Items in a queue without taking its mutex (``Queue.qsize`` locks it, and the watchdog
    must never wait for a lock a program thread may hold); SimpleQueue's is lock-free."""
    try:
        size = q._qsize() if hasattr(q, "_qsize") else q.qsize()
        return int(size)
    except Exception:
        return None


class LiveChecker:
    """Applies the stall rules to the live registry. Used by the watchdog thread."""

    def __init__(self) -> None:
        self._rid_of: dict[int, str] = {}
        self._labels: dict[int, str] = {}
        # ids given to ended threads whose ident was reused: their name and how they ended
        self._gone: dict[str, tuple[str, str]] = {}

    def settled(self, settle: float) -> bool:
        """True when some thread has been in a durable tracked wait for ``settle`` seconds."""
        from stuck.runtime import registry
        remember_thread_names()
        cutoff = time.time() - settle
        tasks = registry.tasks_module()
        return any(r.timeout is None and r.since <= cutoff
                   for r in list(registry.waits.values())) or (
                       tasks is not None and tasks.settled(settle))

    def check(self, settle: float, *, asked: bool = False) -> tuple[Snapshot, list[Finding]]:
        """The live snapshot and the stalls and deadlocks in it, each confirmed by a second
        observation (see ``registry.Observation``): the threads it names are still in the
        very waits they were in before the facts were read, and nothing those waits rest on
        was released, signalled, put or taken in between. A finding that fails the test was
        read from moments that never coexisted (a busy queue seen full by its producer and
        empty by its consumer) and is dropped; if it is real, the next check finds it.

        ``asked``: a report asked for (a signal, ``stuck.snapshot()``, ``stuck capture``): the
        snapshot always has the asyncio tasks, and every cycle among them is reported, also
        one reported when it formed (the watchdog leaves those out)."""
        from stuck.runtime import registry

        first = registry.Observation()
        snap, findings = self._check_once(settle, asked)
        if not any(f.kind in ("stall", "deadlock") for f in findings):
            return snap, findings
        time.sleep(CONFIRM_AFTER)
        second = registry.Observation()
        by_rid = {rid: obj for obj in first.objects()
                  if (rid := self._rid_of.get(id(obj))) is not None}
        kept = []
        for f in findings:
            if f.kind in ("stall", "deadlock") and not self._unchanged(f, snap, first, second,
                                                                         by_rid):
                continue
            kept.append(f)
        return snap, kept

    @staticmethod
    def _unchanged(f: Finding, snap: Snapshot, first: Any, second: Any,
                   by_rid: dict[str, object]) -> bool:
        idents: set[int] = set()
        objs: list[object] = []
        held: set[str] = set(f.resources)
        for tid in [*f.threads, *f.blocked_behind]:
            t = snap.thread(tid)
            if t is None or t.waits is None:
                continue  # dead, or not in a tracked wait: nothing to compare
            if t.waits.resource == INTERPRETER_EXIT:
                # The main thread joining the program's threads at exit: no wait record (the
                # join is the interpreter's), and it never leaves that join to run the
                # program again. Compared as a wait record, every finding it is behind would
                # be dropped, and nothing that stalls after the program ended proven.
                continue
            res = snap.resource(t.waits.resource)
            if res is not None and res.kind == "task":
                # An event loop's thread waiting for its tasks (aio.findings): the loop rule
                # read that twice itself; what the cycle rests on is compared below.
                held.update(t.holds)
                continue
            if tid.startswith("0x"):
                with contextlib.suppress(ValueError):
                    idents.add(int(tid, 16))
            held.update(t.holds)
        objs.extend(by_rid[rid] for rid in held if rid in by_rid)
        return bool(first.same_as(second, idents, objs))

    def _check_once(self, settle: float, asked: bool) -> tuple[Snapshot, list[Finding]]:
        from stuck.runtime import livereport, registry

        snap, table, rid_of = livereport.take(with_tasks=False)  # tasks: below, if needed
        self._rid_of = rid_of
        facts, objects = self.facts(snap, table, rid_of)
        # Candidates: the threads stuck if every primitive nobody ever signalled is out of
        # reach of the threads able to run; the reachability pass then decides which are.
        unsignalled = {rid for rid, rf in facts.resources.items() if not rf.wakers}
        candidates, _ = stuck_set(facts, unsignalled)
        unreachable = self._proven_unreachable(facts, objects, candidates)
        if candidates:  # who could have signalled what nobody ever did: named in the report
            _add_ended_threads(snap)
        # The rules run on the snapshot, with these facts as its fields: a saved report given
        # to ``stuck analyze`` gets the very same verdicts (see ``rules``).
        self._annotate(snap, facts, [])
        record_facts(snap, facts, unreachable)
        # asyncio (once the program uses it): the tasks as threads of the snapshot, and which
        # event loops were seen stalled, when a thread may be stuck (a task may be what it
        # waits for) or a task or loop has waited long enough to be judged.
        tasks = registry.tasks_module()
        if tasks is not None and (asked or tasks.settled(settle)
                                  or (candidates and stuck_set(facts, unreachable)[0])):
            tasks.extend_snapshot(snap, rid_of)
            tasks.mark_stalled_loops(snap, settle)
        # One verdict for every source: the threads' rules and the event loops' alike.
        findings = evaluate(snap, settle=settle)
        if tasks is not None and not asked:
            findings = tasks.reported_when_formed(findings)
        self._annotate(snap, facts, findings)
        livereport.add_ended_threads(snap)  # the wakers just added may have ended
        return snap, findings

    def facts(self, snap: Snapshot, table: dict[int, Any], rid_of: dict[int, str]
              ) -> tuple[Facts, dict[str, object]]:
        from stuck.runtime import registry
        from stuck.runtime.livereport import describe

        now = time.time()
        from stuck.runtime.endings import note_thread

        alive = registry.thread_objects()
        threads: dict[str, ThreadFacts] = {}
        own = registry.own_idents  # the watchdog: not the program's thread
        for ident, pyt in alive.items():
            if ident in own:
                continue  # (a _DummyThread a report stream made for it: see watchdog)
            note_thread(pyt)  # one started before install: named once it has ended
            threads[_tid(ident)] = ThreadFacts(id=_tid(ident), name=pyt.name,
                                               daemon=pyt.daemon, ident=ident)
        resources: dict[str, ResourceFacts] = {}
        objects: dict[str, object] = {}
        executors: dict[str, ExecutorFacts] = {}

        def add(obj: object) -> ResourceFacts:
            rid = rid_of.get(id(obj))
            model = snap.resource(rid) if rid is not None else None
            if model is None:
                model = describe(obj)
            rf = resources.get(model.id)
            if rf is not None:
                return rf
            rf = self._resource(obj, model.id, model.kind, model.label, model.owners,
                                executors)
            resources[rf.id] = rf
            objects[rf.id] = obj
            return rf

        for ident, record in table.items():
            t = threads.get(_tid(ident))
            if t is None:
                continue
            rf = add(record.resource)
            op = record.op if record.op in WAIT_OPS and record.op != "barrier" else "unknown"
            if rf.kind == "barrier":
                op = "barrier"
            t.wait = ThreadWait(resource=rf.id, op=op, durable=record.timeout is None,  # type: ignore[arg-type]
                                since=record.since, timeout=record.timeout)
        for mt in snap.threads():
            t = threads.get(mt.id)
            if t is not None:
                t.holds = list(mt.holds)
                if t.wait is None and mt.frames and mt.frames[0].function in (
                        "_shutdown",) and (mt.frames[0].file or "").endswith("threading.py") \
                        and detect.joining_at_exit():
                    # The main thread at exit, joining every non-daemon thread (past the
                    # threading atexit callables, which may still wake threads).
                    rf = ResourceFacts(INTERPRETER_EXIT, "thread", "interpreter exit")
                    resources[rf.id] = rf
                    t.wait = ThreadWait(resource=rf.id, op="join", since=now - 3600)
        # A condition with more recorded waits than parked waiters: a notify is under way.
        for rf in resources.values():
            if rf.kind == "condition":
                parked = getattr(objects.get(rf.id), "_waiters", None)
                recorded_waits = sum(1 for t in threads.values() if t.wait is not None
                                     and t.wait.resource == rf.id and t.wait.op == "wait")
                with contextlib.suppress(TypeError):
                    rf.in_flight = recorded_waits - len(parked)  # type: ignore[arg-type]
        # Queues holding work that threads of a possible stall handed off (stranded jobs).
        # Conditions last notified while nobody waited, that nobody was ever seen waiting on:
        # work handed where no thread takes it.
        for obj in list(registry.resources):
            kind = kind_of(obj)
            if (kind == "queue" and _queue_size(obj)) or (kind == "condition" and _served(
                    obj, getattr(obj, "__dict__", {}).get("_stuck_signals")) is False):
                add(obj)
        # Threads named as wakers that are gone.
        for rf in resources.values():
            for w in (rf.wakers or set()) | (rf.getters or set()) | set(rf.owners):
                if w in self._gone:
                    threads[w] = ThreadFacts(id=w, name=self._gone[w][0], alive=False,
                                             ended=self._gone[w][1])
                elif w not in threads:
                    ident = int(w, 16)
                    threads[w] = ThreadFacts(id=w, name=_names.get(ident, f"thread {w}"),
                                             alive=False, ident=ident,
                                             ended=how_ended(ident, set(alive)))
        self._labels.clear()  # ids of dead objects are reused: labels live for one check
        self._gone.clear()
        alive_now = set(alive)
        return Facts(threads=threads, resources=resources, executors=executors,
                         now=now, ended=lambda: ended_threads(alive_now)), objects

    def _resource(self, obj: object, rid: str, kind: str, label: str, owners: list[str],
                  executors: dict[str, ExecutorFacts]) -> ResourceFacts:
        rf = ResourceFacts(id=rid, kind=kind, label=self._label(obj, label),
                           owners=list(owners))
        d = getattr(obj, "__dict__", {})
        recorded = d.get("_stuck_wakers")
        tracked = as_tracked(obj)
        facts = tracked._stuck_facts() if tracked is not None else PrimitiveFacts()
        if facts.ended_holder is not None:  # a Lock held by a thread that ended
            self._note_ended_holder(facts.ended_holder)
        if kind == "queue":
            rf.wakers = self._participant_ids(facts.putters)
            rf.getters = self._participant_ids(facts.getters)
            rf.size = _queue_size(obj)
            rf.maxsize = getattr(obj, "maxsize", 0)
            if rf.size:
                rf.jobs = job_names(obj)
        elif kind in ("condition", "event", "semaphore", "barrier"):
            rf.wakers = self._waker_ids(recorded) if recorded is not None else None
            if kind == "event":
                rf.is_set = bool(getattr(obj, "_flag", False))
            elif kind == "semaphore":
                value = getattr(obj, "_value", None)
                rf.value = value if isinstance(value, int) else None
                holders = getattr(obj, "_stuck_all_holders", None)
                if holders is not None:  # the threads that took permits, ended ones too
                    rf.owners = sorted({
                        _tid(ident) if is_current_mark(ident, mark)
                        else self._ended_id(ident, mark) for ident, mark in holders()})
            signals = d.get("_stuck_signals")
            if signals:
                rf.history = [Signal(s.op, self._waker_id(int(s.thread, 16), s.thread_mark),
                                     s.at, s.waiters) for s in list(signals)]
            if kind == "condition":
                rf.served = _served(obj, signals)
            if kind == "barrier":
                rf.parties = getattr(obj, "parties", None)
                rf.n_waiting = getattr(obj, "n_waiting", None)
                rf.broken = bool(getattr(obj, "broken", False))
        elif kind == "future":
            from stuck.runtime import futures

            runner = futures.runner_of(obj)
            rf.wakers = {_tid(runner)} if runner is not None else set()
            rf.running = getattr(obj, "_state", None) == "RUNNING"
            pool = futures.pool_of(obj)
            task = futures.callable_of(obj) or facts.label
            rf.task = str(task).removeprefix("future of ") if task else None
            if pool is not None:
                ex = self._executor(pool)
                executors.setdefault(ex.id, ex)
                rf.executor = ex.id
        elif kind == "thread":
            ident = getattr(obj, "ident", None)
            rf.thread = _tid(ident) if ident is not None else None
        epoch = registry_epoch(obj)
        rf.epoch = epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None
        rf.obj = obj
        return rf

    def _waker_ids(self, recorded: dict[int, Any]) -> set[str]:
        """Model ids of recorded wakers; a waker whose ident now belongs to another Thread
        (idents are reused) is a thread that has ended, given an id of its own."""

        return {self._waker_id(ident, mark) for ident, mark in list(recorded.items())}

    def _participant_ids(self, recorded: object) -> set[str]:
        """A queue's putters or getters (ident -> mark, see ``note_participant``) as model
        ids. An asyncio queue's (id(task) -> weak reference) names no thread: its ids are
        the keys as they are."""
        if isinstance(recorded, dict):
            return self._waker_ids(recorded)
        return _idents(recorded if recorded is not None else ())

    def _waker_id(self, ident: int, mark: Any) -> str:
        from stuck.runtime import registry

        current = registry.thread_objects().get(ident)
        if current is None or (mark is not None and mark() is current):
            return _tid(ident)
        return self._ended_id(ident, mark)

    def _note_ended_holder(self, thread: threading.Thread) -> None:
        """``thread`` ended holding a Lock, and its ident is another thread's now: the
        snapshot names it as owner under its ended id (``livereport.ended_thread_id``)."""
        from stuck.runtime.endings import ending_of
        from stuck.runtime.livereport import ended_thread_id

        end = ending_of(thread)
        how = "returned" if end.error is None else \
            f"died of {end.error}" + (f" at {end.where}" if end.where else "")
        self._gone[ended_thread_id(thread)] = (end.name, how)

    def _ended_id(self, ident: int, mark: Any) -> str:
        """The model id of a thread that ran as ``ident`` and has ended (``mark``: its
        ``thread_mark``): one of its own, whatever thread has that ident now. While its
        Thread object lives, the id is the one every other part gives it
        (``livereport.ended_thread_id``, ``_add_ended_threads``: the ident and ``id(thread)``),
        so a report lists it once."""
        key = id(mark) if mark is not None else 0
        thread = mark() if mark is not None else None
        gone = f"{_tid(ident)}-ended-{id(thread) if thread is not None else key:x}"
        name = _names_by_thread.get(key, f"thread {_tid(ident)}")
        how = "has ended"
        if isinstance(thread, threading.Thread) and not thread.is_alive():
            from stuck.runtime.endings import ending_of

            end = ending_of(thread)
            how = "returned" if end.error is None else \
                f"died of {end.error}" + (f" at {end.where}" if end.where else "")
        self._gone[gone] = (name, how)
        return gone

    def _executor(self, pool: Any) -> ExecutorFacts:
        from stuck.runtime import registry

        workers = [_tid(t.ident) for t in list(getattr(pool, "_threads", ()))
                   if t.ident is not None and t.is_alive()]
        pending: list[str] = []
        with contextlib.suppress(Exception):
            for item in list(pool._work_queue.queue):
                if item is not None:
                    fn = getattr(item, "fn", None)
                    pending.append(getattr(fn, "__qualname__", None) or repr(fn))
        prefix = getattr(pool, "_thread_name_prefix", "") or ""
        label = self._label(pool, prefix or "ThreadPoolExecutor")
        if prefix and prefix not in label:
            label += f" ({prefix})"
        return ExecutorFacts(id=registry.foreign_id(pool, "executor"),
                             label=label, workers=workers,
                             max_workers=getattr(pool, "_max_workers", None),
                             shutdown=bool(getattr(pool, "_shutdown", False)), pending=pending)

    def _label(self, obj: object, fallback: str) -> str:
        key = id(obj)
        label = self._labels.get(key)
        if label is None:
            # A thread by its name, not by the variable that holds it; a lock by what it is
            # bound to, as every report names it (Account#2.lock); anything else by the
            # attribute that holds it (two pools made by one line of code have the same
            # creation site but different owners).
            from stuck.runtime.naming import lock_label

            cls = lock_class_of(obj)
            if isinstance(obj, threading.Thread):
                label = obj.name
            else:
                label = ((cls.name or lock_label(obj, cls)) if cls is not None else None) \
                    or fallback or "?"
            if len(self._labels) > 1024:
                self._labels.clear()
            self._labels[key] = label
        return label

    def _proven_unreachable(self, facts: Facts, objects: dict[str, object],
                            candidates: set[str]) -> set[str]:
        """``_unreachable``, with every thread that can still be woken counted as able to run.

        The candidates are the threads stuck if nothing reaches what nobody ever signalled; a
        candidate that the reachability pass frees (a thread able to run reaches its Event)
        will run again, and may then release what the others wait for: it is no more stuck
        than a running thread. So the pass is repeated without it, until the knot stays."""
        unreachable: set[str] = set()
        for _ in range(4):
            if not candidates:
                return set()
            unreachable = self._unreachable(facts, objects, candidates)
            knot, _ = stuck_set(facts, unreachable)
            if not candidates - knot:
                return unreachable
            candidates = candidates & knot
        return set()  # did not settle: nothing is proven out of reach

    def _unreachable(self, facts: Facts, objects: dict[str, object],
                     candidates: set[str]) -> set[str]:
        """Resources the stuck candidates wait on that no thread able to run reaches: nobody
        who has not used them yet can start to (what makes a claim from history certain)."""
        targets = {}
        for tid in candidates:
            t = facts.threads[tid]
            if t.wait is None:
                continue
            rf = facts.resources.get(t.wait.resource)
            if rf is not None and rf.id in objects:
                targets[rf.id] = objects[rf.id]
        if not targets:
            return set()
        stacks = framewalk.read(framewalk.chain)  # taken and read at once (see framewalk)
        runnable = {t.ident for t in facts.threads.values()
                    if t.alive and t.ident is not None and t.id not in candidates}
        if not runnable:
            return set(targets)  # no thread able to run is left to reach anything
        from stuck.runtime import registry
        extra = [th for ident, th in registry.thread_objects().items() if ident in runnable]
        roots = runnable_roots(runnable, stacks, extra)
        if roots is None:
            return set()  # a runnable thread's locals cannot be read: nothing is proven
        result = reachability(targets, roots)
        return result or set()

    @staticmethod
    def _annotate(snap: Snapshot, facts: Facts, findings: list[Finding]) -> None:
        """Put the live waker sets into the snapshot's resources (Resource.wakers)."""
        by_id = snap.resource_map()
        putting = {t.waits.resource for t in snap.threads()
                   if t.waits is not None and t.detail == "put on a full queue"}
        for rf in facts.resources.values():
            res = by_id.get(rf.id)
            if res is not None and rf.wakers is not None and res.wakers is None:
                # A put on a full queue is ended by a taker, not by the putters (the waiter
                # among them): for a queue, rf.wakers are its putters.
                ended_by = rf.getters if rf.id in putting and rf.getters is not None \
                    else rf.wakers
                res.wakers = sorted(ended_by)
            if res is not None and rf.label:
                res.label = rf.label


# ---------------------------------------------------------------------------------------------
# The rules on a Snapshot: one rule for the live run and for a saved live report


def record_facts(snap: Snapshot, facts: Facts, unreachable: set[str]) -> None:
    """Write ``facts`` into ``snap`` as model fields (Resource.recorded, Wait.op,
    Thread.ended, dead threads), so that ``rules(snap)`` sees exactly what the live
    instrumentation saw."""
    snap.taken_at = facts.now
    by_id = snap.resource_map()
    for rf in facts.resources.values():
        res = by_id.get(rf.id)
        if res is None:
            res = Resource(id=rf.id, kind=rf.kind if rf.kind in _KINDS else "unknown",  # type: ignore[arg-type]
                           label=rf.label, owners=list(rf.owners))
            snap.resources.append(res)
            by_id[rf.id] = res
        elif rf.kind == "semaphore":
            # Its holders as the facts tell them apart: a thread that ended holding permits
            # keeps an id of its own, even when a later thread got its ident.
            res.owners = list(rf.owners)
        rec = Recorded(
            epoch=rf.epoch, wakers=sorted(rf.wakers) if rf.wakers is not None else None,
            getters=sorted(rf.getters) if rf.getters is not None else None, size=rf.size,
            maxsize=rf.maxsize, jobs=list(rf.jobs), parties=rf.parties, waiting=rf.n_waiting,
            rounds=rf.rounds, broken=rf.broken, is_set=rf.is_set, free=rf.value,
            in_flight=rf.in_flight, joins=rf.thread, task=rf.task, running=rf.running,
            reachable=False if rf.id in unreachable else None, served=rf.served,
            signals=[ModelSignal(g.op, g.thread, g.at, g.waiters, g.where)
                     for g in rf.history])
        ex = facts.executors.get(rf.executor) if rf.executor else None
        if ex is not None:
            rec.pool, rec.pool_label, rec.pool_workers = ex.id, ex.label, list(ex.workers)
            rec.pool_capacity, rec.pool_shutdown = ex.max_workers, ex.shutdown
            rec.pool_pending = list(ex.pending)
        res.recorded = rec
    threads = snap.thread_map()
    for tf in facts.threads.values():
        mt = threads.get(tf.id)
        if mt is None:
            mt = Thread(id=tf.id, name=tf.name, state="dead" if not tf.alive else "unknown",
                        daemon=tf.daemon)
            if snap.processes:
                snap.processes[0].threads.append(mt)
            threads[tf.id] = mt
        if not tf.alive:
            mt.state = "dead"
            mt.ended = tf.ended
            if mt.detail is None:  # the words reports put after a gone thread's name
                how = tf.ended or ""
                mt.detail = f"ended ({how.removeprefix('died of ')})" \
                    if how.startswith("died of ") else "ended"
        elif tf.wait is not None:
            if mt.waits is None or mt.waits.resource != tf.wait.resource:
                mt.waits = Wait(resource=tf.wait.resource, since=tf.wait.since,
                                timeout=tf.wait.timeout, durable=tf.wait.durable)
                mt.state = "blocked"
            mt.waits.op = tf.wait.op


_KINDS = frozenset(("mutex", "rlock", "rwlock", "condition", "semaphore", "event", "barrier",
                    "queue", "channel", "future", "task", "thread", "waitgroup", "monitor",
                    "pipe", "socket", "unknown"))


def _add_ended_threads(snap: Snapshot) -> None:
    """Ended threads of the program as dead threads of the snapshot: who could have signalled
    a primitive nobody ever did. Each is the thread it was, under its own ident (``0x…``), so
    a thread already in the snapshot (a waker that ended) is not listed twice; an ident now
    reused by a running thread gets the ended form of it (see ``_waker_id``)."""
    if not snap.processes:
        return
    present = {t.id: t for t in snap.threads()}
    for thread, how in ended_thread_objects():
        if thread.ident is None:
            continue
        tid = _tid(thread.ident)
        known = present.get(tid)
        if known is not None and known.state == "dead":
            continue
        if known is not None:  # the ident belongs to a running thread now
            tid = f"{tid}-ended-{id(thread):x}"
        if any(t.state == "dead" and t.name == thread.name and t.ended == how
               for t in present.values()):
            continue  # the same thread, known under its ended form already
        detail = f"ended ({how.removeprefix('died of ')})" if how.startswith("died of ") \
            else "ended"
        present[tid] = Thread(id=tid, name=thread.name, state="dead", ended=how, detail=detail,
                              daemon=thread.daemon)
        snap.processes[0].threads.append(present[tid])
    for n, (ident, name, how) in enumerate(dropped_threads()):  # no longer held by the program
        tid = _tid(ident)
        known = present.get(tid)
        if known is not None and known.state == "dead":
            continue
        if known is not None:  # the ident belongs to a running thread now
            tid = f"{tid}-ended-dropped{n}"
        if any(t.state == "dead" and t.name == name and t.ended == how
               for t in present.values()):
            continue
        detail = f"ended ({how.removeprefix('died of ')})" if how.startswith("died of ") \
            else "ended"
        present[tid] = Thread(id=tid, name=name, state="dead", ended=how, detail=detail)
        snap.processes[0].threads.append(present[tid])


# pytest leaves these frames out of the tracebacks it shows (STUCK_DEBUG=1 keeps them): a
# program's wait passes through them, plain Python's does not (stuck.tracebacks).
__tracebackhide__ = _hide_in_pytest()

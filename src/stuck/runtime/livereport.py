"""Build a ``stuck.model`` Snapshot and Findings from the live registry, on demand.

Runs only when something was found or a report was asked for (a signal, ``stuck.snapshot()``).
It takes no lock that a program's thread could hold: it copies the registry's dicts (atomic
under the GIL) and reads the tracked objects' fields, so it is safe inside a signal handler
running on a thread that is itself blocked or in the middle of a registry update.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import linecache
import os
import re
import sys
import time
import weakref
from types import FrameType
from typing import Any, cast

from stuck import compat
from stuck.model import (
    Edge,
    EventLoop,
    Finding,
    Frame,
    Process,
    Resource,
    ResourceKind,
    Snapshot,
    Source,
    Thread,
    ThreadState,
    Wait,
)
from stuck.rules.cycle import deadlock_finding
from stuck.rules.facts import WAIT_OPS, Facts, ResourceFacts, ThreadFacts, ThreadWait
from stuck.rules.wording import UNPROVEN as UNPROVEN  # policy and asyncio read it here
from stuck.rules.wording import closing_words, name_of
from stuck.runtime import framewalk, hooks, registry
from stuck.runtime.activity import frame_activity
from stuck.runtime.detect import Cycle, is_stuck
from stuck.runtime.naming import lock_label
from stuck.runtime.registry import WaitRecord
from stuck.runtime.sighandlers import python_signal_handlers
from stuck.runtime.tracked import as_tracked

MAX_FRAMES = 64
# "raft_mu = threading.Lock()", "self._mu: Lock = Lock()": the assignment target, if any.
_ASSIGNED = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_.]{0,80})\s*(?::[^=]{0,80})?=(?!=)")

_OP_WORDS = {
    "acquire": "acquire", "join": "join", "put": "put on a full queue",
    "get": "get from an empty queue", "wait": "wait", "result": "wait for a future's result",
    "queue-join": "wait for a queue's tasks to be done",
}


def thread_id(ident: int) -> str:
    return f"0x{ident:x}"


# Ended threads that reports name under ``ended_thread_id`` (their ident is another thread's
# now), for ``add_ended_threads``: weakly, a report never keeps a Thread alive.
_ended_by_id: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()


def ended_thread_id(thread: Any) -> str:
    """The model id of ``thread``, which has ended and whose ident a running thread has now:
    its ident's id with a mark of its own (the form ``stall`` gives such threads too)."""
    tid = f"{thread_id(thread.ident)}-ended-{id(thread):x}"
    _ended_by_id[tid] = thread
    return tid


def _frame(code: Any, line: int) -> Frame | None:
    if code is None:
        return None
    return Frame(function=code.co_name, file=code.co_filename, line=line)


def _assigned_name(file: str, line: int) -> str | None:
    if not file or file == "?" or line <= 0:
        return None
    text = linecache.getline(file, line)
    m = _ASSIGNED.match(text)
    return m.group(1) if m else None


def describe(obj: object) -> Resource:
    """A model Resource for a tracked primitive, a Thread, a Future or a queue."""
    import threading

    if isinstance(obj, threading.Thread):
        rid = registry.foreign_id(obj, "thread")
        ident = obj.ident
        # The thread's name (not the variable that holds it, not its ident): how it is
        # named everywhere else in the report.
        return Resource(id=rid, kind="thread", label=obj.name,
                        owners=[thread_id(ident)] if ident is not None and obj.is_alive()
                        else [])
    tracked = as_tracked(obj)
    if tracked is None:
        kind: ResourceKind = "future" if isinstance(obj, concurrent.futures.Future) \
            else "unknown"
        rid = registry.foreign_id(obj, kind if kind != "unknown" else "object")
        return Resource(id=rid, kind=kind, label=rid, address=f"{id(obj):#x}")
    kind = cast(ResourceKind, tracked._stuck_kind)
    rid = tracked._stuck_id
    cls = tracked._stuck_class
    created_at = None
    label = ""
    if cls is not None:
        created_at = Frame(function=cls.function, file=cls.file, line=cls.line)
        label = cls.name or lock_label(obj, cls) or _assigned_name(cls.file, cls.line) or ""
    if not label:
        label = tracked._stuck_facts().label or ""
    res = Resource(id=rid, kind=kind, label=label or rid, address=f"{id(obj):#x}",
                   created_at=created_at)
    ended = tracked._stuck_facts().ended_holder if kind == "mutex" else None
    for ident, code, line in tracked._stuck_owners():
        tid = thread_id(ident)
        if ended is not None and getattr(ended, "_ident", None) == ident:
            tid = ended_thread_id(ended)  # not the running thread that now has its ident
        res.owners.append(tid)
        where = _frame(code, line)
        if where is not None:
            res.acquired_at[tid] = where
    return res


def _frames(frame: FrameType | None, skip_own: bool) -> list[Frame]:
    """The model's frames of a stack another thread may be running. Only what is safe to
    read on such a frame is read: its code, line, caller and globals' ``__name__``. Never
    its locals (on 3.12 and earlier reading ``f_locals`` writes the running frame's locals
    dict, which the program may hold through ``locals()``), never the garbage collector's
    view of who refers to what (see ``stuck.runtime.naming``)."""
    out: list[Frame] = []
    while frame is not None and len(out) < MAX_FRAMES:
        code = frame.f_code
        if code in registry.boundary_codes:
            break
        # stuck's own frames (the tracked primitives, the report being built) are left out:
        # the program's frames are the ones that explain a wait.
        if skip_own and code.co_filename.startswith(registry._HERE + os.sep):
            frame = frame.f_back
            continue
        out.append(Frame(function=code.co_name, file=code.co_filename, line=frame.f_lineno,
                         module=frame.f_globals.get("__name__")))
        frame = frame.f_back
    return out


def _wait(record: WaitRecord, resource_id: str, now: float) -> Wait:
    at = None
    file, function, line = record.site()
    if file is not None:
        at = Frame(function=function, file=file, line=line)
    return Wait(resource=resource_id, since=record.since, duration=max(0.0, now - record.since),
                timeout=record.timeout, durable=record.timeout is None, at=at)


_refcount: Any = compat.refcount  # CPython only


def _count_as_dropped_does(obj: object) -> int:
    return int(_refcount(obj))


def _dropped_shape() -> int:
    """What ``_dropped`` sees for an object nothing else references: the same shape (a list
    of the objects, the loop variable, a call with it as argument)."""
    for probe in [object()]:
        return _count_as_dropped_does(probe)
    return 0


_UNREFERENCED = compat.calibrate_refcount(_dropped_shape)


def _has_owners(obj: object) -> bool:
    tracked = as_tracked(obj)
    return tracked is not None and bool(tracked._stuck_owners())


def _dropped(obj: object) -> bool:
    """True for a lock the program no longer references (acquired, never released, dropped):
    nobody can release it, so its holder does not hold it in any useful sense. The lock-order
    checker's held stacks still reference it; they are counted out."""
    if _refcount is None:
        return False
    return bool(_refcount(obj) - hooks.observer_references(obj) <= _UNREFERENCED)


def _untracked_state(frame: Any) -> ThreadState:
    """A thread in no tracked wait, by its stack: an event loop in ``select`` with nothing to
    do is idle, a ``sleep`` sleeps, a socket read is I/O; anything else runs."""
    activity, _ = frame_activity(frame)
    return activity if activity in ("idle", "sleeping", "io") else "running"


def _read_stack(frame: FrameType) -> tuple[list[Frame], ThreadState]:
    return _frames(frame, skip_own=True), _untracked_state(frame)


def take(with_tasks: bool = True) -> tuple[Snapshot, dict[int, WaitRecord], dict[int, str]]:
    """The live snapshot, the wait table it was built from and resource ids by object id.
    ``with_tasks``: include asyncio tasks (``stuck.runtime.aio.extend_snapshot`` adds them
    later to a snapshot taken without)."""
    now = time.time()
    table = dict(registry.waits)
    current = framewalk.read(_read_stack)  # taken and read at once (see framewalk)
    threads = registry.thread_objects()
    resources: dict[str, Resource] = {}
    rid_of: dict[int, str] = {}

    def add(obj: object) -> Resource:
        key = id(obj)
        if key in rid_of:
            return resources[rid_of[key]]
        res = describe(obj)
        resources[res.id] = res
        rid_of[key] = res.id
        return res

    objects = list(registry.resources)
    for obj in objects:
        if _has_owners(obj) and not _dropped(obj):
            add(obj)
    model_threads: list[Thread] = []
    idents = list(threads)
    for ident in current:
        if ident not in threads:
            idents.append(ident)
    own = registry.own_idents
    for ident in idents:
        if ident in own:
            continue  # stuck's own thread (the watchdog): not the program's
        t = threads.get(ident)
        tid = thread_id(ident)
        record = table.get(ident)
        mt = Thread(id=tid, tid=getattr(t, "native_id", None), name=t.name if t else None,
                    daemon=t.daemon if t else None,
                    frames=current[ident][0] if ident in current else [])
        if record is not None:
            res = add(record.resource)
            mt.waits = _wait(record, res.id, now)
            mt.state = "blocked" if record.timeout is None else "sleeping"
            mt.detail = _OP_WORDS.get(record.op, record.op)
            wakers = record.waker_idents()
            if wakers is not None and res.kind in ("queue", "future", "semaphore"):
                res.wakers = [thread_id(w) for w in wakers]
        else:
            mt.state = current[ident][1] if ident in current else "unknown"
        model_threads.append(mt)
    for res in resources.values():
        for owner in res.owners:
            for mt in model_threads:
                if mt.id == owner and res.kind != "thread":
                    mt.holds.append(res.id)
    # asyncio tasks are threads of the model too (ids "task:<name>"); they fill in their own
    # holds and waits.
    notes: list[str] = []
    loops: list[EventLoop] = []
    tasks = registry.tasks_module() if with_tasks else None
    if tasks is not None:
        notes, loops = tasks.add_to_snapshot(model_threads, resources, rid_of, now)
    snap = Snapshot(source=Source(kind="live", format="python"),
                    processes=[Process(pid=os.getpid(), name=_process_name(),
                                       threads=model_threads,
                                       signal_handlers=python_signal_handlers(rid_of))],
                    resources=list(resources.values()), taken_at=now, notes=notes, loops=loops)
    add_ended_threads(snap)
    return snap, table, rid_of


def add_ended_threads(snap: Snapshot) -> None:
    """Threads a resource names (could wake it, holds it) that have ended: added to the
    snapshot as dead, with their name and how they ended, so no report shows a raw ident."""
    from stuck.runtime.endings import ending, ending_of

    if not snap.processes:
        return
    alive = framewalk.idents()
    known = {t.id for t in snap.threads()}
    out: list[Thread] = []
    for res in snap.resources:
        for tid in [*res.owners, *(res.wakers or ())]:
            if tid in known or not tid.startswith("0x"):
                continue
            known.add(tid)
            gone = _ended_by_id.get(tid)
            if gone is not None:  # an ended thread whose ident another thread has now
                how = ending_of(gone)
                out.append(Thread(id=tid, name=how.name, state="dead", ended=_how(how)))
                continue
            with contextlib.suppress(ValueError):
                end = ending(int(tid, 16), alive)
                if end is not None:
                    out.append(Thread(id=tid, name=end.name, state="dead", ended=_how(end)))
    snap.processes[0].threads.extend(out)


def _how(end: Any) -> str:
    """How a thread ended, in the model's words: ``returned``, ``died of E at f.py:3``."""
    if end.error is None:
        return "returned"
    return f"died of {end.error}" + (f" at {end.where}" if end.where else "")


def _process_name() -> str:
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "python"
    return os.path.basename(argv0)


# --- findings ---------------------------------------------------------------------------------


def _thread_name(snap: Snapshot, ident: int) -> str:
    t = snap.thread(thread_id(ident))
    return t.name or t.id if t is not None else thread_id(ident)


def _cycle_facts(cycle: Cycle, snap: Snapshot, rid_of: dict[int, str]
                 ) -> tuple[Facts, list[Edge]]:
    """The rules' facts of the cycle's own threads and resources, read from its wait records
    (the walk's view), and its edges: what ``stuck.rules.cycle`` words a cycle from."""
    resmap = snap.resource_map()
    threads: dict[str, ThreadFacts] = {}
    resources: dict[str, ResourceFacts] = {}
    edges: list[Edge] = []
    for step in cycle.steps:
        record = step.record
        known = rid_of.get(id(record.resource))
        res = resmap.get(known) if known is not None else None
        if res is None:
            res = describe(record.resource)
        rid = res.id
        if rid not in resources:
            resources[rid] = ResourceFacts(id=rid, kind=res.kind, label=res.label or rid)
        tid = thread_id(step.thread)
        op = record.op if record.op in WAIT_OPS else "unknown"
        threads[tid] = ThreadFacts(
            id=tid, name=_thread_name(snap, step.thread), ident=step.thread,
            wait=ThreadWait(resource=rid, op=op,  # type: ignore[arg-type]
                            durable=record.timeout is None, since=record.since,
                            timeout=record.timeout))
        edges.append(Edge(thread=tid, waits_for=rid, held_by=thread_id(step.next_thread)))
    return Facts(threads=threads, resources=resources), edges


def finding_for(cycle: Cycle, snap: Snapshot, rid_of: dict[int, str],
                table: dict[int, WaitRecord], policy: str) -> Finding:
    """The finding of a cycle found when its last thread blocked: the rules' finding of that
    cycle (``stuck.rules.cycle``), the same words the watchdog gives it, with the threads
    blocked behind it and what the policy did."""
    facts, edges = _cycle_facts(cycle, snap, rid_of)
    closer = edges[0].thread
    finding = deadlock_finding(edges, facts, time.time(), closed_by=closer)
    in_cycle = set(cycle.threads())
    finding.blocked_behind = [thread_id(t) for t in table
                              if t not in in_cycle and is_stuck(t, table)]
    words = closing_words(policy, name_of(facts, closer))
    if words:
        finding.explanation += "\n" + words
    finding.details["policy"] = policy
    return finding

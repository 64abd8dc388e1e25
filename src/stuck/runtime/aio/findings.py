"""asyncio in the model: tasks as threads of a ``Snapshot``, each event loop's facts
(``model.EventLoop``, and which loops were seen stalled), what a primitive's history says,
tasks that ended as dead threads. The cycles among tasks, a lock held across the await of a
call whose thread waits for it, and the stall of a loop none of whose tasks can run again are
judged from those facts by ``stuck.rules.evaluate``, for the watchdog, a report asked for on
demand and ``stuck explore`` alike; here, which cycles the watchdog leaves out (those reported
when they formed), and the finding of a cycle the walk done when a task blocks found."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time
from collections.abc import Iterable
from types import FrameType
from typing import Any

from stuck.model import (
    Edge,
    EventLoop,
    Finding,
    Frame,
    Recorded,
    Resource,
    Snapshot,
    Thread,
    ThreadState,
    Wait,
)
from stuck.rules.taskcycle import task_cycle_finding
from stuck.runtime import detect, endings, futures, registry
from stuck.runtime.aio.internals import (
    _ASYNCIO_DIR,
    _awaited,
    _chain,
    _GatheringFuture,
    _is_task,
    _loop_of,
    _LoopView,
    _task_where,
    awaiting,
    ended_with,
    gather_children,
    group_tasks,
    loop_state,
    loop_thread,
    pending_tasks,
)
from stuck.runtime.aio.names import _task_name, task_tid
from stuck.runtime.aio.primitives import _holders, _tracked_primitives
from stuck.runtime.aio.waits import TaskWait, _cycles_seen, waits
from stuck.runtime.aio.walk import (
    TaskCycle,
    _loops,
    _other_runnable_threads,
    _stalled,
    _suspended_marks,
    _victims,
    cycle_pairs,
    executor_chain,
    executor_futures,
    lock_takers,
)
from stuck.runtime.livereport import thread_id
from stuck.runtime.tracked import as_tracked

MAX_TASKS_SHOWN = 500  # tasks put in one snapshot (tasks that wait or hold come first)


# --- the model: tasks as threads --------------------------------------------------------------

_OP_WORDS = {
    "acquire": "acquire", "wait": "wait", "get": "get from an empty queue",
    "put": "put on a full queue", "queue-join": "wait for a queue's items to be processed",
    "await": "await a task", "gather": "await a gather", "taskgroup": "wait for a TaskGroup",
}
_AWAIT_OPS = frozenset({"await", "gather", "taskgroup"})
_IO_FILES = frozenset({"streams.py", "selector_events.py", "base_events.py",
                       "proactor_events.py", "sslproto.py", "subprocess.py",
                       "base_subprocess.py", "unix_events.py", "windows_events.py"})


_STUCK_DIR = registry._HERE + os.sep


def _frames(chain: list[FrameType]) -> list[Frame]:
    out: list[Frame] = []
    for frame in reversed(chain):  # innermost first
        code = frame.f_code
        if code.co_filename.startswith(_STUCK_DIR):
            continue  # stuck's own frames (the tracked primitive's wait)
        out.append(Frame(function=code.co_name, file=code.co_filename, line=frame.f_lineno,
                         module=frame.f_globals.get("__name__")))
    return out




def _group_label(kind: str, tasks: Iterable[Any]) -> str:
    names = [_task_name(t) for t in tasks]
    shown = ", ".join(names[:4]) + (f", … {len(names) - 4} more" if len(names) > 4 else "")
    return f"{kind}({shown})"


def resource_for(obj: Any, resources: dict[str, Resource], rid_of: dict[int, str],
                 ended: dict[str, Any] | None = None) -> Resource:
    """The model Resource of a tracked primitive, a task, a gather or a TaskGroup (added to
    ``resources`` and ``rid_of`` once). ``ended``: collects the tasks it names that have ended
    (a queue's past producer, a lock's owner), by thread id, for the snapshot to show them."""
    rid = rid_of.get(id(obj))
    if rid is not None and rid in resources:
        return resources[rid]
    if _is_task(obj):
        res = Resource(id=registry.foreign_id(obj, "task"), kind="task", label=_task_name(obj),
                       address=f"{id(obj):#x}",
                       owners=[] if obj.done() else [task_tid(obj)])
    elif _GatheringFuture is not None and type(obj) is _GatheringFuture:
        children = [c for c in gather_children(obj) if _is_task(c)]
        res = Resource(id=registry.foreign_id(obj, "task"), kind="task",
                       label=_group_label("gather", children), address=f"{id(obj):#x}",
                       owners=[task_tid(c) for c in children if not c.done()])
    elif isinstance(obj, asyncio.AbstractEventLoop):  # its thread waits for its tasks
        res = Resource(id=registry.foreign_id(obj, "task"), kind="task", label="event loop",
                       address=f"{id(obj):#x}")
    elif isinstance(obj, concurrent.futures.Future):  # what an executor's future mirrors
        runner = futures.runner_of(obj)
        call = futures.callable_of(obj)
        running = getattr(obj, "_state", None) == "RUNNING" and runner is not None
        res = Resource(id=registry.foreign_id(obj, "future"), kind="future",
                       label=f"{call}() in an executor" if call else "a concurrent future",
                       address=f"{id(obj):#x}",
                       # the thread running it is the one that completes it
                       owners=[thread_id(runner)] if running and runner is not None else [],
                       recorded=Recorded(task=call, running=running) if call else None)
    elif as_tracked(obj) is None:  # a TaskGroup
        members = [t for t in group_tasks(obj) if _is_task(t)]
        res = Resource(id=registry.foreign_id(obj, "task"), kind="task",
                       label=_group_label("TaskGroup", members), address=f"{id(obj):#x}",
                       owners=[task_tid(t) for t in members if not t.done()])
    else:
        from stuck.runtime.livereport import describe

        res = describe(obj)
        res.owners = [task_tid(t) for t in _holders(obj)]
        _record_history(res, obj, ended if ended is not None else {})
    resources[res.id] = res
    rid_of[id(obj)] = res.id
    return res


def _record_history(res: Resource, obj: Any, ended: dict[str, Any]) -> None:
    """What an asyncio primitive's history says, as model facts (``Resource.recorded``): who
    set an event or notified a condition last, which tasks ever put to or took from a queue;
    a lock's owner that has ended. The tasks named that have ended go to ``ended``."""
    tracked = as_tracked(obj)
    if tracked is None:
        return
    facts = tracked._stuck_facts()
    kind = tracked._stuck_kind
    if kind in ("event", "condition"):
        res.recorded = Recorded(set_by=facts.set_by)
    elif kind == "queue":
        putters, getters = list(facts.putters), list(facts.getters)
        res.recorded = Recorded(epoch=tracked._stuck_epoch,  # moved by every put and get
                                wakers=[task_tid(t) for t in putters],
                                getters=[task_tid(t) for t in getters])
        ended.update((task_tid(t), t) for t in putters if t.done())
    elif kind == "mutex" and facts.held_by_ended is not None:
        owner = facts.held_by_ended
        res.owners = [task_tid(owner)]
        ended[task_tid(owner)] = owner


def _ended_task(task: Any) -> Thread:
    """A task that has ended, as a dead thread of the model, with how it ended."""
    exc = ended_with(task)
    try:
        how = "cancelled" if task.cancelled() else "returned"
    except Exception:
        how = "returned"
    return Thread(id=task_tid(task), name=_task_name(task), state="dead",
                  ended=f"died of {exception_words(exc)}" if exc is not None else how)


def _io_or_unknown(chain: list[FrameType]) -> tuple[ThreadState, str]:
    if chain:
        code = chain[-1].f_code
        base = os.path.basename(code.co_filename)
        if code.co_filename.startswith(_ASYNCIO_DIR + os.sep):
            if base == "tasks.py" and code.co_name == "sleep":
                return "sleeping", "sleep"
            if base in _IO_FILES:
                return "io", code.co_name
    # Suspended on a future: not running, and nothing in view says who completes it.
    return "blocked", "awaits a future"


def add_to_snapshot(threads: list[Thread], resources: dict[str, Resource],
                    rid_of: dict[int, str], now: float) -> tuple[list[str], list[EventLoop]]:
    """Add every pending asyncio task as a Thread of the snapshot (what it holds, what it
    waits for, its await chain), the resources they name, and the tasks those name that have
    ended. Returns notes for the snapshot, and the facts of each event loop of the tasks."""
    tasks = pending_tasks()
    if not tasks:
        return [], []
    table = dict(waits)
    held: dict[int, list[Any]] = {}
    for obj in _tracked_primitives():
        for holder in _holders(obj):
            held.setdefault(id(holder), []).append(obj)

    def involved(task: Any) -> bool:
        fut = awaiting(task)
        return id(task) in table or id(task) in held or _is_task(fut) or (
            _GatheringFuture is not None and type(fut) is _GatheringFuture)

    tasks.sort(key=lambda t: 0 if involved(t) else 1)
    notes: list[str] = []
    if len(tasks) > MAX_TASKS_SHOWN:
        notes.append(f"{len(tasks) - MAX_TASKS_SHOWN} more asyncio tasks are not shown")
        tasks = tasks[:MAX_TASKS_SHOWN]
    views: dict[int, _LoopView] = {}
    loops: dict[int, EventLoop] = {}
    ended: dict[str, Any] = {}
    for task in tasks:
        loop = _loop_of(task)
        view = views.get(id(loop))
        if view is None:
            view = views[id(loop)] = _LoopView(loop)
            loops[id(loop)] = _loop_facts(loop)
        chain = _chain(task)
        thread = Thread(id=task_tid(task), name=_task_name(task), frames=_frames(chain))
        _describe_wait(thread, task, table.get(id(task)), view, chain, resources, rid_of, now,
                       ended)
        for obj in held.get(id(task), ()):
            thread.holds.append(resource_for(obj, resources, rid_of, ended).id)
        threads.append(thread)
        loops[id(loop)].tasks.append(thread.id)
    _held_across_awaits(threads, [v.loop for v in views.values()], resources, rid_of)
    shown = {t.id for t in threads}
    threads.extend(_ended_task(t) for tid, t in ended.items() if tid not in shown)
    return notes, list(loops.values())


def loop_id(loop: Any) -> str:
    """The model's id of an event loop (``EventLoop.id``)."""
    return f"loop-{id(loop):x}"


def _loop_facts(loop: Any, stalled: bool = False) -> EventLoop:
    """An event loop's facts (``model.EventLoop``). ``stalled``: its caller saw every task of
    it suspended, unchanged across the settle time; then who else could still wake it is read
    too (the other threads able to run, the program's signal handlers)."""
    ident = loop_thread(loop)
    facts = EventLoop(id=loop_id(loop),
                      thread=thread_id(ident) if ident is not None else None, stalled=stalled)
    state = loop_state(loop)
    if state is not None:
        facts.ready, facts.timers, facts.io, facts.idle = state
    if stalled:
        facts.runnable_threads = _other_runnable_threads(loop)
        facts.signal_handlers = _python_signal_handlers()
    return facts


def mark_stalled(snap: Snapshot, loop: Any) -> None:
    """Record in ``snap`` that ``loop`` was seen stalled (``walk._stalled``), with its state as
    read now and who else could still wake it, and the event loop as a resource its pending
    tasks own (id: the loop's): its thread, idle in the selector, runs no code until one of
    them resumes."""
    facts = _loop_facts(loop, stalled=True)
    for i, known in enumerate(snap.loops):
        if known.id == facts.id:
            facts.tasks = known.tasks
            snap.loops[i] = facts
            break
    else:
        facts.tasks = [task_tid(t) for t in pending_tasks() if _loop_of(t) is loop]
        snap.loops.append(facts)
    threads = snap.thread_map()
    pending = [t for t in facts.tasks if (th := threads.get(t)) is not None
               and th.state != "dead"]
    names = ", ".join(threads[t].name or t for t in pending[:4]) \
        + (", …" if len(pending) > 4 else "")
    if snap.resource(facts.id) is None:
        snap.resources.append(Resource(id=facts.id, kind="task", label=f"event loop ({names})",
                                       address=f"{id(loop):#x}", owners=pending))


def _held_across_awaits(threads: list[Thread], loops: list[Any],
                        resources: dict[str, Resource], rid_of: dict[int, str]) -> None:
    """A thread-level lock held by an event loop's thread is held by the task that took it
    and awaits inside its ``with`` (``walk.lock_takers``): the lock moves from the loop
    thread's holdings to that task's. When the source cannot tell which task (none, or
    several, run that code), the loop's thread keeps it."""
    by_ident = {loop_thread(loop): loop for loop in loops if loop_thread(loop) is not None}
    if not by_ident:
        return
    by_id = {t.id: t for t in threads}
    takers: dict[int, dict[Any, Any]] = {}
    for obj in list(registry.resources):
        tracked = as_tracked(obj)
        if tracked is None or tracked._stuck_kind not in ("mutex", "rlock"):
            continue
        for ident, code, _line in tracked._stuck_owners():
            loop = by_ident.get(ident)
            if loop is None:
                continue
            if ident not in takers:
                takers[ident] = lock_takers(loop)
            task = takers[ident].get(code)
            if task is None:
                continue
            res = resource_for(obj, resources, rid_of)
            old, new = thread_id(ident), task_tid(task)
            res.owners = [new if o == old else o for o in res.owners]
            if old in res.acquired_at:
                res.acquired_at[new] = res.acquired_at.pop(old)
            loop_t, task_t = by_id.get(old), by_id.get(new)
            if loop_t is not None and res.id in loop_t.holds:
                loop_t.holds.remove(res.id)
            if task_t is not None and res.id not in task_t.holds:
                task_t.holds.append(res.id)


def extend_snapshot(snap: Snapshot, rid_of: dict[int, str]) -> None:
    """Add the asyncio tasks to a snapshot taken without them (``livereport.take``)."""
    if not snap.processes:
        return
    resources = snap.resource_map()
    notes, loops = add_to_snapshot(snap.processes[0].threads, resources, rid_of,
                                   snap.taken_at or time.time())
    snap.resources = list(resources.values())
    snap.notes.extend(notes)
    snap.loops.extend(loops)
    if snap.processes[0].signal_handlers:
        # The handlers were read before the tasks' primitives had ids: which of those their
        # code names (an asyncio.Event a SIGTERM handler sets) is read again.
        from stuck.runtime.sighandlers import python_signal_handlers

        snap.processes[0].signal_handlers = python_signal_handlers(rid_of)


def _describe_wait(thread: Thread, task: Any, record: TaskWait | None, view: _LoopView,
                   chain: list[FrameType], resources: dict[str, Resource],
                   rid_of: dict[int, str], now: float, ended: dict[str, Any]) -> None:
    current = view.current()
    fut = awaiting(task)
    if record is not None and record.task() is not task:
        record = None
    if record is not None and (task is current or (fut is not None and not fut.done())):
        res = resource_for(record.resource, resources, rid_of, ended)
        timed = view.scheduled(task)
        file, function, line = record.where
        thread.waits = Wait(resource=res.id, since=record.since,
                            duration=max(0.0, now - record.since), timeout=None,
                            durable=not timed, op=record.op,
                            at=Frame(function=function, file=file, line=line) if file else None)
        thread.state = "sleeping" if timed else "blocked"
        thread.detail = _OP_WORDS.get(record.op, record.op)
        return
    if task is current or fut is None or fut.done():
        thread.state = "running"
        thread.detail = "running" if task is current else "ready to run"
        return
    on_executor = executor_chain(task)
    source = on_executor.source if on_executor is not None else next(
        (src for _, src in executor_futures(fut) if futures.started(src)), None)
    if source is not None:
        res = resource_for(source, resources, rid_of)
        file, function, line = _task_where(task)
        thread.waits = Wait(resource=res.id, timeout=None, durable=True, op="result",
                            at=Frame(function=function, file=file, line=line) if file else None)
        thread.state = "blocked"
        thread.detail = f"await {res.label}"
        return
    awaited = _awaited(task, fut)
    if awaited is not None:
        resource, op, _ = awaited
        res = resource_for(resource, resources, rid_of)
        timed = view.scheduled(task)
        file, function, line = _task_where(task)
        thread.waits = Wait(resource=res.id, timeout=None, durable=not timed, op=op,
                            at=Frame(function=function, file=file, line=line) if file else None)
        thread.state = "sleeping" if timed else "blocked"
        thread.detail = _OP_WORDS[op]
        return
    if view.timer_future(fut):
        thread.state, thread.detail = "sleeping", "a timer"
        return
    thread.state, thread.detail = _io_or_unknown(chain)


# --- findings ---------------------------------------------------------------------------------


def _snap_resource(snap: Snapshot, rid_of: dict[int, str], obj: Any) -> Resource:
    rid = rid_of.get(id(obj))
    if rid is not None:
        found = snap.resource(rid)
        if found is not None:
            return found
    resources = snap.resource_map()
    res = resource_for(obj, resources, rid_of)
    if snap.resource(res.id) is None:
        snap.resources.append(res)
    return res


def finding_for(cycle: TaskCycle, snap: Snapshot, rid_of: dict[int, str],
                policy: str) -> Finding:
    """The deadlock Finding of a cycle among tasks (the threads of ``snap`` include them): the
    rules' (``stuck.rules.taskcycle``), given the cycle the walk found, the tasks stuck behind
    it, and how it was found."""
    edges: list[Edge] = []
    for step in cycle.steps:
        res = _snap_resource(snap, rid_of, step.record.resource)
        edges.append(Edge(thread=task_tid(cycle.task(step.thread)), waits_for=res.id,
                          held_by=task_tid(cycle.task(step.next_thread))))
    root = cycle.task(cycle.steps[0].thread)
    victims = [task_tid(t) for t in _victims(_loop_of(root), set(cycle.tasks), cycle)]
    return task_cycle_finding(snap, edges, found_by=cycle.found_by, policy=policy,
                              timed=cycle.timed, blocked_behind=victims)


MAX_MESSAGE = 120  # characters of an exception's message shown


def exception_words(exc: BaseException) -> str:
    """``RuntimeError: sensor offline at feed.py:12``. The message is shown only when the
    exception's class keeps the built-in ``__str__`` (its arguments as given): a ``__str__`` of
    the program's own is user code, which a report never runs."""
    words = type(exc).__name__
    if type(exc).__str__ is BaseException.__str__ and exc.args:
        message = str(exc.args[0]) if len(exc.args) == 1 and isinstance(exc.args[0], str) \
            else repr(exc.args) if all(isinstance(a, (str, int, float)) for a in exc.args) \
            else ""
        if message:
            words += ": " + (message if len(message) <= MAX_MESSAGE
                             else message[:MAX_MESSAGE] + "…")
    where = endings._program_line(exc.__traceback__)
    return words + (f" at {where}" if where else "")


def mark_stalled_loops(snap: Snapshot, settle: float) -> None:
    """The live source's part of the asyncio rules: mark in ``snap`` (which has the tasks:
    ``extend_snapshot``) each event loop seen stalled, every task of it suspended on a tracked
    primitive for ``settle`` seconds or on other tasks or futures, unchanged across two
    observations, the loop quiet (``walk._stalled``), with who else could still wake it
    (``mark_stalled``). ``stuck.rules.evaluate`` then judges the loops from these facts: the
    cycles among the tasks, the executor chains, the stall of the tasks those leave."""
    table = dict(waits)
    cutoff = time.time() - settle
    for loop, tasks in _loops().values():
        if _stalled(loop, tasks, table, cutoff):
            mark_stalled(snap, loop)


def mark_quiet_loop(snap: Snapshot, loop: Any) -> bool:
    """Mark ``loop`` stalled in ``snap`` (which has the tasks) when its caller has seen it quiet
    (no callback ready, no timer, no I/O: ``internals._loop_quiet``) and unchanged across two
    observations, as ``stuck explore``'s watch does for a loop its scheduler does not control,
    and every task of it waits. True when marked: ``stuck.rules.evaluate`` then judges it."""
    table = dict(waits)
    tasks = [t for t in pending_tasks() if _loop_of(t) is loop]
    if not tasks or not (_stalled(loop, tasks, table, time.time())
                         or _suspended_marks(loop, tasks) is not None):
        return False
    mark_stalled(snap, loop)
    return True


def reported_when_formed(findings: list[Finding]) -> list[Finding]:
    """The watchdog's ``findings`` without the cycles among tasks already reported when they
    formed (the walk done when a task blocks: ``waits._cycles_seen``), unless the policy waits
    for the proof of one and the rules now prove it. The tasks of a cycle left out stay out
    of the loop's stall: the rules covered them."""
    if not _cycles_seen:
        return findings
    by_tid = {task_tid(t): t for t in pending_tasks()}
    table = dict(waits)
    kept: list[Finding] = []
    for f in findings:
        edges = f.cycle
        if f.kind != "deadlock" or not edges or not all(
                e.thread.startswith("task:") for e in edges) \
                or cycle_pairs(edges) not in _cycles_seen:
            kept.append(f)
            continue
        records = [r for e in edges if (t := by_tid.get(e.thread)) is not None
                   and (r := table.get(id(t))) is not None and r.task() is t]
        if f.confidence == "certain" and len(records) == len(edges) \
                and detect.awaits_proof_of(records):
            kept.append(f)  # reported then as probable, the policy waiting for this proof
    return kept


def _python_signal_handlers() -> list[str]:
    """The signals with a handler of the program's, written in Python: such a handler runs on
    the main thread and could complete a future (report time only). Python's default SIGINT
    handler, asyncio's (``asyncio.run`` cancels the main task on Ctrl-C: an interruption, not
    the end of a wait) and stuck's snapshot handler do not count."""
    import signal

    out: list[str] = []
    for sig in signal.valid_signals():
        try:
            handler = signal.getsignal(sig)
        except (ValueError, OSError):
            continue
        inner = getattr(handler, "func", handler)  # asyncio.run's is a functools.partial
        module = str(getattr(inner, "__module__", None) or "")
        if (callable(handler) and handler is not signal.default_int_handler
                and not module.startswith(("asyncio.", "stuck."))):
            out.append(signal.Signals(sig).name if sig in signal.Signals._value2member_map_
                       else str(int(sig)))
    return out

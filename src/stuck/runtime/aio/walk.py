"""The await graph among the tasks of one event loop: the knot-and-cycle walk of
``stuck.runtime.detect`` over tasks, and the event-loop rule's observations (a loop none of
whose tasks can run again, seen unchanged across the settle time)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from stuck.runtime import framewalk, futures, registry
from stuck.runtime.activity import frame_activity
from stuck.runtime.aio.internals import (
    _awaited,
    _chain,
    _GatheringFuture,
    _loop_of,
    _loop_quiet,
    _LoopView,
    _ref,
    _task_where,
    awaiting,
    gather_children,
    has_signal_handlers,
    loop_thread,
    pending_tasks,
    source_future,
)
from stuck.runtime.aio.names import task_tid
from stuck.runtime.aio.waits import TaskWait, waits
from stuck.runtime.detect import MAX_THREADS_WALKED, Cycle, _Walk
from stuck.runtime.tracked import as_tracked, kind_of

MAX_WALKS = 500  # walks for one report (the tasks stuck behind a cycle)


class _TaskWalk(_Walk):
    """The wait-for graph among the tasks of one event loop: the knot and cycle logic of
    ``stuck.runtime.detect``, over tasks (keyed by ``id(task)``) instead of threads.

    ``blocking``: the task about to block and its just-registered wait (it is still running,
    so its ``_fut_waiter`` does not show the wait yet)."""

    def __init__(self, root: Any, table: dict[int, TaskWait], view: _LoopView,
                 blocking: tuple[Any, TaskWait] | None = None,
                 read_scheduled: bool = True) -> None:
        super().__init__(id(root), {})
        self.tasks: dict[int, Any] = {id(root): root}
        self.records = table
        self.view = view
        self.blocking = blocking
        # False: take no wait as ended by a callback the loop has scheduled (no read of the
        # loop's handles). That only adds edges, so a walk without a knot this way has none
        # with them read either (see _find_cycle).
        self.read_scheduled = read_scheduled

    def wakers(self, thread: int) -> list[int] | None:
        cache = self._wakers
        if thread in cache:
            return cache[thread]
        task = self.tasks.get(thread)
        found = self._wait_of(task) if task is not None else None
        result: list[int] | None = None
        if found is not None:
            record, targets = found
            self.table[thread] = record
            keys = []
            for target in targets:
                self.tasks.setdefault(id(target), target)
                keys.append(id(target))
            if keys == [thread] and record.op == "acquire" \
                    and kind_of(record.resource) == "mutex":
                # Its own Lock: any other task of the loop could release it (an asyncio.Lock
                # is not owned); a deadlock only once none of them can run. One that can run
                # now settles it without walking from every task of the loop.
                others = self.view.tasks()
                about_to_block = self.blocking[0] if self.blocking is not None else None
                if any(_not_waiting(other) for other in others
                       if other is not task and other is not about_to_block):
                    cache[thread] = None
                    return None
                for other in others:
                    if other is not task:
                        self.tasks.setdefault(id(other), other)
                        keys.append(id(other))
            result = keys or None
        cache[thread] = result
        return result

    def holders(self, thread: int) -> list[int]:
        # Among tasks, the cycle's edges are the wakers themselves (an asyncio.Lock has no
        # owner beyond the task that took it, which is what wakers_of names).
        return self.wakers(thread) or []

    def _wait_of(self, task: Any) -> tuple[TaskWait, list[Any]] | None:
        if task.done():
            return None
        if self.blocking is not None and self.blocking[0] is task:
            record = self.blocking[1]
            targets = record.wakers_of()
            return (record, targets) if targets else None
        fut = awaiting(task)
        if fut is None or fut.done():
            return None  # running, or about to: it can end waits
        registered = self.records.get(id(task))
        if registered is not None and registered.task() is task:
            record = registered
            targets = registered.wakers_of()
        else:
            awaited = _awaited(task, fut)
            if awaited is None:
                return None  # I/O, a timer, a future anything may complete
            resource, op, targets = awaited
            record = TaskWait(resource, op, None, task, _task_where(task))
        if not targets or (self.read_scheduled  # (read last: costly)
                           and self.view.scheduled(task, record.resource)):
            return None  # anybody could end it, or something already scheduled will
        return record, targets


def _not_waiting(task: Any) -> bool:
    """True when ``_wait_of`` finds no wait for ``task`` without reading anything else: it is
    running or about to (or has ended), so it is not stuck."""
    fut = awaiting(task)
    return task.done() or fut is None or fut.done()


@dataclass(slots=True)
class TaskCycle(Cycle):
    """A deadlock cycle among asyncio tasks; ``Step.thread`` values are ``id(task)``."""

    tasks: dict[int, Any] = field(default_factory=dict)
    found_by: str = "block"  # the walk finds a cycle when its last task blocks

    # key() stays the one of Cycle (the wait records): the policy reports each occurrence, and
    # the same tasks deadlocking again on the same locks after a retry is a new one.

    def pairs(self) -> frozenset[tuple[str, str]]:
        """Which task waits for what, as the model names them (``cycle_pairs``): the same
        while the tasks stay in this cycle."""
        return frozenset((task_tid(self.tasks[s.thread]), resource_id(s.record.resource))
                         for s in self.steps)

    def task(self, key: int) -> Any:
        return self.tasks[key]


def resource_id(obj: Any) -> str:
    """The model's id of what a task waits for: a tracked primitive's own, or the one a task,
    a gather or a TaskGroup gets in a snapshot (``findings.resource_for``)."""
    tracked = as_tracked(obj)
    return tracked._stuck_id if tracked is not None else registry.foreign_id(obj, "task")


def cycle_pairs(edges: list[Any]) -> frozenset[tuple[str, str]]:
    """``TaskCycle.pairs`` of a cycle as the model's edges."""
    return frozenset((e.thread, e.waits_for) for e in edges)


def _as_task_cycle(cycle: Cycle, walk: _TaskWalk, timed: bool, found_by: str) -> TaskCycle:
    return TaskCycle(steps=cycle.steps, timed=timed, proven=cycle.proven,
                     tasks={s.thread: walk.tasks[s.thread] for s in cycle.steps}
                     | {s.next_thread: walk.tasks[s.next_thread] for s in cycle.steps},
                     found_by=found_by)


def _find_cycle(task: Any, record: TaskWait) -> TaskCycle | None:
    """The cycle that ``task``'s new wait closes, if any (called before it blocks)."""
    first = record.wakers_of()
    if not first:
        return None
    # Read in place, not copied (a copy per contended acquire is a cost in the number of
    # waiting tasks): the entries of this loop's tasks change only in this thread, which is
    # here, and a walk reaches no other loop's tasks.
    table = waits
    for waker in first:  # the common case: whoever could end the wait can run, or waits for
        if waker is not task:  # something other than a task or a tracked primitive
            fut = awaiting(waker)
            if fut is None or fut.done():
                return None
            registered = table.get(id(waker))
            if (registered is None or registered.task() is not waker) \
                    and _awaited(waker, fut) is None:
                return None
    view = _LoopView(_loop_of(task))
    # First without reading what the loop has scheduled (all its handles, each time: that read
    # dominated contended locks among many tasks): a scheduled callback only ends waits, so
    # without a knot this way there is none. A walk cut short by its bound proves nothing.
    rough = _TaskWalk(task, table, view, blocking=(task, record), read_scheduled=False)
    if rough.knot() is None and len(rough.tasks) < MAX_THREADS_WALKED:
        return None
    walk = _TaskWalk(task, table, view, blocking=(task, record))
    cycle = walk.cycle()
    if cycle is None or view.acts_on(record.resource):  # a scheduled release, say
        return None
    # A timeout or a cancel scheduled for the task itself: a timed wait (reported, not raised).
    return _as_task_cycle(cycle, walk, view.scheduled(task), "block")



def _victims(loop: Any, in_cycle: set[int], cycle: TaskCycle) -> list[Any]:
    """Tasks of the loop stuck only behind the cycle."""
    view = _LoopView(loop)
    table = dict(waits)
    blocking = None
    if cycle.found_by == "block":
        root = cycle.task(cycle.steps[0].thread)
        record: Any = cycle.steps[0].record
        blocking = (root, record)
    out = []
    walks = 0
    for task in view.tasks():
        fut = awaiting(task)
        if id(task) in in_cycle or fut is None or fut.done():
            continue
        walks += 1
        if walks > MAX_WALKS:
            break
        if _TaskWalk(task, table, view, blocking).knot() is not None:
            out.append(task)
    return out


def _loops() -> dict[int, tuple[Any, list[Any]]]:
    by_loop: dict[int, tuple[Any, list[Any]]] = {}
    for task in pending_tasks():
        loop = _loop_of(task)
        if loop is None:
            continue
        entry = by_loop.get(id(loop))
        if entry is None:
            entry = by_loop[id(loop)] = (loop, [])
        entry[1].append(task)
    return by_loop




# --- from a task to the threads of an executor ------------------------------------------------

MAX_THREAD_STEPS = 16  # threads followed from an executor's worker, lock owner to lock owner
_OWNED_KINDS = frozenset({"mutex", "rlock"})  # released by their owner (what proves a step)


@dataclass(slots=True)
class ThreadStep:
    """One thread of an executor chain, blocked on a lock; ``owner``: the thread holding it."""

    ident: int
    record: registry.WaitRecord
    owner: int


@dataclass(slots=True)
class ExecutorChain:
    """A task suspended on an asyncio future that mirrors a ``concurrent.futures.Future``
    (``run_in_executor``, ``wrap_future``), whose runner thread waits, lock owner after lock
    owner, for a lock held by the thread of the task's own loop: ``taker`` is the task that took
    that lock there and holds it across an await (None: which one is not known), and the chain
    a deadlock when ``taker`` is ``task`` itself. ``steps[0].ident`` runs the call."""

    task: Any
    future: Any  # the asyncio future the task awaits
    source: Any  # the concurrent.futures.Future it mirrors
    steps: list[ThreadStep]
    loop_ident: int
    taker: Any

    @property
    def closed(self) -> bool:
        return self.taker is self.task

    def lock(self) -> Any:
        return self.steps[-1].record.resource


def lock_takers(loop: Any) -> dict[Any, Any]:
    """Which task of ``loop`` holds a lock its thread took in a given code object: code ->
    the one pending task whose await chain has a suspended frame running that code (a
    coroutine that took the lock and awaits inside its ``with``), or None when more than one
    has (which of them took it is not known)."""
    out: dict[Any, Any] = {}
    for task in pending_tasks():
        if _loop_of(task) is not loop:
            continue
        for frame in _chain(task):
            code = frame.f_code
            if code in out and out[code] is not task:
                out[code] = None
            else:
                out[code] = task
    return out


def executor_futures(fut: Any) -> list[tuple[Any, Any]]:
    """The running executor futures a task suspended on ``fut`` waits for, as (asyncio
    future, the ``concurrent.futures.Future`` it mirrors): ``fut`` itself, or the pending
    children of a ``gather`` (which completes only once every one of them has)."""
    if fut is None or fut.done():
        return []
    children = [c for c in gather_children(fut) if not c.done()] \
        if _GatheringFuture is not None and type(fut) is _GatheringFuture else [fut]
    out = []
    for child in children:
        source = source_future(child)
        if source is not None and getattr(source, "_state", None) == "RUNNING":
            out.append((child, source))
    return out


def executor_chain(task: Any) -> ExecutorChain | None:
    """The chain from a task suspended on an executor's future (alone or in a gather) to a
    lock held on the task's own loop thread, when each step is proven: the future is running
    on the thread stuck recorded as its runner, each thread waits without a timeout for a Lock
    or RLock, and each lock's owner is the next thread. None when any step is not so (the
    worker runs, sleeps, does I/O or waits with a timeout: it may yet finish). A chain back to
    the task itself first."""
    found: ExecutorChain | None = None
    for fut, source in executor_futures(awaiting(task)):
        chain = _chain_from(task, fut, source)
        if chain is not None and (found is None or (chain.closed and not found.closed)):
            found = chain
    return found


def _chain_from(task: Any, fut: Any, source: Any) -> ExecutorChain | None:
    loop = _loop_of(task)
    loop_ident = loop_thread(loop)
    ident = futures.runner_of(source)
    if loop_ident is None or ident is None:
        return None
    steps: list[ThreadStep] = []
    seen = {loop_ident}
    while len(steps) < MAX_THREAD_STEPS:
        if ident in seen:
            return None  # a cycle among threads: the thread rules' finding, not this one
        seen.add(ident)
        record = registry.waits.get(ident)
        if record is None or record.timeout is not None:
            return None
        tracked = as_tracked(record.resource)
        if tracked is None or tracked._stuck_kind not in _OWNED_KINDS \
                or record.op != "acquire":
            return None
        owners = tracked._stuck_owners()
        if len(owners) != 1:
            return None
        owner, code, _line = owners[0]
        steps.append(ThreadStep(ident, record, owner))
        if owner == loop_ident:
            return ExecutorChain(task, fut, source, steps, loop_ident,
                                     lock_takers(loop).get(code))
        ident = owner
    return None


# --- the event-loop rule (watchdog) -----------------------------------------------------------


# A loop found quiet with every task suspended and none on a tracked primitive (tasks awaiting
# each other, or futures): id(loop) -> (what each task waited on, when that was first seen).
# Such a state is reported only once it has held, unchanged, for the settle time.
# The marks hold each future by weak reference and compare by identity (a weak reference
# to a live object equals one to the same object; to a dead one, only itself): a future freed
# and another made at the same address, thousands of times a second by a busy loop, is not
# "the same wait".
_suspended_since: dict[int, tuple[tuple[object, ...], float]] = {}


def _mark(fut: Any) -> object:
    try:
        return _ref(fut)
    except TypeError:  # not weak-referenceable: its id, the best there is
        return id(fut)


def _executor_will_complete(fut: Any) -> bool:
    """True when ``fut`` mirrors an executor's future (or, for a gather, one of its children
    does) that its executor will still complete: queued for the pool's workers, or running on
    a thread that is not in a wait without a timeout on a tracked primitive (it runs, sleeps or
    does I/O). Such a wait ends by itself; a running call stuck on a lock is followed by
    ``executor_chain``."""
    if _GatheringFuture is not None and type(fut) is _GatheringFuture:
        return any(_executor_will_complete(c) for c in gather_children(fut) if not c.done())
    source = source_future(fut)
    if source is None:
        return False
    if getattr(source, "_state", None) != "RUNNING":
        return True  # queued (a pool whose workers are all stuck is the thread rules'), or done
    runner = futures.runner_of(source)
    record = registry.waits.get(runner) if runner is not None else None
    return record is None or record.timeout is not None


def _suspended_marks(loop: Any, tasks: list[Any]) -> tuple[object, ...] | None:
    """What each task of a quiet ``loop`` is suspended on, when every one is suspended on a
    task, a gather, a TaskGroup or a plain future, and nothing else can end those waits: the
    loop has no signal handler (``add_signal_handler`` could complete a future), no other
    thread can run (``call_soon_threadsafe`` could) and no executor will complete a future
    awaited. None otherwise."""
    try:
        if not tasks or has_signal_handlers(loop) or not _loop_quiet(loop):
            return None
        marks: list[object] = []
        plain = False
        for task in tasks:
            fut = awaiting(task)
            if task.done() or fut is None or fut.done():
                return None
            if _awaited(task, fut) is None:
                if _executor_will_complete(fut):
                    return None
                plain = True
            marks.append(_mark(fut))
        if plain and _other_runnable_threads(loop):
            return None
        return tuple(marks)
    except Exception:  # a loop or task of another kind: nothing can be proven
        return None


def _suspended_for(loop: Any, tasks: list[Any], now: float) -> float:
    """How long ``loop`` has been in the same all-suspended state (0 when it is not)."""
    marks = _suspended_marks(loop, tasks)
    if marks is None:
        _suspended_since.pop(id(loop), None)
        return 0.0
    earlier = _suspended_since.get(id(loop))
    if earlier is None or earlier[0] != marks:
        if len(_suspended_since) > 256:
            _suspended_since.clear()
        _suspended_since[id(loop)] = (marks, now)
        return 0.0
    return now - earlier[1]


def settled(settle: float) -> bool:
    """True when some task has waited on a tracked primitive for ``settle`` seconds on a loop
    that looks quiet, or when a quiet loop's tasks have all stayed suspended on each other or on
    futures for that long: what makes the watchdog look closer (cheap: no snapshot)."""
    now = time.time()
    cutoff = now - settle
    seen: set[int] = set()
    for record in list(waits.values()):
        if record.since > cutoff:
            continue
        task = record.task()
        loop = _loop_of(task) if task is not None else None
        if loop is None or id(loop) in seen:
            continue
        seen.add(id(loop))
        if _loop_quiet(loop):
            return True
    found = False
    loops = _loops()
    for loop, tasks in loops.values():
        if id(loop) not in seen and _suspended_for(loop, tasks, now) >= settle:
            found = True  # no early return: every loop's state is brought up to date
    return found or bool(held_on_loop_threads(
        {i for loop, _ in loops.values() if (i := loop_thread(loop)) is not None}, cutoff))


def held_on_loop_threads(loop_idents: set[int], cutoff: float) -> set[int]:
    """Which of ``loop_idents`` (event loops' threads) own a lock some thread has waited for
    since before ``cutoff`` without a timeout, directly or lock owner after lock owner: where
    an executor chain (``executor_chain``) may close. Reads the threads' wait table only."""
    table = dict(registry.waits)
    out: set[int] = set()
    for first in table.values():
        if first.since > cutoff or first.timeout is not None:
            continue
        steps = 0
        record: registry.WaitRecord | None = first
        while record is not None and steps < MAX_THREAD_STEPS:
            steps += 1
            tracked = as_tracked(record.resource)
            if tracked is None or tracked._stuck_kind not in _OWNED_KINDS:
                break
            owners = tracked._stuck_owners()
            if len(owners) != 1:
                break
            owner = owners[0][0]
            if owner in loop_idents:
                out.add(owner)
                break
            record = table.get(owner)
    return out


def _stalled(loop: Any, tasks: list[Any], table: dict[int, TaskWait],
             cutoff: float) -> bool:
    """Every task of ``loop`` is suspended on a tracked primitive (for longer than the settle
    time) or on other tasks, and the loop is quiet: read twice, with the same result."""
    def state() -> tuple[int, ...] | None:
        if not _loop_quiet(loop):
            return None
        tracked = False
        marks: list[int] = []
        for task in tasks:
            fut = awaiting(task)
            if task.done() or fut is None or fut.done():
                return None
            record = table.get(id(task))
            if record is not None and record.task() is task:
                if record.since > cutoff:
                    return None
                tracked = True
            elif _awaited(task, fut) is None:
                return None
            marks.append(id(fut))
        return tuple(marks) if tracked else None

    first = state()
    if first is not None and state() == first:
        return True
    # No task on a tracked primitive: tasks awaiting each other (an await cycle) or futures
    # nothing left can complete, unchanged since an observation at least the settle time ago.
    earlier = _suspended_since.get(id(loop))
    marks = _suspended_marks(loop, tasks)
    return (marks is not None and earlier is not None and earlier[0] == marks
            and earlier[1] <= cutoff)


def _other_runnable_threads(loop: Any) -> list[str]:
    """Threads other than the loop's that could still run code, hence call
    ``loop.call_soon_threadsafe``: not stuck's own, not durably blocked on a tracked primitive,
    not an idle pool worker waiting for a job."""
    loop_ident = loop_thread(loop)
    names = registry.thread_objects()
    out: list[str] = []
    for ident, (activity, call) in framewalk.read(frame_activity).items():
        if ident == loop_ident or ident in registry.own_idents:
            continue
        record = registry.waits.get(ident)
        if record is not None and record.timeout is None:
            continue
        if activity == "idle" and call == "_worker":
            continue
        thread = names.get(ident)
        out.append(thread.name if thread is not None else f"0x{ident:x}")
    return sorted(out)

"""Stalls: waits that no thread still able to run can ever end.

Lock-cycle detectors see only cycles of *held* locks. Many real hangs are not cycles: a writer
waits on a condition for a job that a pool with no worker will never run; a consumer waits on a
queue whose producer has exited; a follower waits on an event whose setter died. The rules here
prove such waits from what the live instrumentation records:

- which waits are **durable** (only in-process code can end them: a lock, a condition, a queue,
  an event, a barrier, a future or a join without timeout), as opposed to timed waits, I/O,
  sleeps and child processes, which a timer or the outside world can end;
- for every condition, event, queue, semaphore, barrier and future, **who could wake it**: the
  threads that ever notified / set / put / got / released / completed it, and whether they are
  still alive; for an executor's future, the executor and its live workers.

The core is a fixed point. Start with every durably blocked thread as *stuck*; a thread leaves
the set as soon as something not in the set could end its wait (a lock's owner, a condition's
past notifier, a queue's past producer, the executor worker that would run a future, a thread
being joined). Whatever remains can only be woken by threads that are themselves stuck or dead:
stuck for good. Waits on primitives nobody ever signalled are judged by reachability (in the
spirit of Go's GC-based goroutine leak detector): if no thread able to run can reach the
primitive, nobody can ever signal it; anything reachable from module globals counts as
wakeable. Each finding says in words why, and what the evidence does not show.

Everything here runs in the watchdog thread on a snapshot of facts, never in the hot path.
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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import FrameType, ModuleType
from typing import Any, Literal

from stuck.model import Edge, Finding, Recorded, Resource, Snapshot, Thread, Wait
from stuck.model import Signal as ModelSignal
from stuck.runtime.registry import epoch_of as registry_epoch

WaitOp = Literal["acquire", "wait", "get", "put", "join", "result", "barrier", "unknown"]

# Kinds whose wakers are recorded by history (who ever notified / set / put / released ...).
SIGNALLED_KINDS = frozenset({"condition", "event", "queue", "semaphore", "barrier", "future"})


@dataclass(slots=True)
class ThreadWait:
    resource: str
    op: WaitOp = "wait"
    durable: bool = True
    since: float | None = None  # time.monotonic() when the wait began
    timeout: float | None = None


@dataclass(slots=True)
class ThreadFacts:
    """One thread as the instrumentation knows it; dead threads are kept while anything still
    names them as a waker."""

    id: str
    name: str
    alive: bool = True
    daemon: bool = False
    ident: int | None = None
    wait: ThreadWait | None = None
    runnable_hint: str | None = None  # "io", "sleeping", "running": why it is not blocked
    holds: list[str] = field(default_factory=list)
    ended: str | None = None  # for a dead thread: "returned", "died of ValueError: ..."


@dataclass(slots=True)
class Signal:
    """One past signal on a condition or event: who, when, and how many waited then."""

    op: str  # "notify", "notify_all", "set", "clear"
    thread: str
    at: float  # time.monotonic()
    waiters: int
    thread_mark: Any = None  # which Thread signalled (its ident may be reused): see thread_mark


@dataclass(slots=True)
class ResourceFacts:
    id: str
    kind: str  # the model's ResourceKind values
    label: str
    owners: list[str] = field(default_factory=list)
    # threads that ever did what ends a wait on it (notify, set, put, release, set_result,
    # arrive at a barrier); None: not recorded.
    wakers: set[str] | None = None
    getters: set[str] | None = None  # queue: threads that ever took an item
    size: int | None = None  # queue: items in it now
    maxsize: int | None = None  # queue: 0 or None = unbounded
    parties: int | None = None  # barrier
    n_waiting: int | None = None  # barrier
    rounds: int = 0  # barrier: rounds completed
    broken: bool = False
    executor: str | None = None  # future: its executor's id
    task: str | None = None  # future: the callable submitted
    running: bool = False  # future: a worker has started it
    thread: str | None = None  # join: the thread joined
    history: list[Signal] = field(default_factory=list)  # last few signals, oldest first
    obj: object | None = None  # the primitive itself, for the reachability pass
    # What ends a wait already holds (a set event, a free permit); a wait seen then is one
    # the waiter is about to leave, not a state to judge.
    is_set: bool = False  # event
    value: int | None = None  # semaphore: free permits
    # condition: waits the instrumentation records minus threads really parked on it; more
    # records than parked threads means a notify is on its way to some of them.
    in_flight: int = 0
    epoch: int | None = None  # the primitive's epoch when the facts were read
    jobs: list[str] = field(default_factory=list)  # queue: what its first items are


@dataclass(slots=True)
class ExecutorFacts:
    id: str
    label: str
    workers: list[str] = field(default_factory=list)  # live worker thread ids
    max_workers: int | None = None
    shutdown: bool = False
    pending: list[str] = field(default_factory=list)  # tasks queued, not started


@dataclass(slots=True)
class LiveFacts:
    threads: dict[str, ThreadFacts]
    resources: dict[str, ResourceFacts]
    executors: dict[str, ExecutorFacts] = field(default_factory=dict)
    now: float = field(default_factory=time.monotonic)
    # Threads of the program that have ended, named with how ("notifier (returned)"): who
    # could have signalled a primitive nobody ever signalled. Read only for such a finding.
    ended: Callable[[], list[str]] = field(default=lambda: [])


# ---------------------------------------------------------------------------------------------


def _waited(t: ThreadFacts, now: float) -> float | None:
    if t.wait is None or t.wait.since is None:
        return None
    return now - t.wait.since


def stuck_set(facts: LiveFacts, unreachable: set[str] | None = None,
              any_releaser: bool = False) -> tuple[set[str], dict[str, str]]:
    """The greatest set of threads that only stuck or dead threads could wake.

    Returns the set and, for each thread that left it, the reason (for the negative cases a
    report may want to explain). ``unreachable``: resources the reachability pass proved no
    runnable thread can reach (their unknown wakers count as nobody). ``any_releaser``: a plain
    ``Lock`` may be released by any thread, not only its owner (the proof ``certain`` needs);
    without it, the owner is taken to be the one who releases it."""
    unreachable = unreachable or set()
    threads = facts.threads
    stuck = {tid for tid, t in threads.items()
             if t.alive and t.wait is not None and t.wait.durable}
    freed: dict[str, str] = {}
    changed = True
    while changed:
        changed = False
        for tid in sorted(stuck):
            reason = _could_wake(threads[tid], facts, stuck, unreachable, any_releaser)
            if reason is not None:
                stuck.discard(tid)
                freed[tid] = reason
                changed = True
    return stuck, freed


def _able(tid: str, facts: LiveFacts, stuck: set[str]) -> bool:
    t = facts.threads.get(tid)
    return t is not None and t.alive and tid not in stuck


def _could_wake(t: ThreadFacts, facts: LiveFacts, stuck: set[str],
                unreachable: set[str], any_releaser: bool = False) -> str | None:
    """Why ``t``'s wait could still end, or None when only stuck or dead threads could end it."""
    assert t.wait is not None
    res = facts.resources.get(t.wait.resource)
    if res is None:
        return "waits on something the instrumentation does not know"
    op = t.wait.op
    ready = _ready(res, op)
    if ready is not None:
        return ready
    if res.kind in ("mutex", "rlock") or (op == "acquire" and res.kind == "condition"):
        able = [o for o in res.owners if _able(o, facts, stuck)]
        if able:
            return f"the owner {able[0]} can still run"
        if not res.owners:
            return "the lock is free"
        if any_releaser and res.kind == "mutex":
            others = sorted(x for x in facts.threads if x != t.id and _able(x, facts, stuck))
            if others:
                return (f"a Lock may be released by any thread, and {_name(facts, others[0])} "
                        "can still run")
        return None
    if res.id == INTERPRETER_EXIT:
        able = sorted(x for x, o in facts.threads.items()
                      if x != t.id and not o.daemon and _able(x, facts, stuck))
        return f"{_name(facts, able[0])} can still run" if able else None
    if op == "join" or res.kind == "thread":
        target = res.thread
        if target is None or _able(target, facts, stuck):
            return "the joined thread can still run"
        target_facts = facts.threads.get(target)
        if target_facts is not None and not target_facts.alive:
            return "the joined thread has ended"
        return None
    if res.kind == "future":
        if res.wakers and any(_able(w, facts, stuck) for w in res.wakers):
            return "a thread that completes it can still run"
        ex = facts.executors.get(res.executor) if res.executor else None
        if ex is None:
            return None if res.id in unreachable else "the future's executor is not known"
        if res.running:
            return None if not any(_able(w, facts, stuck) for w in ex.workers) \
                else "a worker is running it"
        if ex.shutdown and not ex.workers:
            return None
        if any(_able(w, facts, stuck) for w in ex.workers):
            return "an executor worker can still run it"
        return None
    if res.kind == "barrier":
        need = (res.parties or 0) - (res.n_waiting or 0)
        if res.broken:
            return "the barrier is broken: waiters get BrokenBarrierError"
        arrivers = [w for w in (res.wakers or set()) if _able(w, facts, stuck)
                    and not _waits_on(facts.threads[w], res.id)]
        used_by_all = len(res.wakers or ()) >= (res.parties or 0) or res.rounds > 0
        if res.id not in unreachable and not used_by_all:
            # Before a first full round, threads that never used the barrier may still
            # arrive; after it, its parties are the threads that used it.
            arrivers += [tid for tid, o in facts.threads.items()
                         if _able(tid, facts, stuck) and tid not in (res.wakers or set())]
        return f"{len(arrivers)} thread(s) could still arrive" if len(arrivers) >= need \
            else None
    if res.kind == "queue" and op == "put":
        takers = [g for g in (res.getters or set()) if _able(g, facts, stuck)]
        if takers:
            return f"{takers[0]} has taken from it before and can still run"
        if not res.getters and res.id not in unreachable:
            return "nobody has taken from it yet; a thread able to run may"
        return None
    # condition, event, queue get, semaphore: the threads that ever signalled it.
    wakers = res.wakers
    if wakers:
        able = sorted(w for w in wakers if _able(w, facts, stuck))
        if able:
            return f"{able[0]} has signalled it before and can still run"
        return None
    if res.id in unreachable:
        return None
    return "nobody has signalled it yet; a thread able to run may"


INTERPRETER_EXIT = "interpreter-exit"


def _ready(res: ResourceFacts, op: str) -> str | None:
    """Why a wait on ``res`` is already over (the waiter has yet to run and notice), or None.

    The facts are read one primitive after another; a waiter just woken still shows its wait.
    """
    if res.kind == "queue" and res.size is not None:
        if op == "put" and (not res.maxsize or res.size < res.maxsize):
            return "the queue has room: the putter is about to go on"
        if op == "get" and res.size > 0:
            return "the queue holds items: the getter is about to go on"
    if res.kind == "event" and res.is_set:
        return "the event is set: the waiter is about to go on"
    if res.kind == "semaphore" and res.value:
        return "the semaphore has a free permit"
    if res.kind == "condition" and op == "wait" and res.in_flight > 0:
        return "a notify is on its way to a waiter"
    return None


def _waits_on(t: ThreadFacts, rid: str) -> bool:
    return t.wait is not None and t.wait.resource == rid


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


def runnable_roots(runnable_idents: set[int], frames: dict[int, FrameType],
                   extra: Iterable[object] = ()) -> list[object]:
    """Roots of the reachability pass: the stacks (with their locals) of threads able to run,
    every module's globals, and ``extra`` (their Thread objects, say)."""
    roots: list[object] = []
    for ident in runnable_idents:
        f: FrameType | None = frames.get(ident)
        while f is not None:
            roots.append(f.f_code)
            with contextlib.suppress(Exception):
                roots.append(dict(f.f_locals))
            f = f.f_back
    for module in list(sys.modules.values()):
        if isinstance(module, ModuleType):
            roots.append(module.__dict__)
    roots.extend(extra)
    return roots


# ---------------------------------------------------------------------------------------------
# Findings


def _name(facts: LiveFacts, tid: str) -> str:
    t = facts.threads.get(tid)
    return t.name if t is not None else tid


def _state_of(facts: LiveFacts, tid: str, stuck: set[str]) -> str:
    t = facts.threads.get(tid)
    if t is None:
        return "gone"
    if not t.alive:
        return t.ended or "ended"
    if tid in stuck and t.wait is not None:
        res = facts.resources.get(t.wait.resource)
        what = f"{res.kind} {res.label}" if res is not None else t.wait.resource
        return f"itself blocked for good on {what}"
    return "able to run"


# A plain Lock may be released by any thread. A finding that holds only if the threads able
# to run never release a Lock they did not take is probable, and is reported only once its
# waits have lasted this long: a Lock used as a gate is opened by a thread that sleeps or works
# for a moment first.
LOCK_GATE_GRACE = 2.0


def evaluate(facts: LiveFacts, settle: float = 0.5,
             unreachable: set[str] | None = None) -> list[Finding]:
    """Apply the rules. ``settle``: a wait must have lasted this long to be judged.

    A closed cycle of holding and waiting among the stuck threads is a deadlock; any other
    wait nothing able to run can end is a stall, reported at its root (the wait the others are
    stuck behind), with why nothing can end it."""
    now = facts.now
    stuck, _ = stuck_set(facts, unreachable)
    strict, freed_strict = stuck_set(facts, unreachable, any_releaser=True)
    threads = facts.threads
    findings: list[Finding] = []
    reported: set[str] = set()
    for cycle in holding_cycles(stuck, facts):
        ids = [e.thread for e in cycle]
        if any((_waited(threads[i], now) or 0.0) < settle for i in ids):
            continue
        findings.append(_deadlock_finding(cycle, facts, now))
        reported.update(ids)
    for tid in sorted(stuck, key=lambda i: _priority(threads[i], facts, stuck, now)):
        t = threads[tid]
        if tid in reported or t.wait is None or (_waited(t, now) or 0.0) < settle:
            continue
        res = facts.resources.get(t.wait.resource)
        if res is None or _behind_another(t, res, stuck):
            continue  # a victim of another finding's threads, named in its blocked_behind
        finding = _stall_finding(t, res, facts, stuck, now, unreachable or set())
        if finding is None:
            continue
        reported.update(finding.threads)
        findings.append(finding)
    kept: list[Finding] = []
    for f in findings:
        loose = [x for x in f.threads if x in stuck and x not in strict]
        if loose:
            if any((_waited(threads[x], now) or 0.0) < LOCK_GATE_GRACE for x in f.threads
                   if x in threads and threads[x].wait is not None):
                continue
            if f.confidence == "certain":
                f.confidence = "probable"
            f.missing_evidence.insert(0, "a plain Lock may be released by any thread, not only "
                                         f"the one that took it: {freed_strict[loose[0]]}")
        kept.append(f)
    for f in kept:
        f.blocked_behind = _behind(f.threads, facts, stuck, reported)
    return kept


def _behind_another(t: ThreadFacts, res: ResourceFacts, stuck: set[str]) -> bool:
    """A wait that only threads stuck for another reason hold up: a lock one of them holds,
    a join of one of them, the interpreter's exit."""
    assert t.wait is not None
    if res.id == INTERPRETER_EXIT:
        return True
    if (res.kind in ("mutex", "rlock") or (res.kind == "condition" and t.wait.op == "acquire")) \
            and any(o in stuck and o != t.id for o in res.owners):
        return True
    return (t.wait.op == "join" or res.kind == "thread") and res.thread in stuck


def _holders(t: ThreadFacts, facts: LiveFacts) -> list[str]:
    """The threads ``t`` waits for by holding: a lock's owners, the thread it joins."""
    if t.wait is None:
        return []
    res = facts.resources.get(t.wait.resource)
    if res is None:
        return []
    if t.wait.op == "join" or res.kind == "thread":
        return [res.thread] if res.thread is not None else []
    if res.kind in ("mutex", "rlock", "semaphore") or (
            res.kind == "condition" and t.wait.op == "acquire"):
        return list(res.owners)
    # Inferred from behaviour (a probable cycle): the threads that ever took from a full
    # queue, or put to an empty one; the workers of a future's pool.
    if res.kind == "queue" and t.wait.op == "put":
        return sorted(res.getters or ())
    if res.kind == "queue" and t.wait.op == "get":
        return sorted(res.wakers or ())
    if res.kind == "future":
        ex = facts.executors.get(res.executor) if res.executor else None
        return sorted(res.wakers or ()) or (list(ex.workers) if ex is not None else [])
    return []


def holding_cycles(stuck: set[str], facts: LiveFacts) -> list[list[Edge]]:
    """Closed cycles of holding and waiting among ``stuck``: each thread waits for what the
    next one holds (a lock) or is (a thread it joins). One cycle per strongly connected part."""
    out: list[list[Edge]] = []
    covered: set[str] = set()
    for root in sorted(stuck):
        if root in covered:
            continue
        parent: dict[str, str] = {}
        frontier = [root]
        last: str | None = None
        while frontier and last is None:
            nxt: list[str] = []
            for x in frontier:
                for h in _holders(facts.threads[x], facts):
                    if h == root:
                        last = x
                        break
                    if h in stuck and h not in parent and h not in covered:
                        parent[h] = x
                        nxt.append(h)
                if last is not None:
                    break
            frontier = nxt
        if last is None:
            continue
        path = [last]
        while path[-1] != root:
            path.append(parent[path[-1]])
        path.reverse()
        edges = []
        for i, x in enumerate(path):
            w = facts.threads[x].wait
            assert w is not None
            edges.append(Edge(thread=x, waits_for=w.resource,
                              held_by=path[i + 1] if i + 1 < len(path) else root))
        covered.update(path)
        out.append(edges)
    return out


def _deadlock_finding(cycle: list[Edge], facts: LiveFacts, now: float) -> Finding:
    parts: list[str] = []
    proven = True
    for e in cycle:
        t = facts.threads[e.thread]
        res = facts.resources[e.waits_for]
        if t.wait is not None and (t.wait.op == "join" or res.kind == "thread"):
            parts.append(f"{t.name} joins {_name(facts, e.held_by)}")
        elif e.held_by == e.thread:
            parts.append(f"{t.name} takes {res.label}, which it already holds "
                         f"({res.kind} is not reentrant)")
        elif res.kind == "queue" and t.wait is not None and t.wait.op == "put":
            parts.append(f"{t.name} puts on full queue {res.label}, which only "
                         f"{_name(facts, e.held_by)} gets from")
        elif res.kind == "queue":
            parts.append(f"{t.name} gets from empty queue {res.label}, which only "
                         f"{_name(facts, e.held_by)} puts to")
        elif res.kind == "future":
            parts.append(f"{t.name} waits for {res.label}, which only "
                         f"{_name(facts, e.held_by)} can complete")
        else:
            parts.append(f"{t.name} waits for {res.label} held by {_name(facts, e.held_by)}")
        if res.kind in ("semaphore", "queue", "future"):
            proven = False
    n = len(cycle)
    summary = parts[0] if n == 1 else f"{n} threads wait for each other: " + "; ".join(parts)
    longest = max((_waited(facts.threads[e.thread], now) or 0.0) for e in cycle)
    missing: list[str] = []
    kinds = {facts.resources[e.waits_for].kind for e in cycle}
    if "semaphore" in kinds:
        missing.append("a semaphore can be released by any thread; its holders are the "
                       "threads that acquired it and have not released it")
    if "queue" in kinds:
        missing.append("which threads will use a queue is inferred from which threads used it "
                       "so far; a thread that never touched it could still end the wait")
    if "future" in kinds:
        missing.append("a pending future can only run on its pool's workers; another thread "
                       "could still complete it by hand")
    return Finding(
        kind="deadlock", confidence="certain" if proven else "probable", summary=summary,
        explanation=("Each thread waits, without a timeout, for what the next one holds; none "
                     f"of them can go on. The waits have lasted {longest:.1f} s and were seen "
                     "unchanged twice, with nothing released or signalled in between."),
        threads=_unique([e.thread for e in cycle]),
        resources=_unique([e.waits_for for e in cycle]), cycle=cycle,
        missing_evidence=missing, details={"rule": "cycle", "waiting_seconds": round(longest, 3)})


def _priority(t: ThreadFacts, facts: LiveFacts, stuck: set[str],
              now: float) -> tuple[int, int, float, str]:
    """Report order: the waiters first, then the threads that should have woken them (they
    appear inside the waiter's finding: the idle flush worker inside the writer's stall, the
    blocked pool worker inside its client's); waits for a result before idle workers waiting
    for jobs on a queue; longest first; then by id, so the order never depends on hashing."""
    res = facts.resources.get(t.wait.resource) if t.wait is not None else None
    idle_worker = res is not None and res.kind == "queue" and t.wait is not None \
        and t.wait.op == "get"
    waker_of_another = any(
        other.wait is not None and oid != t.id and _can_signal(t.id, other.wait.resource, facts)
        for oid, other in facts.threads.items() if oid in stuck)
    return (1 if waker_of_another else 0, 1 if idle_worker else 0,
            -(_waited(t, now) or 0.0), t.id)


def _can_signal(tid: str, rid: str, facts: LiveFacts) -> bool:
    res = facts.resources.get(rid)
    if res is None:
        return False
    if tid in (res.wakers or ()) or tid in res.owners:
        return True
    ex = facts.executors.get(res.executor) if res.executor else None
    return ex is not None and tid in ex.workers


def _behind(roots: list[str], facts: LiveFacts, stuck: set[str], reported: set[str]) -> list[str]:
    out: list[str] = []
    frontier = set(roots)
    while frontier:
        nxt: set[str] = set()
        for tid, t in facts.threads.items():
            if tid in reported or tid in out or tid not in stuck or t.wait is None:
                continue
            res = facts.resources.get(t.wait.resource)
            if res is not None and (any(o in frontier for o in res.owners)
                                    or res.thread in frontier or res.id == INTERPRETER_EXIT):
                out.append(tid)
                nxt.add(tid)
        frontier = nxt
    return sorted(out)


def _fmt_waited(t: ThreadFacts, now: float) -> str:
    w = _waited(t, now)
    return f" for {w:.1f} s" if w is not None else ""


def _stall_finding(t: ThreadFacts, res: ResourceFacts, facts: LiveFacts, stuck: set[str],
                   now: float, unreachable: set[str]) -> Finding | None:
    assert t.wait is not None
    what = f"{res.kind} {res.label}"
    lines: list[str] = []
    missing: list[str] = []
    involved = [t.id]
    resources = [res.id]
    details: dict[str, object] = {}
    confidence: Literal["certain", "probable", "possible"] = "probable"
    op = t.wait.op

    if res.kind == "future":
        ex = facts.executors.get(res.executor) if res.executor else None
        task = res.task or "the task"
        if ex is not None:
            resources.append(ex.id)
            if ex.shutdown and not ex.workers:
                why = f"executor {ex.label} has been shut down and has no worker left"
            elif not ex.workers:
                why = f"executor {ex.label} has no live worker"
                if ex.max_workers == 0:
                    why += " (it was made with zero workers)"
            else:
                why = (f"every worker of executor {ex.label} is itself blocked for good: "
                       + ", ".join(f"{_name(facts, w)} ({_state_of(facts, w, stuck)})"
                                   for w in ex.workers))
                involved += [w for w in ex.workers if w in stuck]
            summary = (f"{t.name} waits on the future of {task}, which executor {ex.label} "
                       "can never run")
            lines.append(f"{t.name} waits{_fmt_waited(t, now)} for the result of {task}, "
                         f"submitted to executor {ex.label}; {why}.")
            details.update(rule="future-executor", executor=ex.label, task=task,
                           workers=[_name(facts, w) for w in ex.workers])
            confidence = "certain" if not ex.workers else "probable"
        else:
            summary = f"{t.name} waits on the future of {task}; nothing able to run completes it"
            lines.append(f"No thread able to run can complete the future of {task}.")
            details["rule"] = "future"
    elif res.kind == "queue" and op == "put":
        summary = (f"{t.name} waits to put on full queue {res.label}; no thread able to run "
                   "will ever take from it")
        getters = sorted(res.getters or ())
        if getters:
            lines.append("The threads that ever took from it: " + ", ".join(
                f"{_name(facts, g)} ({_state_of(facts, g, stuck)})" for g in getters) + ".")
        else:
            lines.append("No thread has ever taken from it, and none able to run can reach it.")
        details["rule"] = "queue-put-no-getter"
        involved += [g for g in getters if g in stuck]
        confidence = "certain" if res.id in unreachable else "probable"
    elif res.kind == "barrier":
        need = (res.parties or 0) - (res.n_waiting or 0)
        summary = (f"{t.name} waits at barrier {res.label}, which can never collect its "
                   f"{res.parties} parties")
        lines.append(f"{res.n_waiting} of {res.parties} parties wait at the barrier; it needs "
                     f"{need} more, and not enough threads able to run could arrive.")
        users = sorted(res.wakers or ())
        if users:
            lines.append("Threads that used it before: " + ", ".join(
                f"{_name(facts, u)} ({_state_of(facts, u, stuck)})" for u in users) + ".")
        details["rule"] = "barrier"
        involved += sorted(x for x, o in facts.threads.items()
                           if x != t.id and x in stuck and _waits_on(o, res.id))
    else:
        verb = {"queue": "get from queue", "event": "wait for event",
                "condition": "wait on condition", "semaphore": "acquire semaphore"}.get(
            res.kind, f"wait on {res.kind}")
        wakers = sorted(res.wakers or ())
        lost = _lost_wakeup(t, res)
        if res.kind == "queue":
            summary = (f"{t.name} waits to get from queue {res.label}; no thread able to run "
                       "has ever put to it")
            details["rule"] = "queue-get-no-producer"
        elif lost is not None and all(not facts.threads[w].alive for w in wakers
                                      if w in facts.threads):
            summary = (f"{t.name} waits on {what}, notified before the wait began "
                       "(lost wake-up); nothing able to run will notify it again")
            details["rule"] = "lost-wakeup"
        else:
            summary = f"{t.name} waits on {what}; no thread that could wake it is able to run"
            details["rule"] = "no-live-waker"
        lines.append(f"{t.name} tries to {verb} {res.label}{_fmt_waited(t, now)}, without a "
                     "timeout.")
        if wakers:
            who = "put to it" if res.kind == "queue" else (
                "set it" if res.kind == "event" else (
                    "released it" if res.kind == "semaphore" else "notified it"))
            lines.append(f"The only thread(s) that ever {who}: " + ", ".join(
                f"{_name(facts, w)} ({_state_of(facts, w, stuck)})" for w in wakers) + ".")
            for w in wakers:
                if w in stuck:
                    involved.append(w)
                    wt = facts.threads[w]
                    if wt.wait is not None:
                        resources.append(wt.wait.resource)
                        lines.append(_chain_line(wt, facts, stuck))
            # Certain only when no thread able to run can even reach the primitive.
            confidence = "certain" if res.id in unreachable else "probable"
        else:
            if any(_able(x, facts, stuck) for x in facts.threads):
                lines.append("No thread has ever signalled it, and no thread able to run can "
                             "reach it (stacks and module globals searched).")
            else:
                lines.append("No thread has ever signalled it, and no thread is left able to "
                             "run: every other one is blocked for good itself.")
            ended = facts.ended()
            if ended:
                lines.append("Threads that have ended (one of them may have been meant to "
                             "signal it): " + ", ".join(ended) + ".")
            confidence = "certain"
            details["rule"] = "unreachable" if res.kind != "queue" else details["rule"]
        if lost is not None:
            lines.append(f"History: {_name(facts, lost.thread)} did {lost.op} "
                         f"{now - lost.at:.1f} s ago while {lost.waiters} thread(s) waited; "
                         f"{t.name} began to wait after that, and nothing has signalled since.")
            details["lost_wakeup"] = {"by": _name(facts, lost.thread), "op": lost.op,
                                      "seconds_ago": round(now - lost.at, 3)}
    # Work handed off by the threads of this stall that no live thread can take: the job
    # that would have woken them (a compaction queued on a pool with no worker).
    stranded = [(rid, line) for rid, line in _stranded_work(set(involved), facts, stuck)
                if rid != res.id]  # the queue waited on is the finding itself
    for rid, line in stranded:
        if rid not in resources:
            resources.append(rid)
        lines.append(line)
    if stranded:
        details["stranded"] = [line for _, line in stranded]
        first = facts.resources.get(stranded[0][0])
        ex = facts.executors.get(stranded[0][0])
        where = first.label if first is not None else (ex.label if ex is not None else "")
        summary += f"; the job queued on {where} can never run"
    if confidence != "certain":
        missing.append("a thread that never signalled this resource could still do so; the "
                       "claim rests on who signalled it so far")
    missing.append("which code would signal it is not recorded")
    details.setdefault("waiting_seconds", round(_waited(t, now) or 0.0, 3))
    return Finding(kind="stall", confidence=confidence, summary=summary,
                   explanation="\n".join(lines), threads=_unique(involved),
                   resources=_unique(resources), missing_evidence=missing, details=details)


def _chain_line(wt: ThreadFacts, facts: LiveFacts, stuck: set[str]) -> str:
    assert wt.wait is not None
    res = facts.resources.get(wt.wait.resource)
    if res is None:
        return f"{wt.name} waits on {wt.wait.resource}."
    if res.kind == "queue" and wt.wait.op != "put":
        putters = sorted(res.wakers or ())
        idle = "idle on empty" if not res.size else "waiting on"
        who = ", ".join(f"{_name(facts, p)} ({_state_of(facts, p, stuck)})" for p in putters) \
            or "nobody"
        return (f"{wt.name} is {idle} queue {res.label}; the thread(s) that ever put work "
                f"there: {who}.")
    owners = ", ".join(_name(facts, o) for o in res.owners)
    return (f"{wt.name} waits on {res.kind} {res.label}"
            + (f" held by {owners}" if owners else "") + ".")


def _stranded_work(involved: set[str], facts: LiveFacts, stuck: set[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for res in facts.resources.values():
        if res.kind != "queue" or not res.size:
            continue
        if not (res.wakers or set()) & involved:
            continue
        takers = [g for g in (res.getters or ()) if _able(g, facts, stuck)]
        if takers:
            continue
        putters = ", ".join(_name(facts, p) for p in sorted((res.wakers or set()) & involved))
        workers = sorted(res.getters or ())
        if workers:
            why = "every thread that ever took from it is dead or blocked for good (" + \
                ", ".join(f"{_name(facts, w)}: {_state_of(facts, w, stuck)}"
                          for w in workers) + ")"
        else:
            why = "no thread has ever taken from it: the pool it feeds has no worker"
        what = f" ({', '.join(res.jobs)})" if res.jobs else ""
        out.append((res.id, f"{res.size} job(s){what} that {putters} queued on {res.label} will "
                            f"never run: {why}."))
    for ex in facts.executors.values():
        if not ex.pending or any(_able(w, facts, stuck) for w in ex.workers):
            continue
        why = ("it has been shut down" if ex.shutdown else
               "it has no live worker" if not ex.workers else "all its workers are blocked")
        out.append((ex.id, f"{len(ex.pending)} task(s) queued on executor {ex.label} "
                           f"({', '.join(ex.pending[:3])}) will never run: {why}."))
    return out


def _lost_wakeup(t: ThreadFacts, res: ResourceFacts) -> Signal | None:
    """The last notify that found nobody waiting, when it came before ``t`` began to wait and
    nothing signalled since."""
    if res.kind != "condition" or not res.history or t.wait is None or t.wait.since is None:
        return None
    since = t.wait.since
    after = [s for s in res.history if s.at >= since]
    if after:
        return None
    before = [s for s in res.history if s.at < since and s.waiters == 0]
    return before[-1] if before else None


def _unique(items: list[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for i in items:
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


# ---------------------------------------------------------------------------------------------
# Waker history: what the tracked primitives record (cheap: one set per primitive)

_names: dict[int, str] = {}  # thread ident -> name, kept for threads that signalled and died
_names_by_thread: dict[int, str] = {}  # id(thread mark) -> name


_wall = time.time
_weakref = weakref.ref
_UNSEEN = object()
_threads_by_ident: dict[int, threading.Thread] = threading._active  # type: ignore[attr-defined]


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
        history: deque[Signal] | None = obj.__dict__.get("_stuck_signals")
        if history is None:
            obj._stuck_signals = history = deque(maxlen=4)  # type: ignore[attr-defined]
        me = _thread.get_ident()
        history.append(Signal(op, f"0x{me:x}", _wall(), waiters, _current_thread(me)[0]))
    except Exception:
        pass


# ---------------------------------------------------------------------------------------------
# The live adapter: registry -> facts -> findings

_OWN_THREADS = frozenset({"stuck-watchdog"})
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


def _owner_hint(obj: object) -> str | None:
    """``Store.bg_cv`` or ``BackgroundPool('compaction').jobs``: the attribute of an object
    that holds ``obj``, found through the garbage collector (report time only)."""
    try:
        for holder in gc.get_referrers(obj):
            # An instance whose attributes live in its own dict, or (3.11+) inline in the
            # object itself: either way ``vars(owner)`` holds the primitive.
            owners = [o for o in gc.get_referrers(holder) if getattr(o, "__dict__", None)
                      is holder] if isinstance(holder, dict) else [holder]
            for owner in owners:
                attrs = getattr(owner, "__dict__", None)
                if not isinstance(attrs, dict) or isinstance(owner, type) \
                        or type(owner).__module__.startswith("stuck.") \
                        or hasattr(type(owner), "_stuck_kind"):
                    continue  # a class, or stuck's own wrapper (a queue's condition)
                attr = next((k for k, v in attrs.items() if v is obj and isinstance(k, str)),
                            None)
                if attr is None:
                    continue
                if isinstance(owner, ModuleType):
                    module = owner.__name__
                    return attr if module == "__main__" else f"{module}.{attr}"
                cls = type(owner).__name__
                name = attrs.get("name")
                if isinstance(name, str) and len(name) <= 40:
                    return f"{cls}({name!r}).{attr}"
                return f"{cls}.{attr}"
    except Exception:
        return None
    return None


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
    from stuck.runtime import endings

    out: list[str] = []
    seen: set[int] = set()
    with contextlib.suppress(Exception):
        died = {id(thread): end for ref, end in list(endings._ended.values())
                if (thread := ref()) is not None}
        for obj in gc.get_objects():
            if len(out) >= limit:
                break
            if isinstance(obj, threading.Thread) and obj.ident is not None \
                    and id(obj) not in seen and not obj.is_alive() \
                    and obj.name not in _OWN_THREADS:
                seen.add(id(obj))
                end = died.get(id(obj))
                how = "returned" if end is None or end.error is None else \
                    f"died of {end.error}" + (f" at {end.where}" if end.where else "")
                out.append(f"{obj.name} ({how})")
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
        self._gone: dict[str, str] = {}  # ids given to ended threads whose ident was reused

    def settled(self, settle: float) -> bool:
        """True when some thread has been in a durable tracked wait for ``settle`` seconds."""
        from stuck.runtime import registry
        remember_thread_names()
        cutoff = time.time() - settle
        tasks = registry.tasks_module()
        return any(r.timeout is None and r.since <= cutoff
                   for r in list(registry.waits.values())) or (
                       tasks is not None and tasks.settled(settle))

    def check(self, settle: float) -> tuple[Snapshot, list[Finding]]:
        """The live snapshot and the stalls and deadlocks in it, each confirmed by a second
        observation (see ``registry.Observation``): the threads it names are still in the
        very waits they were in before the facts were read, and nothing those waits rest on
        was released, signalled, put or taken in between. A finding that fails the test was
        read from moments that never coexisted (a busy queue seen full by its producer and
        empty by its consumer) and is dropped; if it is real, the next check finds it."""
        from stuck.runtime import registry

        first = registry.Observation()
        snap, findings = self._check_once(settle)
        if not any(f.kind in ("stall", "deadlock") for f in findings):
            return snap, findings
        time.sleep(CONFIRM_AFTER)
        second = registry.Observation()
        by_rid = {rid: obj for obj in first.objects
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
            if tid.startswith("0x"):
                with contextlib.suppress(ValueError):
                    idents.add(int(tid, 16))
            held.update(t.holds)
        objs.extend(by_rid[rid] for rid in held if rid in by_rid)
        return bool(first.same_as(second, idents, objs))

    def _check_once(self, settle: float) -> tuple[Snapshot, list[Finding]]:
        from stuck.runtime import livereport

        snap, table, rid_of = livereport.take(with_tasks=False)  # tasks: below, if needed
        self._rid_of = rid_of
        for proc in snap.processes:  # the watchdog itself is not the program's thread
            proc.threads = [t for t in proc.threads if t.name not in _OWN_THREADS]
        facts, objects = self.facts(snap, table, rid_of)
        # Candidates: the threads stuck if every primitive nobody ever signalled is out of
        # reach of the threads able to run; the reachability pass then decides which are.
        unsignalled = {rid for rid, rf in facts.resources.items() if not rf.wakers}
        candidates, _ = stuck_set(facts, unsignalled)
        unreachable: set[str] = set()
        if candidates:
            unreachable = self._unreachable(facts, objects, candidates)
        if candidates:  # who could have signalled what nobody ever did: named in the report
            _add_ended_threads(snap, facts)
        # The rules run on the snapshot, with these facts as its fields: a saved report given
        # to ``stuck analyze`` gets the very same verdicts (see ``rules``).
        self._annotate(snap, facts, [])
        record_facts(snap, facts, unreachable)
        findings = rules(snap, settle)
        # asyncio: event loops none of whose tasks can run (once the program uses asyncio)
        from stuck.runtime import registry
        tasks = registry.tasks_module()
        if tasks is not None and (findings or tasks.settled(settle)):
            tasks.extend_snapshot(snap, rid_of)
            findings.extend(tasks.loop_findings(snap, rid_of, settle))
        self._annotate(snap, facts, findings)
        livereport.add_ended_threads(snap)  # the wakers just added may have ended
        return snap, findings

    def facts(self, snap: Snapshot, table: dict[int, Any], rid_of: dict[int, str]
              ) -> tuple[LiveFacts, dict[str, object]]:
        from stuck.runtime import registry
        from stuck.runtime.livereport import describe

        now = time.time()
        alive = registry.thread_objects()
        threads: dict[str, ThreadFacts] = {}
        for ident, pyt in alive.items():
            if pyt.name in _OWN_THREADS:
                continue
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
            op = record.op if record.op in ("acquire", "wait", "get", "put", "join",
                                            "result") else "unknown"
            if rf.kind == "barrier":
                op = "barrier"
            t.wait = ThreadWait(resource=rf.id, op=op, durable=record.timeout is None,  # type: ignore[arg-type]
                                since=record.since, timeout=record.timeout)
        for mt in snap.threads():
            t = threads.get(mt.id)
            if t is not None:
                t.holds = list(mt.holds)
                if t.wait is None and mt.frames and mt.frames[0].function in (
                        "_shutdown",) and (mt.frames[0].file or "").endswith("threading.py"):
                    # The main thread at exit, joining every non-daemon thread.
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
        for obj in list(registry.resources):
            if getattr(obj, "_stuck_kind", None) == "queue" and _queue_size(obj):
                add(obj)
        # Threads named as wakers that are gone.
        for rf in resources.values():
            for w in (rf.wakers or set()) | (rf.getters or set()):
                if w in self._gone:
                    threads[w] = ThreadFacts(id=w, name=self._gone[w], alive=False,
                                             ended="has ended")
                elif w not in threads:
                    ident = int(w, 16)
                    threads[w] = ThreadFacts(id=w, name=_names.get(ident, f"thread {w}"),
                                             alive=False, ident=ident,
                                             ended=how_ended(ident, set(alive)))
        self._labels.clear()  # ids of dead objects are reused: labels live for one check
        self._gone.clear()
        alive_now = set(alive)
        return LiveFacts(threads=threads, resources=resources, executors=executors,
                         now=now, ended=lambda: ended_threads(alive_now)), objects

    def _resource(self, obj: object, rid: str, kind: str, label: str, owners: list[str],
                  executors: dict[str, ExecutorFacts]) -> ResourceFacts:
        rf = ResourceFacts(id=rid, kind=kind, label=self._label(obj, label),
                           owners=list(owners))
        d = getattr(obj, "__dict__", {})
        recorded = d.get("_stuck_wakers")
        if kind == "queue":
            rf.wakers = self._participant_ids(getattr(obj, "_stuck_putters", None))
            rf.getters = self._participant_ids(getattr(obj, "_stuck_getters", None))
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
            signals = d.get("_stuck_signals")
            if signals:
                rf.history = [Signal(s.op, self._waker_id(int(s.thread, 16), s.thread_mark),
                                     s.at, s.waiters) for s in list(signals)]
            if kind == "barrier":
                rf.parties = getattr(obj, "parties", None)
                rf.n_waiting = getattr(obj, "n_waiting", None)
                rf.broken = bool(getattr(obj, "broken", False))
        elif kind == "future":
            runner = d.get("_stuck_runner")
            rf.wakers = {_tid(runner)} if runner is not None else set()
            rf.running = getattr(obj, "_state", None) == "RUNNING"
            pool_ref = d.get("_stuck_pool")
            pool = pool_ref() if pool_ref is not None else None
            task = d.get("_stuck_task") or d.get("_stuck_label_text")
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
        key = id(mark) if mark is not None else 0
        gone = f"{_tid(ident)}-ended-{key:x}"
        self._gone[gone] = _names_by_thread.get(key, f"thread {_tid(ident)}")
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

            cls = getattr(obj, "_stuck_class", None)
            if isinstance(obj, threading.Thread):
                label = obj.name
            else:
                label = ((cls.name or lock_label(obj, cls)) if cls is not None else None) \
                    or _owner_hint(obj) or fallback or "?"
            if len(self._labels) > 1024:
                self._labels.clear()
            self._labels[key] = label
        return label

    def _unreachable(self, facts: LiveFacts, objects: dict[str, object],
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
        frames = sys._current_frames()
        runnable = {t.ident for t in facts.threads.values()
                    if t.alive and t.ident is not None and t.id not in candidates}
        if not runnable:
            return set(targets)  # no thread able to run is left to reach anything
        from stuck.runtime import registry
        extra = [th for ident, th in registry.thread_objects().items() if ident in runnable]
        result = reachability(targets, runnable_roots(runnable, frames, extra))
        return result or set()

    @staticmethod
    def _annotate(snap: Snapshot, facts: LiveFacts, findings: list[Finding]) -> None:
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


def record_facts(snap: Snapshot, facts: LiveFacts, unreachable: set[str]) -> None:
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
        rec = Recorded(
            epoch=rf.epoch, wakers=sorted(rf.wakers) if rf.wakers is not None else None,
            getters=sorted(rf.getters) if rf.getters is not None else None, size=rf.size,
            maxsize=rf.maxsize, jobs=list(rf.jobs), parties=rf.parties, waiting=rf.n_waiting,
            rounds=rf.rounds, broken=rf.broken, is_set=rf.is_set, free=rf.value,
            in_flight=rf.in_flight, joins=rf.thread, task=rf.task, running=rf.running,
            reachable=False if rf.id in unreachable else None,
            signals=[ModelSignal(g.op, g.thread, g.at, g.waiters) for g in rf.history])
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


def _add_ended_threads(snap: Snapshot, facts: LiveFacts) -> None:
    """Ended threads of the program as dead threads of the snapshot: who could have signalled
    a primitive nobody ever did."""
    if not snap.processes:
        return
    named = {t.name for t in snap.threads() if t.state == "dead"}
    for i, words in enumerate(facts.ended()):
        name, _, how = words.rpartition(" (")
        if name and name not in named:
            named.add(name)
            how = how.rstrip(")")
            detail = f"ended ({how.removeprefix('died of ')})" if how.startswith("died of ") \
                else "ended"
            snap.processes[0].threads.append(Thread(id=f"ended-{i}", name=name, state="dead",
                                                    ended=how, detail=detail))


def facts_of(snap: Snapshot) -> tuple[LiveFacts, set[str]]:
    """The rules' facts from a snapshot that carries them (a live one, or a saved live report
    read back), and the resources no thread able to run could reach."""
    threads: dict[str, ThreadFacts] = {}
    ended: list[str] = []
    for t in snap.threads():
        if t.id.startswith("task:") or t.name in _OWN_THREADS:
            continue  # asyncio tasks: the event-loop rule's; stuck's own threads
        alive = t.state != "dead"
        tf = ThreadFacts(id=t.id, name=t.name or t.id, alive=alive, daemon=bool(t.daemon),
                         holds=list(t.holds), ended=t.ended or ("has ended" if not alive
                                                                else None))
        if t.id.startswith("0x"):
            with contextlib.suppress(ValueError):
                tf.ident = int(t.id, 16)
        w = t.waits
        if alive and w is not None and w.op is not None:
            op = w.op if w.op in ("acquire", "wait", "get", "put", "join", "result",
                                  "barrier") else "unknown"
            tf.wait = ThreadWait(resource=w.resource, op=op, durable=w.durable,  # type: ignore[arg-type]
                                 since=w.since, timeout=w.timeout)
        if not alive and t.ended is not None and len(ended) < 5 \
                and not any(e.startswith(f"{tf.name} (") for e in ended):
            ended.append(f"{tf.name} ({t.ended})")
        threads[t.id] = tf
    resources: dict[str, ResourceFacts] = {}
    executors: dict[str, ExecutorFacts] = {}
    unreachable: set[str] = set()
    for res in snap.resources:
        rec = res.recorded
        if rec is None:
            continue
        rf = ResourceFacts(
            id=res.id, kind=res.kind, label=res.label, owners=list(res.owners),
            wakers=set(rec.wakers) if rec.wakers is not None else None,
            getters=set(rec.getters) if rec.getters is not None else None, size=rec.size,
            maxsize=rec.maxsize, parties=rec.parties, n_waiting=rec.waiting,
            rounds=rec.rounds, broken=rec.broken, executor=rec.pool, task=rec.task,
            running=rec.running, thread=rec.joins,
            history=[Signal(g.op, g.thread, g.at, g.waiters) for g in rec.signals],
            is_set=rec.is_set, value=rec.free, in_flight=rec.in_flight, epoch=rec.epoch,
            jobs=list(rec.jobs))
        resources[res.id] = rf
        if rec.reachable is False:
            unreachable.add(res.id)
        if rec.pool is not None and rec.pool not in executors:
            executors[rec.pool] = ExecutorFacts(
                id=rec.pool, label=rec.pool_label or rec.pool,
                workers=list(rec.pool_workers or []), max_workers=rec.pool_capacity,
                shutdown=rec.pool_shutdown, pending=list(rec.pool_pending))
    now = snap.taken_at if snap.taken_at is not None else time.time()
    return LiveFacts(threads=threads, resources=resources, executors=executors, now=now,
                     ended=lambda: list(ended)), unreachable


def rules(snap: Snapshot, settle: float = 0.5) -> list[Finding]:
    """The stall and deadlock rules on a snapshot that carries a live source's facts: what the
    watchdog reports, and what ``stuck analyze`` finds in the saved report."""
    facts, unreachable = facts_of(snap)
    return evaluate(facts, settle, unreachable)


def has_recorded_facts(snap: Snapshot) -> bool:
    return any(r.recorded is not None for r in snap.resources)

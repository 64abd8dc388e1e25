"""Verdicts of one controlled execution, and their translation into the shared model.

The scheduler decides *that* an execution ended; this module says *what* it was:

* ``deadlock`` -- every controlled thread is blocked and the waits close a cycle (a lock held by
  a thread that waits, a join on a thread that waits, a condition or queue whose only possible
  wakers wait);
* ``stall`` -- every controlled thread is blocked and no cycle explains it (a condition nobody
  can notify, a lock whose owner has finished); the table says what each thread waits for;
* ``hang`` -- the step budget ran out (a livelock or a spin loop that never blocks), or a thread
  stopped reaching synchronization points at all (blocked outside the scheduler's control);
* ``exception`` -- a thread (or the target itself) raised;
* ``pass``.

"Possible wakers" of a condition or queue are the threads that ever notified (or put into) it in
this exploration, keyed by the primitive's stable creation key: a deadlock through a condition
is therefore ``probable``, a deadlock through locks and joins ``certain``.

The full report in the shared model (``Verdict.report``: every thread's frames, resources,
findings) is built only for a recorded execution -- the one shown, re-run from its decisions.
While searching, a failing execution is only counted, and building it would cost more than
the execution itself.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stuck.model import (
    Edge,
    Finding,
    Frame,
    Process,
    Report,
    Resource,
    ResourceKind,
    Snapshot,
    Source,
    Thread,
    ThreadState,
    Wait,
)

if TYPE_CHECKING:
    from stuck.explore.scheduler import CThread, Scheduler, ThreadError

KINDS = ("pass", "deadlock", "stall", "hang", "exception")


@dataclass
class Waiting:
    """One row of the final table: what a thread waits on."""

    thread: int
    name: str
    op: str
    resource: str  # a label
    kind: str
    where: str
    holds: list[str] = field(default_factory=list)
    wakers: list[int] | None = None


@dataclass
class Verdict:
    kind: str  # one of KINDS
    summary: str
    cycle: list[tuple[int, str, int]] = field(default_factory=list)  # (thread, resource, thread)
    table: list[Waiting] = field(default_factory=list)
    errors: list[ThreadError] = field(default_factory=list)
    uncontrolled: list[str] = field(default_factory=list)
    report: Report | None = None  # recorded executions only (see the module's docstring)
    steps: int = 0

    @property
    def failed(self) -> bool:
        return self.kind != "pass"

    def signature(self) -> tuple[str, ...]:
        """What must stay the same for a shrunk schedule to count as 'the same failure'."""
        return (self.kind,)


def _label(sched: Scheduler, res: Any) -> str:
    from stuck.explore.scheduler import CThread

    if isinstance(res, CThread):
        return f"thread {res.name} (T{res.index})"
    kind = getattr(res, "kind", "primitive")
    key = getattr(res, "key", None)
    site = sched.sites.get(key) if key is not None else None
    name = {"mutex": "Lock", "rlock": "RLock", "condition": "Condition",
            "queue": "SimpleQueue", "timer": "sleep"}.get(kind, kind)
    if site:
        if " at " in site.split(":", 1)[0]:
            return site
        # Two objects made by one line (two accounts' ``self.lock``) get a tag each, in the
        # order they were made (the same in every execution), so a schedule can be followed.
        same = sorted(k for k, other in sched.sites.items() if other == site)
        tag = f" #{same.index(key) + 1}" if len(same) > 1 and key in same else ""
        return f"{name}{tag} at {site}"
    if key is not None and key[0] >= 0:
        return f"{name} #{key[1]} made by T{key[0]}"
    return name


def _owners(res: Any) -> list[CThread]:
    owners = getattr(res, "owners", None)
    return list(owners()) if owners is not None else []


def _wait_frame(sched: Scheduler, t: CThread, frames: dict[int, Any]) -> str:
    from stuck.explore.scheduler import where

    f = frames.get(t.ident) if t.ident is not None else None
    return where(f) if f is not None else "?"


def blocked(sched: Scheduler) -> Verdict:
    """Every controlled thread is blocked: a deadlock (with its cycle) or a stall."""
    from stuck.explore.scheduler import FINISHED, CThread

    frames = sys._current_frames()
    waiting = [t for t in sched.threads if t.state != FINISHED]
    # Who could end each wait: AND-edges (the owner, the joined thread) or OR-edges (wakers).
    succ: dict[int, list[int]] = {}
    hard: dict[int, bool] = {}
    wakers_of: dict[int, list[int] | None] = {}
    for t in waiting:
        res = t.waiting
        if isinstance(res, CThread):
            succ[t.index] = [res.index] if res.state != FINISHED else []
            hard[t.index] = True
            wakers_of[t.index] = None
            continue
        owners = [o for o in _owners(res) if o.state != FINISHED]
        if owners:
            succ[t.index] = [o.index for o in owners]
            hard[t.index] = True
            wakers_of[t.index] = None
            continue
        known = sorted(_possible_wakers(sched, res))
        alive = [i for i in known if sched.threads[i].state != FINISHED and i != t.index
                 if i < len(sched.threads)]
        succ[t.index] = alive
        hard[t.index] = False
        wakers_of[t.index] = alive

    cycle = _find_cycle(succ, hard)
    unserved = None if cycle and all(hard.get(a, False) for a in cycle) else _unserved_work(sched)
    if unserved is not None:
        cycle = []
    table = []
    for t in waiting:
        res = t.waiting
        holds = [_label(sched, r) for r in _held_by(sched, t)]
        table.append(Waiting(t.index, t.name, t.op or "wait", _label(sched, res),
                             getattr(res, "kind", "thread"), _wait_frame(sched, t, frames),
                             holds, wakers_of.get(t.index)))
    if cycle:
        edges = []
        for i, a in enumerate(cycle):
            b = cycle[(i + 1) % len(cycle)]
            edges.append((a, _label(sched, sched.threads[a].waiting), b))
        names = " -> ".join(f"{sched.threads[a].name}" for a in cycle + cycle[:1])
        v = Verdict("deadlock", f"deadlock: {names}", edges, table)
        certain = all(hard.get(a, False) for a in cycle)
    elif unserved is not None:
        handed_by, res, at = unserved
        here = f" at {at}" if at else ""
        v = Verdict("stall", f"stall: {handed_by.name} waits on {_label(sched, handed_by.waiting)}"
                             f"; the work it handed to {_label(sched, res)}{here} is never taken "
                             "(no thread was ever seen waiting there)", [], table)
        v.report = _report(sched, v, frames, False, unserved=unserved) if sched.record else None
        return v
    else:
        nobody = [t for t in waiting if not succ.get(t.index)]
        first = nobody[0] if nobody else waiting[0]
        reason = _stall_reason(sched, first)
        v = Verdict("stall", f"stall: {first.name} waits on {_label(sched, first.waiting)}"
                             f" ({reason})", [], table)
        certain = True
    v.report = _report(sched, v, frames, certain) if sched.record else None
    return v


def _unserved_work(sched: Scheduler) -> tuple[CThread, Any, str] | None:
    """Work a blocked thread handed over that no thread will take: the cause of a stall.

    A thread notified a condition (or put into a queue) while nobody waited on it, and now waits
    itself, on a condition or queue -- typically for the result of that work. If no thread was
    ever seen waiting on that primitive during the exploration, and every thread that used its
    lock also notified it (only producers, no consumer), the work sits where nobody looks: a
    job submitted to a pool without a worker. The threads that could wake the waiter are then
    themselves idle, and what looks like a cycle of "could be woken by" is a stall. A cycle of
    lock ownership and joins is never explained away like this.
    """
    from stuck.explore.scheduler import BLOCKED, CThread

    history = sched.history
    for key, (index, res, at) in sched.unheard.items():
        if key in history.waited:
            continue
        handed_by = sched.threads[index]
        if handed_by.state != BLOCKED or isinstance(handed_by.waiting, CThread):
            continue
        if getattr(handed_by.waiting, "kind", "") not in ("condition", "queue"):
            continue
        lock = getattr(res, "_lock", None)
        lock_key = getattr(lock, "key", None)
        if lock_key is not None:
            producers = history.wakers.get(key, set())
            if not history.wakers.get(lock_key, set()) <= producers:
                continue  # a thread used its lock without notifying it: possibly a consumer
        return handed_by, res, at
    return None


def _possible_wakers(sched: Scheduler, res: Any) -> set[int]:
    """Threads seen notifying ``res`` -- or, for a condition, using its lock (a monitor such as
    ``queue.Queue`` wakes one condition's waiters by work done under the shared lock)."""
    out: set[int] = set()
    for obj in (res, getattr(res, "_lock", None)):
        key = getattr(obj, "key", None)
        if key is not None:
            out |= sched.history.wakers.get(key, set())
    return out


def _stall_reason(sched: Scheduler, t: CThread) -> str:
    from stuck.explore.scheduler import FINISHED

    res = t.waiting
    gone = [o for o in _owners(res) if o.state == FINISHED]
    if gone:
        return f"its owner {gone[0].name} has finished without releasing it"
    if getattr(res, "kind", "") in ("condition", "queue"):
        return "no thread still able to run ever notified it"
    return "nothing that can still run could end the wait"


def _held_by(sched: Scheduler, t: CThread) -> list[Any]:
    out = []
    seen: set[int] = set()
    for other in sched.threads:
        for res in (other.waiting, other.pending):
            if res is None or id(res) in seen:
                continue
            seen.add(id(res))
            if t in _owners(res):
                out.append(res)
    return out


def _find_cycle(succ: dict[int, list[int]], hard: dict[int, bool]) -> list[int]:
    """A cycle in the wait-for graph, preferring one made only of ownership/join edges."""
    for only_hard in (True, False):
        found = _cycle_from(succ, hard, only_hard)
        if found:
            return found
    return []


def _cycle_from(succ: dict[int, list[int]], hard: dict[int, bool], only_hard: bool) -> list[int]:
    color: dict[int, int] = {}
    stack: list[int] = []

    def visit(n: int) -> list[int] | None:
        color[n] = 1
        stack.append(n)
        if not only_hard or hard.get(n, False):
            for m in succ.get(n, []):
                if m not in succ:
                    continue
                if color.get(m) == 1:
                    return stack[stack.index(m):]
                if m not in color:
                    found = visit(m)
                    if found:
                        return found
        stack.pop()
        color[n] = 2
        return None

    for n in sorted(succ):
        if n not in color:
            found = visit(n)
            if found:
                return list(found)
    return []


def hang(sched: Scheduler, me: CThread) -> Verdict:
    from stuck.explore.scheduler import FINISHED

    frames = sys._current_frames()
    table = [
        Waiting(t.index, t.name, t.op if t.state != 0 else "running",
                _label(sched, t.waiting) if t.waiting is not None else "-",
                getattr(t.waiting, "kind", "-"), _wait_frame(sched, t, frames))
        for t in sched.threads if t.state != FINISHED
    ]
    here = _wait_frame(sched, me, frames)
    v = Verdict("hang", f"hang: no thread finished within {sched.max_steps} synchronization "
                        f"steps (livelock or spin loop; {me.name} was at {here})", [], table)
    v.report = _report(sched, v, frames, False) if sched.record else None
    return v


def stopped(sched: Scheduler, seconds: float) -> Verdict:
    """The running thread reached no synchronization point for ``seconds`` of real time."""
    from stuck.explore.scheduler import FINISHED

    frames = sys._current_frames()
    cur = sched.current
    name = cur.name if cur is not None else "?"
    here = _wait_frame(sched, cur, frames) if cur is not None else "?"
    table = [
        Waiting(t.index, t.name, "running" if t is cur else (t.op or "runnable"),
                _label(sched, t.waiting) if t.waiting is not None else "-",
                getattr(t.waiting, "kind", "-"), _wait_frame(sched, t, frames))
        for t in sched.threads if t.state != FINISHED
    ]
    v = Verdict("hang", f"hang: {name} reached no synchronization point for {seconds:g} s at "
                        f"{here} (a loop without synchronization, I/O, or a primitive created "
                        "outside the explored function)", [], table)
    v.report = _report(sched, v, frames, False) if sched.record else None
    return v


def exception(sched: Scheduler, errors: list[ThreadError], then: Verdict | None) -> Verdict:
    first = errors[0]
    last_line = first.traceback.strip().splitlines()[-1] if first.traceback else repr(first)
    summary = f"exception in {first.name} (T{first.thread}): {last_line}"
    if then is not None and then.kind != "pass":
        summary += f"; then {then.summary}"
    v = Verdict("exception", summary, then.cycle if then else [], then.table if then else [],
                list(errors))
    return v


# -- the shared model ---------------------------------------------------------------------------

_KIND_MAP: dict[str, ResourceKind] = {
    "mutex": "mutex", "rlock": "rlock", "condition": "condition", "queue": "queue",
    "thread": "thread", "timer": "unknown",
}


def _frames(frame: Any, limit: int = 30) -> list[Frame]:
    from stuck.explore.scheduler import user_frame

    out: list[Frame] = []
    f = user_frame(frame) if frame is not None else None
    while f is not None and len(out) < limit:
        out.append(Frame(function=getattr(f.f_code, "co_qualname", f.f_code.co_name),
                         file=f.f_code.co_filename, line=f.f_lineno))
        f = f.f_back
    return out


def _report(sched: Scheduler, v: Verdict, frames: dict[int, Any], certain: bool,
            unserved: tuple[CThread, Any, str] | None = None) -> Report:
    from stuck.explore.scheduler import BLOCKED, FINISHED, CThread

    resources: dict[int, Resource] = {}

    def rid(res: Any) -> str:
        r = resources.get(id(res))
        if r is None:
            kind = "thread" if isinstance(res, CThread) else getattr(res, "kind", "unknown")
            r = Resource(id=f"r{len(resources) + 1}", kind=_KIND_MAP.get(kind, "unknown"),
                         label=_label(sched, res),
                         owners=[f"T{o.index}" for o in _owners(res)])
            key = getattr(res, "key", None)
            if key is not None and not isinstance(res, CThread):
                w = sched.history.wakers.get(key)
                r.wakers = [f"T{i}" for i in sorted(w)] if w else []
            resources[id(res)] = r
        return r.id

    threads: list[Thread] = []
    for t in sched.threads:
        state: ThreadState
        if t.state == FINISHED:
            state = "dead"
        elif t.state == BLOCKED:
            state = "sleeping" if t.op == "sleep" else "blocked"
        else:
            state = "running"
        th = Thread(id=f"T{t.index}", name=t.name, state=state, daemon=t.daemon)
        if t.state != FINISHED and t.ident is not None:
            th.frames = _frames(frames.get(t.ident))
        if t.state == BLOCKED and t.waiting is not None:
            at = th.frames[0] if th.frames else None
            th.waits = Wait(resource=rid(t.waiting), timeout=None if t.deadline is None else
                            max(t.deadline - sched.now, 0.0), durable=t.deadline is None, at=at)
            th.detail = t.op
        for res in _held_by(sched, t):
            th.holds.append(rid(res))
        threads.append(th)
    findings: list[Finding] = []
    if v.kind in ("deadlock", "stall", "hang"):
        cyc = [Edge(thread=f"T{a}", waits_for=_rid_for(sched, a, rid), held_by=f"T{b}")
               for a, _, b in v.cycle]
        in_cycle = {a for a, _, _ in v.cycle}
        involved = sorted(in_cycle) if in_cycle else [w.thread for w in v.table]
        behind = [f"T{w.thread}" for w in v.table if in_cycle and w.thread not in in_cycle]
        missing = []
        if v.kind == "deadlock" and not certain:
            missing.append("the cycle passes through a condition or queue: its possible wakers "
                           "are the threads seen notifying it during the exploration")
        if unserved is not None:
            rid(unserved[1])
            missing.append(f"no thread was seen waiting on {_label(sched, unserved[1])} in the "
                           "executions explored; one that serves it may exist in others")
        findings.append(Finding(
            kind=v.kind,  # type: ignore[arg-type]
            confidence="certain" if certain else ("probable" if v.kind == "deadlock"
                                                  or unserved is not None else "possible"),
            summary=v.summary,
            explanation=_explain(v, unserved is not None),
            threads=[f"T{i}" for i in involved],
            resources=sorted({r.id for r in resources.values()}),
            cycle=cyc,
            blocked_behind=behind,
            missing_evidence=missing,
            details={"controlled_steps": sched.step, "virtual_time": sched.now},
        ))
    snap = Snapshot(
        source=Source(kind="explore", format="python"),
        processes=[Process(pid=os.getpid(), name="stuck explore", threads=threads)],
        resources=list(resources.values()),
        notes=list(sched.uncontrolled),
    )
    return Report(snapshot=snap, findings=findings)


def _rid_for(sched: Scheduler, index: int, rid: Any) -> str:
    res = sched.threads[index].waiting
    return str(rid(res)) if res is not None else "?"


def _explain(v: Verdict, unserved: bool = False) -> str:
    if v.kind == "deadlock":
        return ("Under the controlled scheduler every thread of the program was blocked, and the "
                "waits close a cycle: each thread waits for something only the next one can "
                "release, so none of them can ever continue.")
    if v.kind == "stall" and unserved:
        return ("Under the controlled scheduler every thread of the program was blocked. One of "
                "them handed work to a condition or queue that no thread serves (nobody was ever "
                "seen waiting there) and then waited for its effect; the threads that could wake "
                "it are idle, waiting for work of their own.")
    if v.kind == "stall":
        return ("Under the controlled scheduler every thread of the program was blocked, without "
                "a cycle: at least one wait can only be ended by a thread that has finished or "
                "never signals it.")
    return ("The execution did not finish within its budget of synchronization steps, or a "
            "thread stopped reaching synchronization points: a livelock, a spin loop, or a "
            "wait outside the scheduler's control.")

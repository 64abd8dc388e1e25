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

The verdict rests on the facts of the execution that blocked, as a live run's does: the
possible wakers of a condition or queue are the threads that notified (or put into) it in that
execution, so ``stuck run`` of the same blocking schedule, ``stuck analyze`` of its saved report
and ``stuck explore`` reach the same findings. What other executions showed (a thread now
blocked that notified the same condition elsewhere: the stuck threads may be each other's only
wakers, a cycle through the state the condition guards) is told as a note on the finding, never
made into its verdict.

The full report in the shared model (``Verdict.report``: every thread's frames, resources,
findings) is built only for a recorded execution -- the one shown, re-run from its decisions.
While searching, a failing execution is only counted, and building it would cost more than
the execution itself.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from stuck.model import (
    Finding,
    Frame,
    Process,
    Recorded,
    Report,
    Resource,
    ResourceKind,
    Signal,
    Snapshot,
    Source,
    Thread,
    ThreadState,
    Wait,
)
from stuck.runtime.naming import owned_name

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
    findings: list[Finding] = field(default_factory=list)  # the shared rules' (deadlock, stall)
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
        # A lock the program bound to a name is called by it, as ``stuck run`` calls it; so
        # are locks the line assigns to names together (``a, b = Lock(), Lock()``).
        binding = sched.bindings.get(key) if key is not None else None
        owner = sched.owners.get(key) if key is not None else None
        if binding and owner is not None:
            # an object's attribute (``self.stats_lock``): as every report names it
            # (``Inventory#1.stats_lock``), whose tags already tell two objects apart
            return owned_name(binding, *owner)
        same = sorted(k for k, other in sched.sites.items()
                      if other == site and sched.bindings.get(k) == binding)
        tag = f" #{same.index(key) + 1}" if len(same) > 1 and key in same else ""
        targets = _assigned_together(site, len(same)) if tag and not binding else None
        if targets is not None and key is not None:
            i = same.index(key)
            runs = len(same) // len(targets)  # the line ran this many times
            place = site.split(" `", 1)[0]
            return (f"{name} {targets[i % len(targets)]}"
                    + (f" #{i // len(targets) + 1}" if runs > 1 else "") + f" (made at {place})")
        made = f"made at {site}"
        return f"{name} {binding}{tag} ({made})" if binding else f"{name}{tag} {made}"
    if key is not None and key[0] >= 0:
        return f"{name} #{key[1]} made by T{key[0]}"
    return name


# Calls that make one primitive each (threading's, queue's, and explore's stand-ins for them).
_CONSTRUCTORS = frozenset({"Lock", "RLock", "Condition", "Semaphore", "BoundedSemaphore",
                           "Event", "Barrier", "Queue", "SimpleQueue", "LifoQueue",
                           "PriorityQueue"})


def _assigned_together(site: str, made: int) -> list[str] | None:
    """The names a line assigns its primitives to, in order, when the line shows them: for
    ``file:line `a, b = Lock(), Lock()``` and the ``made`` primitives made there, ``["a",
    "b"]``. None when the line is no single assignment of a tuple of constructor calls to as
    many targets, or ``made`` is no whole number of its runs: the numbered names stay."""
    import ast

    from stuck.explore.scheduler import tuple_assignment

    _, sep, rest = site.partition(" `")
    if not sep or not rest.endswith("`"):
        return None
    pairs = tuple_assignment(rest[:-1])
    if pairs is None:
        return None
    names = []
    for t, v in pairs:
        if not isinstance(v, ast.Call):
            continue  # makes no primitive (a constant, a name)
        f = v.func
        callee = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) \
            else None
        if callee not in _CONSTRUCTORS or not isinstance(t, (ast.Name, ast.Attribute)):
            return None  # a call that may make none, or several, or an unnamed target
        names.append(ast.unparse(t))
    if not names or made % len(names):
        return None
    return names


def _owners(res: Any) -> list[CThread]:
    owners = getattr(res, "owners", None)
    return list(owners()) if owners is not None else []


def _wait_frame(sched: Scheduler, t: CThread, frames: dict[int, Any]) -> str:
    from stuck.explore.scheduler import where

    f = frames.get(t.ident) if t.ident is not None else None
    return where(f) if f is not None else "?"


def blocked(sched: Scheduler) -> Verdict:
    """Every controlled thread is blocked: the shared rules say what it is (a deadlock, with
    its cycle, or a stall, with why nothing can end it), on the final state as a Snapshot."""
    if not sched.record:
        # While searching, the same final state with nothing new learned gets the same verdict:
        # computed once (an execution costs less than the rules do).
        key = _state_key(sched)
        verdicts = sched.history.verdicts
        known = verdicts.get(key)
        if known is None:
            if len(verdicts) >= 4096:
                verdicts.clear()
            known = verdicts[key] = _blocked(sched)
        return replace(known)
    return _blocked(sched)


def _state_key(sched: Scheduler) -> tuple[object, ...]:
    from stuck.explore.scheduler import CThread

    parts: list[object] = []
    woke = sched.woke
    for t in sched.threads:
        res = t.waiting
        if res is None:
            parts.append(t.state)
        elif type(res) is CThread:
            parts.append((t.state, t.op, "T", res.index))
        else:
            key: Any = getattr(res, "key", None)
            lock_key: Any = getattr(getattr(res, "_lock", None), "key", None)
            # the execution's facts the rules read about it (see snapshot)
            parts.append((t.state, t.op, t.deadline is None, key,
                          tuple(o.index for o in _owners(res)),
                          len(getattr(res, "_items", ())),
                          tuple(sorted(woke(key))), key in sched.waited,
                          tuple(sorted(woke(lock_key))),
                          sched.monitors.get(lock_key, 0) if lock_key is not None else 0))
    parts.extend((k, v[0]) for k, v in sched.unheard.items())
    return tuple(parts)


def _blocked(sched: Scheduler) -> Verdict:
    frames = sys._current_frames() if sched.record else {}
    snap = snapshot(sched, frames)
    findings = _rules(snap)
    waiting = [t for t in sched.threads if t.state != FINISHED_STATE]
    table: list[Waiting] = []
    if sched.record:  # while searching, a failure is only counted (see the module's docstring)
        wakers = _wakers_by_thread(snap)
        held = _holdings(sched)
        table = [Waiting(t.index, t.name, t.op or "wait", _label(sched, t.waiting),
                         getattr(t.waiting, "kind", "thread"), _wait_frame(sched, t, frames),
                         [_label(sched, r) for r in held.get(t.index, ())],
                         wakers.get(t.index))
                 for t in waiting]
    labels = {r.id: r.label for r in snap.resources}
    first = next((f for f in findings if f.kind == "deadlock"), None) or (
        findings[0] if findings else None)
    if first is None:
        # The rules claim nothing, yet no controlled thread can run: say so, as a stall of
        # the first waiter, without a stronger claim than that.
        t = waiting[0]
        first = Finding(kind="stall", confidence="possible",
                        summary=f"{t.name} waits on {_label(sched, t.waiting)}; every thread "
                                "of the program is blocked",
                        threads=[f"T{w.index}" for w in waiting],
                        missing_evidence=["the rules found no wait that nothing can end; the "
                                          "scheduler saw every controlled thread blocked"])
        findings = [first]
    cycle = [(_index(e.thread), labels.get(e.waits_for, e.waits_for), _index(e.held_by))
             for e in first.cycle]
    v = Verdict(first.kind, f"{first.kind.upper()} ({first.confidence}): {first.summary}", cycle, table)
    v.findings = findings
    if sched.record:
        elsewhere = _learnt_elsewhere(sched, snap)
        _under_control(findings, sched, _CONTROLLED)
        for f in findings:
            notes = [text for r, text in elsewhere.items() if r in f.resources or any(
                t.waits is not None and t.waits.resource == r and t.id in f.threads
                for t in snap.threads())]
            if notes:
                f.explanation += "\n" + "\n".join(notes)
                f.details["other_executions"] = notes
        snap.notes.extend(sched.uncontrolled)
        v.report = Report(snapshot=snap, findings=findings)
    return v


def _under_control(findings: list[Finding], sched: Scheduler, preface: str) -> None:
    """What explore adds to the rules' findings on an execution it recorded: the state they
    judged was reached under its scheduler (``preface``: how), after so many steps."""
    for f in findings:
        f.details.update(controlled_steps=sched.step, virtual_time=sched.now)
        f.explanation = (preface + f.explanation).strip()


_CONTROLLED = ("Under the controlled scheduler every thread of the program was blocked, none "
               "of them able to run.\n")
FINISHED_STATE = 2  # scheduler.FINISHED (imported lazily elsewhere: no import cycle)


def _index(thread_id: str) -> int:
    return int(thread_id[1:]) if thread_id[:1] == "T" and thread_id[1:].isdigit() else -1


def _rules(snap: Snapshot) -> list[Finding]:
    """The shared rules on the final state. Nothing waits for long in a controlled run (time
    is virtual), so no wait needs to have lasted before it is judged."""
    from stuck.rules import evaluate

    return evaluate(snap, settle=0.0)


def _wakers_by_thread(snap: Snapshot) -> dict[int, list[int] | None]:
    """For the table: who could end each condition or queue wait (None for a lock or a join,
    whose owner or target says it)."""
    res = snap.resource_map()
    out: dict[int, list[int] | None] = {}
    for t in snap.threads():
        if t.waits is None:
            continue
        r = res.get(t.waits.resource)
        if r is None or r.kind not in ("condition", "queue") or r.recorded is None:
            continue
        alive = {x.id for x in snap.threads() if x.state != "dead"}
        out[_index(t.id)] = [_index(w) for w in r.recorded.wakers or () if w in alive
                             and w != t.id]
    return out


def snapshot(sched: Scheduler, frames: dict[int, Any] | None = None) -> Snapshot:
    """The state of a controlled execution in the shared model, with the facts the rules need.

    Possible wakers of a condition or queue are the threads seen notifying (or putting into) it
    in this execution (``Scheduler.woke``: what a live run records too), and for a condition of
    a monitor (several conditions on one lock, as in ``queue.Queue``) the threads seen
    releasing that lock: in a monitor, work done under the lock is what its waiters wait for (a
    ``get_nowait`` that found the queue empty is its consumer). ``served`` says whether
    any thread was seen waiting on it in this execution. When every controlled thread is blocked, no thread
    able to run can reach a primitive (``reachable`` False).
    """
    from stuck.explore.scheduler import BLOCKED, FINISHED, RUNNABLE, CThread

    frames = frames or {}
    woke = sched.woke
    every_blocked = all(t.state != RUNNABLE for t in sched.threads)
    resources: dict[int, Resource] = {}

    def rid(res: Any) -> str:
        r = resources.get(id(res))
        if r is not None:
            return r.id
        kind = "thread" if isinstance(res, CThread) else getattr(res, "kind", "unknown")
        r = Resource(id=f"r{len(resources) + 1}", kind=_KIND_MAP.get(kind, "unknown"),
                     label=_label(sched, res), owners=[f"T{o.index}" for o in _owners(res)])
        rec = Recorded()
        if isinstance(res, CThread):
            rec.joins = f"T{res.index}"
        elif kind in ("condition", "queue"):
            key = res.key
            lock_key = getattr(getattr(res, "_lock", None), "key", None)
            rec.wakers = [f"T{i}" for i in sorted(_wakers(sched, woke, key, lock_key))]
            # Served: a thread was seen waiting on it, or used its lock without notifying it
            # (a consumer that polls, such as ``get_nowait``).
            rec.served = key in sched.waited or (
                lock_key is not None
                and not woke(lock_key) <= woke(key))
            if kind == "queue":
                rec.size, rec.maxsize = len(res._items), 0
            handed = sched.unheard.get(key)
            if handed is not None:
                rec.signals = [Signal("notify" if kind == "condition" else "put",
                                      f"T{handed[0]}", sched.now, 0, handed[2] or None)]
        if every_blocked and not isinstance(res, CThread):
            rec.reachable = False
        r.recorded = rec
        resources[id(res)] = r
        return r.id

    errors = {e.thread: e for e in sched.errors}
    threads: list[Thread] = []
    for t in sched.threads:
        state: ThreadState
        if t.state == FINISHED:
            state = "dead"
        elif t.state == BLOCKED:
            state = "sleeping" if t.op == "sleep" else "blocked"
        else:
            state = "running"
        th = Thread(id=f"T{t.index}", name=t.name, state=state,
                    daemon=t.daemon and t.index != 0)  # thread 0 is the program's main
        if t.state == FINISHED:
            err = errors.get(t.index)
            th.ended = "returned" if err is None else f"died of {type(err.exception).__name__}"
        elif t.ident is not None and frames:
            th.frames = _frames(frames.get(t.ident))
        if t.state == BLOCKED and t.waiting is not None:
            at = th.frames[0] if th.frames else None
            th.waits = Wait(resource=rid(t.waiting), timeout=None if t.deadline is None else
                            max(t.deadline - sched.now, 0.0), durable=t.deadline is None, at=at,
                            op=_OPS.get(t.op, "unknown"))
            th.detail = t.op
        threads.append(th)
    # Work handed where nobody waited (evidence for a stall by work nobody takes).
    for _, res, _ in list(sched.unheard.values()):
        rid(res)
    for index, held in _holdings(sched).items():
        threads[index].holds = [rid(r) for r in held]
    return Snapshot(
        source=Source(kind="explore", format="python"),
        processes=[Process(pid=os.getpid(), name="stuck explore", threads=threads,
                           complete=True)],
        resources=list(resources.values()),
    )


def _wakers(sched: Scheduler, woke: Callable[[tuple[int, int] | None], set[int]],
            key: tuple[int, int], lock_key: tuple[int, int] | None) -> set[int]:
    """Threads that woke the condition or queue ``key`` (as ``woke`` says: in this execution,
    or in any), and for a condition of a monitor the users of its lock: in a monitor, work
    done under the lock is what its waiters wait for."""
    wakers = woke(key)
    if lock_key is not None and sched.monitors.get(lock_key, 0) > 1:
        wakers |= woke(lock_key)
    return wakers


def _learnt_elsewhere(sched: Scheduler, snap: Snapshot) -> dict[str, str]:
    """Resource id -> a note on the threads that woke it in other executions of this
    exploration but not in this one, when one of them is still alive to do it again."""
    from stuck.explore.scheduler import CThread

    by_id = {t.id: t for t in snap.threads()}
    labels = {r.id: r for r in snap.resources}
    out: dict[str, str] = {}
    for t in sched.threads:
        res = t.waiting
        if res is None or isinstance(res, CThread) or getattr(res, "kind", "") not in (
                "condition", "queue"):
            continue
        th = by_id.get(f"T{t.index}")
        if th is None or th.waits is None or th.waits.resource in out:
            continue
        key = res.key
        lock_key = getattr(getattr(res, "_lock", None), "key", None)
        here = _wakers(sched, sched.woke, key, lock_key)
        elsewhere = sorted(_wakers(sched, sched.history.ever, key, lock_key) - here)
        alive = [i for i in elsewhere if i < len(sched.threads)
                 and by_id[f"T{i}"].state != "dead"]
        if not alive:
            continue
        r = labels[th.waits.resource]
        verb = "put into" if res.kind == "queue" else "notified"
        names = _and([sched.threads[i].name for i in alive])
        text = (f"In other executions of this exploration, {names} {verb} {r.kind} {r.label}; "
                "in this one, not before every thread blocked.")
        blocked = {x.index for x in sched.threads if x.waiting is not None
                   and x.state != FINISHED_STATE}
        here = {x.index for x in sched.threads if x.waiting is res}
        if set(alive) <= here:
            text += (f" Blocked on it now, {names} may be each other's only wakers: a cycle "
                     f"through the state this {r.kind} guards (what the program's authors "
                     "would call a deadlock), which the facts of this execution do not show.")
        elif set(alive) <= blocked:
            only = "the only thread" if len(alive) == 1 else "the only threads"
            text += (f" Blocked now, {names} may be {only} that would: if what they wait for "
                     "is held, in the program's state, by this wait's threads, that is a "
                     "cycle (what the program's authors would call a deadlock), which the "
                     "facts of this execution do not show.")
        out[th.waits.resource] = text
    return out


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


_OPS = {"acquire": "acquire", "wait": "wait", "get": "get", "put": "put", "join": "join"}


def _holdings(sched: Scheduler) -> dict[int, list[Any]]:
    """Thread index -> the locks it holds, among those some thread waits on or is about to use
    (one pass over the threads, for every thread at once)."""
    out: dict[int, list[Any]] = {}
    seen: set[int] = set()
    for other in sched.threads:
        for res in (other.waiting, other.pending):
            if res is None or id(res) in seen:
                continue
            seen.add(id(res))
            for o in _owners(res):
                out.setdefault(o.index, []).append(res)
    return out


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
    v = Verdict("hang", f"HANG (possible): no thread finished within {sched.max_steps} synchronization "
                        f"steps (livelock or spin loop; {me.name} was at {here})", [], table)
    v.report = _report(sched, v, frames) if sched.record else None
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
    v = Verdict("hang", f"HANG (possible): {name} reached no synchronization point for {seconds:g} s at "
                        f"{here} (a loop without synchronization, I/O, or a primitive created "
                        "outside the explored function)", [], table)
    v.report = _report(sched, v, frames) if sched.record else None
    return v


def loop_stuck(sched: Scheduler, loop: Any) -> Verdict | None:
    """The running thread waits in ``loop``'s selector, and the loop has been seen quiet twice
    (``explore.aio``): the execution's snapshot with the tasks added and the loop marked
    stalled, judged by the shared rules (``stuck.rules.evaluate``, as the live watchdog's and
    ``stuck analyze``'s). None when they find no task stuck (the watch goes on)."""
    from stuck.explore.scheduler import FINISHED
    from stuck.runtime.aio import extend_snapshot, mark_quiet_loop

    frames = sys._current_frames()
    snap = snapshot(sched, frames)
    rid_of: dict[int, str] = {}
    try:
        extend_snapshot(snap, rid_of)
        findings = _rules(snap) if mark_quiet_loop(snap, loop) else []
    except Exception:  # a loop in a state the walk cannot read: no claim, the watch goes on
        return None
    if not findings:
        return None
    first = next((f for f in findings if f.kind == "deadlock"), findings[0])
    cur = sched.current
    table = [
        Waiting(t.index, t.name, "waits in its event loop's selector" if t is cur
                else (t.op or "runnable"),
                _label(sched, t.waiting) if t.waiting is not None else "-",
                getattr(t.waiting, "kind", "-"), _wait_frame(sched, t, frames))
        for t in sched.threads if t.state != FINISHED
    ]
    v = Verdict(first.kind, f"{first.kind.upper()} ({first.confidence}): {first.summary}", [], table)
    v.findings = findings
    if sched.record:
        _under_control(findings, sched, _LOOP)
        snap.notes.extend(sched.uncontrolled)
        v.report = Report(snapshot=snap, findings=findings)
    return v


_LOOP = ("Under the controlled scheduler the event loop's thread waited in its selector, the "
         "loop having nothing ready, no timer and no I/O to watch.\n")


def exception(sched: Scheduler, errors: list[ThreadError], then: Verdict | None) -> Verdict:
    first = errors[0]
    last_line = first.traceback.strip().splitlines()[-1] if first.traceback else repr(first)
    summary = f"exception in {first.name} (T{first.thread}): {last_line}"
    if then is not None and then.kind != "pass":
        summary += f"; then {then.summary}"
    v = Verdict("exception", summary, then.cycle if then else [], then.table if then else [],
                list(errors))
    if then is not None and then.kind in ("deadlock", "stall"):
        # What the program was left in once the thread died: the rules' findings on it.
        v.findings, v.report = then.findings, then.report
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


def _report(sched: Scheduler, v: Verdict, frames: dict[int, Any]) -> Report:
    """The report of a hang: the final state, and a finding that claims no cause."""
    snap = snapshot(sched, frames)
    snap.notes.extend(sched.uncontrolled)
    finding = Finding(
        kind="hang", confidence="possible", summary=v.summary,
        explanation=("The execution did not finish within its budget of synchronization steps, "
                     "or a thread stopped reaching synchronization points: a livelock, a spin "
                     "loop, or a wait outside the scheduler's control."),
        threads=[f"T{w.thread}" for w in v.table],
        resources=[r.id for r in snap.resources],
        details={"controlled_steps": sched.step, "virtual_time": sched.now})
    return Report(snapshot=snap, findings=[finding])

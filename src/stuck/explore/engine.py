"""The exploration loop: run the target again and again under a strategy until it fails.

``run_once`` is one controlled execution; ``explore`` repeats it within an execution count and a
time budget, shrinks the first failure, re-runs the shrunk schedule with recording on (the only
time stack locations are captured) and returns an :class:`ExploreResult`. With ``jobs > 1`` the
executions are split over worker processes, each with its own seeds; the first failure wins.
"""

from __future__ import annotations

import ctypes
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stuck.explore import aio, primitives, quiet, scheduler, verdict
from stuck.explore.baton import SPENT
from stuck.explore.outside import describe as describe_outside
from stuck.explore.outside import made_outside
from stuck.explore.replayer import Divergence, Replay, decode, encode
from stuck.explore.scheduler import History, Scheduler, TraceEvent
from stuck.explore.shrink import Attempt, shrink
from stuck.explore.strategy import BaseStrategy
from stuck.explore.verdict import Verdict, Waiting
from stuck.explore.workers import WorkerPool, available

_real_thread_start = primitives._orig_thread_start
_real_thread_join = primitives._orig_thread_join
_real_monotonic = primitives._orig_monotonic
_real_perf_counter = primitives._orig_perf_counter


@dataclass
class Execution:
    verdict: Verdict
    choices: list[int]
    steps: int
    trace: list[TraceEvent] | None = None
    leaked: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    switches: int = 0  # hand-overs between OS threads during the execution
    # The running thread reached no synchronization point in time (a spin, a C call, an event
    # loop waiting in its selector): the verdict rests on the clock, or on what the loop did
    # outside the scheduler, not on the schedule alone, so replaying choices cannot shrink it.
    stopped: bool = False


def _interrupt(ident: int | None) -> None:
    """Raise Aborted asynchronously in a thread stuck outside the scheduler's control."""
    if ident is None:
        return
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident),
                                               ctypes.py_object(scheduler.Aborted))


def _watch(sched: Scheduler, stall_seconds: float) -> tuple[Verdict, Any] | None:
    """The running thread has reached no synchronization point for ``aio.LOOK`` seconds: look
    again every ``aio.LOOK`` until the execution ends (None), an event loop that thread runs is
    seen quiet twice in a row with its tasks waiting on the same things (that loop's verdict,
    when the asyncio rules find its tasks stuck), or ``stall_seconds`` have passed (a hang).
    Returns the verdict and the loop the thread waits in, if any; None if the execution
    ended."""
    waited = min(stall_seconds, aio.LOOK)
    seen = aio.quiet_loop(sched)
    while True:
        if waited >= stall_seconds:
            return verdict.stopped(sched, stall_seconds), seen[0] if seen else None
        step = min(aio.LOOK, stall_seconds - waited)
        if sched.done.wait_for(step):
            return None
        waited += step
        now = aio.quiet_loop(sched)
        if now is not None and seen is not None and now == seen:
            found = verdict.loop_stuck(sched, now[0])
            if found is not None:
                return found, now[0]
        seen = now


# The worker pool of the exploration in progress (one per process at a time, like the scheduler).
_pool: list[WorkerPool | None] = [None]


def run_once(
    target: Callable[[], object],
    strategy: BaseStrategy,
    *,
    max_steps: int = 20_000,
    record: bool = False,
    history: History | None = None,
    stall_seconds: float = 10.0,
    pool: WorkerPool | None = None,
) -> Execution:
    """One controlled execution of ``target`` (the primitives must be installed).

    With a ``pool``, controlled threads run on its reused OS threads; otherwise each gets a new
    one.
    """
    if pool is None:
        pool = _pool[0]
    starter = pool.start if pool is not None else primitives._start_controlled
    done = None
    if pool is not None:
        done = pool.done
        done.reset()  # a post left by an execution given up on
    sched = Scheduler(strategy, max_steps=max_steps, record=record, history=history,
                      starter=starter, done=done, judge=verdict)
    strategy.scheduler = sched
    scheduler._active[0] = sched
    leaked: list[str] = []
    began = _real_perf_counter()
    stopped = False
    given_up: Verdict | None = None
    # Threads the program leaves unnamed are numbered from 1 in every execution, as in a run
    # of the program by itself: `Thread-1 (add)` in the first execution and in the replay of
    # the 60th, not `Thread-61 (add)` (threading numbers them from one process-wide counter).
    process_counter = getattr(threading, "_counter", None)
    if process_counter is not None:
        threading._counter = itertools.count(1).__next__  # type: ignore[attr-defined]
    try:
        sched.start_root(target, starter, threading.Thread)
        watched = None
        if not sched.done.wait_for(min(stall_seconds, aio.LOOK)):
            watched = _watch(sched, stall_seconds)
        if watched is not None:
            stopped = True
            given_up, loop = watched
            sched.abort_from_outside(given_up)
            cur = sched.current
            _interrupt(cur.ident if cur is not None else None)
            if loop is not None:
                aio.wake(loop)  # out of its selector, to see the exception
        if pool is not None:
            leaked = pool.wait_parked(5.0)
            if not leaked:
                pool.affinity.record(_real_perf_counter() - began)
        else:
            for t in sched.threads:
                if t.pyobj is not None:
                    t.pyobj._started.wait(5.0)
                    _real_thread_join(t.pyobj, 5.0)
                    if t.pyobj.is_alive():
                        leaked.append(t.name)
    finally:
        if process_counter is not None:
            threading._counter = process_counter  # type: ignore[attr-defined]
        scheduler._active[0] = None
        strategy.scheduler = None
        # A program's own structures may keep the scheduler (concurrent.futures keeps its
        # threads' queues): it must not keep the pool, and its descriptors, alive with it.
        sched.done = SPENT
        sched.starter = None
    outcome: Verdict | None = sched.outcome
    if sched.errors:
        v = verdict.exception(sched, sched.errors, outcome)
    elif outcome is None:
        v = Verdict("pass", "pass")
    else:
        v = outcome
    v.steps = sched.step
    v.uncontrolled = list(sched.uncontrolled)
    if leaked:
        v.uncontrolled.append(f"threads still running after the execution: {', '.join(leaked)}")
    if sched.trace is not None:
        for ev in sched.trace:
            ev.resource = "-" if ev.resource is None else verdict._label(sched, ev.resource)
    return Execution(v, list(sched.choices), sched.step, sched.trace, leaked,
                     [t.name for t in sched.threads], sched.switches,
                     stopped and v.kind == (given_up.kind if given_up is not None else ""))


@dataclass
class Switch:
    """One switch that matters in a shown schedule."""

    step: int
    thread: int
    name: str
    op: str
    resource: str
    where: str
    preemption: bool
    switched_from: int


@dataclass
class ExploreResult:
    """What an exploration found (``found``) and how to see it again (``token``)."""

    target: str
    strategy: str
    seed: int
    executions: int
    elapsed: float
    verdict: Verdict | None = None
    found_at: int | None = None  # 1-based execution number of the first failure
    token: str | None = None  # replay token of the shrunk schedule
    unshrunk_token: str | None = None
    decisions: int = 0
    unshrunk_decisions: int = 0
    preemptions: int = 0
    unshrunk_preemptions: int = 0
    switches: list[Switch] = field(default_factory=list)
    exhausted: bool = False
    bound: int | None = None
    divergence: Divergence | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return self.verdict is not None and self.verdict.failed

    @property
    def table(self) -> list[Waiting]:
        return self.verdict.table if self.verdict is not None else []

    @property
    def executions_per_second(self) -> float:
        return self.executions / self.elapsed if self.elapsed > 0 else 0.0


def _switches(sched_threads: list[str], trace: list[TraceEvent] | None) -> list[Switch]:
    out: list[Switch] = []
    for ev in trace or []:
        if ev.switched_from is None:
            continue
        name = sched_threads[ev.thread] if ev.thread < len(sched_threads) else f"T{ev.thread}"
        out.append(Switch(ev.step, ev.thread, name, ev.op, str(ev.resource), ev.where,
                          ev.preemption, ev.switched_from))
    return out


def replay_run(target: Callable[[], object], choices: list[int], *, record: bool = False,
               history: History | None = None, max_steps: int = 20_000,
               stall_seconds: float = 10.0) -> tuple[Execution, Replay]:
    strategy = Replay(choices)
    strategy.begin(0)
    ex = run_once(target, strategy, record=record, history=history, max_steps=max_steps,
                  stall_seconds=stall_seconds)
    return ex, strategy


def recorded(target: Callable[[], object], choices: list[int], history: History,
             max_steps: int, stall_seconds: float) -> tuple[Execution, Replay, list[Switch]]:
    """Re-run a schedule with recording on: labels, file:line of switches, the final table."""
    ex, rp = replay_run(target, choices, record=True, history=history, max_steps=max_steps,
                        stall_seconds=stall_seconds)
    return ex, rp, _switches(ex.names, ex.trace)


def make_strategy(name: str, seed: int) -> BaseStrategy:
    from stuck.explore.portfolio import make

    return make(name, seed)


def _describe_target(target: Callable[[], object]) -> str:
    mod = getattr(target, "__module__", None) or "?"
    qual = getattr(target, "__qualname__", None) or repr(target)
    return f"{mod}:{qual}"


def explore(
    target: Callable[[], object],
    *,
    executions: int = 1000,
    strategy: str | BaseStrategy = "portfolio",
    seed: int = 0,
    time_budget: float | None = None,
    max_steps: int = 20_000,
    shrink_failures: bool = True,
    replay: str | None = None,
    stall_seconds: float = 10.0,
    progress: Callable[[int, int], None] | None = None,
    start_execution: int = 0,
) -> ExploreResult:
    """Search interleavings of ``target`` for one that deadlocks, stalls, hangs or raises."""
    strat = make_strategy(strategy, seed) if isinstance(strategy, str) else strategy
    history = History()
    started = _real_monotonic()
    result = ExploreResult(_describe_target(target), strat.describe(), seed, 0, 0.0)
    outside = getattr(target, "__stuck_outside__", None)
    if outside is None:
        outside = made_outside(target)
    if outside:
        result.notes.append(describe_outside(outside))
    primitives.install()
    quiet.install()
    own_pool = _pool[0] is None and available()
    if own_pool:
        _pool[0] = WorkerPool()
    try:
        if replay is not None:
            tok = decode(replay)
            # The notes on a finding say who was seen, in other executions, notifying what the
            # stuck threads wait on: learn that from a few seeded executions first, as the
            # exploration that made the token did, so the replay tells the failure the same way
            # (its verdict rests on the replayed execution alone).
            _learn_wakers(target, history, max_steps, stall_seconds)
            ex, rp, switches = recorded(target, tok.choices, history, max_steps, stall_seconds)
            result.executions = 1
            result.verdict = ex.verdict
            result.token = replay
            result.decisions = len(tok.choices)
            result.preemptions = rp.preemptions()
            result.switches = switches
            result.divergence = rp.divergence
            if rp.divergence is None and rp.unconsumed() > 0:
                result.divergence = Divergence(rp.pos, ex.steps, -1, ())
            if rp.divergence is None and ex.verdict.kind != tok.verdict:
                result.notes.append(f"the token recorded a {tok.verdict}; this run gave "
                                    f"{ex.verdict.kind}")
            result.elapsed = _real_monotonic() - started
            return result
        failing: Execution | None = None
        i = 0
        for i in range(start_execution, start_execution + executions):
            if time_budget is not None and _real_monotonic() - started > time_budget:
                break
            strat.begin(i)
            ex = run_once(target, strat, max_steps=max_steps, history=history,
                          stall_seconds=_within_budget(stall_seconds, time_budget, started))
            result.executions += 1
            for note in ex.verdict.uncontrolled:
                if note not in result.notes and len(result.notes) < 10:
                    result.notes.append(note)
            more = strat.end(ex.verdict.failed)
            if progress is not None:
                progress(result.executions, executions)
            if ex.verdict.failed:
                failing = ex
                result.found_at = result.executions
                break
            if not more:
                result.exhausted = True
                result.bound = getattr(strat, "bound", None)
                break
        if failing is not None and failing.stopped:
            # A thread ran past the wait without reaching a synchronization point (or waits in
            # an event loop whose tasks are stuck): that does not depend on the schedule alone,
            # so it is shown as found, re-run once with recording on (within what is left of
            # the budget) for the report, not shrunk.
            _finish_stopped(result, target, failing, history, max_steps,
                            _within_budget(stall_seconds, time_budget, started))
        elif failing is not None:
            _finish_failure(result, target, failing, history, max_steps, stall_seconds,
                            shrink_failures)
        result.elapsed = _real_monotonic() - started
        return result
    finally:
        if own_pool:
            pool, _pool[0] = _pool[0], None
            if pool is not None:
                pool.close()
        quiet.uninstall()
        primitives.uninstall()


def _learn_wakers(target: Callable[[], object], history: History, max_steps: int,
                  stall_seconds: float, executions: int = 40) -> None:
    from stuck.explore.random_walk import RandomWalk

    strat = RandomWalk(0)
    for i in range(executions):
        strat.begin(i)
        ex = run_once(target, strat, max_steps=max_steps, history=history,
                      stall_seconds=stall_seconds)
        if ex.stopped:
            # ended by the watch, after real time (a spin, a stuck event loop): each further
            # execution would likely cost as much, for a note
            break


def _fewest_preemptions(target: Callable[[], object], kind: str, choices: list[int],
                        preemptions: int, history: History, max_steps: int,
                        stall_seconds: float, budget: int = 150) -> list[int]:
    """A schedule with the fewest preemptions that fails the same way (bounded DFS, b = 0, 1...).

    Each bound gets a small budget of executions; if none is found below ``preemptions`` the
    original schedule is kept (and the greedy pass in ``shrink`` does what it can).
    """
    from stuck.explore.dfs import BoundedDFS

    for bound in range(preemptions):
        dfs = BoundedDFS(bound)
        for i in range(budget):
            dfs.begin(i)
            ex = run_once(target, dfs, max_steps=max_steps, history=history,
                          stall_seconds=stall_seconds)
            if ex.verdict.kind == kind:
                return ex.choices
            if not dfs.end(ex.verdict.failed):
                break
    return choices


_SHORTEST_WAIT = 0.2  # seconds: the least an execution is given to reach a synchronization point


def _within_budget(stall_seconds: float, time_budget: float | None, started: float) -> float:
    """How long one execution may go without reaching a synchronization point: the stall
    limit, but at most half of what is left of the time budget (the other half is for the
    recorded re-run that makes the report), so a spinning target still ends within it."""
    if time_budget is None:
        return stall_seconds
    left = time_budget - (_real_monotonic() - started)
    return max(_SHORTEST_WAIT, min(stall_seconds, left / 2))


def _finish_stopped(result: ExploreResult, target: Callable[[], object], failing: Execution,
                    history: History, max_steps: int, stall_seconds: float) -> None:
    ex, rp, switches = recorded(target, failing.choices, history, max_steps, stall_seconds)
    if ex.verdict.kind != failing.verdict.kind:  # the re-run did not hang: show the first
        ex = failing
    best = list(failing.choices)
    result.unshrunk_token = result.token = encode(best, ex.verdict.kind)
    result.unshrunk_decisions = result.decisions = len(best)
    result.unshrunk_preemptions = result.preemptions = rp.preemptions()
    result.verdict = ex.verdict
    result.switches = switches


def _finish_failure(result: ExploreResult, target: Callable[[], object], failing: Execution,
                    history: History, max_steps: int, stall_seconds: float,
                    do_shrink: bool) -> None:
    kind = failing.verdict.kind
    original = list(failing.choices)
    result.unshrunk_token = encode(original, kind)
    result.unshrunk_decisions = len(original)

    def attempt(choices: list[int]) -> Attempt:
        ex, rp = replay_run(target, choices, history=history, max_steps=max_steps,
                            stall_seconds=stall_seconds)
        return Attempt(ex.verdict.kind == kind, rp)

    base = attempt(original)
    result.unshrunk_preemptions = base.replay.preemptions()
    best = original
    if do_shrink and base.failed:
        # Two candidates: the greedy shrink of the found schedule, and the greedy shrink of the
        # fewest-preemption schedule a bounded search finds. The latter wins only if it is not
        # longer than what was found (a shown schedule never grows).
        greedy, greedy_rp = shrink(original, attempt)
        best = greedy
        fewest = _fewest_preemptions(target, kind, original, result.unshrunk_preemptions,
                                     history, max_steps, stall_seconds)
        if fewest is not original:
            alt, alt_rp = shrink(fewest, attempt)
            if (len(alt) <= len(original) and alt_rp.preemptions() <= greedy_rp.preemptions()
                    and (alt_rp.preemptions(), len(alt)) < (greedy_rp.preemptions(), len(greedy))):
                best = alt
    ex, rp, switches = recorded(target, best, history, max_steps, stall_seconds)
    if (ex.verdict.kind != kind or len(best) > len(original)
            or rp.preemptions() > result.unshrunk_preemptions):
        # Shrinking must never show a worse schedule than the one found.
        best = original
        ex, rp, switches = recorded(target, best, history, max_steps, stall_seconds)
    result.verdict = ex.verdict
    result.token = encode(best, ex.verdict.kind)
    result.decisions = len(best)
    result.preemptions = rp.preemptions()
    result.switches = switches


def _explore_job(target: Callable[[], object] | str, options: dict[str, Any]) -> ExploreResult:
    """One worker process's share of a parallel exploration."""
    if isinstance(target, str):
        from stuck.explore.target import resolve

        target = resolve(target)
    return explore(target, **options)


def explore_parallel(
    target: Callable[[], object] | str,
    *,
    jobs: int,
    executions: int = 1000,
    **options: Any,
) -> ExploreResult:
    """``explore`` with the executions split over ``jobs`` worker processes.

    Worker ``j`` runs executions ``j * share`` to ``(j + 1) * share - 1`` of the same seeded
    sequence a single process would run, so a failure found in parallel is the one a single
    process finds at the same execution number, and its token replays anywhere. ``target`` is
    a ``path.py::function`` / ``module:function`` spec or a function the workers can import by
    name (defined at module level). The first worker (in execution order) that failed wins.
    """
    import pickle

    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, not {jobs}")
    if options.get("progress") is not None:
        raise ValueError("progress callbacks cannot cross into worker processes; use jobs=1")
    if jobs == 1 or options.get("replay") is not None:
        func = target
        if isinstance(func, str):
            from stuck.explore.target import resolve

            func = resolve(func)
        return explore(func, executions=executions, **options)
    if not isinstance(target, str):
        try:
            pickle.dumps(target)
        except Exception as exc:  # pickle raises several kinds for unpicklable objects
            raise ValueError(
                f"jobs={jobs} runs executions in worker processes, which import the function by "
                f"name; {_describe_target(target)} cannot be ({type(exc).__name__}: {exc}). "
                "Define it at module level, or use jobs=1."
            ) from None
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    start = int(options.pop("start_execution", 0))
    share = -(-executions // jobs)
    ctx = multiprocessing.get_context("spawn")
    began = _real_monotonic()
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as workers:
        futures = [
            workers.submit(_explore_job, target, dict(
                options, executions=min(share, executions - j * share),
                start_execution=start + j * share))
            for j in range(jobs) if j * share < executions
        ]
        results = [f.result() for f in futures]
    found = [(j * share, r) for j, r in enumerate(results) if r.found]
    off, best = found[0] if found else (0, results[0])
    if found and best.found_at is not None:
        best.found_at += off
    best.executions = sum(r.executions for r in results)
    best.elapsed = _real_monotonic() - began
    best.exhausted = all(r.exhausted for r in results)
    for r in results:
        for note in r.notes:
            if note not in best.notes and len(best.notes) < 10:
                best.notes.append(note)
    return best

"""The order in which the rules apply, for recorded facts and for facts read from stacks.

Recorded facts (a live process, a saved ``stuck run`` report, explore's final state): deadlocks,
then stalls at their roots (``judge``). Facts read from stacks (a dump, a capture): the
wait-for graph's deadlocks, the runtime's stated ones, Go's quiescence, whole-process stalls,
single unwoken waits, stalls only a library's words reveal, stated lock orders, a join on a
thread stopped in a call the dump does not name, then hangs (``judge_read``); each rule leaves alone the threads an earlier one covered. A snapshot with
both (a saved live report given to ``stuck analyze``) gets the recorded rules' verdict for the
processes that carry recorded facts, and the event-loop rule's for the tasks of a loop the live
source saw stalled (``judge_both``). Both end with the asyncio rules over the event loops the
snapshot describes (``with_loops``): the cycles among the tasks of a stalled loop, then the
executor chains and the stall of the tasks those leave (``judge_loops``). A live snapshot (the
watchdog's, one asked for on demand) and the same snapshot saved and analysed again thus pass
through the very same rules.
"""

from __future__ import annotations

from stuck.model import Finding, Snapshot
from stuck.rules.behind import behind_another, blocked_behind
from stuck.rules.confidence import (
    any_releaser_doubt,
    signal_handler_doubt,
    task_thread_doubt,
    unsure_doubt,
)
from stuck.rules.cycle import deadlock_finding, held, holding_cycles
from stuck.rules.executor import executor_deadlocks
from stuck.rules.facts import Facts, ReadFacts, facts_of, recorded_part, waited
from stuck.rules.knot import stuck_set
from stuck.rules.loop import loop_stalls
from stuck.rules.stall import handed_away, report_order, same_cause_waiters, stall_finding
from stuck.rules.taskcycle import loop_cycles, task_cycle_finding


def judge(facts: Facts, settle: float = 0.5,
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
    # The threads of a cycle whose last wait began less than ``settle`` ago: judged once it
    # has lasted (the deadlock), and not as stalls before that. Which of them settles first
    # depends only on when each got the CPU (on a loaded machine, the one that closes the
    # cycle may start its wait long after the others): the verdict must not.
    unsettled: set[str] = set()
    for cycle in holding_cycles(stuck, facts):
        ids = [e.thread for e in cycle]
        if any((waited(threads[i], now) or 0.0) < settle for i in ids):
            unsettled.update(ids)
            continue
        if not all(held(e, facts) for e in cycle) and handed_away(set(ids), facts, stuck):
            # Each of them would wake the other, but one handed work where nobody takes it
            # (a job for a pool without a worker) and now waits for its effect: that job is
            # the cause, a stall, reported below with it.
            continue
        findings.append(deadlock_finding(cycle, facts, now, stuck, unreachable))
        reported.update(ids)
    order = sorted(stuck, key=lambda i: report_order(threads[i], facts, stuck, now))
    for tid in order:
        t = threads[tid]
        if tid in reported or tid in unsettled or t.wait is None or (
                waited(t, now) or 0.0) < settle:
            continue
        res = facts.resources.get(t.wait.resource)
        if res is None or behind_another(t, res, stuck, reported | unsettled):
            continue  # a victim of another finding's threads, named in its blocked_behind
        finding = stall_finding(t, res, facts, stuck, now, unreachable or set())
        if finding is None:
            continue
        # The other waiters of the same resource stuck for the same reason: one finding.
        same_cause_waiters(finding, t, res, facts, stuck, now, unreachable or set(), [
            i for i in order if i not in reported and i not in unsettled
            and (waited(threads[i], now) or 0.0) >= settle])
        reported.update(finding.threads)
        findings.append(finding)
    kept = any_releaser_doubt(findings, facts, stuck, strict, freed_strict)
    for f in kept:
        f.blocked_behind = blocked_behind(f.threads, facts, stuck, reported)
    return kept


def judge_recorded(snapshot: Snapshot, settle: float) -> list[Finding]:
    """``judge`` on the recorded facts of ``snapshot``, then the asyncio rules over its event
    loops (``with_loops``); threads and resources without recorded facts (a dump's, which has
    no ``Wait.op`` or ``Resource.recorded``) are left alone."""
    facts, unreachable = facts_of(snapshot)
    findings = with_loops(snapshot, judge(facts, settle, unreachable), settle)
    signal_handler_doubt(findings, snapshot)
    return findings


def judge_loops(snapshot: Snapshot, covered: set[str], settle: float = 0.0) -> list[Finding]:
    """The asyncio rules over the loops of ``snapshot`` (``model.EventLoop``), leaving alone
    the tasks in ``covered`` (those of the cycles found among them, ``with_loops``, which is
    how every source reaches this rule): first the executor chains
    that close a cycle (``executor``; outside a stalled loop each thread must have waited
    ``settle`` seconds), then the tasks of a stalled loop left, as one stall (``loop``)."""
    covered = set(covered)
    findings = executor_deadlocks(snapshot, covered, settle) + loop_stalls(snapshot, covered)
    signal_handler_doubt(findings, snapshot)
    return findings


def judge_read(snapshot: Snapshot, read: ReadFacts) -> list[Finding]:
    """Apply the rules for facts read from stacks, in order; each leaves alone the threads an
    earlier one's findings cover."""
    # Imported here, not with this module: a live process imports stuck.rules when it starts
    # and never reads stacks (these modules would add about a third to its import time).
    from stuck.rules.deadlock import deadlocks
    from stuck.rules.evidence import evidence_stalls
    from stuck.rules.handler import handler_lock_waits
    from stuck.rules.hang import hangs
    from stuck.rules.quiescence import quiescence
    from stuck.rules.reading import Reading
    from stuck.rules.standstill import standstills
    from stuck.rules.stated import lock_orders, stated_deadlocks
    from stuck.rules.unnamed import unnamed_joins
    from stuck.rules.unwoken import unwoken_waits

    dump = Reading(snapshot, read)
    deadlocks(dump)
    stated_deadlocks(dump)
    handler_lock_waits(dump)
    quiescence(dump)
    standstills(dump)
    unwoken_waits(dump)
    evidence_stalls(dump)
    lock_orders(dump)
    unnamed_joins(dump)
    hangs(dump)
    return dump.findings


def judge_both(snapshot: Snapshot, read: ReadFacts, settle: float) -> list[Finding]:
    """The rules for read facts, then, for the processes whose primitives carry a live
    source's facts (a saved ``stuck run`` report), the recorded rules' verdict, the one that
    decided them when the program ran, so both say the same; likewise the event-loop rule's
    for the tasks of the loops it saw stalled."""
    findings = with_loops(snapshot, _judge_both(snapshot, read, settle), settle)
    signal_handler_doubt(findings, snapshot)
    return findings


def _judge_both(snapshot: Snapshot, read: ReadFacts, settle: float) -> list[Finding]:
    findings = judge_read(snapshot, read)
    unsure_doubt(findings, read.unsure)
    sub = recorded_part(snapshot)
    if sub is None:
        return findings
    ids = {t.id for t in sub.threads()}
    # A cycle through an asyncio task (a task holding a thread's lock across an await of a
    # call that thread runs): the rules leave tasks to the event-loop rule, so the wait-for
    # graph's cycle stands, and its threads are not judged again without their task.
    with_tasks = [f for f in findings if f.kind == "deadlock"
                  and any(t.startswith("task:") for t in f.threads)]
    covered = {t for f in with_tasks for t in f.threads}
    for f in with_tasks:  # as the live rule judged it (stuck.rules.confidence)
        task_thread_doubt(f, sub.threads())
    kept = [f for f in findings if f.kind in ("lock-order", "hang") or f in with_tasks
            or not (set(f.threads) | set(f.blocked_behind)) & ids]
    return kept + [f for f in judge_recorded(sub, settle) if not set(f.threads) <= covered]


def with_loops(snapshot: Snapshot, findings: list[Finding], settle: float) -> list[Finding]:
    """``findings`` (the thread rules', and for read facts the wait-for graph's) with the
    asyncio rules' verdict for the tasks of the event loops a live source saw: the deadlocks
    among them found already (the wait-for graph's cycles) stand, every other finding about
    the tasks of a stalled loop gives way; then the cycles among the tasks of each stalled,
    quiet loop (``taskcycle.loop_cycles``), and ``judge_loops`` for the tasks those leave.
    The same for a live snapshot and for the same snapshot saved and analysed again."""
    if not snapshot.loops:
        return findings
    tasks = {t for lp in snapshot.loops if lp.stalled for t in lp.tasks}
    kept = [f for f in findings
            if f.kind == "deadlock" or not (set(f.threads) | set(f.blocked_behind)) & tasks]
    covered = {t for f in kept for t in (*f.threads, *f.blocked_behind)}
    for loop in snapshot.loops:  # the cycles the watchdog found among a stalled loop's tasks
        if not loop.stalled or not loop.quiet():
            continue
        for edges, victims in loop_cycles(snapshot, loop):
            if any(e.thread in covered for e in edges):
                continue  # the wait-for graph's cycle, kept above
            kept.append(task_cycle_finding(snapshot, edges, found_by="watchdog",
                                           policy="report", timed=False,
                                           blocked_behind=victims))
            covered.update(e.thread for e in edges)
            covered.update(victims)
    return kept + judge_loops(snapshot, covered, settle)

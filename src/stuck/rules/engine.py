"""The rules applied in order to one set of facts: deadlocks, then stalls at their roots."""

from __future__ import annotations

from stuck.model import Finding
from stuck.rules.behind import behind_another, blocked_behind
from stuck.rules.confidence import any_releaser_doubt
from stuck.rules.cycle import deadlock_finding, held, holding_cycles
from stuck.rules.facts import Facts, waited
from stuck.rules.knot import stuck_set
from stuck.rules.stall import handed_away, report_order, stall_finding


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
    for cycle in holding_cycles(stuck, facts):
        ids = [e.thread for e in cycle]
        if any((waited(threads[i], now) or 0.0) < settle for i in ids):
            continue
        if not all(held(e, facts) for e in cycle) and handed_away(set(ids), facts, stuck):
            # Each of them would wake the other, but one handed work where nobody takes it
            # (a job for a pool without a worker) and now waits for its effect: that job is
            # the cause, a stall, reported below with it.
            continue
        findings.append(deadlock_finding(cycle, facts, now, stuck, unreachable))
        reported.update(ids)
    for tid in sorted(stuck, key=lambda i: report_order(threads[i], facts, stuck, now)):
        t = threads[tid]
        if tid in reported or t.wait is None or (waited(t, now) or 0.0) < settle:
            continue
        res = facts.resources.get(t.wait.resource)
        if res is None or behind_another(t, res, stuck, reported):
            continue  # a victim of another finding's threads, named in its blocked_behind
        finding = stall_finding(t, res, facts, stuck, now, unreachable or set())
        if finding is None:
            continue
        reported.update(finding.threads)
        findings.append(finding)
    kept = any_releaser_doubt(findings, facts, stuck, strict, freed_strict)
    for f in kept:
        f.blocked_behind = blocked_behind(f.threads, facts, stuck, reported)
    return kept

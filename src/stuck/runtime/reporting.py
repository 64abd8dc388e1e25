"""The report of a cycle found when a thread or task blocked, or of this moment on demand
(``stuck.snapshot()``, the snapshot signal): the live snapshot and its cycles
(``livereport``), with the live facts the stall rules read (``stall``) written into it, so a
saved report is judged by the same rules when analysed again. Above both: neither imports it.
"""

from __future__ import annotations

from stuck.model import Report, Snapshot
from stuck.rules.confidence import signal_handler_doubt
from stuck.runtime import registry
from stuck.runtime.detect import Cycle, all_cycles
from stuck.runtime.livereport import finding_for, take
from stuck.runtime.registry import WaitRecord


def report_for(cycle: Cycle | None, policy: str) -> Report:
    """A full report: the snapshot and either the given cycle or every cycle seen now."""
    from stuck.groups import group_threads

    tasks = registry.tasks_module()
    snap, table, rid_of = take()
    if tasks is not None and isinstance(cycle, tasks.TaskCycle):  # among asyncio tasks
        findings = [tasks.finding_for(cycle, snap, rid_of, policy)]
    else:
        cycles = [cycle] if cycle is not None else all_cycles(table)
        findings = [finding_for(c, snap, rid_of, table, policy) for c in cycles]
        if cycle is None and tasks is not None:
            findings.extend(tasks.cycle_findings(snap, rid_of, policy))
    signal_handler_doubt(findings, snap)  # as the watchdog's findings (stuck.rules.engine)
    _record(snap, table, rid_of)
    groups = group_threads(snap)
    return Report(snapshot=snap, findings=findings, groups=groups)


def _record(snap: Snapshot, table: dict[int, WaitRecord], rid_of: dict[int, str]) -> None:
    """Write the live facts into the snapshot (``stall.record_facts``), so a saved report of
    a cycle found at block time is judged by the same rules when analysed again."""
    from stuck.runtime.stall import LiveChecker, record_facts

    try:
        checker = LiveChecker()
        facts, _ = checker.facts(snap, table, rid_of)
        checker._annotate(snap, facts, [])
        record_facts(snap, facts, set())
    except Exception:  # a report must be written even if the facts cannot be read
        pass

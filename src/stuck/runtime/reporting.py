"""The report of a cycle found when a thread or task blocked, or of this moment on demand
(``stuck.snapshot()``, the snapshot signal, ``stuck capture``'s handover). A cycle found at
block time is the walk's (``detect``, ``aio.walk``: the fast path), its finding made from the
live snapshot (``livereport``), with the live facts the stall rules read (``stall``) written
into it, so a saved report is judged by the same rules when analysed again. A report of this
moment is the watchdog's check (``stall.LiveChecker``): the snapshot with every asyncio task,
its facts, and what ``stuck.rules.evaluate`` finds in it, confirmed by a second observation,
so it says what the watchdog and ``stuck analyze`` of its JSON say. Above both: neither
imports it.
"""

from __future__ import annotations

from stuck.model import Report, Snapshot
from stuck.rules.confidence import signal_handler_doubt
from stuck.runtime import registry
from stuck.runtime.detect import Cycle
from stuck.runtime.livereport import finding_for, take
from stuck.runtime.registry import WaitRecord


def report_for(cycle: Cycle | None, policy: str) -> Report:
    """A full report: the snapshot and either the given cycle or what the rules find now."""
    from stuck.groups import group_threads

    if cycle is None:
        return report_now()
    tasks = registry.tasks_module()
    snap, table, rid_of = take()
    if tasks is not None and isinstance(cycle, tasks.TaskCycle):  # among asyncio tasks
        findings = [tasks.finding_for(cycle, snap, rid_of, policy)]
    else:
        findings = [finding_for(cycle, snap, rid_of, table, policy)]
    signal_handler_doubt(findings, snap)  # as the watchdog's findings (stuck.rules.engine)
    _record(snap, table, rid_of)
    groups = group_threads(snap)
    return Report(snapshot=snap, findings=findings, groups=groups)


def report_now() -> Report:
    """The report of this moment: the live snapshot (threads and asyncio tasks) and the
    deadlocks and stalls ``stuck.rules.evaluate`` proves in it, as the watchdog's check
    (``stall.LiveChecker``) makes them, with no wait needing to have lasted: the same verdict
    as the watchdog's and as ``stuck analyze`` of the saved report."""
    from stuck.groups import group_threads
    from stuck.runtime.stall import LiveChecker

    snap, findings = LiveChecker().check(0.0, asked=True)
    return Report(snapshot=snap, findings=findings, groups=group_threads(snap))


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

"""What the runtime stated beside the stacks: its own deadlock and lock-order reports.

A JVM's deadlock section or lockdep's report is kept as the source said it, for what the
wait-for graph of the stacks did not already show; only the threads on a closed loop of the
stated edges are the deadlock's, the others wait behind it.
"""

from __future__ import annotations

from stuck.model import Finding
from stuck.rules.reading import Reading


def lock_orders(dump: Reading) -> None:
    """A lock-order cycle the source stated (lockdep) is a finding as it was stated."""
    for f in dump.stated:
        if f.kind == "lock-order":
            dump.findings.append(f)


def stated_deadlocks(dump: Reading) -> None:
    """A deadlock the source stated whose threads the wait-for graph's cycles did not cover:
    the threads on a closed loop of its edges, the others behind it."""
    for f in dump.stated:
        if f.kind != "deadlock":
            continue
        if all(t in dump.covered for t in f.threads):
            continue
        # Keep only threads on a closed loop of the stated edges; the rest are victims.
        succ = {e.thread: e.held_by for e in f.cycle}
        on_loop: list[str] = []
        for start in succ:
            seen: list[str] = []
            node: str | None = start
            while node is not None and node not in seen:
                seen.append(node)
                node = succ.get(node)
            if node is not None and node == start:
                on_loop = seen
                break
        if not on_loop:
            continue
        loop_set = set(on_loop)
        cycle = [e for e in f.cycle if e.thread in loop_set]
        behind = [t for t in dict.fromkeys(list(f.threads) + list(succ)) if t not in loop_set]
        dump.findings.append(Finding(
            kind="deadlock", confidence=f.confidence, summary=f.summary,
            explanation=f.explanation, threads=on_loop,
            resources=list(dict.fromkeys(e.waits_for for e in cycle)), cycle=cycle,
            blocked_behind=behind, missing_evidence=[*f.missing_evidence,
                "taken from the dump's own deadlock report; the thread stacks do not show it"],
            details=f.details))
        dump.covered.update(on_loop)
        dump.covered.update(behind)


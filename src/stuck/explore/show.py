"""Text rendering of an exploration result: the switches that matter, then who waits on what."""

from __future__ import annotations

from stuck.explore.engine import ExploreResult
from stuck.report.names import clean


def render(result: ExploreResult, replay_command: str | None = None) -> str:
    lines: list[str] = []
    v = result.verdict
    if v is None or not v.failed:
        if result.exhausted:
            lines.append(f"exhausted: no deadlock within bound {result.bound} "
                         f"({result.executions} schedules, {result.strategy})")
        else:
            lines.append(f"pass: {result.executions} executions, no failure "
                         f"({result.strategy}, seed {result.seed}, "
                         f"{result.executions_per_second:.0f} executions/s)")
        if result.divergence is not None:
            lines.append(result.divergence.describe())
        lines.extend(result.notes)
        return "\n".join(lines)
    lines.append(clean(v.summary))
    if result.found_at is not None:
        lines.append(f"found at execution {result.found_at} ({result.strategy}, seed "
                     f"{result.seed}); schedule shrunk from {result.unshrunk_preemptions} to "
                     f"{result.preemptions} preemptions, {result.unshrunk_decisions} to "
                     f"{result.decisions} decisions")
    if result.divergence is not None:
        lines.append(result.divergence.describe())
    lines.extend(clean(n) for n in result.notes)
    # What other executions showed, beside the verdict (stuck.explore.verdict._learnt_elsewhere)
    learnt: list[str] = []
    for f in v.findings:
        elsewhere = f.details.get("other_executions")
        if isinstance(elsewhere, list):
            learnt.extend(n for n in elsewhere if isinstance(n, str) and n not in learnt)
    lines.extend(f"note: {clean(n)}" for n in learnt)
    if result.switches:
        lines.append("")
        lines.append("switches that matter:")
        for s in result.switches:
            why = "preempts" if s.preemption else "after"
            lines.append(f"  step {s.step:>4}  T{s.switched_from} -> T{s.thread} {clean(s.name)} "
                         f"({why} T{s.switched_from}): {s.op} {clean(s.resource)}  at "
                         f"{clean(s.where)}")
    if v.table:
        lines.append("")
        lines.append("at the end:")
        for w in v.table:
            holds = f"; holds {', '.join(clean(h) for h in w.holds)}" if w.holds else ""
            wakers = ""
            if w.wakers is not None:
                wakers = ("; nobody left to wake it" if not w.wakers else
                          "; could be woken by " + ", ".join(f"T{i}" for i in w.wakers))
            lines.append(f"  T{w.thread} {clean(w.name)}: {w.op} {clean(w.resource)} at "
                         f"{clean(w.where)}{holds}{wakers}")
    if v.cycle:
        lines.append("")
        lines.append("cycle: " + " -> ".join(f"T{a} waits {clean(r)} held by T{b}"
                                            for a, r, b in v.cycle))
    for err in v.errors:
        lines.append("")
        lines.append(f"exception in T{err.thread} {clean(err.name)}:")
        lines.extend("  " + clean(x) for x in err.traceback.rstrip().splitlines())
    for note in v.uncontrolled:
        lines.append(f"note: {clean(note)}")
    if result.token:
        lines.append("")
        lines.append(f"replay token: {result.token}")
        if replay_command:
            lines.append(f"reproduce with: {replay_command}")
    return "\n".join(lines)

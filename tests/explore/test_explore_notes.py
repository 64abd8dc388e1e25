"""Explore's verdict rests on the facts of the execution that blocked; what other executions
showed is a note on the finding, not its verdict (tests/stall/test_live_json_agrees.py checks
that the verdict is the live run's)."""

from __future__ import annotations

import pytest

zoo = pytest.importorskip("zoo")

from stuck.explore import explore  # noqa: E402


@pytest.mark.parametrize("name", ["cockroach_16167", "kubernetes_58107"])
def test_readers_writer_cycle_is_a_note_on_certain_stalls(name: str) -> None:
    found = explore(zoo.BUGS[name].buggy, executions=1000, seed=0, stall_seconds=5.0)
    v = found.verdict
    assert found.found and v is not None and v.report is not None
    findings = v.report.findings
    # In the blocking execution nobody notified the lock's condition: each waiter's stall is
    # proven, and no cycle is claimed from what happened elsewhere.
    assert findings and {(f.kind, f.confidence) for f in findings} == {("stall", "certain")}
    assert all(not f.cycle for f in findings)
    names = {t.id: t.name for t in v.report.snapshot.threads()}
    noted = [f for f in findings if f.details.get("other_executions")]
    assert noted, [f.explanation for f in findings]
    for f in noted:
        notes = f.details["other_executions"]
        assert isinstance(notes, list)
        assert all("In other executions" in n and n in f.explanation for n in notes)
    # The writer waits on the lock's condition, which the blocked readers notified elsewhere:
    # the note names them as its possible wakers, the cycle the maintainers call a deadlock.
    cycle_notes = [n for f in noted for n in f.details["other_executions"]  # type: ignore[union-attr]
                   if "each other's only wakers" in n or "the only thread" in n]
    assert cycle_notes
    stuck = {names[t] for f in findings for t in f.threads}
    assert any(sum(s in n for s in stuck) >= 2 for n in cycle_notes), cycle_notes
    # and the text explore prints shows them under the verdict
    from stuck.explore import render

    text = render(found)
    assert text.startswith("STALL (certain)")
    assert all(f"note: {n}" in text for n in cycle_notes)


def test_replayed_verdict_is_the_found_one() -> None:
    from stuck.explore import replay

    bug = zoo.BUGS["cockroach_16167"]
    found = explore(bug.buggy, executions=1000, seed=0, stall_seconds=5.0)
    assert found.token is not None and found.verdict is not None
    again = replay(bug.buggy, found.token)
    assert again.verdict is not None and again.verdict.summary == found.verdict.summary

"""The model's two report formats: JSON in schema stuck.report/1 (round trip, validation) and
the text report (verdict first, chain, groups; untrusted text escaped)."""

from __future__ import annotations

import jsonschema
import pytest

from stuck.groups import group_threads
from stuck.model import (
    Edge,
    Finding,
    Frame,
    Process,
    Report,
    Resource,
    Snapshot,
    Source,
    Thread,
    Wait,
)
from stuck.report import json as json_report
from stuck.report import text as text_report


def two_lock_report() -> Report:
    a = Thread(id="T1", tid=11, name="raft", state="blocked",
               frames=[Frame("acquire", "threading.py", 10), Frame("tick", "app.py", 20)],
               holds=["r1"], waits=Wait("r2", at=Frame("tick", "app.py", 20), duration=3.0))
    b = Thread(id="T2", tid=12, name="coalescer", state="blocked",
               frames=[Frame("acquire", "threading.py", 10), Frame("beat", "app.py", 40)],
               holds=["r2"], waits=Wait("r1", at=Frame("beat", "app.py", 40)))
    idle = Thread(id="T3", name="idle-1", state="idle", frames=[Frame("get", "queue.py", 5)])
    idle2 = Thread(id="T4", name="idle-2", state="idle", frames=[Frame("get", "queue.py", 5)])
    snap = Snapshot(
        source=Source(kind="live", format="python"),
        processes=[Process(pid=1, name="app", threads=[a, b, idle, idle2])],
        resources=[
            Resource("r1", "mutex", "raft_mu", owners=["T1"],
                     created_at=Frame("__init__", "app.py", 5),
                     acquired_at={"T1": Frame("tick", "app.py", 19)}),
            Resource("r2", "mutex", "coalesced_mu", owners=["T2"],
                     acquired_at={"T2": Frame("beat", "app.py", 39)}),
        ],
        taken_at=1700000000.0,
    )
    finding = Finding(kind="deadlock", confidence="certain",
                      summary="raft and coalescer wait for each other",
                      threads=["T1", "T2"], resources=["r1", "r2"],
                      cycle=[Edge("T1", "r2", "T2"), Edge("T2", "r1", "T1")],
                      missing_evidence=["nothing"], details={"policy": "report"})
    return Report(snapshot=snap, findings=[finding], groups=group_threads(snap))


def test_json_validates_against_shipped_schema() -> None:
    doc = json_report.to_dict(two_lock_report())
    jsonschema.validate(doc, json_report.schema())
    assert doc["schema"] == "stuck.report/1"
    assert doc["findings"][0]["cycle"][0] == {"thread": "T1", "waits_for": "r2", "held_by": "T2"}


def test_json_round_trip_keeps_everything() -> None:
    report = two_lock_report()
    again = json_report.loads(json_report.dumps(report))
    assert json_report.to_dict(again) == json_report.to_dict(report)
    assert again.snapshot.resources[0].acquired_at["T1"] == Frame("tick", "app.py", 19)


@pytest.mark.parametrize("text", ["", "[]", "{}", '{"schema": "other"}', "not json",
                                  '{"schema": "stuck.report/1", "source": {"kind": "dump"},'
                                  ' "processes": [{"threads": [{"id": 3}]}], "resources": []}'])
def test_loading_a_non_report_is_a_clean_error(text: str) -> None:
    with pytest.raises(json_report.ReportFormatError):
        json_report.loads(text)


def test_groups_merge_identical_stacks_in_first_seen_order() -> None:
    report = two_lock_report()
    assert [g.threads for g in report.groups] == [["T1"], ["T2"], ["T3", "T4"]]
    assert report.snapshot.thread("T4") is not None
    assert report.snapshot.thread("T4").group == "g3"  # type: ignore[union-attr]


def test_text_puts_the_verdict_first_then_the_chain_then_groups() -> None:
    out = text_report.render(two_lock_report())
    lines = out.splitlines()
    assert lines[0].startswith("stuck: 1 deadlock")
    chain = out.index("The cycle:")
    assert "raft (T1) waits for mutex coalesced_mu at app.py:20" in out
    assert "held by coalescer (T2) (taken at app.py:39)" in out
    assert out.index("2 threads · idle") > chain


def test_text_escapes_control_characters_from_untrusted_names() -> None:
    report = two_lock_report()
    report.snapshot.processes[0].threads[0].name = "evil\x1b[31mred\x07"
    out = text_report.render(report)
    assert "\x1b" not in out and "\x07" not in out
    assert "evil\\x1b[31mred\\x07" in out

"""The JSON report written in one pass: the same document as ``to_dict``, a group's frames
written once for all its threads, and read back whole by stuck's reader."""

from __future__ import annotations

import io
import json

import jsonschema

from stuck.groups import group_threads
from stuck.model import Frame, Process, Report, Resource, Snapshot, Source, Thread, Wait
from stuck.report import json as json_report

STACK = [Frame("sync.runtime_SemacquireMutex", "sema.go", 77), Frame("main.get", "cache.go", 41)]


def many_waiters(n: int) -> Report:
    threads = [Thread(id=f"goroutine {i}", state="blocked", frames=list(STACK),
                      waits=Wait("mu", duration=60.0)) for i in range(n)]
    threads.append(Thread(id="goroutine lone", state="running",
                          frames=[Frame("main.loop", "main.go", 9)], holds=["mu"]))
    snap = Snapshot(source=Source(kind="dump", format="go", files=["a.txt"]),
                    processes=[Process(pid=7, name="srv", file="a.txt", threads=threads)],
                    resources=[Resource("mu", "mutex", "cache.mu", owners=["goroutine lone"])],
                    notes=["a note"])
    return Report(snapshot=snap, groups=group_threads(snap))


def test_the_stream_is_the_document_to_dict_builds() -> None:
    report = many_waiters(50)
    buf = io.StringIO()
    json_report.write(report, buf)
    doc = json.loads(buf.getvalue())
    assert doc == json_report.to_dict(report)
    jsonschema.validate(doc, json_report.schema())


def test_a_shared_stack_is_written_once() -> None:
    small, large = json_report.dumps(many_waiters(10)), json_report.dumps(many_waiters(1000))
    assert small.count("main.get") == large.count("main.get") == 1
    threads = json.loads(large)["processes"][0]["threads"]
    assert all(t["frames"] == [] and t["frames_in_group"] for t in threads)


def test_the_reader_gives_every_thread_its_frames_back() -> None:
    report = many_waiters(20)
    again = json_report.loads(json_report.dumps(report))
    for before, after in zip(report.snapshot.threads(), again.snapshot.threads(), strict=True):
        assert after.frames == before.frames
        assert after.waits == before.waits and after.holds == before.holds
    assert again.snapshot.processes[0].file == "a.txt"
    assert again.snapshot.notes == ["a note"]


def test_a_report_without_groups_keeps_frames_per_thread() -> None:
    report = many_waiters(3)
    report.groups = []
    doc = json.loads(json_report.dumps(report))
    assert doc["processes"][0]["threads"][0]["frames"][1]["function"] == "main.get"
    assert "frames_in_group" not in doc["processes"][0]["threads"][0]


def test_empty_report_is_valid_json() -> None:
    report = Report(snapshot=Snapshot(source=Source(kind="live")))
    doc = json.loads(json_report.dumps(report))
    assert doc["processes"] == [] and doc["findings"] == [] and doc["groups"] == []


def test_the_fast_encoder_writes_what_the_standard_one_does() -> None:
    tricky = {"s": 'quote " backslash \\ nul \x00 esc \x1b line\u2028 é 😀', "n": [0, -1, 1.5e300],
              "t": True, "f": False, "z": None, "nested": {"k": [[], {}]}}
    standard = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode(tricky)
    assert json_report._ENCODE(tricky) == standard
    assert json.loads(json_report._ENCODE(tricky)) == tricky

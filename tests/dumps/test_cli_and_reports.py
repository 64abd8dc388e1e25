"""``stuck analyze`` end to end: exit codes, JSON (schema, round trip), HTML and text escaping."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner
from tests.dumps.helpers import CORPUS, GENERATED, analyse_text, dump_text

from stuck.analyze import analyze_command
from stuck.report import json as json_report


def run(args: list[str], stdin: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(analyze_command, args, input=stdin)


def corpus_file(tmp_path: Path, name: str) -> str:
    p = tmp_path / name
    p.write_text(dump_text(CORPUS / name), encoding="utf-8")
    return str(p)


def test_findings_exit_1_and_verdict_first(tmp_path: Path) -> None:
    res = run([corpus_file(tmp_path, "07-etcd-3929-v3-snapshot-deadlock-goroutines.txt")])
    assert res.exit_code == 1
    assert res.output.startswith("stuck: 1 hang found")
    assert "goroutine 63" in res.output


def test_nothing_found_exits_0(tmp_path: Path) -> None:
    res = run([corpus_file(tmp_path, "17-freebsd-valgrind-189-procstat-kk.txt")])
    assert res.exit_code == 0
    assert "nothing found" in res.output and "4 threads · io" in res.output


def test_unrecognised_input_is_one_line_exit_2() -> None:
    res = run(["-"], stdin="hello, this is not a dump\n")
    assert res.exit_code == 2
    assert "no known dump format" in res.output
    assert "Traceback" not in res.output


def test_missing_file_and_unknown_format_exit_2(tmp_path: Path) -> None:
    assert run([str(tmp_path / "nope.txt")]).exit_code == 2
    f = corpus_file(tmp_path, "21-dockerize-2-go-all-goroutines-asleep.txt")
    res = run(["--format", "cobol", f])
    assert res.exit_code == 2 and "unknown format" in res.output


def test_explicit_format_that_finds_nothing_exits_2(tmp_path: Path) -> None:
    f = corpus_file(tmp_path, "21-dockerize-2-go-all-goroutines-asleep.txt")
    res = run(["--format", "gdb", f])
    assert res.exit_code == 2 and "no threads found" in res.output


def test_json_validates_and_round_trips_through_analyze(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    src = corpus_file(tmp_path, "23-syzkaller-440-hung-rtnl-owner-in-synchronize-rcu.txt")
    res = run(["--json=" + str(out), src])
    assert res.exit_code == 1
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, json_report.schema())
    assert doc["findings"][0]["kind"] == "hang"
    again = run([str(out)])  # stuck reads its own report back
    assert again.exit_code == 1
    res2 = run(["--json", "-", str(out)])
    doc2 = json.loads(res2.output)
    assert [f["kind"] for f in doc2["findings"]] == ["hang"]
    assert doc2["findings"][0]["blocked_behind"] == doc["findings"][0]["blocked_behind"]


def test_lockdep_survives_a_json_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    run(["--json=" + str(out), corpus_file(tmp_path, "15-syzkaller-188-lockdep-circular-rtnl.txt")])
    doc2 = json.loads(run(["--json", "-", str(out)]).output)
    assert [f["kind"] for f in doc2["findings"]] == ["lock-order"]


@pytest.mark.parametrize(("name", "kind"), [
    ("01-rocksdb-5007-ingest-vs-compaction-pstack.txt", "deadlock"),  # rests on paste captions
    ("03-rocksdb-1297-cockroach-8784-delaywrite.txt", "stall"),  # rests on LOG lines, fields
])
def test_knowledge_evidence_survives_a_json_round_trip(tmp_path: Path, name: str,
                                                       kind: str) -> None:
    out = tmp_path / "r.json"
    assert run(["--json=" + str(out), corpus_file(tmp_path, name)]).exit_code == 1
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, json_report.schema())
    doc2 = json.loads(run(["--json", "-", str(out)]).output)
    assert [f["kind"] for f in doc2["findings"]] == [kind]
    assert doc2.get("facts", []) == doc.get("facts", [])


def test_every_generated_and_corpus_dump_makes_a_valid_report() -> None:
    schema = json_report.schema()
    for path in [*sorted(CORPUS.glob("*.txt")), *sorted(GENERATED.glob("*.txt"))]:
        report = analyse_text(dump_text(path))
        jsonschema.validate(json_report.to_dict(report), schema)


HOSTILE = (
    "goroutine 1 [semacquire, 5 minutes]:\n"
    "sync.runtime_Semacquire(0xc000010000)\n"
    "\t/usr/lib/go/src/runtime/sema.go:62 +0x25\n"
    "main.\x1b[31mev\x07il</pre><script>alert(1)</script>[bold]x[/bold](0xc000010000)\n"
    "\t/tmp/<img src=x onerror=alert(1)>.go:10 +0x1\n"
)


def test_dump_text_is_escaped_in_text_and_html(tmp_path: Path) -> None:
    src = tmp_path / "hostile.txt"
    src.write_text(HOSTILE, encoding="utf-8")
    html = tmp_path / "r.html"
    res = run(["--html", str(html), str(src)])
    assert res.exit_code == 1
    # Terminal colour is taken off the input; any other control character is shown escaped.
    assert "\x1b" not in res.output and "31m" not in res.output
    assert "\x07" not in res.output and "main.ev\\x07il" in res.output
    page = html.read_text()
    assert "<script>alert" not in page and "<img src" not in page
    assert "&lt;script&gt;" in page and "[bold]x[/bold]" in page

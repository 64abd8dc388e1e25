"""The dump zoo (tests/fixtures/dumpzoo/): real dumps of small stuck and busy programs, scored
against the truth each program states (see the zoo's README).

What must hold on every case: it is read (exit 0 or 1, never refused or a crash), no bystander
is named in a finding, no cycle claims a wait the program does not have, no excerpt that lost
threads gets a claim above `possible`, and no finding is `certain` where the case lacks the
evidence the truth says a `certain` needs. Cases where that does not hold yet are listed below as xfails, each
with the reason (not strict: the engine is being improved while this list stands; a case not
listed that breaks an invariant fails).
The score bar (90% right per runtime and style, issue #12) is asserted for the rows listed as
having reached it; the others are strict xfails, so a row that reaches the bar must
be listed, and then stays. The per-runtime floor keeps today's score from falling.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from tests.dumps.loading import load_script

from stuck.dumps.pystdlib import StdlibReader

ZOO = Path(__file__).resolve().parent.parent / "fixtures" / "dumpzoo"


def _scoring() -> ModuleType:
    return load_script("dumpzoo_scoring", ZOO / "scoring.py")


scoring = _scoring()
CASES: list[dict[str, Any]] = scoring.load_cases()
BY_ID = {c["id"]: c for c in CASES}

# The Python cases were made with CPython 3.11.7 of /root/.pyenv. Where that standard library
# is on the machine, the line a frame stands on tells a timed wait from an untimed one
# (stuck.dumps.pystdlib); elsewhere the dump alone cannot.
ZOO_STDLIB_HERE = StdlibReader(
    "3.11.7", "/root/.pyenv/versions/3.11.7/bin/python3.11").lines("threading.py") is not None

# Bystanders named in a finding today, and why (one reason per shape of the mistake).
PY_TIMED_WAIT = ("without --locals, the source or the standard library of CPython 3.11.7 on "
                 "this machine, py-spy shows no timeout: a janitor in `stop.wait(2.0)` reads as "
                 "a durable Event wait, and with the threads that would show the process is "
                 "busy cut out, it is called a possible stall")
BYSTANDER_KNOWN: dict[str, str] = {} if ZOO_STDLIB_HERE else {
    "python/idle_server/excerpt-ellipsis": PY_TIMED_WAIT,
}

# A paste of a capture (Markdown, e-mail quoting, HTML, journald, CRLF) is the same dump: the
# same reason holds for it.
def _with_pastes(known: dict[str, str]) -> dict[str, str]:
    out = dict(known)
    for case_id, why in known.items():
        runtime, program, style = case_id.split("/")
        if scoring.PASTE_FROM.get(runtime) == style:
            out.update({f"{runtime}/{program}/{paste}": why for paste in scoring.PASTES})
    return out


BYSTANDER_KNOWN = _with_pastes(BYSTANDER_KNOWN)

# Cycles that claim a wait the program does not have, today.
FALSE_EDGE_KNOWN: dict[str, str] = {}

# Excerpts that lost threads, with a claim above `possible`, today.
OVERCONFIDENT_KNOWN: dict[str, str] = dict.fromkeys([
], "a deadlock or stall is claimed probable from an excerpt that lost threads it needs "
   "(a thread id that is not the process id, a goroutine without goroutine 1, a JVM thread "
   "without the JVM's own: the paste visibly lacks threads)")

# `certain` without the evidence for it, today.
CERTAIN_KNOWN: dict[str, str] = {}

# Floor per runtime: cases right by the program's truth alone (the strict score, in
# tests/fixtures/dumpzoo/README.md). The score may rise;
# it must not fall.
FLOOR: dict[str, int] = {"c": 196, "go": 183, "java": 134,
                         "python": 196 if ZOO_STDLIB_HERE else 195}

BAR = 0.90


# Scored once per session (each case runs `stuck analyze` in this process).
OUTCOMES: dict[str, Any] = {o.id: o for o in scoring.score_all()}


def _outcome(case_id: str) -> Any:
    return OUTCOMES[case_id]


def _mark(case_id: str, known: dict[str, str]) -> Any:
    if case_id in known:
        return pytest.param(case_id, marks=pytest.mark.xfail(strict=False, reason=known[case_id]))
    return case_id


@pytest.mark.parametrize("case_id", [c["id"] for c in CASES])
def test_every_case_is_read(case_id: str) -> None:
    out = _outcome(case_id)
    assert out.parsed, out.error


@pytest.mark.parametrize("case_id", [_mark(c["id"], BYSTANDER_KNOWN) for c in CASES])
def test_no_bystander_in_a_finding(case_id: str) -> None:
    out = _outcome(case_id)
    assert not out.bystanders, f"{out.bystanders} named in {out.findings}"


@pytest.mark.parametrize("case_id", [_mark(c["id"], CERTAIN_KNOWN) for c in CASES])
def test_no_certain_without_its_evidence(case_id: str) -> None:
    out = _outcome(case_id)
    assert not out.unjustified_certain, (
        f"needs {out.truth['certain_needs']}, case has {out.case['evidence']}")


@pytest.mark.parametrize("case_id", [_mark(c["id"], FALSE_EDGE_KNOWN) for c in CASES])
def test_no_false_wait_for_edge(case_id: str) -> None:
    out = _outcome(case_id)
    assert not out.false_edges, f"{out.false_edges} in {out.findings}"


@pytest.mark.parametrize("case_id", [_mark(c["id"], OVERCONFIDENT_KNOWN) for c in CASES])
def test_no_claim_above_possible_from_an_excerpt_that_lost_threads(case_id: str) -> None:
    out = _outcome(case_id)
    assert not out.overconfident, out.overconfident


ROWS = {(r.runtime, r.style): r for r in scoring.table(OUTCOMES.values())}


# Rows (runtime, style) that have reached the bar: they must stay there. Every other row is a
# strict xfail: when it reaches the bar its test passes, which fails the run until the row is
# added here. The bar is on `right_for_text`: right, or, where the case lacks the evidence its
# verdict needs (an excerpt without the holders, a Python stack without the call a thread
# waits in), a `possible` hang naming every stuck thread the text holds and saying what to
# capture next. The strict score (`right`, against the program's truth alone) is kept in the
# README's table beside it and has its own floor below.
BAR_MET: set[tuple[str, str]] = {
    *(("go", style) for style in (
        "excerpt-cutoff", "excerpt-ellipsis", "excerpt-one-thread", "fatal-all", "paste-crlf",
        "paste-email", "paste-html", "paste-journald", "paste-markdown", "sigquit-all",
        "sigquit-all-noopt", "sigquit-system")),
    *(("c", style) for style in (
        "bt-O0", "bt-O0-colour", "bt-O0-owners", "bt-O0-owners-frame-apply",
        "bt-O2-stripped", "bt-O2-stripped-owners-frame-apply", "btfull-O0",
        "btfull-O0-owners-split", "btfull-O2-stripped", "excerpt-cutoff", "excerpt-ellipsis",
        "excerpt-one-thread", "paste-crlf", "paste-email", "paste-html", "paste-journald", "paste-markdown")),
    *(("java", style) for style in (
        "excerpt-cutoff", "excerpt-ellipsis", "excerpt-one-thread", "jstack", "jstack-l",
        "paste-crlf", "paste-email", "paste-html", "paste-journald", "paste-markdown")),
    *(("python", style) for style in (
        "excerpt-cutoff+source", "excerpt-ellipsis+source", "excerpt-one-thread+source",
        "faulthandler+source", "pyspy+source", "pyspy-locals", "pyspy-locals+source", "pyspy-native",
        "pyspy-native+source", "pystack",
        "pystack+source", "pystack-locals", "pystack-locals+source")),
}


@pytest.mark.parametrize("row", [
    key if key in BAR_MET else pytest.param(key, marks=pytest.mark.xfail(
        strict=True, reason=f"{r.right_for_text}/{r.cases} ({r.right_for_text_pct:.0f}%) "
        "right for what the text shows; the bar is 90% (issue #12)"))
    for key, r in sorted(ROWS.items())], ids=lambda k: "-".join(k))
def test_score_bar_per_runtime_and_style(row: tuple[str, str]) -> None:
    r = ROWS[row]
    assert r.right_for_text >= BAR * r.cases, f"{r.right_for_text}/{r.cases} right"


@pytest.mark.parametrize("runtime", sorted(FLOOR))
def test_score_does_not_fall_below_todays(runtime: str) -> None:
    right = sum(r.right for r in ROWS.values() if r.runtime == runtime)
    assert right >= FLOOR[runtime], f"{runtime}: {right} right, floor {FLOOR[runtime]}"


# ---------------------------------------------------------------------------------------------
# the zoo itself: enough programs, consistent truth, and a scorer that counts what it says


def test_each_runtime_has_eight_stuck_programs_and_a_busy_one() -> None:
    for runtime in sorted({c["runtime"] for c in CASES}):
        programs = {c["program"] for c in CASES if c["runtime"] == runtime}
        verdicts = [scoring.truth_for({"runtime": runtime, "program": p})["verdict"]
                    for p in programs]
        assert sum(v != "none" for v in verdicts) >= 8, runtime
        assert "none" in verdicts, runtime


def test_truth_files_are_consistent() -> None:
    for truth_file in sorted((ZOO / "programs").glob("*/*.truth.json")):
        runtime, program = truth_file.parent.name, truth_file.name.split(".")[0]
        truth = scoring.truth_for({"runtime": runtime, "program": program})
        stuck, byst = set(truth["stuck"]), set(truth["bystanders"])
        assert not stuck & byst, truth_file
        assert not set(truth["may_appear"]) & (stuck | byst), truth_file
        assert truth["verdict"] in {"deadlock", "stall", "none"}, truth_file
        assert bool(stuck) == (truth["verdict"] != "none"), truth_file
        waits_for = truth.get("waits_for", {})
        assert set(waits_for) <= stuck and set(waits_for.values()) <= stuck, truth_file
        assert any(c["runtime"] == runtime and c["program"] == program for c in CASES), (
            f"{truth_file} has no cases: run tests/fixtures/dumpzoo/build.py")
        for case in CASES:
            if case["runtime"] == runtime and case["program"] == program:
                for f in case["files"]:
                    assert (ZOO / f).is_file(), f


def _doc(*findings: dict[str, Any]) -> dict[str, Any]:
    threads = [
        {"id": "1", "name": "worker-a", "frames": []},
        {"id": "2", "name": None, "frames": [{"function": "main.workerB"}]},
        {"id": "3", "name": "heartbeat", "frames": []},
    ]
    return {"processes": [{"threads": threads}], "findings": list(findings)}


TRUTH = {"verdict": "deadlock", "stuck": ["worker-a", "workerB"], "may_appear": [],
         "bystanders": ["heartbeat"], "certain_needs": ["all-threads", "lock-owners"],
         "also_right": []}


def _judge(case: dict[str, Any], doc: dict[str, Any], truth: dict[str, Any] = TRUTH) -> Any:
    return scoring.judge(scoring.Outcome(case, truth), doc)


def test_scorer_right_needs_the_kind_and_every_stuck_thread() -> None:
    case = {"id": "x", "evidence": ["all-threads"]}
    both = {"kind": "deadlock", "confidence": "probable", "threads": ["1", "2"]}
    assert _judge(case, _doc(both)).right
    one = {**both, "threads": ["1"]}
    out = _judge(case, _doc(one))
    assert not out.right and out.missing == ["workerB"]
    assert not _judge(case, _doc({**both, "kind": "hang"})).right
    assert not _judge(case, _doc()).right
    # an excerpt that lost workerB: worker-a alone, even as a hang, is right
    excerpt = {"id": "x", "evidence": [], "kept": ["worker-a"]}
    assert _judge(excerpt, _doc({**one, "kind": "hang", "confidence": "possible"})).right


def test_scorer_counts_bystanders_and_unearned_certainty() -> None:
    case = {"id": "x", "evidence": ["all-threads"]}
    f = {"kind": "deadlock", "confidence": "certain", "threads": ["1", "2"],
         "blocked_behind": ["3"]}
    out = _judge(case, _doc(f))
    assert out.right and out.bystanders == ["heartbeat"]
    assert out.unjustified_certain  # lock owners were not in the case
    owners = {"id": "x", "evidence": ["all-threads", "lock-owners"]}
    assert not _judge(owners, _doc(f)).unjustified_certain
    none_truth = {**TRUTH, "verdict": "none", "stuck": [], "certain_needs": []}
    out = _judge(owners, _doc(f), none_truth)
    assert not out.right and out.unjustified_certain
    assert _judge(owners, _doc(), none_truth).right


def test_scorer_reads_frames_kept_on_the_group() -> None:
    doc = _doc({"kind": "deadlock", "confidence": "possible", "threads": ["1", "2"]})
    thread = doc["processes"][0]["threads"][1]
    thread.update(frames=[], group="g2", frames_in_group=True)
    doc["groups"] = [{"id": "g2", "threads": ["2"], "frames": [{"function": "main.workerB"}]}]
    assert _judge({"id": "x", "evidence": ["all-threads"]}, doc).right


def test_scorer_finds_a_cycle_edge_the_program_does_not_have() -> None:
    truth = {**TRUTH, "waits_for": {"worker-a": "workerB", "workerB": "worker-a"}}
    case = {"id": "x", "evidence": ["all-threads"]}
    true_cycle = {"kind": "deadlock", "confidence": "probable", "threads": ["1", "2"],
                  "cycle": [{"thread": "1", "waits_for": "r1", "held_by": "2"},
                            {"thread": "2", "waits_for": "r2", "held_by": "1"}]}
    assert _judge(case, _doc(true_cycle), truth).false_edges == []
    self_lock = {**true_cycle, "threads": ["1"],
                 "cycle": [{"thread": "1", "waits_for": "r1", "held_by": "1"}]}
    assert _judge(case, _doc(self_lock), truth).false_edges == ["worker-a waits for worker-a"]


def test_scorer_takes_a_possible_hang_only_where_the_evidence_is_missing() -> None:
    hang = {"kind": "hang", "confidence": "possible", "threads": ["1"], "blocked_behind": ["2"],
            "missing_evidence": ["which thread holds m is not in the dump: `print m`"]}
    # An excerpt of both stuck threads lacks the holders (no owners, not every thread): a
    # possible hang naming both (one as blocked behind) that says what to capture is right
    # for the text, not right by the program's truth.
    excerpt = {"id": "x", "evidence": [], "kept": ["worker-a", "workerB"]}
    out = _judge(excerpt, _doc(hang))
    assert out.lacks_evidence and out.right_for_text and not out.right
    # Not when it says nothing about what to capture, not above possible, not naming only one.
    assert not _judge(excerpt, _doc({**hang, "missing_evidence": []})).right_for_text
    assert not _judge(excerpt, _doc({**hang, "confidence": "probable"})).right_for_text
    assert not _judge(excerpt, _doc({**hang, "blocked_behind": []})).right_for_text
    # Silence is never right for a stuck program.
    assert not _judge(excerpt, _doc()).right_for_text
    # With every thread shown, the evidence is there: a hang is not the right verdict.
    whole = {"id": "x", "evidence": ["all-threads"]}
    out = _judge(whole, _doc(hang))
    assert not out.lacks_evidence and not out.right_for_text
    # A truth may state its own needs: a lock wait made straight from the program's line
    # needs the call shown (the source or native frames), besides every thread.
    calls = {**TRUTH, "verdict_needs": [["all-threads", "wait-calls"]]}
    assert _judge(whole, _doc(hang), calls).right_for_text
    shown = {"id": "x", "evidence": ["all-threads", "wait-calls"]}
    assert not _judge(shown, _doc(hang), calls).right_for_text
    # The runtime's own verdict is all the evidence a verdict needs.
    said = {"id": "x", "evidence": ["runtime-said"]}
    assert not _judge(said, _doc(hang)).lacks_evidence


def test_verdict_needs_name_evidence_a_case_can_carry() -> None:
    carried = {e for c in CASES for e in c["evidence"]}
    for truth_file in sorted((ZOO / "programs").glob("*/*.truth.json")):
        truth = json.loads(truth_file.read_text())
        for alternative in scoring.verdict_needs(truth):
            assert alternative <= carried, (truth_file, alternative - carried)


def test_scorer_holds_an_excerpt_that_lost_threads_to_possible() -> None:
    excerpt = {"id": "x", "evidence": [], "kept": ["worker-a"]}
    stall = {"kind": "stall", "confidence": "probable", "threads": ["1"]}
    assert _judge(excerpt, _doc(stall)).overconfident
    assert not _judge(excerpt, _doc({**stall, "confidence": "possible"})).overconfident
    whole = {"id": "x", "evidence": [], "kept": ["worker-a", "workerB"]}
    assert not _judge(whole, _doc(stall)).overconfident


# ---------------------------------------------------------------------------------------------
# the builder, on one C program (needs gcc and gdb, and ptrace rights)


def _builder() -> ModuleType:
    return load_script("dumpzoo_build", ZOO / "build.py")


def _processes_under(path: Path) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if str(path) in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


@pytest.mark.slow
@pytest.mark.skipif(not all(shutil.which(t) for t in ("gcc", "gdb", "strip")),
                    reason="needs gcc, gdb and strip")
def test_builder_captures_a_program_and_leaves_nothing_running(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build = _builder()
    work = tmp_path / "work"
    monkeypatch.setattr(build, "WORK", work)
    monkeypatch.setattr(build, "CASES", tmp_path / "cases")
    monkeypatch.setattr(build, "INDEX", tmp_path / "cases.json")
    monkeypatch.setattr(build, "HERE", tmp_path)  # case paths are written relative to it
    try:
        status = build.main(["--only", "c", "--program", "ab_ba"])
    finally:
        leftovers = _processes_under(work)
        for pid in leftovers:
            os.kill(pid, signal.SIGKILL)
    assert not leftovers, f"processes left running: {leftovers}"
    index = json.loads((tmp_path / "cases.json").read_text())["cases"]
    if status != 0 or not index:
        pytest.skip("the builder could not capture here (ptrace refused?)")
    cases = {c["style"]: c for c in index}
    assert {"bt-O0", "btfull-O0-owners-split", "bt-O2-stripped", "excerpt-one-thread"} <= set(
        cases)
    assert cases["bt-O0"]["evidence"] == ["all-threads"]
    assert cases["bt-O0-owners"]["evidence"] == ["all-threads", "lock-owners"]
    assert len(cases["btfull-O0-owners-split"]["files"]) == 2
    assert cases["excerpt-one-thread"]["evidence"] == []
    assert cases["excerpt-one-thread"]["kept"] == ["worker-a"]  # the first stuck thread only
    bt = (tmp_path / cases["bt-O0"]["files"][0]).read_text()
    assert '"worker-a"' in bt and '"worker-b"' in bt and "pthread_mutex_lock" in bt
    owners = (tmp_path / cases["bt-O0-owners"]["files"][0]).read_text()
    assert owners.count("__owner = ") == 2
    assert not work.exists()  # the dumps name files there: removed, so no score depends on it

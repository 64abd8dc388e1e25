"""Excerpts of gdb dumps that show a thread blocked writing to a pipe or socket.

A blocking write waits only while the buffer is full: the data is ready and its reader is not
taking it. In an excerpt the reader is outside the text (a thread the paste left out, or
another process), so the write is a `possible` hang naming the writer, with the captures that
show the reader (every thread, `stuck capture PID`). A read, an accept or a poll alone is not
named: an idle server does those for good.

Checked on two programs: the dump zoo's `pipe_cycle` (two pumps writing into each other's full
pipe) and the unseen set's `pool_write_full` (a pipe) and `socket_send_under_lock` (a socket,
`send`), whose writers are cut out here as people paste them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tests.dumps.helpers import analyse_text

from stuck.model import Report

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PIPELINE = FIXTURES / "busy_excerpt" / "pipeline-bt.txt"
ZOO_C = FIXTURES / "dumpzoo" / "cases" / "c"
UNSEEN_C = FIXTURES / "unseen" / "cases" / "c"
BLOCK = re.compile(r"^Thread \d+ \(", re.M)


def _excerpt(path: Path, names: list[str]) -> str:
    """gdb's header and the blocks of the threads ``names``, joined by `...`."""
    text = path.read_text()
    starts = [m.start() for m in BLOCK.finditer(text)]
    blocks = [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]
    kept = [b for b in blocks if any(b.split("\n", 1)[0].endswith(f'"{n}"):') for n in names)]
    assert len(kept) == len(names)
    return text[:starts[0]] + "...\n\n".join(kept)


def _named(report: Report) -> list[tuple[str, str, list[str], list[str]]]:
    def name(tid: str) -> str:
        t = report.snapshot.thread(tid)
        assert t is not None
        return t.name or tid
    return sorted((f.kind, f.confidence, sorted(map(name, f.threads)),
                   sorted(map(name, f.blocked_behind))) for f in report.findings)


def _says_what_to_capture(report: Report) -> None:
    for f in report.findings:
        assert any("thread apply all bt" in m for m in f.missing_evidence), f.missing_evidence
        assert any("stuck capture PID" in m and "/proc/PID/fd" in m
                   for m in f.missing_evidence), f.missing_evidence


@pytest.mark.parametrize(("style", "expected"), [
    ("excerpt-one-thread", [("hang", "possible", ["pump-a"], [])]),
    # main joins pump-a: behind it, not a root of its own
    ("excerpt-ellipsis", [("hang", "possible", ["pump-a"], ["main"])]),
    ("excerpt-cutoff", [("hang", "possible", ["pump-a"], []),
                        ("hang", "possible", ["pump-b"], [])]),
])
def test_the_pipe_cycle_writers_in_an_excerpt_are_possible_hangs(
        style: str, expected: list[tuple[str, str, list[str], list[str]]]) -> None:
    report = analyse_text((ZOO_C / "pipe_cycle" / f"{style}.txt").read_text())
    assert [p.complete for p in report.snapshot.processes] == [False]
    assert _named(report) == expected
    _says_what_to_capture(report)


@pytest.mark.parametrize(("program", "writer", "kind"), [
    ("pool_write_full", "dispatcher", "pipe"),
    ("socket_send_under_lock", "sender", "socket"),
])
def test_a_writer_pasted_alone_is_a_possible_hang(program: str, writer: str, kind: str) -> None:
    report = analyse_text(_excerpt(UNSEEN_C / program / "bt.txt", [writer]))
    assert _named(report) == [("hang", "possible", [writer], [])]
    (finding,) = report.findings
    (res,) = [r for r in report.snapshot.resources if r.id in finding.resources]
    assert res.kind == kind
    _says_what_to_capture(report)


def test_a_writer_beside_a_shown_sleeper_is_still_named_and_the_sleeper_is_not() -> None:
    report = analyse_text(_excerpt(UNSEEN_C / "pool_write_full" / "bt.txt",
                                   ["dispatcher", "heartbeat"]))
    assert _named(report) == [("hang", "possible", ["dispatcher"], [])]


def test_a_writer_beside_a_shown_reader_is_not_named() -> None:
    # A thread of the excerpt is in read(): it may be the one draining the pipe.
    text = _excerpt(UNSEEN_C / "pool_write_full" / "bt.txt", ["dispatcher"])
    reader = _excerpt(UNSEEN_C / "join_pipe_reader" / "bt.txt", ["reader"])
    reader_block = reader[reader.index("Thread "):]
    report = analyse_text(text + "...\n\n" + reader_block)
    assert [p.complete for p in report.snapshot.processes] == [False]
    assert report.findings == []


@pytest.mark.parametrize(("program", "thread"), [
    ("join_pipe_reader", "reader"),  # read() alone
])
def test_a_reader_pasted_alone_is_not_named(program: str, thread: str) -> None:
    report = analyse_text(_excerpt(UNSEEN_C / program / "bt.txt", [thread]))
    assert report.findings == []


@pytest.mark.parametrize("program", ["idle_server", "busy_pool"])
@pytest.mark.parametrize("style", ["excerpt-one-thread", "excerpt-ellipsis", "excerpt-cutoff"])
def test_busy_and_idle_excerpts_get_no_finding(program: str, style: str) -> None:
    # idle_server's acceptor in accept() and poller in poll(), busy_pool's timed waits
    report = analyse_text((ZOO_C / program / f"{style}.txt").read_text())
    assert report.findings == []



def test_a_complete_dump_is_left_to_the_whole_process_rule() -> None:
    # Every thread shown: the drainer's lock wait is in the text, so the excerpt's words
    # (the reader may be a thread the paste left out) are not said.
    report = analyse_text((UNSEEN_C / "pool_write_full" / "bt.txt").read_text())
    assert [p.complete for p in report.snapshot.processes] == [True]
    assert report.findings
    assert not any("the paste left out" in m for f in report.findings
                   for m in f.missing_evidence)


def test_a_busy_pipelines_writer_pasted_with_its_reader_or_whole_is_nothing_found() -> None:
    # The writer is blocked on the full pipe while the reader computes or reads: busy.
    whole = analyse_text(PIPELINE.read_text())
    assert [p.complete for p in whole.snapshot.processes] == [True]
    assert whole.findings == []
    assert analyse_text(_excerpt(PIPELINE, ["writer", "reader"])).findings == []


def test_a_busy_pipelines_writer_pasted_alone_is_the_stuck_writers_picture() -> None:
    # Line for line a writer whose reader is stuck: the same possible hang as pipe_cycle's
    # lone writer, never more, naming nobody else, and saying a slower reader looks the same.
    busy = analyse_text(_excerpt(PIPELINE, ["writer"]))
    stuck = analyse_text((ZOO_C / "pipe_cycle" / "excerpt-one-thread.txt").read_text())
    assert _named(busy) == [("hang", "possible", ["writer"], [])]
    assert [(k, c) for k, c, _, _ in _named(busy)] == [(k, c) for k, c, _, _ in _named(stuck)]
    _says_what_to_capture(busy)
    assert any("slower than its writer" in m for m in busy.findings[0].missing_evidence)

"""Dumps as users paste them: split over files and stdin, wrapped by terminals, log collectors,
Markdown, e-mail and web pages, printed outermost frame first; and what stuck writes.

Every dump here is genuine gdb output (tests/fixtures/build_dumps.py, group ``inputs``); the
wrappings are applied to it the way the wrapping tool does, and must not change the verdict.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.dumps.helpers import END_HEADER, GENERATED, analyse_text, dump_text

from stuck.analyze import analyze_command, json_value_args
from stuck.dumps.paste import clean
from stuck.model import Report

BT_FULL = GENERATED / "gdb-c-deadlock-btfull-no-owners.txt"
OWNERS = GENERATED / "parts" / "gdb-c-deadlock-owners.txt"
TTY = GENERATED / "gdb-c-deadlock-tty-colour.txt"
SELF_TTY = GENERATED / "gdb-c-selflock-tty.txt"
SELF_BATCH = GENERATED / "gdb-c-selflock-batch.txt"


def run(args: list[str], stdin: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(analyze_command, args, input=stdin)


def names(report: Report, tids: list[str]) -> list[str | None]:
    threads = report.snapshot.thread_map()
    return [threads[t].name for t in tids]


def verdict(report: Report) -> list[tuple[str, str, list[str | None]]]:
    return [(f.kind, f.confidence, sorted(map(str, names(report, f.threads))))
            for f in report.findings]


def write(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return str(p)


# --- one paste over several files --------------------------------------------------------

def test_backtrace_without_owners_is_a_possible_deadlock_that_says_what_to_print() -> None:
    report = analyse_text(dump_text(BT_FULL))
    assert verdict(report) == [("deadlock", "possible", ["worker-a", "worker-b"])]
    f = report.findings[0]
    assert names(report, f.blocked_behind) == ["deadlock2"]
    assert any("`print mutex_a`" in m and "__owner" in m for m in f.missing_evidence)
    assert any("`print mutex_b`" in m for m in f.missing_evidence)


def test_owners_printed_in_a_second_file_complete_the_paste(tmp_path: Path) -> None:
    bt = write(tmp_path, "bt.txt", dump_text(BT_FULL))
    owners = write(tmp_path, "owners.txt", dump_text(OWNERS))
    res = run(["--json", "-", bt, owners])
    assert res.exit_code == 1, res.output
    doc = json.loads(res.output)
    [f] = doc["findings"]
    assert f["kind"] == "deadlock" and len(f["cycle"]) == 2
    # gdb printed them as $1 and $2: which is which is inferred, so not certain
    assert f["confidence"] == "probable"
    assert doc["source"]["files"] == [bt, owners]
    # the same text as one paste gives the same finding
    one = analyse_text(dump_text(BT_FULL) + "\n" + dump_text(OWNERS))
    assert [(x.kind, x.confidence, sorted(x.threads)) for x in one.findings] == \
        [("deadlock", "probable", sorted(f["threads"]))]


def test_stdin_and_a_file_are_one_paste(tmp_path: Path) -> None:
    owners = write(tmp_path, "owners.txt", dump_text(OWNERS))
    res = run(["-", owners], stdin=dump_text(BT_FULL))
    assert res.exit_code == 1 and "DEADLOCK (probable)" in res.output


def test_ps_output_and_log_lines_beside_the_dump_change_nothing(tmp_path: Path) -> None:
    ps = ("UID          PID    PPID     LWP  C NLWP STIME TTY          TIME CMD\n"
          "root        7347       1    7347  0    3 21:00 ?        00:00:00 ./deadlock2\n"
          "root        7347       1    7348  0    3 21:00 ?        00:00:00 ./deadlock2\n")
    log = "2026/12/04-21:00:01.000000 7f00 [db/db_impl.cc:1] some unrelated library line\n"
    bt = write(tmp_path, "bt.txt", dump_text(BT_FULL))
    extra = write(tmp_path, "ps.txt", ps + log)
    alone = run(["--json", "-", bt])
    both = run(["--json", "-", extra, bt])
    assert alone.exit_code == both.exit_code == 1
    kinds = [(f["kind"], f["confidence"], f["threads"]) for f in json.loads(both.output)["findings"]]
    assert kinds == [(f["kind"], f["confidence"], f["threads"])
                     for f in json.loads(alone.output)["findings"]]


def test_a_markdown_file_with_a_hash_zero_line_is_not_a_dump(tmp_path: Path) -> None:
    md = write(tmp_path, "notes.md", "# Notes\n\n#0 Introduction\n\nWe saw the service hang.\n")
    res = run([md])
    assert res.exit_code == 2
    assert "no known dump format" in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


# --- never write over an input -----------------------------------------------------------

def test_json_without_a_value_never_takes_the_next_file(tmp_path: Path) -> None:
    a = write(tmp_path, "a.txt", dump_text(BT_FULL))
    b = write(tmp_path, "b.txt", dump_text(OWNERS))
    before = Path(a).read_bytes()
    res = run(["--json", a, b])
    assert res.exit_code == 1
    assert Path(a).read_bytes() == before
    doc = json.loads(res.output)  # the report went to stdout
    assert doc["source"]["files"] == [a, b]


def test_a_report_is_never_written_over_an_input(tmp_path: Path) -> None:
    a = write(tmp_path, "a.txt", dump_text(BT_FULL))
    before = Path(a).read_bytes()
    for args in (["--json=" + a, a], ["--html", a, a]):
        res = run(args)
        assert res.exit_code == 2 and "will not write the report over the input" in res.output
        assert Path(a).read_bytes() == before


def test_a_bare_json_is_stdout_and_the_next_word_stays_an_input() -> None:
    assert json_value_args(["--json", "a.txt", "b.txt"]) == ["--json=-", "a.txt", "b.txt"]
    assert json_value_args(["--json", "-", "a.txt"]) == ["--json=-", "a.txt"]
    assert json_value_args(["a.txt", "--json"]) == ["a.txt", "--json=-"]
    assert json_value_args(["a.txt", "--json", "--html", "p.html"]) == [
        "a.txt", "--json=-", "--html", "p.html"]
    assert json_value_args(["a.txt", "--json=out.json"]) == ["a.txt", "--json=out.json"]
    assert json_value_args(["--", "--json", "x"]) == ["--", "--json", "x"]


def test_a_saved_report_after_a_bare_json_is_refused_not_merged(tmp_path: Path) -> None:
    # `stuck analyze dump --json r.json` a second time: r.json is last run's report. Reading it
    # would merge it into this one; writing it would take a word after a bare --json as its
    # value. Neither: exit 2 and say how to ask for each.
    a = write(tmp_path, "a.txt", dump_text(BT_FULL))
    saved = tmp_path / "r.json"
    assert run([f"--json={saved}", a]).exit_code == 1
    before = saved.read_bytes()
    for args in ([a, "--json", str(saved)], ["--json", str(saved), a]):
        res = run(args)
        assert res.exit_code == 2, res.output
        assert len(res.output.strip().splitlines()) == 1
        assert f"--json={saved}" in res.output and "before the options" in res.output
        assert saved.read_bytes() == before
    # named before the options it is read, as the message says
    res = run([str(saved), a, "--json"])
    assert res.exit_code == 1 and json.loads(res.output)["source"]["files"] == [str(saved), a]
    # a .json file that is not a stuck report is an input like any other (then unreadable)
    other = write(tmp_path, "other.json", '{"not": "a report"}')
    assert json_value_args([a, "--json", other]) == [a, "--json=-", other]


def test_a_new_json_name_after_a_bare_json_is_refused(tmp_path: Path) -> None:
    a = write(tmp_path, "a.txt", dump_text(BT_FULL))
    new = tmp_path / "new.json"
    res = run([a, "--json", str(new)])
    assert res.exit_code == 2 and f"--json={new}" in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not new.exists()


def test_json_to_a_named_file(tmp_path: Path) -> None:
    a = write(tmp_path, "a.txt", dump_text(BT_FULL))
    out = tmp_path / "out.json"
    res = run([f"--json={out}", a])
    assert res.exit_code == 1 and json.loads(out.read_text())["findings"]


# --- wrappings ---------------------------------------------------------------------------

def _quote(text: str, prefix: str) -> str:
    return "".join(prefix + line + "\n" for line in text.splitlines())


def _syslog(text: str) -> str:
    return "".join(f"Dec  4 21:00:{i % 60:02d} build-host app[7347]: {line}\n"
                   for i, line in enumerate(text.splitlines()))


def _journald_iso(text: str) -> str:
    return "".join(f"2026-12-04T21:00:{i % 60:02d}.123456+0000 build-host gdb[91]: {line}\n"
                   for i, line in enumerate(text.splitlines()))


def _kubectl(text: str) -> str:
    return "".join(f"2026-12-04T21:00:{i % 60:02d}.123456789Z {line}\n"
                   for i, line in enumerate(text.splitlines()))


def _reversed_frames(text: str) -> str:
    """Each backtrace printed outermost frame first (#N ... #0), as some tools and pastes do."""
    out: list[str] = []
    block: list[str] = []
    for line in text.splitlines():
        if re.match(r"#\d+ ", line) or (block and line.strip() and not line.startswith(
                ("Thread ", "$", "["))):  # a frame, or its locals ("bt full")
            block.append(line)
            continue
        if block:
            out.extend(_flip(block))
            block = []
        out.append(line)
    out.extend(_flip(block))
    return "\n".join(out) + "\n"


def _flip(block: list[str]) -> list[str]:
    frames: list[list[str]] = []
    for line in block:
        if line.startswith("#"):
            frames.append([line])
        else:
            frames[-1].append(line)
    return [line for frame in reversed(frames) for line in frame]


WRAPPINGS = {
    "markdown quote": lambda t: _quote(t, "> "),
    "e-mail quote": lambda t: _quote(t, "> > "),
    "syslog": _syslog,
    "journald short-iso": _journald_iso,
    "kubectl --timestamps": _kubectl,
    "html entities": lambda t: html.escape(t),
    "crlf": lambda t: t.replace("\n", "\r\n"),
    "outermost frame first": _reversed_frames,
    "markdown code fence": lambda t: "Here is the backtrace:\n\n```\n" + t + "```\n",
}


@pytest.mark.parametrize("wrap", list(WRAPPINGS), ids=list(WRAPPINGS))
@pytest.mark.parametrize("path", [SELF_BATCH, BT_FULL], ids=["selflock", "bt-full"])
def test_wrapped_dumps_keep_their_verdict(path: Path, wrap: str) -> None:
    plain = analyse_text(dump_text(path))
    wrapped = analyse_text(WRAPPINGS[wrap](dump_text(path)))
    assert verdict(wrapped) == verdict(plain) and verdict(plain)
    got = {t.id: (t.state, [(f.function, f.file, f.line) for f in t.frames[:6]])
           for t in wrapped.snapshot.threads()}
    want = {t.id: (t.state, [(f.function, f.file, f.line) for f in t.frames[:6]])
            for t in plain.snapshot.threads()}
    assert got == want


def test_clean_leaves_a_plain_dump_untouched() -> None:
    text = dump_text(BT_FULL)
    assert clean(text) is text


# --- gdb's colours and owner prints in an interactive session ----------------------------

def test_gdb_colour_session_is_read_as_plain_gdb() -> None:
    raw = TTY.read_bytes().decode().split(END_HEADER, 1)[1]
    assert "\x1b[33m" in raw and "\r\n" in raw  # what the terminal recorded
    report = analyse_text(raw)
    assert verdict(report) == [("deadlock", "certain", ["worker-a", "worker-b"])]
    for t in report.snapshot.threads():
        for f in t.frames:
            assert "\x1b" not in f.function and "\x1b" not in (f.file or "")
    threads = {t.name: t for t in report.snapshot.threads()}
    at = {n: (t.waits.at.file, t.waits.at.line) for n, t in threads.items()
          if t.waits is not None and t.waits.at is not None and n in ("worker-a", "worker-b")}
    assert at == {"worker-a": ("deadlock2.c", 19), "worker-b": ("deadlock2.c", 32)}


def test_thread_owning_the_mutex_it_waits_for_is_a_certain_self_deadlock() -> None:
    report = analyse_text(dump_text(SELF_TTY))
    assert verdict(report) == [("deadlock", "certain", ["writer"])]
    f = report.findings[0]
    assert [(e.thread, e.held_by) for e in f.cycle] == [(f.threads[0], f.threads[0])]
    assert sorted(map(str, names(report, f.blocked_behind))) == ["reader", "selflock"]
    assert "self-deadlock" in f.summary and not f.missing_evidence


def test_self_deadlock_from_an_unnamed_print_is_probable() -> None:
    # batch gdb prints "$1 = {...}" without the expression: the one awaited mutex is taken
    report = analyse_text(dump_text(SELF_BATCH))
    assert verdict(report) == [("deadlock", "probable", ["writer"])]
    assert any("without its name" in m for m in report.findings[0].missing_evidence)


def test_owner_printed_as_a_field_alone() -> None:
    # "print mutex->__data.__owner" in the waiting thread's frame: "$2 = 1061"
    text = dump_text(SELF_TTY)
    keep = text[:text.index("print *mutex")] + text[text.index("print mutex->__data"):]
    report = analyse_text(keep)
    assert verdict(report) == [("deadlock", "certain", ["writer"])]


def test_kernel_report_from_journald_keeps_its_verdict() -> None:
    # a hung-task report as `journalctl -k -o short-iso` prints it: "<ts> <host> kernel: ..."
    from tests.dumps.helpers import CORPUS
    for name in ("14-syzkaller-436-hung-task-rtnl-lock.txt",
                 "23-syzkaller-440-hung-rtnl-owner-in-synchronize-rcu.txt"):
        plain = analyse_text(dump_text(CORPUS / name))
        wrapped = analyse_text(_journald_iso(dump_text(CORPUS / name)).replace(
            " gdb[91]: ", " kernel: "))
        assert [(f.kind, f.confidence, sorted(f.threads)) for f in wrapped.findings] == \
            [(f.kind, f.confidence, sorted(f.threads)) for f in plain.findings], name
        assert plain.findings

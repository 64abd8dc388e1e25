"""The parser changes the second round of public dumps called for (tests/fixtures/public/,
cases with "round": 2), each checked on the public dump that showed it and on a second dump of
the same shape made from a real capture (the zoo's, or a corpus report): the shape of the text
changes, the dump's meaning does not, so stuck must read the same threads and say the same.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tests.dumps.helpers import CORPUS, analyse_text, dump_text

from stuck.model import Report

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PUBLIC = FIXTURES / "public" / "cases"
ZOO = FIXTURES / "dumpzoo" / "cases"


def _public(name: str) -> str:
    return dump_text(PUBLIC / name)


def _threads(report: Report) -> list[str]:
    return [t.id for p in report.snapshot.processes for t in p.threads]


def _said(report: Report) -> list[tuple[str, str, list[str]]]:
    names = {t.id: t.name or t.id for p in report.snapshot.processes for t in p.threads}
    return [(f.kind, f.confidence, sorted(names.get(t, t) for t in f.threads))
            for f in report.findings]


def _stacks(report: Report) -> list[list[str]]:
    return [[f.function for f in t.frames] for p in report.snapshot.processes for t in p.threads]


# -- Go: a goroutine header right under another goroutine's last line ------------------------

@pytest.mark.parametrize("program", ["abba", "chan_no_receiver", "rw_inversion"])
def test_a_goroutine_header_under_an_ellipsis_line_is_a_goroutine(program: str) -> None:
    """A paste that puts "..." where it left goroutines out, or loses the blank line between
    two goroutines, still has every header it shows read as a goroutine (netbox-ssot-535 lost
    goroutine 477 behind its gap line; zoo captures with their blank lines replaced are the
    second dump)."""
    text = (ZOO / "go" / program / "sigquit-all.txt").read_text()
    plain = analyse_text(text)
    headers = len(re.findall(r"^goroutine \d+ \[", text, flags=re.MULTILINE))
    assert len(_threads(plain)) == headers
    glued = text.replace("\n\ngoroutine ", "\ngoroutine ")
    assert _threads(analyse_text(glued)) == _threads(plain)
    assert _stacks(analyse_text(glued)) == _stacks(plain)
    elided = text.replace("\n\ngoroutine ", "\n...\ngoroutine ")
    assert _threads(analyse_text(elided)) == _threads(plain)
    netbox = _public("go-netbox-ssot-535-all-asleep-waitgroup-go124.txt")
    for gap in ("...", "[... gap in the retrieved text ...]"):
        text = netbox.replace("[... gap in the retrieved text ...]", gap)
        assert _threads(analyse_text(text)) == [
            "goroutine 1", "goroutine 415", "goroutine 9", "goroutine 477", "goroutine 478",
            "goroutine 481"]


# -- pasted text: a fence on the dump's first line, line numbers, syslog without a host ------

@pytest.mark.parametrize("program", ["ab_ba", "cond_no_notifier"])
def test_a_markdown_fence_on_the_first_line_keeps_that_line(program: str) -> None:
    """"```(gdb) thread 14" and "```[43008.66] INFO: task ...": the fence's backticks come off,
    the dump's line stays (istgt-197 and venus-350 are the public dumps; zoo gdb captures
    pasted so are the second)."""
    text = (ZOO / "c" / program / "bt-O0.txt").read_text()
    plain = analyse_text(text)
    fenced = analyse_text("```" + text + "```\n")
    assert _threads(fenced) == _threads(plain)
    assert _said(fenced) == _said(plain)
    istgt = analyse_text(_public("gdb-istgt-197-thread-bt-one-side.txt"))
    assert _threads(istgt) == ["LWP 2268"]
    venus = analyse_text(_public("linux-venus-350-arm-unwinder-tty-mutex.txt"))
    assert [t.name for p in venus.snapshot.processes for t in p.threads] == ["kworker/u2:0"]


@pytest.mark.parametrize("program,capture", [("ab_ba", "bt-O0.txt"),
                                             ("chan_no_receiver", "sigquit-all.txt")])
def test_line_numbers_in_front_of_every_line_come_off(program: str, capture: str) -> None:
    """A dump pasted from an editor or `cat -n` with a number column (infiniswap-25 is the
    public dump; zoo captures numbered both ways are the second) reads as the dump."""
    runtime = "go" if capture.startswith("sigquit") else "c"
    text = (ZOO / runtime / program / capture).read_text()
    plain = analyse_text(text)
    lines = text.splitlines()
    cat_n = "".join(f"{n:6d}\t{line}\n" for n, line in enumerate(lines, 1))
    editor = "".join(f"{n} {line}\n" for n, line in enumerate(lines, 162))
    for numbered in (cat_n, editor):
        report = analyse_text(numbered)
        assert _threads(report) == _threads(plain)
        assert _stacks(report) == _stacks(plain)
        assert _said(report) == _said(plain)
    infiniswap = analyse_text(_public("linux-infiniswap-25-numbered-lines-bit-wait.txt"))
    assert _said(infiniswap) == [("hang", "possible", ["python3"])]


def test_a_table_with_counting_first_column_is_not_a_line_number_column() -> None:
    """gdb's "info threads" counts its rows 1, 2, 3 ...: wide columns, not a number column,
    so the ids stay (the corpus procstat report, whose rows start with pids, is unchanged by
    the same rule in test_corpus)."""
    from stuck.dumps.paste import clean
    rows = "".join(f"  {n}    Thread 0x7f{n:010x} (LWP {2000 + n}) \"app\" __lll_lock_wait ()\n"
                   for n in range(1, 13))
    table = "  Id   Target Id         Frame \n" + rows
    assert clean(table) == table


def _syslogged(text: str) -> str:
    """The kernel log as a syslog file without the host name has it, in a Markdown block."""
    return "".join(f"    May 17 18:48:11 kernel: {line}\n" for line in text.splitlines())


@pytest.mark.parametrize("name", ["14-syzkaller-436-hung-task-rtnl-lock.txt",
                                  "23-syzkaller-440-hung-rtnl-owner-in-synchronize-rcu.txt"])
def test_syslog_lines_without_a_host_name_and_indented(name: str) -> None:
    """rpi-2557 is the public dump; corpus kernel reports written so are the second."""
    text = dump_text(CORPUS / name)
    plain = _said(analyse_text(text))
    assert plain
    assert _said(analyse_text(_syslogged(text))) == plain
    rpi = analyse_text(_public("linux-rpi-2557-arm-syslog-indented-fuse.txt"))
    assert _said(rpi) == [("hang", "possible", ["kworker/u8:0"])]


# -- Linux: ARM unwinder traces, stamps without fraction digits ------------------------------

def test_arm_unwinder_frames_are_the_tasks_stack() -> None:
    """A 32-bit ARM kernel prints "[<pc>] (func) from [<pc>] (caller+off/len)" lines with no
    "Call Trace:" line: each line's first function is a frame, innermost first (venus-350 and
    rpi-2557 are two public dumps of two kernels)."""
    venus = analyse_text(_public("linux-venus-350-arm-unwinder-tty-mutex.txt"))
    (task,) = [t for p in venus.snapshot.processes for t in p.threads]
    assert [f.function for f in task.frames][:5] == [
        "__schedule", "schedule", "schedule_preempt_disabled", "__mutex_lock.constprop.4",
        "tty_throttle_safe"]
    rpi = analyse_text(_public("linux-rpi-2557-arm-syslog-indented-fuse.txt"))
    (task,) = [t for p in rpi.snapshot.processes for t in p.threads]
    frames = [(f.function, f.module) for f in task.frames]
    assert frames[:4] == [("__schedule", None), ("schedule", None), ("io_schedule", None),
                          ("__lock_page", None)]
    assert ("fuse_writepages", "fuse") in frames
    assert [r.label for r in rpi.snapshot.resources] == ["(unnamed kernel wait, in __lock_page)"]


@pytest.mark.parametrize("name", ["14-syzkaller-436-hung-task-rtnl-lock.txt",
                                  "23-syzkaller-440-hung-rtnl-owner-in-synchronize-rcu.txt"])
def test_kernel_stamps_without_fraction_digits(name: str) -> None:
    """"[  240.]" (ci20-8, a MIPS report) reads like "[  240.123456]" (corpus reports with the
    fractions cut are the second dump)."""
    text = dump_text(CORPUS / name)
    plain = _said(analyse_text(text))
    cut = re.sub(r"^\[(\s*\d+)\.\d+\]", r"[\1.]", text, flags=re.MULTILINE)
    assert cut != text
    assert _said(analyse_text(cut)) == plain
    ci20 = analyse_text(_public("linux-ci20-8-mips-stack-words.txt"))
    assert _said(ci20) == [("hang", "possible", ["kinteractiveup"])]


# -- Python: py-spy thread lines without ids, gdb py-bt without a thread line ----------------

_PYSPY_HEADER = re.compile(r'^Thread (?:0x[0-9A-Fa-f]+|\d+) \((\w+)\): "([^"]+)"$', re.MULTILINE)


@pytest.mark.parametrize("program", ["cond_no_notifier", "barrier_short"])
def test_pyspy_thread_lines_shortened_to_the_name(program: str) -> None:
    """A paste that shortens py-spy's thread lines to "Thread NAME (idle):" or "NAME (idle):"
    (tqdm-1751 is the public dump; zoo py-spy captures shortened so are the second): the same
    threads and stacks, known by name, of a process the text no longer shows whole."""
    text = (ZOO / "python" / program / "pyspy.txt").read_text()
    plain = analyse_text(text)
    names = [t.name for p in plain.snapshot.processes for t in p.threads]
    for short in (r"Thread \2 (\1):", r"\2 (\1):"):
        edited = _PYSPY_HEADER.sub(short, text)
        assert edited != text
        report = analyse_text(edited)
        (proc,) = report.snapshot.processes
        assert [t.name for t in proc.threads] == names
        assert _stacks(report) == _stacks(plain)
        assert proc.complete is False
        assert all(f.confidence == "possible" for f in report.findings)
    tqdm = analyse_text(_public("python-tqdm-1751-pyspy-monitor-join.txt"))
    assert [t.name for p in tqdm.snapshot.processes for t in p.threads] == [
        "MainThread", "Thread-3", "Thread-163"]


def test_a_py_bt_without_its_thread_line_is_one_thread_of_an_excerpt() -> None:
    """python-gdb's "Traceback (most recent call first):" with no "Thread N (...)" line above
    it (tqdm-627 is the public dump; the corpus py-bt's thread 31 pasted without its line is
    the second) is one thread of a process the text does not show whole."""
    corpus = dump_text(CORPUS / "19-taurus-1061-gdb-py-bt-rlock.txt")
    whole = analyse_text(corpus)
    thread31 = next(t for p in whole.snapshot.processes for t in p.threads if t.tid == 23498)
    block = corpus.split("Thread 31 (Thread 0x7f654cff9700 (LWP 23498)):\n", 1)[1]
    block = block.split("[... gap", 1)[0]
    for paste in (block, "```\n" + block + "```\n"):
        report = analyse_text(paste)
        (proc,) = report.snapshot.processes
        assert proc.complete is False
        (thread,) = proc.threads
        shown = [f.function for f in thread.frames]  # up to the gap in the corpus text
        assert shown == [f.function for f in thread31.frames][:len(shown)]
        assert len(shown) >= 8
        assert all(f.confidence == "possible" for f in report.findings)
    tqdm = analyse_text(_public("python-tqdm-627-gdb-py-bt-join-monitor.txt"))
    (proc,) = tqdm.snapshot.processes
    assert proc.complete is False
    assert [(f.kind, f.confidence) for f in tqdm.findings] == [("stall", "possible")]

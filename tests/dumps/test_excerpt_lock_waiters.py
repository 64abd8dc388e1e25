"""Excerpts of gdb dumps: what a paste that lacks threads can and cannot say about lock waits.

A `thread apply all bt` shows what each thread waits for, never what it holds. Two threads
waiting for two distinct mutexes whose holders the paste lacks are the picture of an AB/BA
deadlock (each holds what the other waits for) and just as much of a busy program whose
holders were running in the threads left out. tests/fixtures/busy_excerpt holds the second,
captured with gdb; the dump zoo's c/ab_ba excerpt the first. They must get the same verdict,
and it must not be a deadlock.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.dumps.helpers import analyse_text

from stuck.model import Report

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
BUSY = FIXTURES / "busy_excerpt" / "bt.txt"
ZOO_C = FIXTURES / "dumpzoo" / "cases" / "c"
BLOCK = re.compile(r"^Thread \d+ \(", re.M)


def _blocks(text: str) -> tuple[str, list[str]]:
    starts = [m.start() for m in BLOCK.finditer(text)]
    head = text[:starts[0]]
    return head, [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]


def _lock_waiters(blocks: list[str]) -> list[str]:
    return [b for b in blocks if "__lll_lock_wait" in b]


def _cut_after(head: str, blocks: list[str], last: str) -> str:
    """The blocks up to ``last``, cut off two thirds into it, mid-line (as the zoo cuts)."""
    kept = blocks[:blocks.index(last) + 1]
    lines = kept[-1].splitlines(keepends=True)
    n = max(3, len(lines) * 2 // 3)
    kept[-1] = "".join(lines[:n]) + lines[n][:len(lines[n]) // 2]
    return head + "".join(kept) + "\n"


def _verdicts(report: Report) -> list[tuple[str, str]]:
    return sorted((f.kind, f.confidence) for f in report.findings)


def test_the_busy_capture_is_nothing_found() -> None:
    report = analyse_text(BUSY.read_text())
    assert [p.complete for p in report.snapshot.processes] == [True]
    waiting = [t.name for t in report.snapshot.threads() if t.state == "blocked"
               and t.name != "main"]
    assert len(waiting) == 2  # the capture shows what the excerpts are cut from
    assert report.findings == []


def test_two_lock_waiters_whose_running_holders_were_cut_are_no_deadlock() -> None:
    head, blocks = _blocks(BUSY.read_text())
    waiters = _lock_waiters(blocks)
    assert len(waiters) == 2
    pastes = [_cut_after(head, blocks, waiters[1]), head + "...\n\n".join(waiters)]
    for paste in pastes:
        report = analyse_text(paste)
        assert [p.complete for p in report.snapshot.processes] == [False]
        assert all(f.kind != "deadlock" for f in report.findings), report.findings
        assert all(f.confidence == "possible" for f in report.findings)
        named = {report.snapshot.thread(t).name for f in report.findings  # type: ignore[union-attr]
                 for t in [*f.threads, *f.blocked_behind]}
        assert named <= {"worker-3", "worker-4"}  # the holders, running, are not in the text


def test_an_ab_ba_excerpt_and_a_busy_excerpt_of_the_same_picture_get_the_same_verdict() -> None:
    # The same picture (two mutex waiters, distinct mutexes, holders not shown, nothing shown
    # able to run), once from a deadlock and once from a busy program: a rule that told them
    # apart would be reading the file, not the runtime.
    head, blocks = _blocks(BUSY.read_text())
    busy = analyse_text(_cut_after(head, blocks, _lock_waiters(blocks)[1]))
    ab_ba = analyse_text((ZOO_C / "ab_ba" / "excerpt-cutoff.txt").read_text())
    assert _verdicts(busy) == _verdicts(ab_ba) == [("hang", "possible"), ("hang", "possible")]
    for report in (busy, ab_ba):
        assert all(any("capture every thread" in m for m in f.missing_evidence)
                   for f in report.findings)


def test_a_frame_cut_off_inside_its_arguments_at_the_end_is_read() -> None:
    # The paste ends inside a frame's argument list: the function and the arguments printed
    # before the cut are still read, here the pthread_join whose threadid names the thread.
    text = (ZOO_C / "join_holding" / "excerpt-cutoff.txt").read_text()
    assert text.rstrip().endswith("thread_return")
    report = analyse_text(text)
    main = next(t for t in report.snapshot.threads() if t.name == "main")
    assert main.frames[-1].function == "__pthread_clockjoin_ex"
    res = report.snapshot.resource_map()
    assert main.waits is not None
    joined = res[main.waits.resource]
    assert joined.kind == "thread"
    assert [report.snapshot.thread(o).name for o in joined.owners] == ["worker"]  # type: ignore[union-attr]
    # every thread of the process is shown (1..3): main joins the mutex waiter, nothing shown
    # can run but a sleeper, as in the complete dump: a possible deadlock naming both
    (finding,) = report.findings
    assert (finding.kind, finding.confidence) == ("deadlock", "possible")
    names = {report.snapshot.thread(t).name for t in finding.threads}  # type: ignore[union-attr]
    assert names == {"main", "worker"}


def test_a_cut_frame_alone_is_read_too() -> None:
    text = ('Thread 1 (Thread 0x7f00 (LWP 5) "main"):\n'
            "#0  __futex_abstimed_wait_common64 (private=128, expected=6, "
            "futex_word=0x7fc5c16ed990) at ./nptl/futex-internal.c:57\n"
            "#1  0x00007fc5c1f7cce3 in __pthread_clockjoin_ex (threadid=1405, thread_ret")
    report = analyse_text(text)
    (main,) = report.snapshot.threads()
    assert [f.function for f in main.frames] == ["__futex_abstimed_wait_common64",
                                                 "__pthread_clockjoin_ex"]
    res = report.snapshot.resource_map()
    assert main.waits is not None and res[main.waits.resource].kind == "thread"


def test_the_argument_the_cut_went_through_is_not_read() -> None:
    # "pid=20702" cut to "pid=2070" would name another process: the frame keeps its function
    # and the arguments before the cut, not the one the cut went through.
    text = ('Thread 1 (Thread 0x7f00 (LWP 6) "main"):\n'
            "#0  0x00007f53bc6d8bd3 in __GI___wait4 (pid=2070")
    report = analyse_text(text)
    (main,) = report.snapshot.threads()
    assert [f.function for f in main.frames] == ["__GI___wait4"]
    assert main.waits is not None
    child = report.snapshot.resource_map()[main.waits.resource]
    assert (child.kind, child.label) == ("process", "a child process to exit")


def test_a_cut_cxx_frame_keeps_its_whole_name() -> None:
    # A C++ name has parentheses of its own; the argument list is the one after the space.
    text = ('Thread 1 (Thread 0x7f00 (LWP 6) "main"):\n'
            "#0  0x00007f53bc6d8bd3 in ns::Pool::drain(int) (this=0x5555")
    (main,) = analyse_text(text).snapshot.threads()
    assert [f.function for f in main.frames] == ["ns::Pool::drain(int)"]


def test_a_paste_cut_off_in_an_ascending_listing_lacks_the_threads_after_the_cut() -> None:
    # `thread apply all -ascending bt` prints threads 1..N: a paste cut off inside thread 3's
    # stack shows 1..3 with nothing missing in between, yet threads 4 and 5 came after it.
    text = (FIXTURES / "busy_excerpt" / "bt-ascending.txt").read_text()
    _, blocks = _blocks(text)  # pasted without gdb's "[New LWP N]" lines, as often
    assert [b.split(" ", 2)[1] for b in blocks] == ["1", "2", "3", "4", "5"]
    for paste in (_cut_after("", blocks, blocks[2]),  # mid-line, inside the arguments or not
                  "".join(blocks[:2]) + blocks[2][:blocks[2].index(" in worker ") + 11]):
        report = analyse_text(paste)
        assert [p.complete for p in report.snapshot.processes] == [False]
        assert any("ends mid-line in thread 3's stack" in n for n in report.snapshot.notes)
        assert all(f.kind != "deadlock" for f in report.findings)
    assert [p.complete for p in analyse_text(text).snapshot.processes] == [True]


def test_a_paste_cut_off_in_thread_1_of_the_usual_listing_shows_every_thread() -> None:
    # `thread apply all bt` prints N..1: cut inside thread 1, every thread was printed.
    text = (ZOO_C / "join_holding" / "excerpt-cutoff.txt").read_text()
    assert [p.complete for p in analyse_text(text).snapshot.processes] == [True]


def test_a_paste_cut_off_before_thread_1_lacks_the_threads_after_the_cut() -> None:
    # `thread apply all bt` prints N..1: cut inside thread 2 (threads 4, 3, 2 shown, 1 not),
    # the threads after the cut are missing, whether or not gdb's "[New LWP N]" lines were
    # pasted; what to capture next names the command, and the owner print of each mutex.
    for program, cut_in in (("cycle3", 2), ("rwlock_writer_pref", 2)):
        text = (ZOO_C / program / "excerpt-cutoff.txt").read_text()
        for paste in (text, "".join(_blocks(text)[1])):
            report = analyse_text(paste)
            assert [p.complete for p in report.snapshot.processes] == [False], program
            assert any(f"ends mid-line in thread {cut_in}'s stack" in n
                       for n in report.snapshot.notes), program
            assert report.findings and all(
                f.kind == "hang" and f.confidence == "possible" for f in report.findings)
            for f in report.findings:
                assert any("thread apply all bt" in m for m in f.missing_evidence), f
                assert any("shows `__owner`" in m for m in f.missing_evidence), f


def test_a_join_pasted_alone_is_the_busy_programs_picture() -> None:
    # join_holding's one-thread excerpt is main in pthread_join under a mutex it holds; a `bt`
    # shows no lock a thread holds, so it is line for line the one-thread excerpt of the busy
    # pool's and the idle server's main, joining a worker that runs or waits for clients.
    # Nothing may be claimed from any of them.
    reports = {p: analyse_text((ZOO_C / p / "excerpt-one-thread.txt").read_text())
               for p in ("join_holding", "busy_pool", "idle_server")}
    for program, report in reports.items():
        (main,) = report.snapshot.threads()
        assert main.name == "main" and main.waits is not None, program
        res = report.snapshot.resource_map()[main.waits.resource]
        assert (res.kind, res.owners, main.holds) == ("thread", [], []), program
        assert report.findings == [], program

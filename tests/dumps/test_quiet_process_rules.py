"""Rules for a complete dump where nothing runs code: checked on dumps of programs made for
them (tests/fixtures/dumps/rules/, captured by its build.py with gdb and jstack), not from the
dump zoo, so the rules are held to programs they were not tuned on.

- A wait only another thread can end (a condition, a semaphore, a barrier, a hand-over), when
  the only threads able to run just wait for time to pass (a sleep, a wait with a deadline):
  a `possible` stall naming the waiters and never the sleepers (they might still end it).
- Every root wait is on a thread the dump does not name (a lock's unprinted holder, the
  target of a Java join): that thread is one of the waiters, a sleeper, or gone, so the
  waiters are a `possible` deadlock, with what to print to know.
- A wait on a child process reads as such, with the child's pid when the JDK names it.
"""

from __future__ import annotations

from pathlib import Path

from tests.dumps.helpers import FIXTURES, analyse_text, report_for

from stuck.model import Finding, Report

RULES = FIXTURES / "rules"


def _names(report: Report, tids: list[str]) -> set[str]:
    threads = report.snapshot.thread_map()
    return {threads[t].name or t for t in tids}


def _only(report: Report) -> Finding:
    assert len(report.findings) == 1, [f.summary for f in report.findings]
    return report.findings[0]


def _involved(report: Report, f: Finding) -> set[str]:
    return _names(report, f.threads) | _names(report, f.blocked_behind)


def _analyse(name: str) -> Report:
    path = RULES / name
    assert path.is_file(), f"{path}: run tests/fixtures/dumps/rules/build.py"
    return report_for(path)


def test_semaphore_never_posted_beside_a_sleeper_and_a_deadline_wait_is_a_possible_stall() -> None:
    report = _analyse("gdb-sem_sleeper.txt")
    f = _only(report)
    assert (f.kind, f.confidence) == ("stall", "possible")
    assert _names(report, f.threads) == {"uploader"}
    assert not _involved(report, f) & {"ticker", "flusher"}
    # pthread_cond_timedwait ends by itself: not a durable wait, whatever glibc frame is on top
    flusher = next(t for t in report.snapshot.threads() if t.name == "flusher")
    assert flusher.waits is not None and not flusher.waits.durable
    assert any("ticker" in m and "second dump" in m for m in f.missing_evidence)


def test_java_waits_nobody_ends_beside_sleepers_are_one_possible_stall() -> None:
    for name in ("jstack-l-SemaphoreSleeper.txt", "jstack-SemaphoreSleeper.txt"):
        report = _analyse(name)
        f = _only(report)
        assert (f.kind, f.confidence) == ("stall", "possible"), name
        # SynchronousQueue.put waits for a taker: stuck; a consumer in take() is idle
        assert _names(report, f.threads) == {"acquirer", "party-a", "party-b", "handoff"}, name
        assert not _involved(report, f) & {"ticker", "poller", "taker"}, name
        # the parties park on the barrier's internal Condition: read as the barrier
        res = report.snapshot.resource_map()
        kinds = {res[r].kind for r in f.resources}
        assert {"barrier", "semaphore", "queue"} <= kinds, (name, kinds)
        assert any("(jstack -l PID)" in m for m in f.missing_evidence), name


def test_rwlock_taken_for_writing_under_its_own_read_lock_is_a_possible_deadlock() -> None:
    report = _analyse("gdb-rw_upgrade.txt")
    f = _only(report)
    assert (f.kind, f.confidence) == ("deadlock", "possible")
    assert "indexer" in _names(report, f.threads)
    assert "ticker" not in _involved(report, f)
    assert not f.cycle  # the holder is inferred, no edge is known
    assert any("`print index_lock`" in m for m in f.missing_evidence)


def test_reentrant_lock_held_over_a_join_on_its_waiter_is_a_possible_deadlock() -> None:
    # jstack -l prints the lock's owner (coordinator); jstack alone does not. Either way the
    # join names no thread, and every thread that could be joined waits.
    for name, hint in (("jstack-l-LockJoin.txt", "GC.heap_dump"),
                       ("jstack-LockJoin.txt", "jstack -l PID")):
        report = _analyse(name)
        f = _only(report)
        assert (f.kind, f.confidence) == ("deadlock", "possible"), name
        assert {"coordinator", "registrar"} <= _names(report, f.threads), name
        assert "ticker" not in _involved(report, f), name
        assert any(hint in m for m in f.missing_evidence), (name, f.missing_evidence)


def test_java_wait_for_a_child_process_is_named_with_the_reapers_pid() -> None:
    report = _analyse("jstack-l-ChildPipe.txt")
    f = _only(report)
    assert f.kind == "hang"
    assert "launcher" in _names(report, f.threads)
    assert "ticker" not in _involved(report, f)
    reaper = next(t for t in report.snapshot.threads() if (t.name or "").startswith("process reaper"))
    pid = (reaper.name or "").rsplit(" ", 1)[-1].rstrip(")")
    assert f"process {pid}" in f.summary
    assert reaper.state == "blocked"  # in waitpid for the child, not running


def test_rules_fixtures_are_listed_in_their_builder() -> None:
    builder = (RULES / "build.py").read_text()
    for path in RULES.glob("*.txt"):
        program = path.stem.split("-")[-1]
        assert f'"{program}"' in builder, path.name
    assert Path(RULES / "programs").is_dir()


def _one_thread_excerpt(text: str, name: str) -> str:
    """The dump's header and one thread's block, as pasted into a bug report."""
    head = text[:text.index('\n"')]
    start = text.index(f'\n"{name}"')
    end = text.find('\n"', start + 1)
    return head + text[start:end if end != -1 else len(text)]


def test_excerpt_of_a_thread_joining_while_holding_a_lock_is_a_possible_hang() -> None:
    # One thread pasted: it holds a ReentrantLock (jstack -l's ownable synchronizers) and
    # waits in Thread.join for a thread the paste does not show. Whatever needs the lock waits
    # behind it; the joined thread may be one of those: named, with what would show it.
    text = _one_thread_excerpt((RULES / "jstack-l-LockJoin.txt").read_text(), "coordinator")
    report = analyse_text(text)
    f = _only(report)
    assert (f.kind, f.confidence) == ("hang", "possible")
    assert _names(report, f.threads) == {"coordinator"}
    assert any("holds" in m and "ReentrantLock" in m and "jstack -l PID" in m
               for m in f.missing_evidence), f.missing_evidence


def test_a_write_nothing_in_its_process_will_drain_is_a_possible_hang() -> None:
    # The parent of two processes deadlocked through two full pipes: main blocked in write(),
    # the only other thread asleep. Who reads fd 4 is outside the dump: a possible hang, with
    # the command that names the other end.
    report = _analyse("gdb-child_pipes.txt")
    f = _only(report)
    assert (f.kind, f.confidence) == ("hang", "possible")
    assert _names(report, f.threads) == {"main"}
    assert "ticker" not in _involved(report, f)
    assert "fd 4" in f.summary
    assert any("stuck capture PID" in m and "fd 4" in m for m in f.missing_evidence)


def test_a_blocked_write_beside_a_reader_or_a_running_thread_is_no_finding() -> None:
    # The same dump with one more thread that could drain the pipe or make progress: one in
    # read(), or one running the program's code.
    text = (RULES / "gdb-child_pipes.txt").read_text()
    tail = ("#1  0x000055e9c69681ef in drainer (arg=0x0) at child_pipes.c:16\n"
            "#2  0x00007f53ebe5a1f5 in start_thread (arg=<optimized out>) at "
            "./nptl/pthread_create.c:442\n")
    for top in ("#0  __GI___libc_read (fd=5, buf=0x7ffd00000000, nbytes=4096) at "
                "../sysdeps/unix/sysv/linux/read.c:26\n",
                "#0  0x000055e9c6968250 in crunch (n=7) at child_pipes.c:80\n"):
        extra = 'Thread 3 (Thread 0x7f53eb5cc6c0 (LWP 32177) "drainer"):\n' + top + tail
        report = analyse_text(text.replace("Thread 2 (", extra + "\nThread 2 (", 1))
        states = {t.name: t.state for t in report.snapshot.threads()}
        assert states["drainer"] in ("io", "running") and states["main"] == "io", states
        assert report.findings == [], [f.summary for f in report.findings]

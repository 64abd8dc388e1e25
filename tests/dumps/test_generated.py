"""Dumps generated from real tools (gdb, Go) on tiny stuck programs, against their headers.

Where a dump cannot show what the header knows from the program's source (which thread owns
a mutex, when gdb printed it without a name or not at all), the test says so with an xfail
that names the missing evidence, and checks the weaker verdict stuck does give."""

from __future__ import annotations

import pytest
from tests.dumps.helpers import GENERATED, labels, report_for


def names(report, tids):  # type: ignore[no-untyped-def]
    threads = report.snapshot.thread_map()
    return [threads[t].name for t in tids]


def test_gdb_cond_stall_names_the_condition_and_the_victim() -> None:
    report = report_for(GENERATED / "gdb-c-cond-stall.txt")
    assert [f.kind for f in report.findings] == ["stall"]
    f = report.findings[0]
    assert names(report, f.threads) == ["writer"]
    assert labels(report, f.resources) == ["bg_cv"]
    assert names(report, f.blocked_behind) == ["cond_stall"]  # main, in pthread_join
    threads = report.snapshot.thread_map()
    assert [t.state for t in threads.values() if t.name == "bg-worker"] == ["idle"]


def test_gdb_deadlock_with_printed_mutex_owners() -> None:
    report = report_for(GENERATED / "gdb-c-deadlock-O0.txt")
    assert [f.kind for f in report.findings] == ["deadlock"]
    f = report.findings[0]
    assert sorted(names(report, f.threads)) == ["worker-a", "worker-b"]
    assert sorted(labels(report, f.resources)) == ["mutex_a", "mutex_b"]
    assert names(report, f.blocked_behind) == ["deadlock2"]
    assert {e.thread for e in f.cycle} == {e.held_by for e in f.cycle} == set(f.threads)
    # gdb printed the mutexes as $1/$2 without their names: the pairing is inferred
    assert f.confidence == "probable" and f.missing_evidence


def test_gdb_stripped_O2_without_owners_is_at_most_a_possible_deadlock() -> None:
    # Every thread is shown and none can run; both workers wait for mutexes whose owners the
    # dump does not print: a cycle is consistent with the evidence, not proven by it.
    report = report_for(GENERATED / "gdb-c-deadlock-O2-stripped.txt")
    assert [(f.kind, f.confidence) for f in report.findings] == [("deadlock", "possible")]
    f = report.findings[0]
    assert sorted(names(report, f.threads)) == ["worker-a", "worker-b"]
    assert names(report, f.blocked_behind) == ["deadlock2-O2"]
    assert not f.cycle  # no edge is known
    # what to capture next, with the exact command (no symbols: by address)
    assert any("x/3dw 0x559d25b60080" in m for m in f.missing_evidence)
    threads = report.snapshot.thread_map()
    res = report.snapshot.resource_map()
    wa = next(t for t in threads.values() if t.name == "worker-a")
    assert wa.waits is not None and res[wa.waits.resource].address == "0x559d25b60080"


def test_gdb_cycle3_is_a_deadlock_with_the_victim_behind() -> None:
    report = report_for(GENERATED / "gdb-c-cycle3-victim.txt")
    assert [f.kind for f in report.findings] == ["deadlock"]
    f = report.findings[0]
    assert set(names(report, f.threads)) == {"ring-1", "ring-2", "ring-3"}
    assert names(report, f.blocked_behind) == ["victim", "cycle3"]  # main joins the victim


def test_gdb_cycle3_unnamed_mutexes_make_the_deadlock_probable_not_certain() -> None:
    # $1..$3 carry owners but no names: two pairings fit, both a cycle of the same threads
    f = report_for(GENERATED / "gdb-c-cycle3-victim.txt").findings[0]
    assert f.confidence == "probable"
    assert any("pairings" in m and "guess" in m for m in f.missing_evidence)


@pytest.mark.parametrize("name", ["pystack-remote-python-deadlock.txt",
                                  "pystack-core-python-deadlock.txt",
                                  "pystack-remote-locals-python-deadlock.txt"])
def test_python_process_with_every_thread_blocked_is_a_probable_stall(name: str) -> None:
    report = report_for(GENERATED / name)
    assert [(f.kind, f.confidence) for f in report.findings] == [("stall", "probable")]
    f = report.findings[0]
    # both lock waiters and the condition waiter; main joins lock-a-then-b: with --locals the
    # joined thread is known (the same Thread address), and main waits behind it; without,
    # every thread main could be joining is one of the three, so it waits behind them too
    assert len(f.threads) + len(f.blocked_behind) == 4
    assert len(f.threads) == 3
    assert any("which thread holds" in m for m in f.missing_evidence)
    assert any("deadlock" in m for m in f.missing_evidence)


@pytest.mark.parametrize("name", ["pyspy-python-deadlock.txt", "pyspy-locals-python-deadlock.txt",
                                  "pyspy-json-python-deadlock.txt",
                                  "faulthandler-python-deadlock.txt"])
def test_python_dump_without_the_lock_calls_is_a_possible_stall(name: str) -> None:
    report = report_for(GENERATED / name)
    assert [(f.kind, f.confidence) for f in report.findings] == [("stall", "possible")]
    f = report.findings[0]
    # Only the condition waiter is named: the two lock threads stop in a call the dump does
    # not name (a sleep looks the same), and main joins one of them, which may yet end.
    threads = report.snapshot.thread_map()
    assert len(f.threads) == 1
    assert any(fr.function.endswith("wait_for_config") for fr in threads[f.threads[0]].frames)
    unnamed = [m for m in f.missing_evidence if "is not in the dump (a lock acquire" in m]
    assert len(unnamed) == 2  # the two lock threads: user code on top, the call not named
    assert any("stopped inside a call the dump does not show" in n
               for n in report.snapshot.notes)


def test_gdb_py_bt_waits_are_python_level() -> None:
    report = report_for(GENERATED / "gdb-py-bt-python-deadlock.txt")
    res = report.snapshot.resource_map()
    kinds = sorted(res[t.waits.resource].kind for t in report.snapshot.threads() if t.waits)
    assert kinds == ["condition", "mutex", "mutex", "thread"]
    stalls = [f for f in report.findings if f.kind == "stall"]
    assert any("(unnamed condition, in wait_for_config)" in labels(report, f.resources)
               for f in stalls)


@pytest.mark.parametrize("name", ["go-all-goroutines-asleep.txt",
                                  "go-all-goroutines-asleep-gotraceback-all.txt"])
def test_go_runtime_deadlock_is_a_certain_deadlock_of_the_lock_waiters(name: str) -> None:
    # The runtime said no goroutine can run: the two mutex waiters (whose holders can only be
    # among the stuck goroutines) are a deadlock, the sender and the condition waiter, whose
    # partners have returned, a stall; main waits behind the goroutines it started.
    report = report_for(GENERATED / name)
    assert [(f.kind, f.confidence) for f in report.findings] == [
        ("deadlock", "certain"), ("stall", "certain")]
    threads = report.snapshot.thread_map()

    def at(tids: list[str]) -> list[str]:
        return sorted(w.at.function for t in tids if (w := threads[t].waits) and w.at)

    deadlock, stall = report.findings
    assert at(deadlock.threads) == ["main.workerA", "main.workerB"]
    assert at(deadlock.blocked_behind) == ["main.main"]
    assert at(stall.threads) == ["main.condWaiter", "main.sender"]
    res = report.snapshot.resource_map()
    assert sorted(res[r].kind for r in deadlock.resources) == ["mutex", "mutex"]
    assert "all goroutines are asleep" in deadlock.explanation
    named = {t for f in report.findings for t in [*f.threads, *f.blocked_behind]}
    # the receiver and the selector wait for work: not named as stuck
    assert not any(threads[t].waits is not None and threads[t].waits.at is not None
                   and threads[t].waits.at.function in ("main.receiver", "main.selector")
                   for t in named)


@pytest.mark.parametrize("name", ["go-sigquit-deadlock.txt", "go-sigquit-deadlock-1-minute.txt"])
def test_go_sigquit_mutex_waiters_are_at_most_a_possible_deadlock(name: str) -> None:
    # A goroutine on a time.Ticker's channel may run again (and might hold a lock): the two
    # mutex waiters are a possible deadlock, never more.
    report = report_for(GENERATED / name)
    [deadlock] = [f for f in report.findings if f.kind == "deadlock"]
    assert deadlock.confidence == "possible"
    assert deadlock.cycle == []  # Go shows no holders: no edge is claimed
    res = report.snapshot.resource_map()
    assert [res[r].kind for r in deadlock.resources] == ["mutex", "mutex"]
    assert any("may run again" in m or "time.Sleep" in m or "timer" in m
               for m in deadlock.missing_evidence)


def test_go_wait_duration_is_read_from_the_header() -> None:
    report = report_for(GENERATED / "go-sigquit-deadlock-1-minute.txt")
    durations = {t.waits.duration for t in report.snapshot.threads() if t.waits}
    assert 60.0 in durations

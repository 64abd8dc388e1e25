"""The Python dump rules on programs written for them, not the zoo's (the zoo checks the same
rules on its own programs: barrier_short, cond_no_notifier, queue_no_consumer, self_relock,
join_holding, lock_inversion, busy_pool, idle_server).

Each program (tests/fixtures/programs/python/) is captured by py-spy, py-spy --locals, py-spy
--native, pystack, pystack --locals and faulthandler (tests/fixtures/build_dumps.py, group pyrules), and read with
and without its source beside it:

- leaked_permit: a client waits in BoundedSemaphore.acquire for a permit that leaked; a metrics
  thread sleeps in a loop. A stall of the client; the sleeper is never named.
- lock_across_join: main holds cache.lock (acquire()) and joins the refresher, which waits for
  it in Cache.refresh (``with self.lock``); a reporter sleeps in a loop. main and the refresher
  wait for each other, claimed `possible` (the holder of a Lock is never printed).
- stop_under_lock: stop() holds state_lock (`with`) and joins the poller, which waits for
  it. With the source, a deadlock: `probable` when --locals identify the joined thread, a
  `possible` guess otherwise.
- sleepy_pipeline: busy and fine (sleeps between puts, a timed get): no finding wherever the
  dump or the source shows the timeout.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.dumps.helpers import FIXTURES, GENERATED, dump_text

from stuck.analysis import analyze
from stuck.dumps import load_dump
from stuck.dumps.pystdlib import StdlibReader
from stuck.model import Finding, Report

SOURCE = FIXTURES.parent / "programs" / "python"
CAPTURES = ("pyspy", "pyspy-locals", "pyspy-native", "pystack", "pystack-locals",
            "faulthandler")


# The fixtures were made with CPython 3.11.7 of /root/.pyenv; where that library is on the
# machine running the tests, its lines tell timed waits from untimed ones (stuck.dumps.pystdlib).
FIXTURE_STDLIB_HERE = StdlibReader(
    "3.11.7", "/root/.pyenv/versions/3.11.7/bin/python3.11").lines("threading.py") is not None


def report(capture: str, program: str, source: bool = False, text: str | None = None) -> Report:
    path = GENERATED / f"{capture}-{program}.txt"
    loaded = load_dump(text if text is not None else dump_text(path), "auto", path.name,
                       sources=[str(SOURCE)] if source else [])
    return analyze(loaded.snapshot, loaded.stated, loaded.inferred)


def runs(r: Report, tid: str, function: str) -> bool:
    """The thread ``tid`` has ``function`` on its stack."""
    t = r.snapshot.thread(tid)
    assert t is not None
    return any(f.function.rsplit(".", 1)[-1] == function for f in t.frames)


def named(r: Report, f: Finding, function: str) -> bool:
    return any(runs(r, tid, function) for tid in f.threads)


def involved(r: Report, f: Finding, function: str) -> bool:
    return any(runs(r, tid, function) for tid in [*f.threads, *f.blocked_behind])


@pytest.mark.parametrize("source", [False, True], ids=["dump", "dump+source"])
@pytest.mark.parametrize("capture", CAPTURES)
def test_a_leaked_permit_is_a_possible_stall_of_its_waiter_never_of_the_sleeper(
        capture: str, source: bool) -> None:
    r = report(capture, "leaked-permit", source)
    # With the source, metrics's loop is read: `while True:` around a sleep and a counter, no
    # other call, so it can wake no one, and the stall is probable; without, it may (possible).
    confidence = "probable" if source else "possible"
    assert [(f.kind, f.confidence) for f in r.findings] == [("stall", confidence)]
    f = r.findings[0]
    assert named(r, f, "client")
    assert all(runs(r, t, "client") or runs(r, t, "main") for t in f.threads)
    assert not involved(r, f, "metrics")  # asleep in a loop: it wakes by itself
    kinds = {res.kind for res in r.snapshot.resources if res.id in f.resources}
    # `pool.acquire()` on the line is the semaphore's, no lock (main's join may be named too)
    assert "semaphore" in kinds and kinds <= {"semaphore", "thread"}


@pytest.mark.parametrize("capture", ["pyspy-locals", "pystack-locals"])
def test_the_joined_thread_is_the_one_whose_frames_print_the_same_thread_address(
        capture: str) -> None:
    r = report(capture, "leaked-permit")
    main = next(t for t in r.snapshot.threads() if runs(r, t.id, "main"))
    assert main.waits is not None
    joined = r.snapshot.resource(main.waits.resource)
    assert joined is not None and joined.kind == "thread"
    assert [runs(r, o, "client") for o in joined.owners] == [True]
    assert main.id in r.findings[0].blocked_behind  # behind the client it joins


@pytest.mark.parametrize("capture,source", [
    ("pystack", False), ("pystack-locals", False),  # pystack prints `with self.lock:`
    ("pyspy-native", False),  # py-spy --native shows lock_PyThread_acquire_lock
    ("pystack", True), ("pyspy", True), ("pyspy-locals", True), ("faulthandler", True),
    ("pyspy-native", True),
])
def test_a_lock_held_across_a_join_is_a_deadlock_of_both(capture: str,
                                                          source: bool) -> None:
    r = report(capture, "lock-across-join", source)
    # With the source, `cache.lock.acquire()` says main holds cache.lock, and the calling line
    # `cache.refresh()` says the refresher's `self.lock` is that lock: a cycle read from the
    # source, probable where --locals proves the joined thread by its address, possible where
    # it is taken to be the lock's waiter. Without the source, the holder is a guess.
    confidence = "probable" if source and capture.endswith("-locals") else "possible"
    assert [(f.kind, f.confidence) for f in r.findings] == [("deadlock", confidence)]
    f = r.findings[0]
    assert named(r, f, "refresher") and named(r, f, "main")
    assert not involved(r, f, "reporter")
    if source:
        lock = next(e for e in f.cycle if runs(r, e.thread, "refresher"))
        assert runs(r, lock.held_by, "main")
        assert r.snapshot.resource_map()[lock.waits_for].label.startswith("cache.lock ")
    else:
        assert any("holds" in m for m in f.missing_evidence)  # how to see the holder


@pytest.mark.parametrize("capture", CAPTURES)
def test_a_join_under_the_lock_the_joined_thread_needs_is_a_deadlock_with_the_source(
        capture: str) -> None:
    # stop() holds state_lock (`with`, read from the source) and joins the poller, which waits
    # for state_lock. With --locals the joined thread is read from its Thread address: a
    # probable cycle; without, it is taken to be the one thread waiting for the lock main
    # holds, a guess: possible, and the finding says so.
    r = report(capture, "stop-under-lock", source=True)
    confidence = "probable" if capture.endswith("-locals") else "possible"
    assert [(f.kind, f.confidence) for f in r.findings] == [("deadlock", confidence)]
    f = r.findings[0]
    assert named(r, f, "poll") and named(r, f, "stop")
    assert not involved(r, f, "logger")
    assert {(runs(r, e.thread, "stop"), runs(r, e.held_by, "poll")) for e in f.cycle} == {
        (True, True), (False, False)}  # main waits for the poller, the poller for main
    if confidence == "possible":
        assert any("taken to be" in m for m in f.missing_evidence)


@pytest.mark.parametrize("capture", ["pyspy", "faulthandler"])
def test_without_source_a_call_the_dump_does_not_name_is_said_not_guessed(capture: str) -> None:
    # py-spy and faulthandler show no frame for the lock acquire the refresher is in; a sleep
    # looks the same (the reporter), and without --locals which thread main joins is not
    # shown: nothing is claimed, and the note says how to see it.
    for program in ("lock-across-join", "stop-under-lock"):
        r = report(capture, program)
        assert r.findings == []
        note = next(n for n in r.snapshot.notes if "call the dump does not show" in n)
        assert "py-spy dump --native" in note and "--source" in note
        pid = r.snapshot.processes[0].pid  # py-spy's header names it; faulthandler does not
        assert f"--pid {pid if pid is not None else 'PID'}`" in note


@pytest.mark.parametrize("program,joined,sleeper", [
    ("lock-across-join", "refresh", "reporter"), ("stop-under-lock", "poll", "logger")])
def test_a_join_on_a_thread_in_a_call_the_dump_does_not_name_is_a_possible_hang_of_both(
        program: str, joined: str, sleeper: str) -> None:
    # --locals identify the joined thread (the same Thread address in join and in its run
    # frame); it stands on its own line in a call py-spy shows no frame for, and the sleeper
    # stands the same way. Main can go on only when the joined thread ends: a possible hang
    # naming both, never a deadlock (a sleep or a socket read there prints the same), and
    # never the sleeper; what would decide it is said with the command.
    r = report("pyspy-locals", program)
    assert [(f.kind, f.confidence) for f in r.findings] == [("hang", "possible")]
    f = r.findings[0]
    assert named(r, f, joined) and named(r, f, "main") and len(f.threads) == 2
    assert not involved(r, f, sleeper)
    assert any("py-spy dump --native --pid" in m and "--source DIR" in m
               for m in f.missing_evidence)
    assert any("a deadlock" in m and "sleep or I/O" in m for m in f.missing_evidence)


@pytest.mark.parametrize("source", [False, True], ids=["dump", "dump+source"])
@pytest.mark.parametrize("capture", CAPTURES)
def test_a_busy_pipeline_of_sleeps_and_timed_waits(capture: str, source: bool) -> None:
    r = report(capture, "sleepy-pipeline", source)
    if capture in ("pyspy", "pyspy-native", "faulthandler") and not source \
            and not FIXTURE_STDLIB_HERE:
        # Without --locals, the program's source or the standard library the dump was made
        # with, q.get(timeout=1.0) reads as a wait forever (--native shows the same C call for
        # both), and the sleepers as calls the dump does not name (or, with --native, as
        # sleepers that might yet put). The claim stays the weakest one, names the waiter
        # alone, and says what would tell. Where that library is on the machine, the line
        # Condition.wait stands on (threading.py:331) is the timed form: no finding.
        assert [(f.kind, f.confidence) for f in r.findings] == [("stall", "possible")]
        f = r.findings[0]
        assert named(r, f, "consume") and len(f.threads) == 1 and not f.blocked_behind
        tell = "sleeps and will run again" if capture == "pyspy-native" else "py-spy dump --native"
        assert any(tell in m for m in f.missing_evidence)
    else:
        assert r.findings == []


def _pyspy_blocks(text: str) -> tuple[str, list[str]]:
    head, _, rest = text.partition("\nThread ")
    blocks = ["Thread " + b for b in rest.split("\nThread ")]
    return head + "\n", [b if b.endswith("\n") else b + "\n" for b in blocks]


def test_pyspy_excerpts_are_told_from_complete_dumps_and_claim_at_most_possible() -> None:
    text = dump_text(GENERATED / "pyspy-leaked-permit.txt")
    head, blocks = _pyspy_blocks(text)
    client = next(b for b in blocks if '"client"' in b)
    main = next(b for b in blocks if '"MainThread"' in b)
    excerpts = {
        "the client alone (no thread 'pid')": head + client,
        "main alone, joining": head + main,
        "an ellipsis": head + main + "...\n" + client,
        "cut off mid-line": head + "".join(blocks)[:-25],
    }
    whole = report("pyspy", "leaked-permit")
    assert whole.snapshot.processes[0].complete is True
    for why, excerpt in excerpts.items():
        r = report("pyspy", "leaked-permit", text=excerpt)
        assert r.snapshot.processes[0].complete is False, why
        assert all(f.confidence == "possible" for f in r.findings), why
        if why.startswith("main alone"):
            assert r.findings == [], why  # the joined thread is not in the paste
        assert any("lacks threads" in n for n in r.snapshot.notes), why


def test_faulthandler_and_pystack_excerpts_are_told_from_complete_dumps() -> None:
    fh = dump_text(GENERATED / "faulthandler-leaked-permit.txt")
    blocks = fh.split("\n\n")
    stack = dump_text(GENERATED / "pystack-leaked-permit.txt")
    tracebacks = stack.split("\n\n")
    excerpts = {
        "faulthandler, an ellipsis": blocks[0] + "\n\n...\n\n" + blocks[-1],
        "faulthandler, cut off mid-line": fh.rstrip("\n")[:-30],
        "faulthandler, all_threads=False": "Stack (most recent call first):\n"
        + "\n".join(blocks[0].splitlines()[1:]),
        "pystack, an ellipsis": tracebacks[0] + "\n...\n" + tracebacks[-1],
        "pystack, cut off mid-line": stack.rstrip("\n").rsplit("(Python) File", 1)[0]
        + '(Python) File "/root/.pyenv/versions/3.11.7/lib/python3',
    }
    for capture in ("faulthandler", "pystack"):
        assert report(capture, "leaked-permit").snapshot.processes[0].complete is True
    for why, excerpt in excerpts.items():
        r = report(why.split(",")[0], "leaked-permit", text=excerpt)
        assert [p.complete for p in r.snapshot.processes] == [False], why
        assert all(f.confidence == "possible" for f in r.findings), why
        assert any("lacks threads" in n for n in r.snapshot.notes), why
    # faulthandler's own "..." (a stack deeper than it prints) is no excerpt
    deep = fh.replace('  File "/tmp/stuck-fixtures/pyrules/leaked_permit.py", line 33 in metrics',
                      '  File "/tmp/stuck-fixtures/pyrules/leaked_permit.py", line 33 in metrics'
                      "\n  ...", 1)
    assert report("faulthandler", "leaked-permit", text=deep).snapshot.processes[0].complete


def test_fixtures_exist() -> None:
    for program in ("leaked-permit", "lock-across-join", "stop-under-lock", "sleepy-pipeline"):
        for capture in CAPTURES:
            assert Path(GENERATED / f"{capture}-{program}.txt").is_file()


def test_the_holder_of_a_plain_lock_is_asked_of_the_source_not_of_py_spy_locals() -> None:
    # A threading.Lock records no owner, so no Python dump prints one: the advice is the
    # source beside the dump (or stuck run), not --locals (which prints an RLock's owner=).
    r = report("pyspy-native", "lock-across-join")
    hints = [m for f in r.findings for m in f.missing_evidence if "which thread holds" in m]
    assert len(hints) == 1
    assert "records no owner" in hints[0] and "--source DIR" in hints[0]
    assert "--locals" not in hints[0]

"""The watchdog: hangs are reported with their stack; threads that make progress are left alone.

Every test uses a limit well under a second and stops its own threads, so nothing here can hang
the suite; the scenarios that must stop the interpreter (abort, the C-level last resort) run in
a subprocess with a timeout.
"""

from __future__ import annotations

import io
import queue
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from stuck.errors import EXIT_ABORT
from stuck.model import Finding, Report
from stuck.runtime.watchdog import (
    ProgressTracker,
    Watchdog,
    WatchdogConfig,
    frame_activity,
    parse_duration,
    render_diagnosis,
)

LIMIT = 0.4


@contextmanager
def watchdog(**options: object) -> Iterator[tuple[Watchdog, io.StringIO]]:
    out = io.StringIO()
    config = WatchdogConfig(hang_after=LIMIT, interval=0.05, stream=out, last_resort=False)
    for key, value in options.items():
        setattr(config, key, value)
    dog = Watchdog(config)
    dog.start()
    try:
        yield dog, out
    finally:
        dog.stop()


def hangs_of(dog: Watchdog, name: str) -> list[Finding]:
    return [f for r in list(dog.reports) for f in r.findings
            if f.kind == "hang" and name in f.threads]


def wait_until(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def start(name: str, target: Callable[[], object]) -> threading.Thread:
    t = threading.Thread(target=target, name=name, daemon=True)
    t.start()
    return t


def test_thread_blocked_reading_a_socket_that_never_answers_is_a_hang() -> None:
    near, far = socket.socketpair()
    reader = start("wd-socket-reader", lambda: near.recv(16))
    try:
        with watchdog() as (dog, out):
            assert wait_until(lambda: bool(hangs_of(dog, "wd-socket-reader")))
            [finding] = hangs_of(dog, "wd-socket-reader")[:1]
            assert finding.details["activity"] == "io" and finding.details["call"] == "recv"
            text = out.getvalue()
            assert "HANG (possible): wd-socket-reader has made no progress" in text
            assert "in I/O (recv)" in text
            assert "<lambda>" in text  # its stack is in the report
    finally:
        far.close()
        reader.join(timeout=5)
        near.close()


def test_thread_spinning_on_a_flag_that_is_never_set_is_a_hang() -> None:
    flag = [False]

    def spin() -> None:
        while not flag[0]:
            pass

    spinner = start("wd-spinner", spin)
    try:
        with watchdog() as (dog, out):
            assert wait_until(lambda: bool(hangs_of(dog, "wd-spinner")))
            finding = hangs_of(dog, "wd-spinner")[0]
            assert finding.details["activity"] == "running"
            assert (finding.details["seconds_without_progress"]  # type: ignore[operator]
                    >= LIMIT)
            assert "spin" in out.getvalue()
    finally:
        flag[0] = True
        spinner.join(timeout=5)


def test_spin_that_changes_a_counter_is_still_a_hang() -> None:
    # Progress is leaving the loop or finishing a wait or I/O, not a local variable changing:
    # counting while waiting for a flag nobody sets is the same spin.
    flag = [False]

    def spin_counting() -> None:
        turns = 0
        while not flag[0]:
            turns += 1

    spinner = start("wd-counter", spin_counting)
    try:
        with watchdog() as (dog, out):
            assert wait_until(lambda: bool(hangs_of(dog, "wd-counter")))
            finding = hangs_of(dog, "wd-counter")[0]
            assert finding.details["activity"] == "running"
            assert "spin_counting" in out.getvalue()
    finally:
        flag[0] = True
        spinner.join(timeout=5)


def _phase(n: int) -> Callable[[float], int]:
    """A function of its own (a code object of its own) that computes for ``seconds``."""
    namespace: dict[str, object] = {"time": time}
    exec(compile(f"def phase_{n}(seconds):\n"
                 f"    end = time.monotonic() + seconds\n"
                 f"    total = 0\n"
                 f"    while time.monotonic() < end:\n"
                 f"        total += {n}\n"
                 f"    return total\n", f"<phase {n}>", "exec"), namespace)
    return namespace[f"phase_{n}"]  # type: ignore[return-value]


def test_computation_that_moves_on_through_its_code_is_not_a_hang() -> None:
    # Each loop lasts less than the limit and is then left for code not reached before.
    phases = [_phase(n) for n in range(12)]
    stop = [False]

    def compute() -> None:
        for phase in phases:
            if stop[0]:
                return
            phase(LIMIT / 3)

    worker = start("wd-compute", compute)
    try:
        with watchdog() as (dog, _):
            time.sleep(LIMIT * 3)
            assert worker.is_alive()  # still computing while we looked
            assert hangs_of(dog, "wd-compute") == []
    finally:
        stop[0] = True
        worker.join(timeout=5)


def test_worker_taking_jobs_and_idle_pool_workers_are_not_hangs() -> None:
    jobs: queue.Queue[int | None] = queue.Queue()
    done: list[int] = []

    def work() -> None:
        while (job := jobs.get()) is not None:
            done.append(sum(range(job)))

    worker = start("wd-worker", work)
    from concurrent.futures import ThreadPoolExecutor
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="wd-idle-pool")
    pool.submit(lambda: None).result()
    try:
        with watchdog() as (dog, _):
            deadline = time.monotonic() + LIMIT * 4
            n = 0
            while time.monotonic() < deadline:
                jobs.put(1000 + n)
                n += 1
                time.sleep(0.03)
            assert len(done) >= 10
            assert hangs_of(dog, "wd-worker") == []
            assert [f for r in dog.reports for f in r.findings
                    if any(t.startswith("wd-idle-pool") for t in f.threads)] == []
    finally:
        jobs.put(None)
        worker.join(timeout=5)
        pool.shutdown()


def test_waiters_behind_a_hung_lock_holder_are_named() -> None:
    from stuck.model import Process, Resource, Snapshot, Source, Thread, Wait

    flag = [False]
    spinner_ident: list[int] = []

    def spin() -> None:
        spinner_ident.append(threading.get_ident())
        while not flag[0]:
            pass

    spinner = start("wd-holder", spin)
    assert wait_until(lambda: bool(spinner_ident))

    def view() -> Snapshot:  # a live view: the spinner holds a lock another thread waits for
        return Snapshot(source=Source(kind="live"), processes=[Process(threads=[
            Thread(id="wd-holder", tid=spinner_ident[0], name="wd-holder", state="running",
                   holds=["mu"]),
            Thread(id="waiter", tid=1, name="waiter", state="blocked",
                   waits=Wait(resource="mu", duration=2.0))])],
            resources=[Resource(id="mu", kind="mutex", label="cache.mu", owners=["wd-holder"])])

    out = io.StringIO()
    dog = Watchdog(WatchdogConfig(hang_after=LIMIT, interval=0.05, stream=out,
                                  last_resort=False), snapshot=view)
    dog.start()
    try:
        assert wait_until(lambda: bool(hangs_of(dog, "wd-holder")))
        assert hangs_of(dog, "wd-holder")[0].blocked_behind == ["waiter"]
        text = out.getvalue()
        assert "Wait-for graph:" in text
        assert "waiter blocked on mutex cache.mu held by wd-holder for 2.0 s" in text
        assert "Held locks:" in text and "wd-holder holds mutex cache.mu" in text
        # findings first, then the graph, then the locks, then the stacks
        assert text.index("HANG") < text.index("Wait-for graph:") < text.index("Held locks:") \
            < text.index("Threads (")
    finally:
        dog.stop()
        flag[0] = True
        spinner.join(timeout=5)


def test_poll_loop_that_wakes_between_samples_is_a_hang_and_is_explained_as_sampled() -> None:
    # `while not ready: time.sleep(...)` enters and leaves its sleep many times between two
    # samples, and is seen asleep on the same line at each: no progress, and the explanation
    # says so (it used to say the thread "entered or left no sleep").
    from stuck.model import Process, Resource, Snapshot, Source, Thread, Wait

    flag = [False]
    wakes = [0]
    poller_ident: list[int] = []

    def poll() -> None:
        poller_ident.append(threading.get_ident())
        while not flag[0]:
            wakes[0] += 1
            time.sleep(0.005)

    poller = start("wd-poller", poll)
    assert wait_until(lambda: bool(poller_ident))

    def view() -> Snapshot:  # another thread waits for what the poller would signal
        return Snapshot(source=Source(kind="live"), processes=[Process(threads=[
            Thread(id="wd-poller", tid=poller_ident[0], name="wd-poller", state="idle",
                   holds=["mu"]),
            Thread(id="joiner", tid=1, name="joiner", state="blocked",
                   waits=Wait(resource="mu", duration=1.0))])],
            resources=[Resource(id="mu", kind="mutex", label="job.mu", owners=["wd-poller"])])

    dog = Watchdog(WatchdogConfig(hang_after=LIMIT, interval=0.05, stream=io.StringIO(),
                                  last_resort=False), snapshot=view)
    woken_before = wakes[0]
    dog.start()
    try:
        assert wait_until(lambda: bool(hangs_of(dog, "wd-poller"))), wakes
        finding = hangs_of(dog, "wd-poller")[0]
        woken = wakes[0] - woken_before
    finally:
        dog.stop()
        flag[0] = True
        poller.join(timeout=5)
    assert finding.details["activity"] == "sleeping", finding
    assert woken >= 2, woken  # it woke up and slept again while no progress was seen
    text = finding.explanation
    assert "(every 0.05 s; " in text
    assert "in the same state at every sample (sleeping (sleep))" in text
    assert "entered or left" not in text


def test_reports_are_rate_limited() -> None:
    flag = [False]

    def spin() -> None:
        while not flag[0]:
            pass

    spinner = start("wd-rate", spin)
    try:
        with watchdog(report_every=60.0) as (dog, out):
            assert wait_until(lambda: bool(hangs_of(dog, "wd-rate")))
            time.sleep(LIMIT * 2)  # many more ticks with the same hang
            assert out.getvalue().count("wd-rate has made no progress") == 1
    finally:
        flag[0] = True
        spinner.join(timeout=5)


def test_raise_policy_raises_hang_error_in_the_hung_thread() -> None:
    # In a subprocess: the raise policy raises in every thread found hung, and a test runner's
    # own threads (pytest-xdist's channel reader, idle in a read) would be among them.
    result = _run("""
        import threading
        from stuck.runtime.watchdog import HangError, Watchdog, WatchdogConfig
        caught = []

        def spin():
            try:
                while True:
                    pass
            except HangError as exc:
                caught.append(exc)

        spinner = threading.Thread(target=spin, name="wd-raise", daemon=True)
        spinner.start()
        dog = Watchdog(WatchdogConfig(hang_after=0.4, interval=0.05, policy="raise",
                                      last_resort=False, raise_in="stuck"))
        dog.start()
        spinner.join(timeout=5)
        dog.stop()
        print("alive" if spinner.is_alive() else "ended")
        exc = caught[0]
        print(type(exc).__mro__[1].__name__, exc.finding.kind, exc.finding.threads)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["ended", "HangError hang ['wd-raise']"]


def _run(code: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout)


def test_abort_policy_ends_the_process_on_a_hang_without_raising_first() -> None:
    result = _run("""
        import threading
        from stuck.runtime.watchdog import Watchdog, WatchdogConfig
        from stuck.runtime.watchdog import HangError
        def spin():
            while True:
                try:
                    while True:
                        pass
                except HangError:
                    print("raised in the spinner", flush=True)  # and it goes on spinning
        threading.Thread(target=spin, name="spinner", daemon=True).start()
        Watchdog(WatchdogConfig(hang_after=0.3, interval=0.05, policy="abort")).start()
        threading.Event().wait(20)
    """)
    assert result.returncode == EXIT_ABORT
    # No HangError first: a thread it killed could let the program exit 0 (issue 11).
    assert "raised in the spinner" not in result.stdout
    assert "spinner has made no progress" in result.stderr
    assert "aborting (hang policy abort, a hang)" in result.stderr


def test_c_level_dump_fires_when_python_code_cannot_run() -> None:
    # A C call that keeps the GIL (ctypes.PyDLL does not release it) stops every Python thread,
    # the watchdog's included; faulthandler's C thread still dumps the stacks.
    result = _run("""
        import ctypes, threading, time
        from stuck.runtime.watchdog import Watchdog, WatchdogConfig
        dog = Watchdog(WatchdogConfig(hang_after=0.2, interval=0.05))
        dog.start()
        time.sleep(0.3)
        def hold_the_gil():
            ctypes.PyDLL(None).usleep(2_500_000)
        hold_the_gil()
        dog.stop()
        print("done")
    """)
    assert result.returncode == 0, result.stderr
    assert "Timeout (0:00:01" in result.stderr  # armed at the limit plus a margin
    assert "hold_the_gil" in result.stderr


def test_the_last_resort_is_off_once_the_program_has_ended() -> None:
    # What runs after the program's atexit handlers is the interpreter's finalization (here a
    # __del__ that takes longer than the last resort's timeout, as a loaded machine can make
    # any finalization). The watchdog thread does not outlive it, so nothing re-arms the
    # last resort: left armed, it printed a "Timeout" dump into a clean program's stderr.
    result = _run("""
        import time
        from stuck.runtime.watchdog import Watchdog, WatchdogConfig
        class SlowToFinalize:
            def __del__(self):
                time.sleep(2.5)
                print("finalized")
        keep = SlowToFinalize()
        dog = Watchdog(WatchdogConfig(hang_after=0.2, interval=0.05))
        dog.start()
        time.sleep(0.3)
        print("done")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["done", "finalized"]
    assert result.stderr == ""


def test_frame_activity_reads_the_call_in_progress() -> None:
    near, far = socket.socketpair()
    ready = threading.Event()

    def nap() -> None:
        ready.set()
        time.sleep(5)

    sleeper = start("wd-nap", nap)
    reader = start("wd-read", lambda: near.recv(1))
    try:
        ready.wait(5)
        time.sleep(0.1)
        frames = sys._current_frames()
        assert frame_activity(frames[sleeper.ident or 0]) == ("sleeping", "sleep")
        assert frame_activity(frames[reader.ident or 0]) == ("io", "recv")
    finally:
        far.close()
        reader.join(timeout=5)
        near.close()


def test_progress_tracker_sees_new_lines_as_progress() -> None:
    def steps() -> Iterator[int]:  # a suspended generator is a frame that stays on one line
        while True:
            yield 1
            yield 2

    gen = steps()
    next(gen)
    frame = gen.gi_frame
    assert frame is not None
    tracker = ProgressTracker()
    tracker.sample({1: frame}, 0.0)
    tracker.sample({1: frame}, 1.0)
    assert tracker.threads[1].stalled_for(1.0) == 1.0  # same line: no progress
    next(gen)  # the other line
    tracker.sample({1: frame}, 2.0)
    assert tracker.threads[1].stalled_for(2.0) == 0.0
    next(gen)  # back to a line seen before: a loop, not progress
    tracker.sample({1: frame}, 3.0)
    assert tracker.threads[1].stalled_for(3.0) == 1.0


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30.0), ("500ms", 0.5), ("2m", 120.0),
                                                ("1.5", 1.5)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "0s", "-1s", "10 parsecs"])
def test_parse_duration_rejects_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_render_escapes_names_from_the_program() -> None:
    from stuck.model import Process, Snapshot, Source, Thread
    snap = Snapshot(source=Source(kind="live"), processes=[Process(threads=[
        Thread(id="evil\x1b[2J", name="evil\x1b[2J", state="running")])])
    text = render_diagnosis(Report(snapshot=snap, findings=[
        Finding(kind="hang", confidence="possible", summary="evil\x1b[2J stuck",
                threads=["evil\x1b[2J"])]))
    assert "\x1b" not in text


def test_hang_error_waits_while_the_thread_is_inside_library_internals() -> None:
    # An asynchronous exception arrives wherever the thread is: between two steps of
    # threading's, queue's, concurrent.futures', asyncio's or stuck's own code it can leave a
    # lock held or a waiter unwoken, and a correct program stuck for good (seen under
    # --hang-after 1s --hang-policy raise: a pool's shutdown then joined a worker forever).
    # The raise waits for a check that finds the thread in the program's own code.
    result = _run("""
        import sys, threading, time
        from stuck.model import Finding
        from stuck.runtime.watchdog import (HangError, Watchdog, WatchdogConfig,
                                            in_library_internals)
        gate, flag, seen = threading.Event(), [False], []
        # Code running as threading.py's own (compiled under its file name): a thread busy
        # between two of threading's steps.
        inside = {"flag": flag}
        exec(compile("def spin():\\n    while not flag[0]:\\n        pass\\n",
                     threading.__file__, "exec"), inside)

        def waits_in_threading():
            try:
                inside["spin"]()
                seen.append("returned")
            except HangError:
                seen.append("HangError in threading")

        def spins_in_own_code():
            try:
                while not flag[0]:
                    pass
            except HangError:
                seen.append("HangError in own code")

        a = threading.Thread(target=waits_in_threading, daemon=True)
        b = threading.Thread(target=spins_in_own_code, daemon=True)
        a.start(); b.start()
        time.sleep(0.3)
        frames = sys._current_frames()
        print(in_library_internals(frames[a.ident]), in_library_internals(frames[b.ident]))
        for t in (a, b):
            dog = Watchdog(WatchdogConfig(hang_after=0.4, policy="raise", last_resort=False,
                                          raise_in=t.ident))
            f = Finding(kind="hang", confidence="possible", summary="")
            print(dog._raise(f, None))
        b.join(timeout=5)
        flag[0] = True
        a.join(timeout=5)
        print(sorted(seen))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "True False", "False", "True", "['HangError in own code', 'returned']"]


def test_hang_error_reaches_a_thread_waiting_inside_library_internals() -> None:
    # A wait in threading (Event.wait) ends by an exception as it would by a timeout: the
    # HangError is raised at once there, and arrives when the wait returns.
    result = _run("""
        import threading, time
        from stuck.model import Finding
        from stuck.runtime.watchdog import HangError, Watchdog, WatchdogConfig
        gate, seen = threading.Event(), []

        def waits():
            try:
                gate.wait()
                seen.append("returned")
            except HangError:
                seen.append("HangError")

        t = threading.Thread(target=waits, daemon=True)
        t.start()
        time.sleep(0.3)
        dog = Watchdog(WatchdogConfig(hang_after=0.4, policy="raise", last_resort=False,
                                      raise_in=t.ident))
        print(dog._raise(Finding(kind="hang", confidence="possible", summary=""), None))
        gate.set()
        t.join(timeout=5)
        print(seen)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["True", "['HangError']"]

"""``pytest --stuck`` as a project uses it: in a subprocess (bounded, so a hang fails the test
instead of the suite), on small test files written here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

LIMIT = 60


def run_pytest(where: Path, *args: str, timeout: float = LIMIT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=where, env=env, capture_output=True, text=True, timeout=timeout)


def write(where: Path, name: str, text: str) -> Path:
    path = where / name
    path.write_text(textwrap.dedent(text))
    return path


def test_plugin_works_without_xdist(tmp_path: Path) -> None:
    # After a plain install pytest-xdist is not there; -p no:xdist is the same for pytest.
    write(tmp_path, "test_plain.py", """
        import threading

        def test_takes_a_lock():
            with threading.Lock():
                pass
        """)
    done = run_pytest(tmp_path, "-p", "no:xdist", "--stuck", "test_plain.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "INTERNALERROR" not in done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert "stuck:" in done.stdout  # the plugin ran and wrote its summary


def test_names_bound_before_the_plugin_installed_are_checked_or_reported(
        tmp_path: Path) -> None:
    # APScheduler's shape: the conftest imports the scheduler module before the plugin
    # installs, and that module did `from threading import RLock, Condition`.
    (tmp_path / "app").mkdir()
    write(tmp_path, "app/__init__.py", "")
    write(tmp_path, "app/sched.py", """
        from threading import Condition, RLock

        class Scheduler:
            def __init__(self):
                self._lock = RLock()
                self._jobs_lock = RLock()
                self._wakeup = Condition()

            def add_job(self):
                with self._lock:
                    with self._jobs_lock:
                        pass

            def remove_job(self):
                with self._jobs_lock:
                    with self._lock:
                        pass
        """)
    write(tmp_path, "conftest.py", "import app.sched\n")
    write(tmp_path, "test_sched.py", """
        from app.sched import Scheduler

        def test_add():
            Scheduler().add_job()

        def test_remove():
            Scheduler().remove_job()
        """)
    done = run_pytest(tmp_path, "--stuck", "-p", "no:xdist")
    out = done.stdout
    assert done.returncode == 1, out + done.stderr  # the inversion is found: RLock is tracked
    assert "lock-order finding(s) fail this run" in out
    assert "`Scheduler._lock` -> `Scheduler._jobs_lock`" in out
    assert "2 lock classes checked" in out
    # Condition is a class: rebound too (isinstance() still accepts what was made before),
    # so what the scheduler makes is tracked and nothing is named as unchecked
    assert "not tracked, so not checked" not in out
    assert re.search(r"primitives? tracked \([^)]*\d+ condition", out), out


def test_a_class_derived_before_the_plugin_installed_is_named_as_unchecked(
        tmp_path: Path) -> None:
    # A subclass made before install keeps the original base: its objects are not tracked,
    # and the summary says so rather than claiming a clean run over them.
    (tmp_path / "app").mkdir()
    write(tmp_path, "app/__init__.py", "")
    write(tmp_path, "app/gate.py", """
        import threading

        class Gate(threading.Condition):
            pass
        """)
    write(tmp_path, "conftest.py", "import app.gate\n")
    write(tmp_path, "test_gate.py", """
        from app.gate import Gate

        def test_gate():
            with Gate():
                pass
        """)
    done = run_pytest(tmp_path, "--stuck", "-p", "no:xdist")
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "not tracked, so not checked: what is made through app.gate.Gate (a subclass of " \
           "threading.Condition defined before stuck was installed)" in out, out


def test_summary_says_how_much_was_checked(tmp_path: Path) -> None:
    write(tmp_path, "test_nested.py", """
        import threading

        outer, inner = threading.Lock(), threading.RLock()

        def test_nested():
            with outer:
                with inner:
                    pass
        """)
    done = run_pytest(tmp_path, "--stuck", "-p", "no:xdist")
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(x for x in done.stdout.splitlines() if "no lock-order problem found" in x)
    assert "2 lock classes checked" in line
    assert "1 mutex" in line and "rlock" in line


def test_a_test_whose_thread_waits_forever_fails_and_the_session_goes_on(
        tmp_path: Path) -> None:
    write(tmp_path, "test_forever.py", """
        import threading

        def test_thread_waits_on_an_event_nobody_sets():
            never = threading.Event()
            waiter = threading.Thread(target=never.wait, name="waiter", daemon=True)
            waiter.start()
            waiter.join()

        def test_after_it():
            pass
        """)
    done = run_pytest(tmp_path, "--stuck", "-p", "no:xdist", "test_forever.py")
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "FAILED test_forever.py::test_thread_waits_on_an_event_nobody_sets" in out
    assert "1 failed, 1 passed" in out
    assert "StallError" in out and "waiter" in out


SEMAPHORE_CYCLE_TEST = """
    import threading, time
    from stuck.runtime import registry

    def test_a_semaphore_cycle():
        rlock, sem = threading.RLock(), threading.Semaphore(1)
        holding = threading.Event()

        def holder():
            with sem:
                holding.set()
                with rlock:
                    pass

        with rlock:
            t = threading.Thread(target=holder, name="sem-holder", daemon=True)
            t.start()
            holding.wait()
            while registry.waits.get(t.ident) is None:  # until it waits for the RLock
                time.sleep(0.005)
            sem.acquire()  # closes the cycle: any thread may release a semaphore

    def test_after_it():
        pass
    """


def test_a_test_whose_semaphore_cycle_is_proven_fails_and_the_session_goes_on(
        tmp_path: Path) -> None:
    # Probable when the test's thread blocks (a semaphore has no owner); the watchdog proves it
    # (no thread of the session is left able to run) and raises it in the test's thread.
    write(tmp_path, "test_cycle.py", SEMAPHORE_CYCLE_TEST)
    done = run_pytest(tmp_path, "--stuck", "-p", "no:xdist", "test_cycle.py")
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "FAILED test_cycle.py::test_a_semaphore_cycle" in out
    assert "1 failed, 1 passed" in out
    assert "DeadlockError" in out and "is now certain" in out + done.stderr
    assert "this test formed a probable deadlock cycle; no error was raised" in out


def test_stuck_act_on_probable_raises_as_the_cycle_forms(tmp_path: Path) -> None:
    write(tmp_path, "test_cycle.py", SEMAPHORE_CYCLE_TEST)
    done = run_pytest(tmp_path, "--stuck", "--stuck-act-on", "probable", "-p", "no:xdist",
                      "test_cycle.py")
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "1 failed, 1 passed" in out
    assert "DeadlockError" in out
    assert "DEADLOCK (certain)" not in out + done.stderr  # raised before any proof
    bad = run_pytest(tmp_path, "--stuck", "--stuck-act-on", "maybe", "test_cycle.py")
    assert bad.returncode == 4 and "--stuck-act-on" in bad.stderr


def test_a_cycle_with_a_timed_wait_is_reported_without_claiming_an_error_was_raised(
        tmp_path: Path) -> None:
    """A lock-order inversion one side of which waits with a timeout: the cycle forms and ends
    by itself. The test fails with the report, which must not say DeadlockError was raised.
    The timed wait closes the cycle (it starts once the other thread waits): another thread's
    timed wait never counts as stuck (runtime.detect), so a cycle closed the other way round is
    left to the lock-order report."""
    write(tmp_path, "test_timed_cycle.py", """
        import threading, time
        import stuck
        import stuck.runtime

        def waits(name):
            if not stuck.runtime.installed():  # the plain run: no cycle is looked for
                return True
            return any(t.name == name and t.waits is not None
                       for t in stuck.snapshot().snapshot.threads())

        def test_inversion_with_a_timeout():
            a, b = threading.Lock(), threading.Lock()
            a_held, b_held = threading.Event(), threading.Event()

            def patient():
                with a:
                    a_held.set(); b_held.wait()
                    while not waits("eager"):
                        time.sleep(0.01)
                    if b.acquire(timeout=1.5):
                        b.release()

            def eager():
                with b:
                    b_held.set(); a_held.wait()
                    with a:
                        pass

            ts = [threading.Thread(target=patient, name="patient"),
                  threading.Thread(target=eager, name="eager")]
            for t in ts: t.start()
            for t in ts: t.join()
        """)
    plain = run_pytest(tmp_path, "test_timed_cycle.py")
    assert plain.returncode == 0, plain.stdout + plain.stderr
    done = run_pytest(tmp_path, "--stuck", "test_timed_cycle.py")
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "DEADLOCK" in out
    assert "got stuck.DeadlockError" not in out
    assert "this test formed a deadlock cycle; it was reported, and nothing was raised" in out


def test_a_test_whose_wait_a_signal_handler_ends_passes(tmp_path: Path) -> None:
    # The graceful-shutdown shape: the test's main thread waits for a semaphore that a SIGALRM
    # handler releases 3 s later (past the watchdog's judgement). Not a proven stall, so
    # nothing is raised; a handler that only fails the test (pytest-timeout's) would not count.
    write(tmp_path, "test_alarm.py", """
        import signal, threading

        def test_an_alarm_releases_the_semaphore():
            sem = threading.Semaphore(0)
            previous = signal.signal(signal.SIGALRM, lambda *a: sem.release())
            try:
                signal.alarm(3)
                sem.acquire()
            finally:
                signal.signal(signal.SIGALRM, previous)
        """)
    done = run_pytest(tmp_path, "--stuck", "-p", "no:xdist", "test_alarm.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert "StallError" not in done.stdout + done.stderr

"""stuck's watchdog thread is not the program's: ``threading.enumerate()``, ``active_count()``
and the thread-leak checks of test suites see the same threads under stuck as without it
(``stuck run``, ``stuck.install()``, ``pytest --stuck``), before and after the watchdog has
written a report; it never keeps the process alive, never prints at exit, and a forked child
gets a watchdog of its own, as before."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import stuck.runtime
from stuck.runtime import patch, registry

STUCK = [sys.executable, "-m", "stuck"]
LIMIT = 60

# What a program sees of its threads, at the start, with one thread of its own running, and
# after the watchdog has had time for several checks.
SEES_ITS_THREADS = """
    import sys, threading, time

    def show(when):
        seen = threading.enumerate()
        print(when, threading.active_count(), sorted(t.name for t in seen),
              sorted(type(t).__name__ for t in seen), len(threading._dangling), flush=True)

    show("start")
    go = threading.Event()
    worker = threading.Thread(target=go.wait, name="worker")
    worker.start()
    show("worker")
    time.sleep(1.2)  # the watchdog checks every 0.5 s, and sees a wait longer than 0.5 s
    show("waited")
    go.set()
    worker.join()
    show("end")
    """


def _program(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _run(cmd: list[str], cwd: Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=LIMIT,
                          env=env, **kwargs)


def _watchdog_idents(timeout: float = 5.0) -> set[int]:
    """The idents of stuck's own threads once one of them runs."""
    deadline = time.monotonic() + timeout
    while True:
        running = registry.own_idents & set(sys._current_frames())
        if running:
            return running
        assert time.monotonic() < deadline, "the watchdog thread did not start"
        time.sleep(0.01)


# --- stuck run ----------------------------------------------------------------------------


def test_stuck_run_program_sees_the_threads_of_a_plain_run(tmp_path: Path) -> None:
    program = _program(tmp_path, "sees.py", SEES_ITS_THREADS)
    plain = _run([sys.executable, str(program)], tmp_path)
    under = _run([*STUCK, "run", str(program)], tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert "start 1 ['MainThread']" in plain.stdout  # what the program prints is checked
    assert (under.returncode, under.stdout, under.stderr) == \
        (plain.returncode, plain.stdout, plain.stderr)


def test_stuck_run_module_sees_one_thread(tmp_path: Path) -> None:
    # The report that found it: `python -m pkg.mod` printed 1, `stuck run -m pkg.mod` 2.
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    _program(tmp_path, "pkg/mod.py", """
        import sys, threading
        print(__name__, threading.current_thread().name, len(threading.enumerate()),
              threading.active_count())
        sys.exit("bye")
        """)
    plain = _run([sys.executable, "-m", "pkg.mod"], tmp_path)
    under = _run([*STUCK, "run", "-m", "pkg.mod"], tmp_path)
    assert plain.stdout == "__main__ MainThread 1 1\n"
    assert (under.returncode, under.stdout, under.stderr) == \
        (plain.returncode, plain.stdout, plain.stderr)


def test_after_a_proven_stall_the_program_still_sees_only_its_threads(tmp_path: Path) -> None:
    # The watchdog has sampled, proven, written the report and raised in the main thread:
    # nothing of that registered a thread the program can see.
    program = _program(tmp_path, "stall.py", """
        import threading
        ev = threading.Event()
        try:
            ev.wait()
        except BaseException as exc:
            seen = threading.enumerate()
            print(type(exc).__name__, threading.active_count(),
                  [(t.name, type(t).__name__) for t in seen], flush=True)
        """)
    under = _run([*STUCK, "run", "--policy", "raise", str(program)], tmp_path)
    assert "STALL (certain)" in under.stderr
    assert under.stdout == "StallError 1 [('MainThread', '_MainThread')]\n", under.stderr
    assert under.returncode == 0


# --- stuck.install() in this process ------------------------------------------------------


@pytest.fixture
def fresh() -> None:
    if patch.active() is not None:
        pytest.skip(f"another instrumentation is installed: {patch.active()}")


def test_install_changes_no_thread_count(fresh: None) -> None:
    before = threading.enumerate()
    count = threading.active_count()
    stuck.runtime.install(report_stream=io.StringIO(), signal=None)
    try:
        own = _watchdog_idents()
        assert threading.enumerate() == before
        assert threading.active_count() == count
        assert not own & set(threading._active)  # type: ignore[attr-defined]
    finally:
        stuck.runtime.uninstall()
    assert not own & set(sys._current_frames())  # uninstall() stopped it
    assert not own & registry.own_idents


def _spin_until(stop: threading.Event) -> None:
    while not stop.is_set():  # busy: no progress the watchdog can see
        pass


class _ReportSink(io.StringIO):
    """A report stream that, as some program's objects do, asks who is writing."""

    def __init__(self) -> None:
        super().__init__()
        self.writers: list[str] = []

    def write(self, s: str) -> int:
        self.writers.append(threading.current_thread().name)
        return super().write(s)


@pytest.mark.parametrize("sink", [io.StringIO, _ReportSink])
def test_a_report_leaves_no_thread_behind(fresh: None, sink: type[io.StringIO]) -> None:
    # A hang report: the watchdog samples, takes the live snapshot, runs the rules, renders
    # and writes. A stream of the program's that calls threading.current_thread() registers a
    # _DummyThread for the watchdog's thread: stuck takes it out again after the check.
    stream = sink()
    stop = threading.Event()
    spinner = threading.Thread(target=_spin_until, args=(stop,), name="spinner", daemon=True)
    spinner.start()
    before = set(threading.enumerate())
    stuck.runtime.install(report_stream=stream, signal=None, hang_after=0.3)
    try:
        own = _watchdog_idents()
        deadline = time.monotonic() + 30
        while "HANG" not in stream.getvalue():
            assert time.monotonic() < deadline, "no hang report: " + stream.getvalue()
            time.sleep(0.05)
        time.sleep(0.5)  # past the end of that check
        assert set(threading.enumerate()) == before
        assert not own & set(threading._active)  # type: ignore[attr-defined]
        assert not [t for t in threading.enumerate() if isinstance(t, threading._DummyThread)]
        report = stream.getvalue()
        assert "spinner" in report
        assert "stuck-watchdog" not in report and not any(f"0x{i:x}" in report for i in own)
    finally:
        stuck.runtime.uninstall()
        stop.set()
        spinner.join(10)
    if isinstance(stream, _ReportSink):
        # The stream did ask, on a thread threading did not know: the watchdog's.
        assert stream.writers and all(w.startswith("Dummy-") for w in stream.writers)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_gets_its_own_invisible_watchdog(fresh: None) -> None:
    stuck.runtime.install(report_stream=io.StringIO(), signal=None)
    try:
        parent_own = _watchdog_idents()
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            code = 3
            try:
                os.close(read)
                child_own = _watchdog_idents()
                seen = [t.name for t in threading.enumerate()]
                # Only the child's own watchdog is left out (glibc may give it the ident the
                # parent's had: idents are reused), and the program sees its one thread.
                left_out = set(registry.own_idents)
                code = 0 if (left_out == child_own and len(child_own) == 1
                             and seen == [threading.current_thread().name]) else 1
                os.write(write, repr((sorted(parent_own), sorted(left_out), seen)).encode())
            finally:
                os._exit(code)
        os.close(write)
        with os.fdopen(read) as pipe:
            said = pipe.read()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, said
    finally:
        stuck.runtime.uninstall()


# --- pytest --stuck -----------------------------------------------------------------------


def test_thread_leak_checks_pass_under_pytest_stuck(tmp_path: Path) -> None:
    _program(tmp_path, "test_leaks.py", """
        import threading

        def test_only_the_main_thread():
            assert threading.active_count() == 1, threading.enumerate()
            assert threading.enumerate() == [threading.main_thread()]

        def test_a_thread_that_ends_leaves_none_behind():
            before = threading.enumerate()
            t = threading.Thread(target=lambda: None)
            t.start()
            t.join()
            assert threading.enumerate() == before
        """)
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist",
           "test_leaks.py"]
    plain = _run(cmd, tmp_path)
    under = _run([*cmd, "--stuck"], tmp_path)
    assert "2 passed" in plain.stdout, plain.stdout
    assert under.returncode == 0 and "2 passed" in under.stdout, under.stdout + under.stderr


# --- exit ---------------------------------------------------------------------------------


def test_program_ending_while_the_watchdog_checks_exits_cleanly(tmp_path: Path) -> None:
    # The watchdog checks every 50 ms, with a report stream that is slow to write, while the
    # program ends at a different moment each run: whatever the watchdog is doing then, the
    # process ends with the program's code, and nothing about the watchdog is printed.
    program = _program(tmp_path, "ends.py", """
        import sys, threading, time
        import stuck

        class SlowStream:
            def write(self, s):
                time.sleep(0.01)
                return len(s)
            def flush(self):
                pass

        stop = threading.Event()
        def spin():
            while not stop.is_set():
                pass
        threading.Thread(target=spin, daemon=True).start()
        stuck.install(report_stream=SlowStream(), signal=None, hang_after=0.2)
        time.sleep(float(sys.argv[1]))
        print("done", threading.active_count(), flush=True)
        sys.exit(5)
        """)
    for delay in ("0.21", "0.25", "0.3", "0.37", "0.45", "0.6"):
        done = _run([sys.executable, str(program), delay], tmp_path)
        assert (done.returncode, done.stdout) == (5, "done 2\n"), done.stderr
        assert done.stderr == "", done.stderr


def test_stucks_thread_is_left_out_by_ident_not_by_name(tmp_path: Path) -> None:
    # A program's thread that bears the watchdog's name is the program's: judged as any other
    # (it was left out of the facts by its name, and then said to have ended).
    program = _program(tmp_path, "namesake.py", """
        import threading
        ev = threading.Event()
        t = threading.Thread(target=ev.wait, name="stuck-watchdog")
        t.start()
        try:
            t.join()
        except BaseException as exc:
            print(type(exc).__name__, flush=True)
            ev.set()
        """)
    under = _run([*STUCK, "run", "--policy", "raise", str(program)], tmp_path)
    assert under.stdout == "StallError\n", under.stderr
    assert "STALL (certain): stuck-watchdog waits on event ev" in under.stderr, under.stderr
    assert "Blocked behind it: MainThread" in under.stderr
    assert "ended" not in under.stderr

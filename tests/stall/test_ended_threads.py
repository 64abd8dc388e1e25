"""Threads that ended, in a live stall report: each listed once under its own ident, with
its name and how it ended, and never under an id made up inside stuck."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from stuck.errors import EXIT_ABORT
from stuck.model import Thread

# A feeder that dies of ZeroDivisionError at line 5, leaving the eater on an empty queue.
PROGRAM = (Path(__file__).parent / "programs" / "feeder_died.py").read_text()


def test_a_waker_that_died_is_one_dead_thread(tmp_path: Path) -> None:
    script = tmp_path / "feeder_died.py"
    script.write_text(PROGRAM)
    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "stuck", "run", "--policy", "abort", "--json",
                           str(report), str(script)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == EXIT_ABORT, proc.stderr
    threads = [t for p in json.loads(report.read_text())["processes"] for t in p["threads"]]
    assert sorted(t["name"] for t in threads) == ["MainThread", "eater", "feeder"]
    feeder = next(t for t in threads if t["name"] == "feeder")
    assert feeder["state"] == "dead" and feeder["id"].startswith("0x")
    assert "Threads (3)" in proc.stderr
    assert "dead: feeder ended (ZeroDivisionError at feeder_died.py:5)\n" in proc.stderr
    assert "ended-" not in proc.stderr


def test_an_ended_thread_whose_ident_is_reused_is_shown_by_name() -> None:
    gone = Thread(id="0x7f00aa-ended-7f11bb", name="feeder", state="dead", ended="returned")
    assert gone.label() == "feeder ended"
    lwp = Thread(id="LWP 12", name="feeder")
    assert lwp.label() == "feeder (LWP 12)"


def run_abort(tmp_path: Path, name: str, source: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / name
    script.write_text(textwrap.dedent(source))
    return subprocess.run([sys.executable, "-m", "stuck", "run", "--policy", "abort",
                           str(script)], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)


def test_a_setter_that_died_and_was_dropped_is_named_with_its_exception(
        tmp_path: Path) -> None:
    # The program keeps no reference to the setter: stuck still names it, and what it died of.
    proc = run_abort(tmp_path, "setter_died.py", """
        import threading, time
        ready = threading.Event()
        def setter():
            cfg = {}
            cfg["port"]  # KeyError: the setter dies before set()
            ready.set()
        threading.Thread(target=setter, name="setter").start()
        ready.wait()
        """)
    assert proc.returncode == EXIT_ABORT, proc.stderr
    assert "setter (died of KeyError at setter_died.py:6)" in proc.stderr
    # The main thread is the only one left: nothing is "blocked for good itself".
    assert "MainThread is the program's only thread left" in proc.stderr
    assert "every other one is blocked for good itself" not in proc.stderr


def test_a_thread_that_returned_and_was_dropped_is_named(tmp_path: Path) -> None:
    proc = run_abort(tmp_path, "returned.py", """
        import threading
        ready = threading.Event()
        def helper():
            pass  # returns without setting it
        t = threading.Thread(target=helper, name="helper")
        t.start(); t.join()
        del t
        ready.wait()
        """)
    assert proc.returncode == EXIT_ABORT, proc.stderr
    assert "helper (returned)" in proc.stderr


def test_pytest_replacing_the_thread_hook_still_gets_the_exception_named(
        tmp_path: Path) -> None:
    # pytest puts its own threading.excepthook in place while each test runs.
    (tmp_path / "test_setter.py").write_text(textwrap.dedent("""
        import threading

        def test_event_never_set():
            ev = threading.Event()
            def setter():
                raise RuntimeError("boom")
            threading.Thread(target=setter).start()
            assert ev.wait()
        """))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "--stuck", "-p",
                           "no:cacheprovider", "-p", "no:xdist", "test_setter.py"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "(setter) (died of RuntimeError at test_setter.py:7)" in proc.stdout, proc.stdout
    assert "(setter) (returned)" not in proc.stdout

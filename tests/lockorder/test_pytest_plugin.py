"""``pytest --stuck`` on a small sample project, run in a subprocess (with a timeout, so a
deadlock that escaped detection fails this test instead of hanging the suite). The plugin is
loaded through its ``pytest11`` entry point, as in a user's project."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SAMPLE = Path(__file__).parent / "sample_project"


def run_pytest(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:randomly",
         "-W", "ignore::pytest.PytestUnhandledThreadExceptionWarning", *args],
        cwd=SAMPLE, env=env, capture_output=True, text=True, timeout=timeout)


def test_inversion_across_two_sequential_tests_fails_the_session() -> None:
    done = run_pytest("--stuck", "check_replica.py")
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "3 passed" in out  # every test passes on its own ...
    assert "lock-order finding(s) fail this run" in out  # ... the session does not
    assert "thread MainThread holds `Replica.raft_mu` (__init__.py:16) and takes " \
           "`Replica.coalesced_mu` (__init__.py:17)" in out
    assert "thread MainThread holds `Replica.coalesced_mu` (__init__.py:21) and takes " \
           "`Replica.raft_mu` (__init__.py:23)" in out
    assert "test_report_unreachable (" in out and "test_coalesce_heartbeats (" in out
    assert "Store" not in out.split("lock-order finding")[-1]  # one consistent order: silent


def test_without_stuck_the_same_tests_pass() -> None:
    done = run_pytest("check_replica.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "lock-order" not in done.stdout


def test_ini_option_turns_it_on() -> None:
    done = run_pytest("-o", "stuck=true", "check_replica.py")
    assert done.returncode == 1
    assert "lock-order finding(s) fail this run" in done.stdout


def test_deadlocking_test_fails_alone_and_the_session_continues() -> None:
    done = run_pytest("--stuck")
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "FAILED check_deadlock.py::test_two_threads_deadlock" in out
    assert "1 failed, 6 passed" in out
    assert "stuck: this test deadlocked" in out
    assert "DEADLOCK" in out and "2 threads wait for each other" in out


def test_fail_at_test_fails_the_test_that_closed_the_cycle() -> None:
    done = run_pytest("--stuck", "--stuck-fail-at=test", "check_replica.py")
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "FAILED check_replica.py::test_coalesce_heartbeats" in out
    assert "1 failed, 2 passed" in out
    assert "stuck: this test closed a lock-order cycle" in out


@pytest.mark.slow
def test_xdist_workers_graphs_are_merged_by_the_controller() -> None:
    # With two workers the two orders may be taken in different processes; each worker sends
    # its graph and the controller merges them, so the cycle is found either way, once.
    done = run_pytest("--stuck", "-n", "2", "check_replica.py")
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "3 passed" in out
    assert len(re.findall(r"LOCK-ORDER \((?:possible|probable)\): circular lock order", out)) == 1
    assert "`Replica.raft_mu` -> `Replica.coalesced_mu`" in out


def test_summary_says_how_much_was_checked(tmp_path: Path) -> None:
    (tmp_path / "test_orders.py").write_text(
        "import threading\n"
        "a = threading.Lock()\n"
        "def test_nested():\n"
        "    b = threading.Lock()\n"
        "    with a, b:\n"
        "        pass\n")
    (tmp_path / "test_nothing.py").write_text("def test_plain():\n    assert 1 + 1 == 2\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}

    def run(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "pytest", "--stuck", "-p",
                               "no:cacheprovider", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    out = run("test_orders.py")
    assert "no lock-order problem found" in out
    assert "2 lock classes checked" in out
    out = run("test_nothing.py")
    assert "0 lock classes checked" in out


@pytest.mark.slow
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_same_class_report_is_the_same_with_and_without_xdist(workers: list[str]) -> None:
    # Under -n the controller rebuilds the worker's finding: both locks keep their own
    # numbers and the reverse order's stack is shown, as in a run without -n.
    done = run_pytest("--stuck", *workers, "check_accounts.py")
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "2 passed" in out
    held = re.findall(r"holds `Account\.lock` #(\d+) \(check_accounts\.py:14\) and takes "
                      r"`Account\.lock` #(\d+) \(check_accounts\.py:15\)", out)
    assert len(held) == 2, out
    (x, y), (back_x, back_y) = held
    assert x != y and (back_x, back_y) == (y, x)
    assert "was not kept" not in out

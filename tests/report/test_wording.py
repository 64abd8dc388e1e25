"""Wording that reached users, each case once: options answered with what is expected."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from stuck.explore.cli import explore_command


@pytest.mark.parametrize(("strategy", "expected"), [
    ("pct:abc", "strategy 'pct:abc': DEPTH must be a whole number of 1 or more, as in pct:3"),
    ("pct:0", "DEPTH must be a whole number of 1 or more"),
    ("dfs:1.5", "strategy 'dfs:1.5': BOUND must be a whole number of 0 or more, as in dfs:2"),
    ("random:1", "strategy 'random:1': STAY (the probability of staying on a thread) must be a number from 0 up to, not including, 1, as in random:0.5"),
    ("nope", "unknown strategy 'nope'; choose one of: portfolio"),
])
def test_a_bad_strategy_says_what_is_expected(strategy: str, expected: str) -> None:
    res = CliRunner().invoke(explore_command, ["examples/three_lock_cycle.py::main",
                                               "--strategy", strategy])
    assert res.exit_code == 2
    assert expected in res.output
    assert "invalid literal" not in res.output and "Traceback" not in res.output
    assert res.output.count("\n") == 1


def test_a_label_that_is_a_phrase_gets_no_kind_in_front() -> None:
    from stuck.model import Resource

    assert Resource("r", "event", "an RCU grace period").named() == "an RCU grace period"
    assert Resource("r", "mutex", "raft_mu").named() == "mutex raft_mu"
    assert Resource("r", "unknown", "x").named() == "x"


def test_go_waits_say_where_once() -> None:
    from tests.dumps.helpers import report_for

    from stuck.report import text as text_report

    out = text_report.render(report_for(
        Path(__file__).resolve().parent.parent.parent / "examples" / "dumps"
        / "go-all-goroutines-asleep.txt"))
    assert "in main.main in main.main" not in out
    assert "waitgroup semacquire in main.main" in out


def test_a_kernel_grace_period_wait_reads_as_english() -> None:
    from tests.dumps.helpers import CORPUS, report_for

    from stuck.report import text as text_report

    out = text_report.render(report_for(
        CORPUS / "23-syzkaller-440-hung-rtnl-owner-in-synchronize-rcu.txt"))
    assert "waits for an RCU grace period" in out
    assert "event an RCU grace period" not in out


def test_lock_order_text_says_the_run_hung_when_it_did() -> None:
    from stuck.model import Finding, Report, Snapshot, Source
    from stuck.runtime import lockorder, policy

    assert lockorder._run_words().startswith("This run did not hang")
    deadlock = Finding("deadlock", "certain", "a and b wait for each other")
    policy.findings_seen.append(Report(Snapshot(Source("live")), findings=[deadlock]))
    try:
        assert lockorder._run_words().startswith("This run did deadlock")
    finally:
        policy.findings_seen.clear()


THREAD_HELD_IN_T = """
import threading
lock = threading.Lock()
def worker():
    with lock:
        pass
lock.acquire()
t = threading.Thread(target=worker, name="flusher")
t.start()
t.join()
"""


def test_a_joined_thread_is_named_by_its_name_not_its_variable(tmp_path: Path) -> None:
    import subprocess
    import sys

    prog = tmp_path / "prog.py"
    prog.write_text(THREAD_HELD_IN_T, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "stuck", "run", "--policy", "abort", str(prog)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 86, done.stderr
    assert "MainThread joins flusher" in done.stderr
    # (which of the two closes the cycle is up to the scheduler: the graph starts there)
    assert "waits for thread flusher" in done.stderr
    assert "thread t " not in done.stderr and "(0x" not in done.stderr


def test_a_damaged_replay_token_is_called_damaged_not_a_code_change() -> None:
    from stuck.explore.replayer import TokenError, decode, encode

    token = encode([0, 1, 1, 0, 2, 2, 2, 1], "deadlock")
    assert decode(token).choices == [0, 1, 1, 0, 2, 2, 2, 1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for i in range(3, len(token)):  # every single-character change of the body
        changed = alphabet[(alphabet.index(token[i]) + 1) % len(alphabet)]
        damaged = token[:i] + changed + token[i + 1:]
        try:
            again = decode(damaged)
        except TokenError as exc:
            assert "damaged" in str(exc) and "code" not in str(exc)
        else:  # the last character's spare bits: the same bytes, the same schedule
            assert i == len(token) - 1 and again.choices == [0, 1, 1, 0, 2, 2, 2, 1]


def test_an_old_token_without_a_checksum_is_still_read() -> None:
    import base64

    from stuck.explore.replayer import decode

    body = bytes([1, 2, 0, 3, 1, 2])  # deadlock; runs (0 x3), (1 x2)
    old = "s1:" + base64.urlsafe_b64encode(body).decode().rstrip("=")
    token = decode(old)
    assert token.choices == [0, 0, 0, 1, 1] and token.verdict == "deadlock"


def test_an_explore_schedule_tells_two_locks_of_one_line_apart() -> None:
    target = str(Path(__file__).resolve().parent / "prog_explore_accounts.py")
    res = CliRunner().invoke(explore_command, [f"{target}::transfer_both_ways",
                                               "--executions", "300", "--no-progress"])
    assert res.exit_code == 1, res.output
    cycle = next(line for line in res.output.splitlines() if line.startswith("cycle:"))
    # each account's lock by its owner's tag, as `stuck run` names them
    assert "Account#1.lock" in cycle and "Account#2.lock" in cycle


def test_one_confidence_for_one_evidence_however_the_tests_are_split() -> None:
    """The same tests give the same lock-order confidence serially and under xdist: each
    worker's main thread is the one main thread of a serial run."""
    import re

    from tests.lockorder.test_pytest_plugin import run_pytest

    found = []
    for split in ([], ["-n", "2"]):
        done = run_pytest("--stuck", *split, "check_replica.py")
        assert done.returncode == 1, done.stdout + done.stderr
        found.append(re.findall(r"LOCK-ORDER \((\w+)\): circular lock order", done.stdout))
    assert found[0] == found[1] == ["possible"]


# A watchdog over a process whose only threads are its main thread and one spinning thread:
# prints what the watchdog wrote once it has reminded of the same state and checked twice more.
SAME_STATE_TWICE = """
import io, sys, threading, time
from stuck.runtime.watchdog import Watchdog, WatchdogConfig

LIMIT = 0.4
flag = [False]

def spin():
    while not flag[0]:
        pass

def wait_until(check, seconds=30.0):
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            sys.exit("gave up waiting")
        time.sleep(0.02)

spinner = threading.Thread(target=spin, name="wd-again", daemon=True)
spinner.start()
out = io.StringIO()
dog = Watchdog(WatchdogConfig(hang_after=LIMIT, interval=0.05, stream=out, last_resort=False,
                              report_every=LIMIT))
dog.start()
try:
    wait_until(lambda: any(f.kind == "hang" and "wd-again" in f.threads
                           for r in list(dog.reports) for f in r.findings))
    wait_until(lambda: "still the same" in out.getvalue())
    time.sleep(LIMIT * 2)
finally:
    dog.stop()
    flag[0] = True
    spinner.join(timeout=5)
print(out.getvalue(), end="")
"""


def test_the_same_state_is_reported_once_then_reminded_in_one_line(tmp_path: Path) -> None:
    # In a process of its own: the watchdog judges every thread of its process, and a test
    # runner's threads (pytest-xdist's, blocked reading from its controller) are judged too.
    import os
    import subprocess
    import sys

    prog = tmp_path / "again.py"
    prog.write_text(SAME_STATE_TWICE, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    done = subprocess.run([sys.executable, str(prog)], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert text.count("wd-again has made no progress") == 1, text
    assert "stuck: still the same 1 hang as reported above, for " in text, text

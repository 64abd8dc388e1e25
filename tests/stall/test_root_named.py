"""A stall's headline names its root: a lock whose holder ended, and a future whose only
worker is itself blocked for good. Both are certain when no thread is left able to run, so
``--policy abort`` ends the program (86) instead of leaving it hung."""

from __future__ import annotations

from pathlib import Path

import pytest

from stuck.errors import EXIT_ABORT

from .test_verdict_table import check_aborted, check_taken_after, names, stuck_run, the_stall

HOLDER_ENDED = """
    import threading
    lock = threading.{kind}()
    def grab():
        lock.acquire()  # returns holding it
    grabber = threading.Thread(target=grab, name="grabber")
    grabber.start(); grabber.join()
    print("formed", time.time(), flush=True)
    with lock:
        print("never")
"""

WORKER_BLOCKED = """
    import concurrent.futures, threading
    ready = threading.Event()
    def compact():
        ready.wait()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="flush")
    future = pool.submit(compact)
    print("formed", time.time(), flush=True)
    future.result()
"""


@pytest.mark.parametrize("kind", ["Lock", "RLock"])
def test_lock_whose_holder_ended_is_named_as_such(tmp_path: Path, kind: str) -> None:
    code, err, data, formed, _ = stuck_run(tmp_path, HOLDER_ENDED.format(kind=kind),
                                          "--policy", "abort")
    check_aborted(code, err, data, formed)
    stall = the_stall(data)
    assert stall["confidence"] == "certain"
    assert stall["details"]["rule"] == "lock-owner-ended"
    assert "held by grabber, which ended without releasing it" in stall["summary"]
    assert names(data, stall["threads"]) == {"MainThread"}
    assert "never" not in err
    # the holder is known, so the report does not say that the signaller is unknown
    assert not any("would signal" in m for m in stall["missing_evidence"])


def test_future_names_what_its_blocked_worker_waits_on(tmp_path: Path) -> None:
    code, err, data, formed, _ = stuck_run(tmp_path, WORKER_BLOCKED, "--policy", "abort")
    check_aborted(code, err, data, formed)
    stall = the_stall(data)
    assert stall["confidence"] == "certain"
    assert "waits on the future of compact" in stall["summary"]
    assert "its worker flush_0 is itself blocked for good on event ready" in stall["summary"]
    assert names(data, stall["threads"]) == {"MainThread", "flush_0"}


NESTED_POOL = """
    from concurrent.futures import ThreadPoolExecutor
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pool")
    def inner():
        return 1
    def outer():
        return pool.submit(inner).result()  # queued behind itself: the only worker waits
    job = pool.submit(outer)
    print("formed", time.time(), flush=True)
    job.result()
"""


def test_waiter_on_a_deadlocked_workers_task_is_blocked_behind_the_deadlock(
        tmp_path: Path) -> None:
    """The pool's only worker waits for a task queued behind itself: a deadlock. The main
    thread waits for the worker's task: blocked behind it, not a second finding."""
    code, err, data, formed, _ = stuck_run(tmp_path, NESTED_POOL, "--policy", "abort")
    assert code == EXIT_ABORT, err
    assert "aborting (policy abort, a proven deadlock)" in err
    check_taken_after(data, formed)
    [deadlock] = data["findings"]
    assert (deadlock["kind"], deadlock["confidence"]) == ("deadlock", "certain")
    assert names(data, deadlock["threads"]) == {"pool_0"}
    assert names(data, deadlock["blocked_behind"]) == {"MainThread"}
    # Printed in full once, probable, when the worker blocked; then one line once proven.
    assert err.count("DEADLOCK (") == 1 and "DEADLOCK (probable)" in err
    assert "stuck: the deadlock reported above (probable) is now certain" in err

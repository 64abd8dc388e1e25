"""Every deadlock shape is found when it forms, under policy ``raise``: the thread that closes
the cycle gets DeadlockError before blocking, holding what it held, and the program recovers."""

from __future__ import annotations

import concurrent.futures
import io
import queue
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

import stuck
from stuck.runtime import policy, registry

from .helpers import join_all, start, wait_until_blocked

pytestmark = pytest.mark.usefixtures("live")


def _names(error: stuck.DeadlockError) -> set[str]:
    assert error.report is not None
    threads = error.report.snapshot.thread_map()
    return {threads[e.thread].name or "" for e in error.finding.cycle}


def test_two_lock_cycle_raises_in_the_closing_thread_and_recovers(live: io.StringIO) -> None:
    raft_mu = threading.Lock()
    coalesced_mu = threading.Lock()
    errors: list[tuple[str, stuck.DeadlockError, bool]] = []
    finished: list[str] = []

    gate = threading.Barrier(2)

    def first_then(first: Any, second: Any) -> None:
        with first:
            gate.wait()
            if threading.current_thread().name == "heartbeat-coalescer":
                wait_until_blocked(x, "acquire")
            try:
                with second:
                    pass
            except stuck.DeadlockError as exc:
                errors.append((threading.current_thread().name, exc,
                               first.locked() and first._owner == threading.get_ident()))
        finished.append(threading.current_thread().name)

    x = start(first_then, "raft-scheduler", raft_mu, coalesced_mu)
    y = start(first_then, "heartbeat-coalescer", coalesced_mu, raft_mu)
    join_all(x, y)
    assert len(errors) == 1
    name, error, still_held = errors[0]
    assert name == "heartbeat-coalescer"  # the last to block closes the cycle
    assert still_held
    assert error.finding.kind == "deadlock" and error.finding.confidence == "certain"
    assert _names(error) == {"raft-scheduler", "heartbeat-coalescer"}
    assert len(error.finding.cycle) == 2
    labels = {r.label for r in error.report.snapshot.resources} if error.report else set()
    assert {"raft_mu", "coalesced_mu"} <= labels
    assert "DEADLOCK (certain)" in live.getvalue()
    assert sorted(finished) == ["heartbeat-coalescer", "raft-scheduler"]


def test_three_lock_cycle() -> None:
    locks = [threading.Lock() for _ in range(3)]
    gate = threading.Barrier(3)
    errors: list[stuck.DeadlockError] = []
    threads: list[threading.Thread] = []

    def worker(i: int) -> None:
        with locks[i]:
            gate.wait()
            if i == 2:
                wait_until_blocked(threads[0], "acquire")
                wait_until_blocked(threads[1], "acquire")
            try:
                with locks[(i + 1) % 3]:
                    pass
            except stuck.DeadlockError as exc:
                errors.append(exc)

    threads.extend(start(worker, f"t{i}", i) for i in range(3))
    join_all(*threads)
    assert len(errors) == 1
    assert _names(errors[0]) == {"t0", "t1", "t2"}
    assert len(errors[0].finding.cycle) == 3


SELF_REACQUIRE = """
import threading, stuck
stuck.install(policy="raise", signal=None)
lock = threading.Lock()
with lock:
    try:
        lock.acquire()
    except stuck.DeadlockError as exc:
        print("raised", len(exc.finding.cycle), "already holds" in exc.finding.summary,
              lock.locked())
print("released", not lock.locked())
rlock = threading.RLock()
with rlock, rlock:  # reentrant: no finding
    print("rlock ok")
"""


def test_reacquiring_a_non_reentrant_lock_it_holds() -> None:
    # In a child: whether anyone else could release the Lock depends on every thread of the
    # process, and a test runner's own threads (pytest-xdist's) could.
    out = subprocess.run([sys.executable, "-c", SELF_REACQUIRE], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.split("\n")[:3] == ["raised 1 True True", "released True", "rlock ok"], \
        out.stderr


def test_a_lock_used_as_a_signal_is_not_a_deadlock() -> None:
    # Any thread may release a Lock: waiting on one you hold while another thread can still run
    # to release it is a wait, not a deadlock.
    done = threading.Lock()
    done.acquire()

    def signaller() -> None:
        time.sleep(0.05)
        done.release()

    t = start(signaller, "signaller")
    done.acquire()  # under policy raise: must not raise
    done.release()
    join_all(t)


SIGNAL_FROM_A_NEW_THREAD = """
import _thread, threading, stuck
stuck.install(policy="raise", signal=None)
for _ in range(200):
    lock = threading.Lock()
    lock.acquire()
    _thread.start_new_thread(lock.release, ())  # returns before the new thread runs
    lock.acquire()  # the only other thread is still starting: a wait, not a deadlock
    lock.release()
print("ok")
"""


def test_a_lock_released_by_a_thread_still_starting_is_not_a_deadlock() -> None:
    # In a child, alone: with no other thread of the process able to run, only the thread
    # being started can release the lock, and it cannot be seen until it runs.
    out = subprocess.run([sys.executable, "-c", SIGNAL_FROM_A_NEW_THREAD], capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


def test_rlock_and_semaphore_in_a_cycle() -> None:
    rlock = threading.RLock()
    sem = threading.BoundedSemaphore(1)
    errors: list[stuck.DeadlockError] = []
    holder_blocked = threading.Event()

    def holder() -> None:
        with sem, rlock:
            pass

    with rlock:
        t = threading.Thread(target=lambda: None)
        sem_holder = start(lambda: (sem.acquire(), holder_blocked.set(), rlock.acquire()),
                           "sem-holder")
        wait_until_blocked(sem_holder)
        try:
            sem.acquire()
        except stuck.DeadlockError as exc:
            errors.append(exc)
    del t
    join_all(sem_holder)
    assert len(errors) == 1
    assert errors[0].finding.confidence == "probable"  # a semaphore may be released by anyone


def test_join_cycle() -> None:
    errors: list[stuck.DeadlockError] = []
    threads: dict[str, threading.Thread] = {}
    ready = threading.Event()

    def first() -> None:
        ready.wait(5)
        threads["second"].join()

    def second() -> None:
        ready.wait(5)
        wait_until_blocked(threads["first"], "join")
        try:
            threads["first"].join()
        except stuck.DeadlockError as exc:
            errors.append(exc)

    threads["first"] = start(first, "first")
    threads["second"] = start(second, "second")
    ready.set()
    join_all(threads["first"], threads["second"])
    assert len(errors) == 1
    assert _names(errors[0]) == {"first", "second"}


def test_joining_a_thread_that_waits_for_a_lock_you_hold() -> None:
    lock = threading.Lock()
    with lock:
        t = start(lambda: lock.acquire() and lock.release(), "needs-the-lock")
        wait_until_blocked(t)
        with pytest.raises(stuck.DeadlockError) as info:
            t.join()
        assert lock.locked()
    join_all(t)
    assert {e.thread for e in info.value.finding.cycle} == {
        f"0x{threading.get_ident():x}", f"0x{t.ident:x}"}


def test_pool_starvation_single_worker() -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        def outer() -> int:
            inner = pool.submit(lambda: 1)
            return int(inner.result()) + 1

        future = pool.submit(outer)
        with pytest.raises(stuck.DeadlockError) as info:
            future.result(timeout=10)
    assert "complete" in info.value.finding.summary
    assert info.value.finding.confidence == "probable"


def test_pool_starvation_all_workers_busy() -> None:
    gate = threading.Barrier(2)
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        def outer() -> str:
            gate.wait(5)
            inner = pool.submit(lambda: "inner")
            try:
                return str(inner.result())
            except stuck.DeadlockError:
                return "raised"

        results = sorted(f.result(timeout=10) for f in [pool.submit(outer), pool.submit(outer)])
    assert results == ["inner", "raised"]


def test_waiting_on_a_future_whose_task_waits_for_your_lock() -> None:
    lock = threading.Lock()
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        with lock:
            future = pool.submit(lambda: lock.acquire() and lock.release())
            worker = next(iter(pool._threads))
            wait_until_blocked(worker, "acquire")
            with pytest.raises(stuck.DeadlockError) as info:
                future.result()
            assert lock.locked()
        future.result(timeout=10)
    assert len(info.value.finding.cycle) == 2
    assert info.value.finding.cycle[0].held_by == f"0x{worker.ident:x}"


def test_two_full_queues() -> None:
    requests: queue.Queue[int] = queue.Queue(maxsize=1)
    responses: queue.Queue[int] = queue.Queue(maxsize=1)
    errors: list[stuck.DeadlockError] = []

    def engine() -> None:
        while True:
            try:
                item = requests.get(timeout=1)
            except queue.Empty:
                return
            responses.put(item)

    def gateway() -> None:
        requests.put(0)
        responses.get()  # a batch of one works, and makes the gateway a known reader
        try:
            for i in range(5):  # more than the two queues hold together
                requests.put(i)
        except stuck.DeadlockError as exc:
            errors.append(exc)
            while True:  # drain to let the engine finish
                try:
                    responses.get(timeout=0.5)
                except queue.Empty:
                    return

    e = start(engine, "engine")
    g = start(gateway, "gateway")
    join_all(g, e)
    assert len(errors) == 1
    assert _names(errors[0]) == {"engine", "gateway"}
    assert "full queue" in errors[0].finding.summary


def test_timed_wait_closing_a_cycle_is_reported_not_raised(live: io.StringIO) -> None:
    a, b = threading.Lock(), threading.Lock()
    with a:
        t = start(lambda: b.acquire() and (a.acquire(), a.release(), b.release()), "t")
        wait_until_blocked(t)
        assert b.acquire(timeout=0.05) is False  # the timeout still ends the wait
    join_all(t)
    assert "DEADLOCK (probable)" in live.getvalue()
    assert "timeout" in live.getvalue()


def test_condition_reacquire_never_raises() -> None:
    cond = threading.Condition(threading.Lock())
    got: list[bool] = []

    def waiter() -> None:
        with cond:
            got.append(cond.wait(5))

    t = start(waiter, "waiter")
    wait_until_blocked(t, "wait")
    with cond:
        cond.notify()
    join_all(t)
    assert got == [True]
    assert policy.findings_seen == []


def test_no_cycle_when_the_owner_is_running() -> None:
    lock = threading.Lock()
    release = threading.Event()

    def owner() -> None:
        with lock:
            release.wait(5)

    t = start(owner, "owner")
    while not lock.locked():
        pass
    threading.Timer(0.05, release.set).start()
    with lock:  # blocks until the owner lets go: a wait, not a deadlock
        pass
    join_all(t)
    assert policy.findings_seen == []
    assert registry.waits.get(threading.get_ident()) is None

"""Every deadlock shape is found when it forms, under policy ``raise``: the thread that closes
the cycle gets DeadlockError before blocking, holding what it held, and the program recovers."""

from __future__ import annotations

import concurrent.futures
import io
import json
import queue
import re
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

import stuck
from stuck.runtime import policy, registry

from .helpers import BOUND, join_all, start, wait_until_blocked

pytestmark = pytest.mark.usefixtures("live")


def _names(error: stuck.DeadlockError) -> set[str]:
    assert error.report is not None
    threads = error.report.snapshot.thread_map()
    return {threads[e.thread].name or "" for e in error.finding.cycle}


# Lock cycles run in a child whose main thread joins without a timeout: a plain Lock may be
# released by any thread, so a cycle through Locks is certain only when no thread outside it
# can still run (a test runner's main thread in a timed join could, once its timeout ends).
LOCK_CYCLE = """
import io, json, sys, threading, time
import stuck
from stuck.runtime import registry
stream = io.StringIO()
stuck.install(policy="raise", report_stream=stream, signal=None)
n = int(sys.argv[1])
names = sys.argv[2:]
locks = [threading.Lock(name=name) for name in names]
gate = threading.Barrier(n)
errors, finished, threads = [], [], []

def wait_until_blocked(t):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        record = registry.waits.get(t.ident or -1)
        if record is not None and record.op == "acquire":
            return
        time.sleep(0.005)
    raise AssertionError(t.name + " never blocked")

def worker(i):
    first, second = locks[i], locks[(i + 1) % n]
    with first:
        gate.wait()
        if i == n - 1:
            for t in threads[:-1]:
                wait_until_blocked(t)
        try:
            with second:
                pass
        except stuck.DeadlockError as exc:
            threads_by_id = exc.report.snapshot.thread_map()
            errors.append({
                "closer": threading.current_thread().name,
                "still_held": first.locked() and first._owner == threading.get_ident(),
                "kind": exc.finding.kind, "confidence": exc.finding.confidence,
                "cycle": sorted(threads_by_id[e.thread].name for e in exc.finding.cycle),
                "labels": sorted(r.label for r in exc.report.snapshot.resources)})
    finished.append(threading.current_thread().name)

threads.extend(threading.Thread(target=worker, args=(i,), name=f"t{i}") for i in range(n))
for t in threads:
    t.start()
for t in threads:
    t.join()  # no timeout: nothing outside the cycle can run
print(json.dumps({"errors": errors, "finished": sorted(finished),
                  "certain_reported": "DEADLOCK (certain)" in stream.getvalue()}))
"""


def _lock_cycle(*names: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", LOCK_CYCLE, str(len(names)), *names],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_two_lock_cycle_raises_in_the_closing_thread_and_recovers() -> None:
    result = _lock_cycle("raft_mu", "coalesced_mu")
    [error] = result["errors"]
    assert error["closer"] == "t1"  # the last to block closes the cycle
    assert error["still_held"]
    assert (error["kind"], error["confidence"]) == ("deadlock", "certain")
    assert error["cycle"] == ["t0", "t1"]
    assert {"raft_mu", "coalesced_mu"} <= set(error["labels"])
    assert result["certain_reported"]
    assert result["finished"] == ["t0", "t1"]


def test_three_lock_cycle() -> None:
    result = _lock_cycle("a", "b", "c")
    [error] = result["errors"]
    assert error["cycle"] == ["t0", "t1", "t2"]
    assert result["finished"] == ["t0", "t1", "t2"]


def test_a_lock_cycle_is_not_certain_while_another_thread_can_release(
        live: io.StringIO) -> None:
    # The main thread (here, the test) is able to run: it could release either Lock, so the
    # cycle is no proof, and policy raise leaves the threads alone.
    a, b = threading.Lock(), threading.Lock()
    gate = threading.Barrier(2)

    def worker(first: Any, second: Any) -> None:
        first.acquire()
        gate.wait()
        second.acquire()  # ends holding both: the main thread released what it waited for

    x = start(worker, "x", a, b)
    y = start(worker, "y", b, a)
    wait_until_blocked(x, "acquire")
    wait_until_blocked(y, "acquire")
    assert policy.findings_seen == []
    assert "DEADLOCK" not in live.getvalue()
    a.release()  # any thread may release a Lock: the cycle ends
    b.release()
    join_all(x, y)


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


RAW_THREAD_ERROR = """
import _thread, sys, time
if sys.argv[1] == "stuck":
    import stuck
    stuck.install(signal=None)
def boom():
    raise ValueError("from a raw thread")
done = _thread.allocate_lock()
done.acquire()
_thread.start_new_thread(boom, ())
_thread.start_new_thread(done.release, ())
done.acquire()
time.sleep(0.2)
"""


def test_an_error_in_a_thread_started_with_thread_is_printed_as_without_stuck() -> None:
    # stuck counts such a thread as starting until it runs (see the test above): the error
    # it raises is still reported by the same hook, with the same traceback (no stuck frame).
    def run(mode: str) -> str:
        out = subprocess.run([sys.executable, "-c", RAW_THREAD_ERROR, mode],
                             capture_output=True, text=True, timeout=60)
        return re.sub(r"0x[0-9a-f]+", "ADDR", out.stderr)

    plain = run("plain")
    assert "ValueError: from a raw thread" in plain
    assert run("stuck") == plain


# A cycle through a semaphore: any thread may release a semaphore, so when MainThread blocks
# the cycle rests on who took its permit, and is probable; raise and abort leave it to the
# watchdog, which proves it once no thread able to run can reach the semaphore. In a child,
# so that no thread of the test runner (able to run, holding references) keeps it unproven.
SEMAPHORE_CYCLE = """
import sys, threading, time
import stuck
stuck.install(policy=sys.argv[1], act_on=sys.argv[2], signal=None)
rlock = threading.RLock()
sem = threading.Semaphore(1)
holding = threading.Event()

def holder():
    sem.acquire()
    holding.set()
    with rlock:  # MainThread holds it: the cycle
        pass
    sem.release()

with rlock:
    t = threading.Thread(target=holder, name="sem-holder")
    t.start()
    holding.wait()
    while getattr(stuck.runtime.registry.waits.get(t.ident), "op", None) != "acquire":
        time.sleep(0.005)
    try:
        sem.acquire()
        print("acquired")
    except stuck.DeadlockError as exc:
        print("DeadlockError", exc.finding.confidence, sorted(
            exc.report.snapshot.thread(e.thread).name for e in exc.finding.cycle))
t.join()
print("finished")
"""


def _child(program: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", program, *args], capture_output=True,
                          text=True, timeout=60)


def test_a_semaphore_cycle_is_raised_once_the_watchdog_proves_it() -> None:
    out = _child(SEMAPHORE_CYCLE, "raise", "certain")
    assert out.returncode == 0, out.stderr
    # Not at block time (probable: its report says the policy waits for proof), but in the
    # main thread, blocked in the cycle, once the watchdog has proven it.
    assert out.stdout.splitlines() == ["DeadlockError certain ['MainThread', 'sem-holder']",
                                       "finished"], out.stderr
    first, _, later = out.stderr.partition("is now certain")
    assert "DEADLOCK (probable)" in first and "acts only on certain findings" in first
    assert "no thread outside this cycle can" in later


def test_a_semaphore_cycle_aborts_once_the_watchdog_proves_it() -> None:
    out = _child(SEMAPHORE_CYCLE, "abort", "certain")
    assert out.returncode == 86, out.stderr
    assert out.stdout == ""
    assert out.stderr.index("DEADLOCK (probable)") < out.stderr.index("is now certain")
    assert "aborting (policy abort, a proven deadlock)" in out.stderr


def test_a_semaphore_cycle_is_raised_at_once_when_asked_to_act_on_probable() -> None:
    out = _child(SEMAPHORE_CYCLE, "raise", "probable")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["DeadlockError probable ['MainThread', 'sem-holder']",
                                       "finished"], out.stderr
    assert "acts only on certain findings" not in out.stderr
    assert "DEADLOCK (certain)" not in out.stderr


def test_a_semaphore_cycle_aborts_at_once_when_asked_to_act_on_probable() -> None:
    out = _child(SEMAPHORE_CYCLE, "abort", "probable")
    assert out.returncode == 86, out.stderr
    assert "DEADLOCK (probable)" in out.stderr and "DEADLOCK (certain)" not in out.stderr


# A worker closes a cycle through a semaphore by acquiring an RLock: probable when it blocks,
# so it waits in slices; once the watchdog proves the cycle, the DeadlockError is raised in it
# (not in the main thread joining it), it unwinds and gives its permit back, and the program
# ends as under the old raise-at-once.
CLOSED_BY_A_WORKER = """
import sys, threading, time
import stuck
from stuck.runtime import registry
stuck.install(policy="raise", signal=None)
rlock, sem = threading.RLock(), threading.Semaphore(1)
a_holds, b_holds = threading.Event(), threading.Event()
out = []

def a():
    with sem:
        a_holds.set()
        b_holds.wait()
        while getattr(registry.waits.get(tb.ident), "op", None) != "acquire":
            time.sleep(0.005)
        time.sleep(float(sys.argv[1]))
        try:
            with rlock:  # b holds it and waits for the permit a holds: a closes the cycle
                out.append("a took the rlock")
        except stuck.DeadlockError as exc:
            out.append(f"a: DeadlockError {exc.finding.confidence}")

def b():
    a_holds.wait()
    with rlock:
        b_holds.set()
        with sem:
            out.append("b took the permit")

tb = threading.Thread(target=b, name="b")
ta = threading.Thread(target=a, name="a")
tb.start()
ta.start()
ta.join()
tb.join()
print(out)
"""


# How long after b's wait began a closes the cycle: at once, or (as on a loaded machine, where
# a gets the CPU late) after b's wait has lasted past the watchdog's settle time, when b alone
# looks like a stall with a behind it. The verdict is the deadlock either way.
@pytest.mark.parametrize("late", ["0", "0.3"])
def test_a_probable_cycle_a_worker_closed_is_raised_in_it_once_proven(late: str) -> None:
    out = _child(CLOSED_BY_A_WORKER, late)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "['a: DeadlockError certain', 'b took the permit']"], out.stderr
    assert out.stderr.index("DEADLOCK (probable)") < out.stderr.index("is now certain")


# Two full queues, each side waiting for the other to take: probable when it forms (who takes
# from a queue is inferred from who took so far), and never proven, since a thread able to run
# (the drainer, asleep) holds the queues. It does take from them later: the program ends as it
# would without stuck, whatever the policy, unless the user asked to act on probable findings.
QUEUE_CYCLE = """
import queue, sys, threading, time
import stuck
stuck.install(policy=sys.argv[1], act_on=sys.argv[2], signal=None)
requests, responses = queue.Queue(maxsize=1), queue.Queue(maxsize=1)

def engine():
    while (item := requests.get()) is not None:
        responses.put(item)

def gateway():
    requests.put(0)
    responses.get()  # a round trip: each is now a known taker of the other's queue
    for i in range(4):  # more than the two queues hold together: the cycle
        requests.put(i)
    requests.put(None)

def drainer(late):
    time.sleep(late)  # able to run all along: it could take from either queue, and does
    for _ in range(4):
        responses.get()

threads = [threading.Thread(target=f, args=a, name=f.__name__)
           for f, a in ((engine, ()), (gateway, ()), (drainer, (2.5,)))]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("finished")
"""


@pytest.mark.parametrize("policy", ["raise", "abort"])
def test_a_queue_cycle_a_thread_able_to_run_could_end_is_left_alone(policy: str) -> None:
    out = _child(QUEUE_CYCLE, policy, "certain")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["finished"], out.stderr
    assert "DEADLOCK (probable)" in out.stderr
    assert "DEADLOCK (certain)" not in out.stderr
    assert f"Policy {policy} acts only on certain findings" in out.stderr


def test_a_queue_cycle_aborts_at_once_when_asked_to_act_on_probable() -> None:
    out = _child(QUEUE_CYCLE, "abort", "probable")
    assert out.returncode == 86, out.stderr
    assert "DEADLOCK (probable)" in out.stderr


# The cycles below pass through futures or queues, and the test's own thread, able to run (its
# waits are timed) and holding the pool or the queues, could still end them: they can never be
# proven, and raise acts on them only when the user opts in (see the semaphore tests above).
@pytest.mark.usefixtures("act_on_probable")
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


@pytest.mark.usefixtures("act_on_probable")
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


FUTURE_OF_A_TASK_WAITING_FOR_YOUR_LOCK = """
import concurrent.futures, threading, time
import stuck
from stuck.runtime import registry
stuck.install(policy="raise", signal=None)
lock = threading.RLock()
with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
    with lock:
        future = pool.submit(lambda: lock.acquire() and lock.release())
        worker = next(iter(pool._threads))
        while getattr(registry.waits.get(worker.ident), "op", None) != "acquire":
            time.sleep(0.005)
        try:
            future.result()
        except stuck.DeadlockError as exc:
            threads = exc.report.snapshot.thread_map()
            print("DeadlockError", exc.finding.confidence, lock._is_owned(),
                  sorted((threads[e.thread].name, threads[e.held_by].name)
                         for e in exc.finding.cycle))
    future.result(timeout=10)
print("finished")
"""


def test_waiting_on_a_future_whose_task_waits_for_your_lock() -> None:
    # The future's step rests on who runs it (a worker; a thread could still complete it by
    # hand), so the cycle is probable when the main thread blocks, and proven by the watchdog
    # once no thread able to run can reach the future: DeadlockError in the main thread, which
    # still holds the RLock, and recovers. In a child: a thread the test runner left running
    # could reach the future, and rightly keep the cycle unproven.
    out = _child(FUTURE_OF_A_TASK_WAITING_FOR_YOUR_LOCK)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "DeadlockError certain True [('MainThread', 'ThreadPoolExecutor-0_0'), "
        "('ThreadPoolExecutor-0_0', 'MainThread')]", "finished"], out.stderr


@pytest.mark.usefixtures("act_on_probable")
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


def test_a_new_thread_given_an_ended_producers_ident_is_not_its_producer() -> None:
    # Idents are reused as soon as a thread ends. The consumer holds a lock and waits on a
    # queue whose only producer has ended; a new thread that got the producer's ident waits
    # for the lock. It never put anything: there is no cycle, and no DeadlockError.
    jobs: queue.Queue[int] = queue.Queue()
    lock = threading.RLock()
    held, may_get = threading.Event(), threading.Event()
    errors: list[stuck.DeadlockError] = []

    def consumer() -> None:
        with lock:
            held.set()
            may_get.wait(BOUND)
            try:
                jobs.get()
            except stuck.DeadlockError as exc:
                errors.append(exc)

    def newcomer(go: threading.Event, keep: list[bool]) -> None:
        go.wait(BOUND)
        if keep:
            try:
                with lock:
                    pass
            except stuck.DeadlockError as exc:
                errors.append(exc)

    c = start(consumer, "consumer")
    assert held.wait(BOUND)
    producer = start(jobs.put, "producer", 0)
    producer.join(BOUND)
    jobs.get()  # empty again; the producer has ended
    for n in range(200):
        go, keep = threading.Event(), []
        t = start(newcomer, f"newcomer{n}", go, keep)
        if t.ident == producer.ident:
            keep.append(True)
            go.set()
            break
        go.set()
        t.join(BOUND)
    else:
        may_get.set()
        jobs.put(1)
        join_all(c)
        pytest.skip("no thread was given an ended thread's ident within 200 threads")
    wait_until_blocked(t, "acquire")
    may_get.set()
    wait_until_blocked(c, "get")
    jobs.put(1)  # the test's thread is the producer that ends the wait
    join_all(c, t)
    assert errors == []


def test_timed_wait_closing_a_cycle_is_reported_not_raised(live: io.StringIO) -> None:
    # RLocks: released by their owners only, whatever threads earlier tests left running.
    a, b = threading.RLock(), threading.RLock()
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

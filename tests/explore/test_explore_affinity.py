"""The worker pool's CPU affinity: one CPU while that is faster, never leaking into programs."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator

import explore_targets as targets
import pytest

from stuck.explore import affinity, engine, explore, primitives, workers
from stuck.explore.affinity import RECHECK, WARMUP, WINDOW, Affinity
from stuck.explore.random_walk import RandomWalk

pytestmark = pytest.mark.skipif(
    not affinity.available() or len(os.sched_getaffinity(0)) < 2,
    reason="needs os.sched_setaffinity and two CPUs")


class _Threads:
    """Worker-like threads that joined an Affinity and wait until told to leave."""

    def __init__(self, aff: Affinity, n: int) -> None:
        self.aff = aff
        self.leave = threading.Event()
        self.ids: list[int] = []
        ready = threading.Barrier(n + 1)

        def body() -> None:
            aff.add_self()
            self.ids.append(threading.get_native_id())
            ready.wait()
            self.leave.wait(30)
            aff.discard_self()

        self.threads = [threading.Thread(target=body, daemon=True) for _ in range(n)]
        for t in self.threads:
            t.start()
        ready.wait()

    def cpus(self) -> list[set[int]]:
        return [os.sched_getaffinity(tid) for tid in self.ids]

    def close(self) -> None:
        self.leave.set()
        for t in self.threads:
            t.join(10)


@pytest.fixture
def aff() -> Iterator[Affinity]:
    a = Affinity()
    yield a
    a.release()


def _feed(aff: Affinity, unpinned: float, pinned: float) -> None:
    for _ in range(WARMUP):
        aff.record(1.0)
    for _ in range(WINDOW):
        aff.record(unpinned)
    assert aff.cpu is not None  # the second window runs pinned
    for _ in range(WINDOW):
        aff.record(pinned)


def test_workers_stay_pinned_when_that_is_clearly_faster(aff: Affinity) -> None:
    threads = _Threads(aff, 3)
    try:
        allowed = set(aff.allowed)
        assert all(c == allowed for c in threads.cpus())
        _feed(aff, unpinned=100e-6, pinned=40e-6)
        assert aff.choices == [True] and aff.cpu is not None
        assert all(c == {aff.cpu} for c in threads.cpus())
        assert os.sched_getaffinity(0) == allowed  # the measuring thread is never pinned
    finally:
        threads.close()


def test_workers_go_back_when_pinning_is_not_clearly_faster(aff: Affinity) -> None:
    threads = _Threads(aff, 2)
    try:
        _feed(aff, unpinned=100e-6, pinned=95e-6)
        assert aff.choices == [False] and aff.cpu is None
        assert all(c == set(aff.allowed) for c in threads.cpus())
    finally:
        threads.close()


def test_the_choice_is_measured_again_later(aff: Affinity,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(affinity, "_monotonic", lambda: now[0])
    _feed(aff, unpinned=100e-6, pinned=40e-6)
    assert aff.cpu is not None
    aff.record(40e-6)
    assert aff.cpu is not None  # within RECHECK: kept
    now[0] += RECHECK + 1
    aff.record(40e-6)
    assert aff.cpu is None  # measuring unpinned again
    for _ in range(WINDOW):
        aff.record(100e-6)
    for _ in range(WINDOW):
        aff.record(150e-6)  # now slower pinned (another busy process on that CPU)
    assert aff.choices == [True, False] and aff.cpu is None


def test_a_thread_started_by_a_pinned_worker_follows_the_pool(aff: Affinity) -> None:
    _feed(aff, unpinned=100e-6, pinned=40e-6)
    assert aff.cpu is not None
    aff._set_all(None)
    seen: list[set[int]] = []

    def child() -> None:
        aff.add_self()
        seen.append(os.sched_getaffinity(0))
        aff.discard_self()

    def parent() -> None:  # pinned by hand, as a worker the pool pinned
        os.sched_setaffinity(0, {min(aff.allowed)})
        t = threading.Thread(target=child)
        t.start()
        t.join()

    t = threading.Thread(target=parent)
    t.start()
    t.join()
    assert seen == [set(aff.allowed)]


def _pinned_pool() -> workers.WorkerPool:
    pool = workers.WorkerPool()
    pool.affinity._set_all(min(pool.affinity.allowed))  # as if measured faster
    pool.affinity._phase = "steady"
    pool.affinity._until = float("inf")
    return pool


@pytest.mark.skipif(not workers.available(), reason="worker pool: CPython 3.10-3.12")
def test_programs_started_from_a_pinned_worker_get_every_cpu() -> None:
    allowed = sorted(os.sched_getaffinity(0))
    seen: list[tuple[str, str]] = []
    probe = [sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"]

    def program() -> None:
        def body() -> None:
            mine = sorted(os.sched_getaffinity(0))
            out = subprocess.run(probe, capture_output=True, text=True, check=True).stdout
            seen.append((str(mine), out.strip()))

        t = threading.Thread(target=body)
        t.start()
        t.join()

    pool = _pinned_pool()
    engine._pool[0] = pool
    primitives.install()
    try:
        strat = RandomWalk(0)
        strat.begin(0)
        ex = engine.run_once(program, strat, stall_seconds=30.0)
        assert ex.verdict.kind == "pass", ex.verdict.summary
    finally:
        primitives.uninstall()
        engine._pool[0] = None
        pool.close()
    assert seen == [(str([min(allowed)]), str(allowed))]


@pytest.mark.skipif(not workers.available() or not hasattr(os, "fork"),
                    reason="worker pool: CPython 3.10-3.12; os.fork")
def test_a_child_forked_by_a_pinned_worker_gets_every_cpu() -> None:
    allowed = set(os.sched_getaffinity(0))
    statuses: list[int] = []

    def program() -> None:
        def body() -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads alive
                pid = os.fork()
            if pid == 0:
                os._exit(0 if os.sched_getaffinity(0) == allowed else 3)
            statuses.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))

        t = threading.Thread(target=body)
        t.start()
        t.join()

    pool = _pinned_pool()
    engine._pool[0] = pool
    primitives.install()
    try:
        strat = RandomWalk(0)
        strat.begin(0)
        engine.run_once(program, strat, stall_seconds=30.0)
    finally:
        primitives.uninstall()
        engine._pool[0] = None
        pool.close()
    assert statuses == [0]


def test_exploring_leaves_the_caller_s_affinity_alone() -> None:
    before = os.sched_getaffinity(0)
    result = explore(targets.two_queues, executions=200, seed=1, shrink_failures=False)
    assert result.found
    assert os.sched_getaffinity(0) == before

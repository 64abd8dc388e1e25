"""Batons: the hand-over primitive of the controlled run (event batons on Linux, locks elsewhere)."""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterator

import explore_targets as targets
import pytest

from stuck.explore import baton, engine, explore, primitives, workers
from stuck.explore.portfolio import make as make_strategy

KINDS: list[type[baton.LockBaton] | type[baton.EventBaton]] = [baton.LockBaton]
if baton.events_available():
    KINDS.append(baton.EventBaton)


@pytest.fixture(params=KINDS, ids=lambda k: k.__name__)
def made(request: pytest.FixtureRequest) -> Iterator[baton.LockBaton | baton.EventBaton]:
    b = request.param()
    try:
        yield b
    finally:
        b.close()


def test_a_post_lets_one_wait_through(made: baton.LockBaton | baton.EventBaton) -> None:
    assert not made.wait_for(0.01)  # nobody posted
    made.post()
    made.wait()  # returns at once
    assert not made.wait_for(0.01)  # the post was consumed


def test_reset_forgets_a_post_nobody_waited_for(made: baton.LockBaton | baton.EventBaton) -> None:
    made.post()
    made.reset()
    assert not made.wait_for(0.01)
    made.reset()  # nothing posted: nothing happens
    made.post()
    assert made.wait_for(1.0)


def test_event_baton_posted_twice_is_waited_for_once() -> None:
    if not baton.events_available():
        pytest.skip("event batons need os.eventfd (Linux)")
    b = baton.EventBaton()
    try:
        b.post()
        b.post()  # a teardown posting a baton that was already posted
        assert b.wait_for(1.0)
        assert not b.wait_for(0.01)
    finally:
        b.close()


def test_hand_overs_between_two_threads(made: baton.LockBaton | baton.EventBaton) -> None:
    other = type(made)()
    seen: list[int] = []

    def pong() -> None:
        for i in range(200):
            made.wait()
            seen.append(2 * i + 1)
            other.post()

    t = threading.Thread(target=pong, daemon=True)
    t.start()
    for i in range(200):
        seen.append(2 * i)
        made.post()
        assert other.wait_for(10.0)
    t.join(10.0)
    other.close()
    assert seen == list(range(400))  # strictly alternating: one side runs at a time


def test_no_file_descriptor_left_means_a_lock_baton(monkeypatch: pytest.MonkeyPatch) -> None:
    def out_of_descriptors(*args: object) -> int:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(baton, "_eventfd", out_of_descriptors)
    monkeypatch.setattr(baton, "events_available", lambda: True)
    assert isinstance(baton.make(), baton.LockBaton)
    assert isinstance(baton.make(events=False), baton.LockBaton)


@pytest.mark.skipif(not baton.events_available() or not hasattr(os, "fork"),
                    reason="event batons need os.eventfd; the test needs os.fork")
def test_a_forked_child_cannot_wake_the_parent_s_threads() -> None:
    b = baton.EventBaton()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads alive
            pid = os.fork()
        if pid == 0:  # the child: its copy of the baton was closed at the fork
            code = 0
            try:
                b.post()
                code = 3  # posted: it would have woken a thread of the parent
            except OSError:
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert not b.wait_for(0.05)  # nothing reached the parent
        b.post()
        assert b.wait_for(1.0)  # and the parent's baton still works
    finally:
        b.close()


@pytest.mark.skipif(not workers.available(), reason="worker pool: CPython 3.10-3.12")
def test_worker_batons_are_closed_when_the_exploration_ends() -> None:
    if not baton.events_available():
        pytest.skip("event batons need os.eventfd (Linux)")
    pool = workers.WorkerPool()
    engine._pool[0] = pool
    try:
        result = explore(targets.pool_ok, executions=20, seed=0, strategy="random")
        made = list(pool.free)
        assert made and all(isinstance(w.go, baton.EventBaton) for w in made)
    finally:
        engine._pool[0] = None
        pool.close()
    assert not result.found
    pause = threading.Event()
    for _ in range(200):  # the workers exit on their own threads: give them up to 10 s
        if all(w.go._fd < 0 for w in made):  # type: ignore[union-attr]
            break
        pause.wait(0.05)
    assert all(w.go._fd < 0 for w in made)  # type: ignore[union-attr]


@pytest.mark.skipif(not workers.available(), reason="worker pool: CPython 3.10-3.12")
def test_the_next_thread_runs_once_the_finished_one_is_gone() -> None:
    """The hand-over at a thread's end waits for its worker's clean-up: ``threading`` no longer
    lists it (a new OS thread, elsewhere, does the same clean-up after its hand-over)."""
    listed: list[bool] = []

    def program() -> None:
        short = threading.Thread(target=lambda: None, name="short")
        short.start()
        short.join()
        listed.append(short in threading.enumerate())

    result = explore(program, executions=200, seed=2, strategy="random")
    assert not result.found
    assert len(listed) == 200 and not any(listed)


@pytest.mark.parametrize("target", [targets.abba, targets.two_queues, targets.primitives_ok],
                         ids=lambda f: f.__name__)
def test_lock_and_event_batons_decide_alike(target: object,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def runs() -> list[tuple[list[int], str, str]]:
        strat = make_strategy("portfolio", 3)
        pool = workers.WorkerPool() if workers.available() else None
        engine._pool[0] = pool
        primitives.install()
        out = []
        try:
            for i in range(30):
                strat.begin(i)
                ex = engine.run_once(target, strat, max_steps=5_000)  # type: ignore[arg-type]
                strat.end(ex.verdict.failed)
                out.append((ex.choices, ex.verdict.kind, ex.verdict.summary))
        finally:
            primitives.uninstall()
            engine._pool[0] = None
            if pool is not None:
                pool.close()
        return out

    events = runs()
    monkeypatch.setattr(baton, "events_available", lambda: False)
    locks = runs()
    assert events == locks


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_explorations_leave_no_descriptor_open() -> None:
    import gc

    def count() -> int:
        gc.collect()
        return len(os.listdir("/proc/self/fd"))

    explore(targets.pool_ok, executions=5, seed=0)  # imports, first pools
    pause = threading.Event()
    before = count()
    for seed in range(8):
        # pool_ok's executor keeps the last scheduler referenced after the exploration
        explore(targets.pool_ok, executions=10, seed=seed)
        explore(targets.two_queues, executions=10, seed=seed, shrink_failures=False)
    for _ in range(100):  # workers close their batons on their own threads, as they exit
        if count() <= before:
            break
        pause.wait(0.05)
    assert count() <= before

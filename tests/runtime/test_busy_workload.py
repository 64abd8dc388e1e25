"""No false deadlock: a busy producer/consumer program under instrumentation reports nothing.

Eight threads share bounded queues, nested RLocks, Conditions with timeouts, non-blocking
acquires, a semaphore and a thread pool; many threads block and wake all the time, and the
closing-thread walk must never mistake a transient wait for a cycle.
"""

from __future__ import annotations

import concurrent.futures
import io
import queue
import sys
import threading
import time
from typing import Any

import pytest

import stuck.runtime
from stuck.runtime import patch, policy, registry

ITEMS = 3000


def test_busy_workload_has_no_finding() -> None:
    assert patch.active() is None
    stream = io.StringIO()
    stuck.runtime.install(policy="raise", report_stream=stream, signal=None)
    errors: list[BaseException] = []
    try:
        work: queue.Queue[int | None] = queue.Queue(maxsize=4)
        results: queue.Queue[int | None] = queue.Queue(maxsize=4)
        stats_lock = threading.RLock()
        cache_lock = threading.Lock()
        ready = threading.Condition()
        slots = threading.BoundedSemaphore(2)
        stats = {"done": 0, "skipped": 0}
        pending: list[int] = []

        def guarded(fn: object) -> object:
            def run(*args: object) -> None:
                try:
                    fn(*args)  # type: ignore[operator]
                except BaseException as exc:
                    errors.append(exc)
            return run

        def producer(start: int) -> None:
            for i in range(start, ITEMS, 2):
                work.put(i)
            work.put(None)

        def consumer(pool: concurrent.futures.ThreadPoolExecutor) -> None:
            while True:
                item = work.get()
                if item is None:
                    results.put(None)
                    return
                with slots:
                    if item % 50 == 0:
                        item = pool.submit(lambda x: x, item).result(timeout=5)
                    with stats_lock, stats_lock:  # reentrant
                        stats["done"] += 1
                if cache_lock.acquire(blocking=False):
                    try:
                        pending.append(item)
                    finally:
                        cache_lock.release()
                else:
                    with stats_lock:
                        stats["skipped"] += 1
                with ready:
                    ready.notify_all()
                results.put(item)

        def collector(expected_ends: int) -> None:
            ends = 0
            while ends < expected_ends:
                try:
                    item = results.get(timeout=0.05)
                except queue.Empty:
                    continue
                if item is None:
                    ends += 1

        def watcher(stop: threading.Event) -> None:
            while not stop.is_set():
                with ready:
                    ready.wait(timeout=0.01)
                if cache_lock.acquire(timeout=0.01):
                    pending.clear()
                    cache_lock.release()

        stop = threading.Event()
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            threads = [threading.Thread(target=guarded(producer), args=(s,)) for s in (0, 1)]
            threads += [threading.Thread(target=guarded(consumer), args=(pool,))
                        for _ in range(2)]
            threads.append(threading.Thread(target=guarded(collector), args=(2,)))
            watcher_thread = threading.Thread(target=guarded(watcher), args=(stop,))
            for t in [*threads, watcher_thread]:
                t.start()
            deadline = time.monotonic() + 60
            for t in threads:
                t.join(max(0.1, deadline - time.monotonic()))
            stop.set()
            watcher_thread.join(10)
        assert not any(t.is_alive() for t in [*threads, watcher_thread])
        assert errors == []
        assert stats["done"] == ITEMS
    finally:
        stuck.runtime.uninstall()
    assert policy.findings_seen == []
    assert stream.getvalue() == ""


def test_a_busy_queue_needs_no_wait_for_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    # A producer and a consumer through queue.Queue(maxsize=1) block at almost every item.
    # Whoever blocks finds the other either running or in a wait that needs nobody (a getter
    # whose queue has an item again, a putter whose queue has room again): no cycle can close,
    # so the wait-for walk (twice per block before: the proof and the pending check) is never
    # needed. The walk is counted, not timed.
    from stuck.runtime import detect

    walks: list[int] = []
    original = detect._Walk.knot

    def counted(self: detect._Walk) -> set[int] | None:
        walks.append(1)
        return original(self)

    monkeypatch.setattr(detect._Walk, "knot", counted)
    assert patch.active() is None
    stuck.runtime.install(policy="raise", report_stream=io.StringIO(), signal=None)
    blocks: list[int] = []
    begin = detect.block_begin

    def counted_begin(*args: Any) -> Any:
        blocks.append(1)
        return begin(*args)

    monkeypatch.setattr(detect, "block_begin", counted_begin)
    try:
        q: queue.Queue[int | None] = queue.Queue(maxsize=1)
        total = [0]

        def producer() -> None:
            for i in range(5000):
                q.put(i)
            q.put(None)

        def consumer() -> None:
            while (x := q.get()) is not None:
                total[0] += x

        threads = [threading.Thread(target=producer), threading.Thread(target=consumer)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads)
    finally:
        stuck.runtime.uninstall()
    assert total[0] == sum(range(5000))
    assert len(blocks) > 100  # the two threads did block on each other, many times
    # Almost never: a thread that blocks at the instant the other is between its wait record
    # and its queue's change may still walk once (CI saw 2 walks in thousands of blocks).
    # Before, every block walked twice; the bound tells the two apart without depending on
    # how the scheduler interleaves the threads.
    assert len(walks) * 100 <= len(blocks), (len(walks), len(blocks))


def test_threads_queued_on_a_lock_list_the_program_threads_once_per_walk(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A holds `first` and waits for `second`, held by B, which sleeps: 30 threads then queue on
    # `first`. Each of them walks (A, what it waits for, waits itself), and a Lock's waiter
    # may be released by any thread, so the walk needs the program's threads. Listing them
    # (sys._current_frames) for every Lock waiter the walk visits made each walk cost in the
    # number of threads, and 30 waiters walking cost in its square; once per walk is enough,
    # and one thread that can run settles it. Counted, not timed.
    from stuck.runtime import detect

    walks: list[int] = []
    listings: list[int] = []
    knot = detect._Walk.knot
    frames = sys._current_frames

    def counted_knot(self: detect._Walk) -> set[int] | None:
        walks.append(1)
        return knot(self)

    def counted_frames() -> dict[int, Any]:
        listings.append(1)
        return frames()

    assert patch.active() is None
    stuck.runtime.install(policy="raise", report_stream=io.StringIO(), signal=None,
                          stalls=False)
    try:
        first, second = threading.Lock(), threading.Lock()
        b_holds, a_holds, release = threading.Event(), threading.Event(), threading.Event()

        def b() -> None:
            with second:
                b_holds.set()
                release.wait(30)

        def a() -> None:
            b_holds.wait(30)
            with first:
                a_holds.set()
                with second:
                    pass

        def queued() -> None:
            with first:
                pass

        holders = [threading.Thread(target=b), threading.Thread(target=a)]
        for t in holders:
            t.start()
        assert a_holds.wait(30)
        while not any(r.op == "acquire" for r in list(registry.waits.values())):
            time.sleep(0.01)  # A waits for `second`
        monkeypatch.setattr(detect._Walk, "knot", counted_knot)
        monkeypatch.setattr(sys, "_current_frames", counted_frames)
        waiters = [threading.Thread(target=queued) for _ in range(30)]
        for t in waiters:
            t.start()
        while sum(1 for r in list(registry.waits.values()) if r.op == "acquire") < 31:
            time.sleep(0.01)
        monkeypatch.undo()
        release.set()
        for t in holders + waiters:
            t.join(30)
        assert not any(t.is_alive() for t in holders + waiters)
    finally:
        release.set()
        stuck.runtime.uninstall()
    assert len(walks) >= 30
    assert len(listings) <= len(walks)

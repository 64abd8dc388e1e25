"""No false deadlock: a busy producer/consumer program under instrumentation reports nothing.

Eight threads share bounded queues, nested RLocks, Conditions with timeouts, non-blocking
acquires, a semaphore and a thread pool; many threads block and wake all the time, and the
closing-thread walk must never mistake a transient wait for a cycle.
"""

from __future__ import annotations

import concurrent.futures
import io
import queue
import threading
import time

import stuck.runtime
from stuck.runtime import patch, policy

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

"""RocksDB seed (001): a write stall waiting for a compaction that a zero-worker pool never runs.

Origin: facebook/rocksdb #1297 (https://github.com/facebook/rocksdb/issues/1297), reported from
cockroach #8784; cause: ``max_background_compactions = 0``.  ``DBImpl::DelayWrite`` waits on
``bg_cv_`` until the number of level-0 files drops below the stop trigger; only a compaction
lowers it, and compactions go to the LOW thread pool, which has no thread.  The flush thread
``rocksdb:bg0`` idles waiting for work, the writer waits on ``bg_cv_``: a stall, not a cycle.
It bites only when the flushes land before the writer's last write, so plain runs rarely hit
it.  The fixed twin gives the LOW pool one thread (``rocksdb:bg1``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from zoo.golike import run_threads
from zoo.meta import Meta
from zoo.points import Points, or_none

_STOP_TRIGGER = 3  # level0_stop_writes_trigger
_WRITES = 4


class _ThreadPool:
    """rocksdb::ThreadPool: jobs on a list, ``workers`` threads waiting on a condition."""

    def __init__(self, name: str, workers: int) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.jobs: list[Callable[[], None]] = []
        self.exit = False
        self.threads = [
            threading.Thread(target=self._bg_thread, name=f"rocksdb:{name}{i}")
            for i in range(workers)
        ]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def schedule(self, job: Callable[[], None]) -> None:
        with self.cond:
            self.jobs.append(job)
            self.cond.notify()

    def _bg_thread(self) -> None:
        while True:
            with self.cond:
                while not self.jobs and not self.exit:
                    self.cond.wait()
                if not self.jobs:
                    return
                job = self.jobs.pop(0)
            job()

    def join_all(self) -> None:
        with self.cond:
            self.exit = True
            self.cond.notify_all()
        for t in self.threads:
            t.join()


class _DB:
    def __init__(self, points: Points, compaction_threads: int) -> None:
        self.mutex = threading.Lock()
        self.bg_cv = threading.Condition(self.mutex)
        self.l0_files = 0
        self.flushes = 0
        self.compaction_scheduled = False
        self.high = _ThreadPool("bg", 1)  # flushes: rocksdb:bg0
        self.low = _ThreadPool("bg", 0)  # compactions
        if compaction_threads:
            self.low.threads = [
                threading.Thread(target=self.low._bg_thread, name=f"rocksdb:bg{1 + i}")
                for i in range(compaction_threads)
            ]
        self.points = points

    def flush(self) -> None:
        with self.mutex:
            self.l0_files += 1
            n = self.flushes
            self.flushes += 1
            self.bg_cv.notify_all()
        self.points.at(f"flushed{n}")

    def compact(self) -> None:
        with self.mutex:
            self.l0_files = 0
            self.compaction_scheduled = False
            self.bg_cv.notify_all()

    def write(self, i: int) -> None:
        self.points.at(f"write{i}")
        with self.mutex:
            while self.l0_files >= _STOP_TRIGGER:  # DelayWrite
                if not self.compaction_scheduled:
                    self.compaction_scheduled = True
                    self.low.schedule(self.compact)
                self.bg_cv.wait()
            # the memtable is full after every write: switch it and schedule a flush
        self.high.schedule(self.flush)

    def writer(self) -> None:
        for i in range(_WRITES):
            self.write(i)


def _main(points: Points | None, compaction_threads: int) -> None:
    db = _DB(or_none(points), compaction_threads)
    db.high.start()
    db.low.start()
    run_threads(threading.Thread(target=db.writer, name="writer"))
    db.high.join_all()
    db.low.join_all()


def buggy(points: Points | None = None) -> None:
    _main(points, compaction_threads=0)


def fixed(points: Points | None = None) -> None:
    _main(points, compaction_threads=1)


META = Meta(
    origin=(
        "RocksDB seed 001: facebook/rocksdb #1297 (https://github.com/facebook/rocksdb/issues/1297)"
        ", cockroach #8784"
    ),
    kind="pool-starvation",
    verdict="stall",
    threads=("writer", "rocksdb:bg0"),
    primitives=(
        "condition DBImpl::bg_cv_ (on DBImpl::mutex_)",
        "condition ThreadPool(HIGH).cond",
        "condition ThreadPool(LOW).cond (0 threads)",
    ),
    interleaving=(
        "rocksdb:bg0 finishes three flushes before the writer's fourth write; the writer sees "
        "3 level-0 files, schedules a compaction on the LOW pool, which has no thread, and "
        "waits on bg_cv_ forever while rocksdb:bg0 waits for work"
    ),
    blocked=("writer", "rocksdb:bg0"),
    fix="give the compaction (LOW) pool a thread (max_background_compactions >= 1)",
    schedule={"writer:write3": ["rocksdb:bg0:flushed2"]},
)

"""A write stall nobody can end: the shape of RocksDB's ``DelayWrite`` hang.

A ``Store`` buffers writes in a memtable. A full memtable is handed to the *flush* pool, which
turns it into a level-0 file and signals ``bg_cv``; once there are too many level-0 files, a
compaction is handed to the *compaction* pool, and writers wait on ``bg_cv`` until it has run
(``DelayWrite``). Here the compaction pool was configured with zero workers (RocksDB:
``env->SetBackgroundThreads(0, Env::LOW)``), so the compaction is queued forever: the writer
waits on ``bg_cv``; the only thread that ever signalled ``bg_cv``, the flush worker, idles on
its empty job queue; and only the writer would ever give it work. No lock cycle anywhere, so a
lock-cycle detector sees nothing.

Run it with ``stuck run examples/store_stall.py``: stuck reports a stall naming the writer,
``bg_cv``, the idle flush worker and the compaction pool that cannot run the job. The program
gives up by itself after a few seconds (``python examples/store_stall.py [seconds]``).
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable

MEMTABLE_SIZE = 4  # writes per memtable
L0_COMPACTION_TRIGGER = 2  # level-0 files that schedule a compaction
L0_STOP_WRITES = 3  # level-0 files at which writers wait for compaction
MAX_IMMUTABLE = 2  # full memtables waiting for a flush before writers wait for it


class BackgroundPool:
    """A fixed set of daemon workers taking jobs from one queue (one per priority, as in
    RocksDB's thread pools)."""

    def __init__(self, name: str, workers: int) -> None:
        self.name = name
        self.jobs: queue.Queue[Callable[[], None]] = queue.Queue()
        self.workers = [threading.Thread(target=self._work, name=f"{name}:bg{i}", daemon=True)
                        for i in range(workers)]
        for worker in self.workers:
            worker.start()

    def submit(self, job: Callable[[], None]) -> None:
        self.jobs.put(job)

    def _work(self) -> None:
        while True:
            job = self.jobs.get()  # idle here between jobs
            job()


class Store:
    def __init__(self, flush_pool: BackgroundPool, compaction_pool: BackgroundPool) -> None:
        self.mu = threading.Lock()
        self.bg_cv = threading.Condition(self.mu)  # signalled when background work finishes
        self.memtable: list[tuple[str, str]] = []
        self.immutable = 0  # full memtables handed to the flush pool, not yet flushed
        self.level0_files = 0
        self.compaction_scheduled = False
        self.flush_pool = flush_pool
        self.compaction_pool = compaction_pool

    def put(self, key: str, value: str) -> None:
        with self.mu:
            while self.level0_files >= L0_STOP_WRITES or self.immutable >= MAX_IMMUTABLE:
                self.bg_cv.wait()  # DelayWrite: until a flush or a compaction finishes
            self.memtable.append((key, value))
            if len(self.memtable) >= MEMTABLE_SIZE:
                full, self.memtable = self.memtable, []
                self.immutable += 1
                self.flush_pool.submit(lambda: self._flush(full))

    def _flush(self, memtable: list[tuple[str, str]]) -> None:
        with self.mu:
            self.immutable -= 1
            self.level0_files += 1
            if self.level0_files >= L0_COMPACTION_TRIGGER and not self.compaction_scheduled:
                self.compaction_scheduled = True
                self.compaction_pool.submit(self._compact)
            self.bg_cv.notify_all()

    def _compact(self) -> None:  # never runs: the compaction pool has no worker
        with self.mu:
            self.level0_files = 0
            self.compaction_scheduled = False
            self.bg_cv.notify_all()


def main(give_up_after: float | None) -> int:
    """``give_up_after`` None: wait for the writer as long as it takes, as a program without a
    limit would (the way ``stuck explore`` runs it)."""
    store = Store(flush_pool=BackgroundPool("flush", workers=1),
                  compaction_pool=BackgroundPool("compaction", workers=0))

    def write_forever() -> None:
        for i in range(1000):
            store.put(f"key{i}", f"value{i}")

    writer = threading.Thread(target=write_forever, name="writer", daemon=True)
    writer.start()
    if give_up_after is None:
        writer.join()
    deadline = time.monotonic() + (give_up_after or 0.0)
    while writer.is_alive() and time.monotonic() < deadline:
        writer.join(timeout=0.5)  # the main thread stays able to run: a timed wait
    if writer.is_alive():
        print(f"store_stall: the writer is still waiting after {give_up_after:g} s "
              f"({store.level0_files} level-0 files, compaction queued but never run)")
        return 1
    print("store_stall: all writes done")
    return 0


if __name__ == "__main__":
    sys.exit(main(float(sys.argv[1]) if len(sys.argv) > 1 else 8.0))

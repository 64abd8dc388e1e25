"""kubernetes #58107: workers hold a read lock while waiting on an empty work queue (RWR).

Origin: https://github.com/kubernetes/kubernetes/pull/58107, GoKer kernel
``goker/blocking/kubernetes/58107`` (fix 010a1273).  The resource quota controller's workers
take ``workerLock.RLock()`` *before* ``queue.Get()``, and ``Get`` waits on the queue's condition
while the queue is empty.  ``Sync`` periodically takes ``workerLock.Lock()``.  With worker 1
parked in ``Get`` on the empty ``queue`` while holding a read lock, ``Sync`` queues for the
write lock, and worker 2 -- who would process the ``missingUsageQueue`` item and thereby feed
``queue`` -- cannot get its read lock past the waiting writer.  The fixed twin pulls from the
queue first and takes the read lock only while processing the item.
"""

from __future__ import annotations

import threading

from zoo.golike import run_threads
from zoo.meta import Meta
from zoo.points import Points, or_none
from zoo.rwlock import RWLock


class _WorkQueue:
    """client-go's workqueue ``Type``: a list guarded by a condition."""

    def __init__(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.items: list[str] = []

    def add(self, item: str) -> None:
        with self.cond:
            self.items.append(item)
            self.cond.notify()

    def get(self) -> str:
        with self.cond:
            while not self.items:
                self.cond.wait()
            return self.items.pop(0)


class _Controller:
    def __init__(self, points: Points) -> None:
        self.worker_lock = RWLock(points)
        self.queue = _WorkQueue()
        self.missing_usage_queue = _WorkQueue()
        self.synced = 0
        self.done: list[str] = []
        self.points = points

    def process(self, item: str) -> None:
        if item.startswith("missing:"):
            # Usage was computed; the quota goes back on the main queue.
            self.queue.add(item.removeprefix("missing:"))
        else:
            self.done.append(item)

    def worker_buggy(self, queue: _WorkQueue) -> None:
        self.points.at("start")
        with self.worker_lock.read():
            self.points.at("before_get")
            item = queue.get()
            self.process(item)

    def worker_fixed(self, queue: _WorkQueue) -> None:
        self.points.at("start")
        self.points.at("before_get")
        item = queue.get()
        with self.worker_lock.read():
            self.process(item)

    def sync(self) -> None:
        self.points.at("start")
        for _ in range(3):
            with self.worker_lock.write():
                self.synced += 1


def _main(points: Points | None, fixed: bool) -> None:
    c = _Controller(or_none(points))
    c.missing_usage_queue.add("missing:quota-a")
    worker = c.worker_fixed if fixed else c.worker_buggy
    run_threads(
        threading.Thread(target=worker, args=(c.queue,), name="quota-worker"),
        threading.Thread(target=worker, args=(c.missing_usage_queue,), name="missing-usage-worker"),
        threading.Thread(target=c.sync, name="quota-sync"),
    )


def buggy(points: Points | None = None) -> None:
    _main(points, fixed=False)


def fixed(points: Points | None = None) -> None:
    _main(points, fixed=True)


META = Meta(
    origin="kubernetes #58107 (https://github.com/kubernetes/kubernetes/pull/58107)",
    kind="rwlock-writer-preference",
    verdict="deadlock",
    provable="stall",
    threads=("quota-worker", "missing-usage-worker", "quota-sync"),
    primitives=(
        "rwlock ResourceQuotaController.workerLock",
        "condition queue.cond",
        "condition missingUsageQueue.cond",
    ),
    interleaving=(
        "quota-worker read-locks workerLock and waits on queue.cond (queue empty); quota-sync "
        "queues for the write lock; missing-usage-worker, whose item would refill queue, waits "
        "for a read lock behind the queued writer"
    ),
    blocked=("quota-worker", "missing-usage-worker", "quota-sync"),
    fix="get the item from the queue before taking the read lock",
    schedule={
        "quota-sync:start": ["quota-worker:before_get"],
        "missing-usage-worker:start": ["quota-sync:rw_writer_waiting"],
    },
    goker="Flaky: 53/100",
)

"""Small programs for the explore tests: each starts its own threads with the stdlib."""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor


def abba() -> None:
    first = threading.Lock()
    second = threading.Lock()

    def forward() -> None:
        with first, second:
            pass

    def backward() -> None:
        with second, first:
            pass

    a = threading.Thread(target=forward, name="forward")
    b = threading.Thread(target=backward, name="backward")
    a.start()
    b.start()
    a.join()
    b.join()


def abba_fixed() -> None:
    first = threading.Lock()
    second = threading.Lock()

    def worker() -> None:
        with first, second:
            pass

    threads = [threading.Thread(target=worker, name=f"w{i}") for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def never_notified() -> None:
    ready = threading.Condition()
    state = {"ready": False}

    def waiter() -> None:
        with ready:
            while not state["ready"]:
                ready.wait()

    def setter() -> None:
        state["ready"] = True  # BUG: sets the flag but never notifies

    w = threading.Thread(target=waiter, name="waiter")
    w.start()
    s = threading.Thread(target=setter, name="setter")
    s.start()
    s.join()
    w.join()


def spin() -> None:
    flag = threading.Event()

    def spinner() -> None:
        while not flag.is_set():  # nobody ever sets it
            time.sleep(0)

    t = threading.Thread(target=spinner, name="spinner")
    t.start()
    t.join()


def raises() -> None:
    def broken() -> None:
        raise ValueError("bad input in worker")

    t = threading.Thread(target=broken, name="broken")
    t.start()
    t.join()


def two_queues() -> None:
    """Ping-pong over two bounded queues, then both sides send a burst before receiving."""
    to_b: queue.Queue[int] = queue.Queue(maxsize=1)
    to_a: queue.Queue[int] = queue.Queue(maxsize=1)

    def side(out: queue.Queue[int], inbox: queue.Queue[int]) -> None:
        for i in range(2):
            out.put(i)
            inbox.get()
        out.put(10)  # a burst of two into a queue of one ...
        out.put(11)  # ... blocks until the other side receives, which is sending too
        inbox.get()
        inbox.get()

    ta = threading.Thread(target=side, args=(to_b, to_a), name="a")
    tb = threading.Thread(target=side, args=(to_a, to_b), name="b")
    ta.start()
    tb.start()
    ta.join()
    tb.join()


def pool_starvation() -> None:
    with ThreadPoolExecutor(max_workers=1) as pool:
        def outer() -> int:
            inner = pool.submit(lambda: 1)
            return inner.result() + 1  # the only worker waits for itself

        assert pool.submit(outer).result() == 2


class JobPool:
    """Jobs on a list, ``workers`` threads waiting for them on a condition."""

    def __init__(self, name: str, workers: int) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.jobs: list[object] = []
        self.closed = False
        self.threads = [threading.Thread(target=self.serve, name=f"{name}{i}")
                        for i in range(workers)]
        for t in self.threads:
            t.start()

    def submit(self, job: object) -> None:
        with self.cond:
            self.jobs.append(job)
            self.cond.notify()

    def serve(self) -> None:
        while True:
            with self.cond:
                while not self.jobs and not self.closed:
                    self.cond.wait()
                if not self.jobs:
                    return
                job = self.jobs.pop(0)
            job()  # type: ignore[operator]

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        for t in self.threads:
            t.join()


def result_from_an_empty_pool(cleanup_workers: int = 0) -> None:
    """A client hands its second job to a pool with ``cleanup_workers`` threads, then waits.

    The first job goes to the "fast" pool, whose worker then idles waiting for more work; the
    client waits on ``done`` for the second. With no cleanup worker nothing takes it: a stall,
    although the client and the idle fast worker could each wake the other.
    """
    done = threading.Condition(threading.Lock())
    finished: list[str] = []
    fast = JobPool("fast", 1)
    cleanup = JobPool("cleanup", cleanup_workers)

    def job(name: str) -> object:
        def run() -> None:
            with done:
                finished.append(name)
                done.notify_all()
        return run

    def client() -> None:
        fast.submit(job("first"))
        cleanup.submit(job("second"))
        with done:
            while len(finished) < 2:
                done.wait()
            fast.submit(job("third"))

    c = threading.Thread(target=client, name="client")
    c.start()
    c.join()
    fast.close()
    cleanup.close()


def result_from_a_served_pool() -> None:
    result_from_an_empty_pool(cleanup_workers=1)


def pool_ok() -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(pow, 2, i) for i in range(4)]
        assert [f.result() for f in futures] == [1, 2, 4, 8]


def primitives_ok() -> None:
    """Events, semaphores, barriers, queues and timeouts used correctly: never fails."""
    ev = threading.Event()
    sem = threading.BoundedSemaphore(1)
    barrier = threading.Barrier(2)
    q: queue.Queue[int] = queue.Queue(maxsize=1)
    rl = threading.RLock()
    out: list[int] = []

    def producer() -> None:
        barrier.wait()
        for i in range(2):
            q.put(i)
        with sem, rl, rl:
            out.append(-1)
        ev.set()

    def consumer() -> None:
        barrier.wait()
        for _ in range(2):
            out.append(q.get())
        assert ev.wait(timeout=5.0)
        with sem:
            out.append(-2)

    threads = [threading.Thread(target=producer, name="producer"),
               threading.Thread(target=consumer, name="consumer")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(out) == [-2, -1, 0, 1]


def sleepy() -> None:
    done = threading.Event()

    def slow() -> None:
        time.sleep(3600)
        done.set()

    t = threading.Thread(target=slow, name="slow")
    t.start()
    assert not done.wait(timeout=60)  # times out in virtual time
    assert done.wait(timeout=7200)
    t.join()


def raw_thread() -> None:
    import _thread

    lock = _thread.allocate_lock()
    lock.acquire()
    _thread.start_new_thread(lock.release, ())
    lock.acquire()

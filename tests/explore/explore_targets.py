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

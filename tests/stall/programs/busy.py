"""Correct, busy programs that block and wake all the time and always finish.

    python busy.py WORKLOAD [SCALE]

WORKLOAD is one of ``queue`` (one producer and one consumer pass items through
``queue.Queue(maxsize=1)``; SCALE items, default 300,000), ``pingpong`` (two threads take turns
on one ``Condition``; SCALE rounds, default 200,000), ``pairs`` (50 such pairs; SCALE rounds
each, default 4,000), ``gate`` (the main thread takes a ``Lock``, a worker waits for it, the main
thread joins the worker, and a third thread, asleep for 0.5 s, releases it: any thread may
release a Lock) and ``many`` (200 threads each take one ``Lock`` SCALE times, default 20,000).

Each prints one line that depends only on the work done, so a run under ``stuck run`` must
print exactly what a plain run prints, and nothing else.
"""

from __future__ import annotations

import queue
import sys
import threading
import time


def busy_queue(items: int) -> str:
    q: queue.Queue[int | None] = queue.Queue(maxsize=1)
    total = 0

    def producer() -> None:
        for i in range(items):
            q.put(i)
        q.put(None)

    def consumer() -> None:
        nonlocal total
        while (x := q.get()) is not None:
            total += x

    threads = [threading.Thread(target=producer, name="producer"),
               threading.Thread(target=consumer, name="consumer")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return f"queue {items} {total}"


def ping_pong_threads(rounds: int) -> list[threading.Thread]:
    cond = threading.Condition()
    turn = [0]

    def player(me: int) -> None:
        for _ in range(rounds):
            with cond:
                while turn[0] != me:
                    cond.wait()
                turn[0] = 1 - me
                cond.notify()

    return [threading.Thread(target=player, args=(i,), name=f"player{i}") for i in (0, 1)]


def ping_pong(rounds: int, pairs: int) -> str:
    threads = [t for _ in range(pairs) for t in ping_pong_threads(rounds)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return f"pingpong {pairs} x {rounds}"


def gate() -> str:
    lock = threading.Lock()
    lock.acquire()  # the main thread takes the gate
    passed: list[str] = []

    def opener() -> None:
        time.sleep(0.5)
        lock.release()  # any thread may release a plain Lock

    def worker() -> None:
        with lock:
            passed.append("worker")

    w = threading.Thread(target=worker, name="worker")
    o = threading.Thread(target=opener, name="opener")
    w.start()
    o.start()
    w.join()  # waits for the worker, which waits for the gate the main thread took
    o.join()
    return f"gate {passed}"


def many(ops: int, threads_n: int = 200) -> str:
    lock = threading.Lock()
    count = [0]

    def work() -> None:
        for _ in range(ops):
            with lock:
                count[0] += 1

    threads = [threading.Thread(target=work) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return f"many {threads_n} x {ops} = {count[0]}"


def main(argv: list[str]) -> int:
    workload = argv[1] if len(argv) > 1 else "queue"
    scale = int(argv[2]) if len(argv) > 2 else None
    if workload == "queue":
        print(busy_queue(scale or 300_000))
    elif workload == "pingpong":
        print(ping_pong(scale or 200_000, 1))
    elif workload == "pairs":
        print(ping_pong(scale or 4_000, 50))
    elif workload == "gate":
        print(gate())
    elif workload == "many":
        print(many(scale or 20_000))
    else:
        print(f"unknown workload {workload!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""asyncio programs that hand blocking calls to an executor (``loop.run_in_executor``,
``asyncio.wrap_future``), run as their users would: ``python aio_executor.py MODE [N]``.

Stuck (each ends only when stopped):

- ``held``: the task holds a threading Lock across the await of a call that takes it (the
  issue's program);
- ``gathered``: the same, the call awaited in a ``gather`` beside one that returns;
- ``chain``: the same through a second thread: the call waits for a lock held by a thread
  that waits for the lock the task holds across the await;
- ``wrapped``: the call is submitted to an executor by hand and awaited through
  ``asyncio.wrap_future``;
- ``heartbeat``: ``held``, with a thread that keeps running beside it;
- ``ticker``: ``held``, with another task of the loop that keeps running;
- ``helper``: the lock is taken on the loop's thread by a plain function the task called (not
  in a coroutine's own code), then held across the await;
- ``producer``: a task gets from an asyncio.Queue whose only producer ended with an error.

Correct (each prints a line and exits 0):

- ``busy N``: N ``run_in_executor`` calls, each taking a Lock inside the function, awaited
  all at once and then one by one; nothing is held across an await;
- ``sleepy``: a task awaits a call that sleeps 2.5 s while other calls queue behind a Lock
  that call holds;
- ``across``: a task holds a Lock across the await of a call reading stdin while a thread
  waits for that Lock, until a line comes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
import time

lock = threading.Lock()
other = threading.Lock()


def blocking() -> int:
    with lock:
        return 1


def through_other() -> int:
    with other:
        return 2


async def held() -> None:
    loop = asyncio.get_running_loop()
    with lock:  # a threading lock held across an await
        r = await loop.run_in_executor(None, blocking)
    print(r)


async def gathered() -> None:
    """``held``, the call awaited in a gather beside one that returns."""
    loop = asyncio.get_running_loop()
    with lock:
        r = await asyncio.gather(loop.run_in_executor(None, time.sleep, 0.1),
                                 loop.run_in_executor(None, blocking))
    print(r)


async def heartbeat() -> None:
    """``held``, with a thread that keeps running beside it (it could release the Lock)."""
    def beat() -> None:
        while True:
            time.sleep(0.05)

    threading.Thread(target=beat, name="heartbeat", daemon=True).start()
    await held()


async def ticker() -> None:
    """``held``, with another task of the loop that keeps running (it could release the Lock
    on the loop's thread)."""
    async def tick() -> None:
        while True:
            await asyncio.sleep(0.05)

    ticking = asyncio.create_task(tick(), name="ticker")
    await held()
    ticking.cancel()


async def chain() -> None:
    loop = asyncio.get_running_loop()
    started = threading.Event()

    def middle() -> None:
        with other:
            started.set()
            with lock:
                pass

    with lock:
        threading.Thread(target=middle, name="middle", daemon=True).start()
        await loop.run_in_executor(None, started.wait)
        r = await loop.run_in_executor(None, through_other)
    print(r)


async def wrapped() -> None:
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="wrapped")
    with lock:
        r = await asyncio.wrap_future(pool.submit(blocking))
    print(r)


def take() -> None:
    lock.acquire()


async def helper() -> None:
    loop = asyncio.get_running_loop()
    take()
    r = await loop.run_in_executor(None, blocking)
    lock.release()
    print(r)


async def producer() -> None:
    async def produce(q: asyncio.Queue[int]) -> None:
        await q.put(1)
        raise RuntimeError("sensor offline")

    q: asyncio.Queue[int] = asyncio.Queue()
    task = asyncio.create_task(produce(q), name="Task-2")
    for _ in range(2):
        print("got", await q.get())
    await task


async def across() -> None:
    """Correct: a task holds the lock across the await of a call that reads a line from
    stdin (an executor's worker in I/O), while a thread waits for the lock; once the line
    comes the task releases it and the thread takes it."""
    loop = asyncio.get_running_loop()
    waiter = threading.Thread(target=blocking, name="waiter")
    with lock:
        waiter.start()
        await asyncio.sleep(2.5)  # the thread's wait outlasts the grace a plain Lock gets
        print("ready", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)
    waiter.join()
    print("finished", flush=True)


async def busy(n: int) -> None:
    loop = asyncio.get_running_loop()
    guard = threading.Lock()
    count = [0]

    def work(i: int) -> int:
        with guard:
            count[0] += 1
            return i

    together = await asyncio.gather(*(loop.run_in_executor(None, work, i)
                                      for i in range(n)))
    one_by_one = 0
    for i in range(n):
        one_by_one += await loop.run_in_executor(None, work, i)
    print(sum(together), one_by_one, count[0])


async def sleepy() -> None:
    loop = asyncio.get_running_loop()
    guard = threading.Lock()

    def nap(seconds: float) -> float:
        with guard:
            time.sleep(seconds)
        return seconds

    naps = await asyncio.gather(loop.run_in_executor(None, nap, 2.5),
                                *(loop.run_in_executor(None, nap, 0.0) for _ in range(3)))
    print(sum(naps))


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "busy":
        asyncio.run(busy(int(sys.argv[2])))
    else:
        asyncio.run({"held": held, "chain": chain, "wrapped": wrapped, "helper": helper,
                     "producer": producer, "sleepy": sleepy, "across": across,
                     "heartbeat": heartbeat, "ticker": ticker, "gathered": gathered}[mode]())

"""A gateway and a single-threaded engine joined by two bounded queues that both fill up.

This is the Go/C deadlock shape in one process: the gateway writes a batch of requests into
``requests`` and reads the answers from ``responses`` only after the whole batch is sent; the
engine answers each request before taking the next. A batch of one works. A batch larger than
what the two queues hold together deadlocks: the engine blocks putting an answer on the full
``responses`` queue, which only the gateway reads, while the gateway blocks putting a request on
the full ``requests`` queue, which only the engine reads.

stuck sees the cycle through the queues: a put on a full queue waits for the threads that have
taken items from it so far (here, only the other thread), so it is reported as probable.

    stuck run --policy abort examples/gateway_engine.py

Run with plain ``python`` it hangs: stop it with Ctrl-C.
"""

import queue
import threading

CAPACITY = 2
requests: "queue.Queue[int | None]" = queue.Queue(maxsize=CAPACITY)
responses: "queue.Queue[int]" = queue.Queue(maxsize=CAPACITY)


def engine() -> None:
    while True:
        request = requests.get()
        if request is None:
            return
        responses.put(request * 2)


def send_batch(size: int) -> list[int]:
    for i in range(size):
        requests.put(i)
    return [responses.get() for _ in range(size)]


def gateway() -> None:
    print("batch of 1:", send_batch(1))
    print("batch of 8:", send_batch(8))  # more than the two queues can hold together
    requests.put(None)


def main() -> None:
    threads = [threading.Thread(target=engine, name="engine", daemon=True),
               threading.Thread(target=gateway, name="gateway", daemon=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("done")


if __name__ == "__main__":
    main()

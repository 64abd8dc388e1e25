"""A program for the naming tests: a producer blocked on a full queue whose only consumer
returned after one item. The producer's wait can only be ended by a taker, never by itself."""

import queue
import threading
import time

jobs: queue.Queue[int] = queue.Queue(maxsize=1)


def consumer() -> None:
    jobs.get()


def producer() -> None:
    for i in range(5):
        jobs.put(i)


taker = threading.Thread(target=consumer, name="consumer")
taker.start()
threading.Thread(target=producer, name="producer", daemon=True).start()
time.sleep(2.5)

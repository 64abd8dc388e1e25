"""A queue consumer whose producer exited without saying so.

The ``producer`` reads a batch of records and puts each on a queue; the ``consumer`` takes them
one by one until it receives the end-of-input marker ``None``. The producer stops early when a
record fails validation and returns without putting the marker, so once the queue is empty the
consumer waits in ``Queue.get()`` for an item no live thread will ever put.

``stuck run examples/queue_producer_exited.py`` reports a stall naming the consumer, the queue
and the producer that has exited. The program gives up by itself after a few seconds.
"""

from __future__ import annotations

import queue
import sys
import threading

RECORDS = ["alpha", "beta", "", "delta"]  # the empty record stops the producer early


def main(give_up_after: float | None) -> int:
    """``give_up_after`` None: wait for the consumer as long as it takes (as ``stuck explore``
    runs it)."""
    records: queue.Queue[str | None] = queue.Queue()
    done: list[str] = []

    def producer() -> None:
        for record in RECORDS:
            if not record:
                return  # bug: the end-of-input marker is never put
            records.put(record)
        records.put(None)

    def consumer() -> None:
        while True:
            record = records.get()
            if record is None:
                return
            done.append(record.upper())

    reader = threading.Thread(target=consumer, name="consumer", daemon=True)
    reader.start()
    threading.Thread(target=producer, name="producer").start()
    reader.join(timeout=give_up_after)  # timed: the main thread itself is not stuck
    if reader.is_alive():
        print(f"queue_producer_exited: the consumer still waits after {give_up_after:g} s "
              f"({len(done)} records consumed)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(float(sys.argv[1]) if len(sys.argv) > 1 else 8.0))

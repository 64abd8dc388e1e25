"""A program for the naming tests: two accounts, each with its own ``self.lock``, deadlock."""

import threading


class Account:
    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.Lock()


def transfer(src: Account, dst: Account, ready: threading.Barrier) -> None:
    with src.lock:
        ready.wait()
        with dst.lock:
            pass


x, y = Account("x"), Account("y")
ready = threading.Barrier(2)
threads = [threading.Thread(target=transfer, args=(x, y, ready), name="x-to-y", daemon=True),
           threading.Thread(target=transfer, args=(y, x, ready), name="y-to-x", daemon=True)]
for t in threads:
    t.start()
for t in threads:
    t.join()

"""A program for the naming tests: two accounts without a name of their own; the one made
second is the first a report meets (the thread that closes the cycle waits for its lock)."""

import threading


class Account:
    def __init__(self, owner: str) -> None:
        self.owner = owner  # not ``name``: the report tags the accounts
        self.lock = threading.Lock()


first = Account("made first")
second = Account("made second")
second_taken = threading.Event()
first_taken = threading.Event()


def early() -> None:  # takes second.lock, then waits for first.lock
    with second.lock:
        second_taken.set()
        first_taken.wait()
        with first.lock:
            pass


def late() -> None:  # takes first.lock, then closes the cycle waiting for second.lock
    second_taken.wait()
    with first.lock:
        first_taken.set()
        with second.lock:
            pass


threads = [threading.Thread(target=early, name="early", daemon=True),
           threading.Thread(target=late, name="late", daemon=True)]
for t in threads:
    t.start()
for t in threads:
    t.join()

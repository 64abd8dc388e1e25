"""A target for the wording tests: two accounts' locks, made by one line, taken in opposite
orders by two threads (``stuck explore`` finds the deadlock)."""

import threading


class Account:
    def __init__(self) -> None:
        self.lock = threading.Lock()


def move(a: Account, b: Account) -> None:
    with a.lock, b.lock:
        pass


def transfer_both_ways() -> None:
    x, y = Account(), Account()
    threads = [threading.Thread(target=move, args=(x, y)),
               threading.Thread(target=move, args=(y, x))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

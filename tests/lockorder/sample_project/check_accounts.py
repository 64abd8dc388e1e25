"""The shape of a user's test file: a transfer nests two locks of one class, and one test
takes them both ways round (sequentially, so it never hangs)."""

import threading


class Account:
    def __init__(self, n: int) -> None:
        self.lock = threading.Lock()
        self.n = n


def transfer(a: Account, b: Account, x: int) -> None:
    with a.lock:  # noqa: SIM117 (two lines: the report names each one)
        with b.lock:
            a.n -= x
            b.n += x


def test_transfers_one_direction_then_other() -> None:
    a, b = Account(100), Account(100)
    transfer(a, b, 10)
    t = threading.Thread(target=transfer, args=(b, a, 5))
    t.start()
    t.join()
    assert a.n + b.n == 200


def test_plain() -> None:
    assert Account(1).n == 1

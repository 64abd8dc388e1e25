"""A program for the naming tests: two locks made on one line, taken in opposite orders."""

import threading

a = threading.Lock(); b = threading.Lock()  # noqa: E702 - the case: two locks on one line
ready = threading.Barrier(2)


def one() -> None:
    with a:
        ready.wait()
        with b:
            pass


def two() -> None:
    with b:
        ready.wait()
        with a:
            pass


threads = [threading.Thread(target=f, name=f.__name__, daemon=True) for f in (one, two)]
for t in threads:
    t.start()
for t in threads:
    t.join()

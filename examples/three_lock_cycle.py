"""Three threads, three locks, each thread holding one and wanting the next: a cycle of three.

No pair of threads takes two locks in opposite orders, so a review of any two code paths sees
nothing wrong; the deadlock only exists around the whole ring. A barrier makes every thread take
its first lock before any asks for its second, so the cycle forms on every run.

    stuck run --policy abort examples/three_lock_cycle.py

Run with plain ``python`` it hangs: stop it with Ctrl-C.
"""

import threading

accounts_lock = threading.Lock()
ledger_lock = threading.Lock()
audit_lock = threading.Lock()
all_hold_first_lock = threading.Barrier(3)


def transfer(first: threading.Lock, second: threading.Lock) -> None:
    with first:
        all_hold_first_lock.wait()
        with second:
            pass


def main() -> None:
    pairs = [(accounts_lock, ledger_lock, "transfer"),
             (ledger_lock, audit_lock, "reconcile"),
             (audit_lock, accounts_lock, "audit")]
    threads = [threading.Thread(target=transfer, args=(a, b), name=name, daemon=True)
               for a, b, name in pairs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("done")


if __name__ == "__main__":
    main()

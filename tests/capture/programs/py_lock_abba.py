"""Two threads take two threading locks in opposite orders (run with or without stuck)."""

import os
import threading

ledger = threading.Lock()
audit = threading.Lock()
both = threading.Barrier(2)


def posting():
    with ledger:
        both.wait()
        with audit:
            pass


def auditing():
    with audit:
        both.wait()
        with ledger:
            pass


threads = [threading.Thread(target=posting, name="posting"),
           threading.Thread(target=auditing, name="auditing")]
for t in threads:
    t.start()
print(os.getpid(), flush=True)
for t in threads:
    t.join()

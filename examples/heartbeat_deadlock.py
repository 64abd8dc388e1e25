"""Two locks taken in opposite orders: the shape of a CockroachDB heartbeat deadlock.

The raft scheduler holds ``raft_mu`` and then wants ``coalesced_mu`` to queue a heartbeat; the
heartbeat coalescer holds ``coalesced_mu`` while it sends and then wants ``raft_mu`` to update
the replica. A barrier makes both threads take their first lock before either asks for its
second, so the deadlock forms on every run.

Run it under stuck (the report names both threads, both locks, where each lock was taken and
where each thread waits; ``abort`` then ends the program with exit code 86):

    stuck run --policy abort examples/heartbeat_deadlock.py

With ``--policy raise`` the thread that closes the cycle gets ``stuck.DeadlockError``, backs
off and the program finishes. Run with plain ``python`` it hangs: stop it with Ctrl-C.
"""

import threading

try:
    from stuck import DeadlockError
except ImportError:  # running without stuck installed: nothing will be raised
    DeadlockError = RuntimeError

raft_mu = threading.Lock()
coalesced_mu = threading.Lock()
both_hold_first_lock = threading.Barrier(2)


def raft_scheduler() -> None:
    with raft_mu:
        both_hold_first_lock.wait()
        try:
            with coalesced_mu:  # queue a heartbeat for the coalescer
                pass
        except DeadlockError as exc:
            print(f"raft-scheduler: backing off ({exc.finding.kind})")


def heartbeat_coalescer() -> None:
    with coalesced_mu:
        both_hold_first_lock.wait()
        try:
            with raft_mu:  # update the replica after sending heartbeats
                pass
        except DeadlockError as exc:
            print(f"heartbeat-coalescer: backing off ({exc.finding.kind})")


def main() -> None:
    threads = [
        threading.Thread(target=raft_scheduler, name="raft-scheduler", daemon=True),
        threading.Thread(target=heartbeat_coalescer, name="heartbeat-coalescer", daemon=True),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("done: both threads finished")


if __name__ == "__main__":
    main()

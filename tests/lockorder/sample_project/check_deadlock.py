"""A test that really deadlocks: under --stuck it fails with the report, the run goes on."""

import threading

from replication import Replica


def test_two_threads_deadlock() -> None:
    r = Replica()
    both_hold = threading.Barrier(2)

    def unreachable() -> None:
        with r.raft_mu:
            both_hold.wait()
            with r.coalesced_mu:
                pass

    def heartbeats() -> None:
        with r.coalesced_mu:
            both_hold.wait()
            with r.raft_mu:
                pass

    threads = [threading.Thread(target=unreachable, name="reporter"),
               threading.Thread(target=heartbeats, name="coalescer")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_after_the_deadlock() -> None:
    assert True

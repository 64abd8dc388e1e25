"""A replica with two locks, shaped like the CockroachDB heartbeat-coalescing deadlock."""

from __future__ import annotations

import threading


class Replica:
    def __init__(self) -> None:
        self.raft_mu = threading.Lock()
        self.coalesced_mu = threading.Lock()
        self.unreachable: list[int] = []
        self.heartbeats = 0

    def report_unreachable(self, node: int) -> None:
        with self.raft_mu:  # noqa: SIM117 (one line per lock, as in the seed)
            with self.coalesced_mu:
                self.unreachable.append(node)

    def coalesce_heartbeats(self) -> None:
        with self.coalesced_mu:
            self.heartbeats += 1
            with self.raft_mu:
                self.unreachable.clear()


class Store:
    """Two locks always taken in one order: nothing to report."""

    def __init__(self) -> None:
        self.mu = threading.Lock()
        self.cache_mu = threading.RLock()

    def put(self) -> None:
        with self.mu, self.cache_mu, self.cache_mu:
            pass

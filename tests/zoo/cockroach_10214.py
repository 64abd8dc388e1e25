"""cockroach #10214: ``coalescedMu`` / ``raftMu`` lock-order inversion (AB-BA deadlock).

Origin: https://github.com/cockroachdb/cockroach/pull/10214 (issue #10206), GoKer kernel
``goker/blocking/cockroach/10214``; fixed by 27e863d9 "storage: fix deadlock in coalesced
heartbeats".  ``Store.sendQueuedHeartbeats`` holds ``coalescedMu`` and, for a failed transport,
calls ``Replica.reportUnreachable`` which takes ``raftMu``.  ``Replica.tick`` holds ``raftMu``
(then ``mu``) and, while quiescing, coalesces a heartbeat, which takes ``coalescedMu``.
The fix swaps the heartbeats out under ``coalescedMu`` and reports outside it.
"""

from __future__ import annotations

import threading

from zoo.golike import run_threads
from zoo.meta import Meta
from zoo.points import Points, or_none


class _Replica:
    def __init__(self, store: _Store, points: Points) -> None:
        self.raft_mu = threading.Lock()
        self.mu = threading.Lock()
        self.store = store
        self.points = points
        self.unreachable = 0

    def report_unreachable(self) -> None:
        with self.raft_mu:
            self.unreachable += 1

    def tick(self) -> None:
        with self.raft_mu:
            self.points.at("has_raft_mu")
            with self.mu:  # tickRaftMuLocked
                self.maybe_quiesce_locked()

    def maybe_quiesce_locked(self) -> None:
        for _ in range(2):
            self.maybe_coalesce_heartbeat()

    def maybe_coalesce_heartbeat(self) -> None:
        with self.store.coalesced_mu:
            self.store.heartbeat_responses.append(1)


class _Store:
    def __init__(self, points: Points) -> None:
        self.coalesced_mu = threading.Lock()
        self.heartbeat_responses: list[int] = [1, 2]
        self.replicas: list[_Replica] = []
        self.points = points

    def send_queued_heartbeats_buggy(self) -> None:
        with self.coalesced_mu:
            self.points.at("has_coalesced_mu")
            for _ in list(self.heartbeat_responses):
                for replica in self.replicas:  # sendQueuedHeartbeatsToNode
                    replica.report_unreachable()  # takes raftMu under coalescedMu
            self.heartbeat_responses.clear()

    def send_queued_heartbeats_fixed(self) -> None:
        with self.coalesced_mu:
            self.points.at("has_coalesced_mu")
            responses = self.heartbeat_responses
            self.heartbeat_responses = []
        for _ in responses:
            for replica in self.replicas:
                replica.report_unreachable()


def _main(points: Points | None, fixed: bool) -> None:
    p = or_none(points)
    store = _Store(p)
    store.replicas = [_Replica(store, p), _Replica(store, p)]
    send = store.send_queued_heartbeats_fixed if fixed else store.send_queued_heartbeats_buggy
    run_threads(
        threading.Thread(target=send, name="heartbeat-sender"),
        threading.Thread(target=store.replicas[0].tick, name="replica-ticker"),
    )


def buggy(points: Points | None = None) -> None:
    _main(points, fixed=False)


def fixed(points: Points | None = None) -> None:
    _main(points, fixed=True)


META = Meta(
    origin="cockroach #10214 (https://github.com/cockroachdb/cockroach/pull/10214)",
    kind="lock-order",
    verdict="deadlock",
    threads=("heartbeat-sender", "replica-ticker"),
    primitives=("mutex Store.coalescedMu", "mutex Replica.raftMu", "mutex Replica.mu"),
    interleaving=(
        "heartbeat-sender takes coalescedMu; replica-ticker takes raftMu (and mu); "
        "heartbeat-sender wants raftMu in reportUnreachable while replica-ticker wants "
        "coalescedMu in maybeCoalesceHeartbeat"
    ),
    blocked=("heartbeat-sender", "replica-ticker"),
    fix="copy the queued heartbeats under coalescedMu, release it, then report unreachable",
    schedule={
        "heartbeat-sender:has_coalesced_mu": ["replica-ticker:has_raft_mu"],
        "replica-ticker:has_raft_mu": ["heartbeat-sender:has_coalesced_mu"],
    },
    goker="Flaky: 3/100",
)

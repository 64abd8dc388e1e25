"""kubernetes #10182: status manager holds its lock while sending on an unbuffered channel.

Origin: https://github.com/kubernetes/kubernetes/pull/10182, GoKer kernel
``goker/blocking/kubernetes/10182`` (fix 64ad3e17).  ``SetPodStatus`` locks
``podStatusesLock`` and sends on the unbuffered ``podStatusChannel``; the sync loop receives
from the channel and then calls ``DeletePodStatus``, which takes ``podStatusesLock``.  When the
second ``SetPodStatus`` takes the lock while the sync loop is between its receive and its
lock, the sender waits for a receiver who waits for the sender's lock.  The fixed twin sends
after releasing the lock.
"""

from __future__ import annotations

import threading

from zoo.golike import Rendezvous, run_threads
from zoo.meta import Meta
from zoo.points import Points, or_none


class _StatusManager:
    def __init__(self, points: Points) -> None:
        self.pod_statuses_lock = threading.Lock()
        self.pod_status_channel: Rendezvous[str] = Rendezvous()
        self.statuses: dict[str, str] = {}
        self.points = points

    def sync_loop(self) -> None:
        for _ in range(2):  # syncBatch
            pod = self.pod_status_channel.recv()
            self.points.at("received")
            self.delete_pod_status(pod)

    def delete_pod_status(self, pod: str) -> None:
        with self.pod_statuses_lock:
            self.statuses.pop(pod, None)

    def set_pod_status_buggy(self, pod: str) -> None:
        self.points.at("start")
        with self.pod_statuses_lock:
            self.points.at("locked")
            self.statuses[pod] = "running"
            self.pod_status_channel.send(pod)  # BUG: sends while holding the lock
            self.points.at("sent")

    def set_pod_status_fixed(self, pod: str) -> None:
        self.points.at("start")
        with self.pod_statuses_lock:
            self.points.at("locked")
            self.statuses[pod] = "running"
        self.pod_status_channel.send(pod)
        self.points.at("sent")


def _main(points: Points | None, fixed: bool) -> None:
    s = _StatusManager(or_none(points))
    setter = s.set_pod_status_fixed if fixed else s.set_pod_status_buggy
    run_threads(
        threading.Thread(target=s.sync_loop, name="status-sync"),
        threading.Thread(target=setter, args=("pod-1",), name="set-status-1"),
        threading.Thread(target=setter, args=("pod-2",), name="set-status-2"),
    )


def buggy(points: Points | None = None) -> None:
    _main(points, fixed=False)


def fixed(points: Points | None = None) -> None:
    _main(points, fixed=True)


META = Meta(
    origin="kubernetes #10182 (https://github.com/kubernetes/kubernetes/pull/10182)",
    kind="lock-queue",
    verdict="deadlock",
    threads=("status-sync", "set-status-1", "set-status-2"),
    primitives=("mutex statusManager.podStatusesLock", "channel podStatusChannel (unbuffered)"),
    interleaving=(
        "set-status-1 hands pod-1 to status-sync; before status-sync locks podStatusesLock in "
        "DeletePodStatus, set-status-2 takes the lock and blocks sending pod-2; status-sync "
        "blocks on the lock"
    ),
    blocked=("status-sync", "set-status-2"),
    fix="send on podStatusChannel after releasing podStatusesLock",
    schedule={
        "set-status-2:start": ["set-status-1:sent"],
        "status-sync:received": ["set-status-2:locked"],
    },
    goker="Flaky: 15/100",
)

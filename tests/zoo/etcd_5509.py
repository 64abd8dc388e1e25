"""etcd #5509: a read lock leaked on the ``ErrConnClosed`` return path (missing release).

Origin: https://github.com/etcd-io/etcd/pull/5509, GoKer kernel ``goker/blocking/etcd/5509``.
``remoteClient.acquire`` read-locks ``client.mu`` and, when the client is already closed,
returns ``ErrConnClosed`` without ``RUnlock``.  ``Client.Close`` drops ``mu`` while it cancels
and then locks it again; that write lock waits forever for a reader that has returned.  The
waiter is not in a cycle: the owner of the read lock is gone, so nothing can ever wake it.
The fixed twin releases the read lock on every path.
"""

from __future__ import annotations

import contextlib
import threading

from zoo.golike import run_threads
from zoo.meta import Meta
from zoo.points import Points, or_none
from zoo.rwlock import RWLock


class ConnClosedError(Exception):
    """etcd's ``ErrConnClosed``."""


class _Client:
    def __init__(self, points: Points) -> None:
        self.mu = RWLock(points)
        self.cancelled = False
        self.points = points

    def close(self) -> None:
        self.mu.acquire_write()
        self.cancelled = True  # cancel()
        self.mu.release_write()  # let in-flight requests see the cancellation
        self.points.at("unlocked")
        self.mu.acquire_write()  # finish closing
        self.mu.release_write()


class _RemoteClient:
    def __init__(self, client: _Client) -> None:
        self.client = client
        self.mu = threading.Lock()

    def acquire_buggy(self) -> None:
        self.client.mu.acquire_read()
        closed = self.client.cancelled
        with self.mu:
            pass
        if closed:
            raise ConnClosedError  # BUG: read lock not released
        self.client.mu.release_read()

    def acquire_fixed(self) -> None:
        with self.client.mu.read():
            closed = self.client.cancelled
            with self.mu:
                pass
            if closed:
                raise ConnClosedError


def _main(points: Points | None, fixed: bool) -> None:
    p = or_none(points)
    client = _Client(p)
    remote = _RemoteClient(client)
    acquire = remote.acquire_fixed if fixed else remote.acquire_buggy

    def kv_get() -> None:
        p.at("start")
        with contextlib.suppress(ConnClosedError):
            acquire()
        p.at("returned")

    run_threads(
        threading.Thread(target=kv_get, name="kv-get"),
        threading.Thread(target=client.close, name="client-close"),
    )


def buggy(points: Points | None = None) -> None:
    _main(points, fixed=False)


def fixed(points: Points | None = None) -> None:
    _main(points, fixed=True)


META = Meta(
    origin="etcd #5509 (https://github.com/etcd-io/etcd/pull/5509)",
    kind="missing-release",
    verdict="stall",
    threads=("kv-get", "client-close"),
    primitives=("rwlock Client.mu", "mutex remoteClient.mu"),
    interleaving=(
        "client-close cancels and unlocks Client.mu; kv-get read-locks it, sees the client "
        "closed and returns ErrConnClosed without RUnlock and exits; client-close blocks "
        "write-locking Client.mu behind a reader that no longer exists"
    ),
    blocked=("client-close",),
    fix="release the read lock on the error path (try/finally)",
    schedule={
        "kv-get:start": ["client-close:unlocked"],
        "client-close:unlocked": ["kv-get:returned"],
    },
)

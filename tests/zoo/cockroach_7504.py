"""cockroach #7504: lease ``tableNameCache.mu`` / ``LeaseState.mu`` inversion (AB-BA deadlock).

Origin: https://github.com/cockroachdb/cockroach/pull/7504, GoKer kernel
``goker/blocking/cockroach/7504`` (fix cab761b9).  ``LeaseManager.AcquireByName`` looks a lease
up in the name cache: it holds ``tableNameCache.mu`` and then locks the lease.  ``Release`` holds
``tableState.mu`` and the lease's ``mu`` and, while removing the lease, takes
``tableNameCache.mu``.  The fixed twin removes the lease from the name cache after the lease's
lock is released, so both paths order the locks the same way.
"""

from __future__ import annotations

import threading

from zoo.golike import run_threads
from zoo.meta import Meta
from zoo.points import Points, or_none


class _Lease:
    def __init__(self, lease_id: int) -> None:
        self.mu = threading.Lock()
        self.id = lease_id
        self.refcount = 0


class _NameCache:
    def __init__(self, points: Points) -> None:
        self.mu = threading.Lock()
        self.tables: dict[int, _Lease] = {}
        self.points = points

    def get(self, lease_id: int) -> None:
        with self.mu:
            self.points.at("has_name_cache_mu")
            lease = self.tables.get(lease_id)
            if lease is None:
                return
            with lease.mu:
                lease.refcount += 1

    def remove(self, lease: _Lease) -> None:
        with self.mu:
            if self.tables.get(lease.id) is lease:
                del self.tables[lease.id]


class _TableState:
    def __init__(self, names: _NameCache, leases: list[_Lease], points: Points) -> None:
        self.mu = threading.Lock()
        self.names = names
        self.active = list(leases)
        self.points = points

    def release_buggy(self, lease: _Lease) -> None:
        with self.mu, lease.mu:
            self.points.at("has_lease_mu")
            self.active.remove(lease)
            self.names.remove(lease)  # takes tableNameCache.mu under LeaseState.mu

    def release_fixed(self, lease: _Lease) -> None:
        with self.mu:
            with lease.mu:
                self.points.at("has_lease_mu")
                self.active.remove(lease)
            self.names.remove(lease)


def _main(points: Points | None, fixed: bool) -> None:
    p = or_none(points)
    leases = [_Lease(0), _Lease(1)]
    names = _NameCache(p)
    names.tables = {lease.id: lease for lease in leases}
    table = _TableState(names, leases, p)
    release = table.release_fixed if fixed else table.release_buggy
    run_threads(
        threading.Thread(target=names.get, args=(0,), name="acquire-by-name"),
        threading.Thread(target=release, args=(leases[0],), name="lease-release"),
    )


def buggy(points: Points | None = None) -> None:
    _main(points, fixed=False)


def fixed(points: Points | None = None) -> None:
    _main(points, fixed=True)


META = Meta(
    origin="cockroach #7504 (https://github.com/cockroachdb/cockroach/pull/7504)",
    kind="lock-order",
    verdict="deadlock",
    threads=("acquire-by-name", "lease-release"),
    primitives=("mutex tableNameCache.mu", "mutex LeaseState.mu", "mutex tableState.mu"),
    interleaving=(
        "acquire-by-name holds tableNameCache.mu and wants the lease's mu; lease-release holds "
        "tableState.mu and the lease's mu and wants tableNameCache.mu to drop the lease"
    ),
    blocked=("acquire-by-name", "lease-release"),
    fix="remove the lease from the name cache after releasing the lease's mutex",
    schedule={
        "acquire-by-name:has_name_cache_mu": ["lease-release:has_lease_mu"],
        "lease-release:has_lease_mu": ["acquire-by-name:has_name_cache_mu"],
    },
    goker="Flaky: 1/100",
)

"""cockroach #16167: a read lock re-taken behind a queued writer (RWR deadlock).

Origin: https://github.com/cockroachdb/cockroach/pull/16167, GoKer kernel
``goker/blocking/cockroach/16167`` (fix d064942b).  ``Executor.execParsed`` holds
``systemConfigCond.L`` -- which is ``systemConfigMu.RLocker()``, the read side of the same
RWMutex -- and deep inside, ``getDatabaseCache`` read-locks ``systemConfigMu`` again.  If
``updateSystemConfig`` asks for the write lock between the two read locks, the writer waits for
the first reader and, writers having preference, the second read waits for the writer.  The
fixed twin does not take the read lock again (``getDatabaseCache`` runs with it already held).
"""

from __future__ import annotations

import threading

from zoo.golike import run_threads
from zoo.meta import Meta
from zoo.points import Points, or_none
from zoo.rwlock import RWLock


class _Executor:
    def __init__(self, points: Points) -> None:
        self.system_config_mu = RWLock(points)
        self.system_config_cond = threading.Condition(self.system_config_mu.rlocker())  # type: ignore[arg-type]
        self.database_cache: dict[str, int] = {"system": 1}
        self.points = points

    def update_system_config(self) -> None:
        self.points.at("start")
        with self.system_config_mu.write():
            self.database_cache = {"system": 2}

    def exec_parsed(self, fixed: bool) -> None:
        with self.system_config_cond:  # read lock #1
            self.points.at("has_read")
            # runTxnAttempt -> execStmtInOpenTxn -> Prepare -> resetForBatch
            if fixed:
                self.get_database_cache_locked()
            else:
                self.get_database_cache()

    def get_database_cache(self) -> int:
        with self.system_config_mu.read():  # read lock #2
            return self.get_database_cache_locked()

    def get_database_cache_locked(self) -> int:
        return len(self.database_cache)


def _main(points: Points | None, fixed: bool) -> None:
    e = _Executor(or_none(points))
    run_threads(
        threading.Thread(target=e.update_system_config, name="config-updater"),
        threading.Thread(target=e.exec_parsed, args=(fixed,), name="executor"),
    )


def buggy(points: Points | None = None) -> None:
    _main(points, fixed=False)


def fixed(points: Points | None = None) -> None:
    _main(points, fixed=True)


META = Meta(
    origin="cockroach #16167 (https://github.com/cockroachdb/cockroach/pull/16167)",
    kind="rwlock-writer-preference",
    verdict="deadlock",
    provable="stall",
    threads=("config-updater", "executor"),
    primitives=(
        "rwlock Executor.systemConfigMu",
        "condition Executor.systemConfigCond (L = systemConfigMu.RLocker())",
    ),
    interleaving=(
        "executor read-locks systemConfigMu through systemConfigCond.L; config-updater queues "
        "for the write lock; executor read-locks systemConfigMu again in getDatabaseCache and "
        "waits behind the queued writer, which waits for executor's first read lock"
    ),
    blocked=("config-updater", "executor"),
    fix="do not re-take the read lock: call getDatabaseCache with the lock already held",
    schedule={
        "config-updater:start": ["executor:has_read"],
        "executor:has_read": ["config-updater:rw_writer_waiting"],
    },
    goker="Flaky: 1/100",
)

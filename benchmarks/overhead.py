"""What the live instrumentation costs: each workload with the original primitives and with
the tracked ones, in the same run, best of several repeats.

    python benchmarks/overhead.py [--repeats N] [--quick]

Targets: at most 3x on the micro-benchmarks (uncontended ``with lock:``, ``RLock``,
``queue.Queue`` put/get, ``asyncio.Queue`` put/get), at most 2x on an uncontended
``async with lock:`` and at most 1.15x on the pool workload (a ``ThreadPoolExecutor``
running 20,000 tiny tasks) for the live configurations; with the lock-order checker on
(``live+lockorder``), at most 4x on two nested locks and 1.2x on the pool workload (the
micro-benchmark targets are not applied to it: every acquire and release then runs the
checker's Python code). A configuration is a name with an install and an uninstall
function; add one to CONFIGURATIONS to measure another setup against "original".
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


def _nothing() -> None:
    pass


def _install_live() -> None:
    import stuck.runtime

    stuck.runtime.install(policy="report", signal=None)


def _install_live_without_watchdog() -> None:
    import stuck.runtime

    stuck.runtime.install(policy="report", signal=None, stalls=False)


def _uninstall_live() -> None:
    import stuck.runtime

    stuck.runtime.uninstall()


def _install_live_lockorder() -> None:
    import stuck.runtime
    from stuck.runtime import lockorder

    stuck.runtime.install(policy="report", signal=None)
    lockorder.enable()


def _uninstall_live_lockorder() -> None:
    import stuck.runtime
    from stuck.runtime import lockorder

    lockorder.disable()
    lockorder.reset()
    stuck.runtime.uninstall()


@dataclass(frozen=True)
class Configuration:
    name: str
    install: Callable[[], None]
    uninstall: Callable[[], None]


CONFIGURATIONS: list[Configuration] = [
    Configuration("original", _nothing, _nothing),
    # What stuck.install() and `stuck run` do by default: tracked primitives and the watchdog.
    Configuration("live", _install_live, _uninstall_live),
    # The tracked primitives and deadlock detection alone, without the watchdog thread.
    Configuration("live-nowatch", _install_live_without_watchdog, _uninstall_live),
    # `stuck run --lock-order`: the above plus the lock-order checker observing every lock.
    Configuration("live+lockorder", _install_live_lockorder, _uninstall_live_lockorder),
]


# --- workloads: each makes its primitives when called (after install) and returns the number
# of operations it timed and the seconds they took.

def lock_with(n: int) -> tuple[int, float]:
    lock = threading.Lock()
    start = time.perf_counter()
    for _ in range(n):
        with lock:
            pass
    return n, time.perf_counter() - start


def nested_two_locks(n: int) -> tuple[int, float]:
    outer = threading.Lock()
    inner = threading.Lock()  # made on its own line: another lock class
    start = time.perf_counter()
    for _ in range(n):
        with outer, inner:  # compiles to two nested with blocks
            pass
    return n, time.perf_counter() - start


def rlock_with(n: int) -> tuple[int, float]:
    lock = threading.RLock()
    start = time.perf_counter()
    for _ in range(n):
        with lock:
            pass
    return n, time.perf_counter() - start


def queue_put_get(n: int) -> tuple[int, float]:
    q: queue.Queue[int] = queue.Queue()
    start = time.perf_counter()
    for i in range(n):
        q.put(i)
        q.get()
    return n, time.perf_counter() - start


def asyncio_lock_with(n: int) -> tuple[int, float]:
    async def body() -> float:
        lock = asyncio.Lock()
        start = time.perf_counter()
        for _ in range(n):
            async with lock:
                pass
        return time.perf_counter() - start

    return n, asyncio.run(body())


def asyncio_queue_put_get(n: int) -> tuple[int, float]:
    async def body() -> float:
        q: asyncio.Queue[int] = asyncio.Queue()
        start = time.perf_counter()
        for i in range(n):
            await q.put(i)
            await q.get()
        return time.perf_counter() - start

    return n, asyncio.run(body())


def pool_tiny_tasks(n: int) -> tuple[int, float]:
    def tiny(x: int) -> int:
        return x + 1

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(tiny, i) for i in range(n)]
        for f in futures:
            f.result()
    return n, time.perf_counter() - start


@dataclass(frozen=True)
class Workload:
    name: str
    run: Callable[[int], tuple[int, float]]
    size: int
    target: float  # the ratio to original that is acceptable for the live configurations
    lockorder_target: float | None = None  # ... for live+lockorder (None: not judged)


WORKLOADS = [
    Workload("uncontended `with lock:`", lock_with, 200_000, 3.0),
    Workload("uncontended `with rlock:`", rlock_with, 200_000, 3.0),
    Workload("nested `with a: with b:`", nested_two_locks, 100_000, 3.0, 4.0),
    Workload("queue.Queue put+get", queue_put_get, 50_000, 3.0),
    Workload("asyncio `async with lock:`", asyncio_lock_with, 100_000, 2.0),
    Workload("asyncio.Queue put+get", asyncio_queue_put_get, 50_000, 3.0),
    Workload("ThreadPoolExecutor, 20,000 tiny tasks", pool_tiny_tasks, 20_000, 1.15, 1.2),
]


def measure(config: Configuration, workload: Workload, repeats: int, scale: float) -> float:
    """Best time per operation (seconds) over ``repeats`` runs."""
    config.install()
    try:
        best = float("inf")
        for _ in range(repeats):
            ops, seconds = workload.run(max(1, int(workload.size * scale)))
            best = min(best, seconds / ops)
        return best
    finally:
        config.uninstall()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="smaller workloads, 3 repeats")
    args = parser.parse_args()
    repeats = 3 if args.quick else args.repeats
    scale = 0.2 if args.quick else 1.0
    names = [c.name for c in CONFIGURATIONS]
    header = f"{'workload':40} " + " ".join(f"{n:>14}" for n in names) + \
        " " + " ".join(f"{n + '/orig':>20}" for n in names[1:]) + "  target"
    print(header)
    print("-" * len(header))
    failed = []
    for w in WORKLOADS:
        # Interleave configurations per repeat round to spread machine noise evenly.
        times = {c.name: float("inf") for c in CONFIGURATIONS}
        for _ in range(repeats):
            for c in CONFIGURATIONS:
                times[c.name] = min(times[c.name], measure(c, w, 1, scale))
        base = times["original"]
        ratios = [times[n] / base for n in names[1:]]
        cells = " ".join(f"{times[n] * 1e9:>12.0f}ns" for n in names)
        rcells = " ".join(f"{r:>19.2f}x" for r in ratios)
        verdicts = []
        for n, r in zip(names[1:], ratios, strict=True):
            target = w.lockorder_target if "lockorder" in n else w.target
            if target is not None and r > target:
                failed.append(f"{w.name} ({n}: {r:.2f}x > {target}x)")
                verdicts.append("MISSED")
        lo = f", lockorder <= {w.lockorder_target}x" if w.lockorder_target else ""
        print(f"{w.name:40} {cells} {rcells}  <= {w.target}x{lo} "
              f"{'MISSED' if verdicts else 'met'}")
    if failed:
        print("\nmissed targets: " + "; ".join(failed))


if __name__ == "__main__":
    main()

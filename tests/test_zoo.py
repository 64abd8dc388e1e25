"""The bug zoo: every buggy program blocks in its forced interleaving, every fixed twin runs.

The forced runs happen in child processes (``zoo.force``) with hard timeouts, so a blocked
program can never hang or leak threads into the test process.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

try:
    import zoo
except ImportError:  # pytest not configured with pythonpath = ["tests"]
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import zoo

from zoo import BUGS, KINDS, NAMES, VERDICTS, Schedule
from zoo.force import ForceResult, finish, start
from zoo.golike import Empty, Rendezvous, WaitGroup
from zoo.rwlock import RWLock
from zoo.stress import stress

ZOO_DIR = Path(zoo.__file__).resolve().parent
MAIN = "zoo-main"


def _force_all(variant: str, bound: float, gate_timeout: float) -> dict[str, ForceResult]:
    def one(name: str) -> ForceResult:
        proc = start(name, variant, bound=bound, gate_timeout=gate_timeout)
        return finish(proc, name, variant, timeout=2 * gate_timeout + bound + 20.0)

    with ThreadPoolExecutor(max_workers=6) as pool:
        return dict(zip(NAMES, pool.map(one, NAMES), strict=True))


@pytest.fixture(scope="module")
def forced_buggy() -> dict[str, ForceResult]:
    return _force_all("buggy", bound=0.5, gate_timeout=5.0)


@pytest.fixture(scope="module")
def forced_fixed() -> dict[str, ForceResult]:
    return _force_all("fixed", bound=5.0, gate_timeout=1.0)


# -- metadata -------------------------------------------------------------------------------


def test_registry_has_every_module() -> None:
    modules = {
        p.stem
        for p in ZOO_DIR.glob("*.py")
        if p.stem not in {"__init__", "meta", "points", "golike", "rwlock", "force", "held",
                          "stress"}
        and p.stem != "conftest"
    }
    assert modules == set(NAMES) == set(BUGS)
    assert len(BUGS) >= 11


@pytest.mark.parametrize("name", NAMES)
def test_metadata_complete(name: str) -> None:
    bug = BUGS[name]
    assert bug.name == name
    assert bug.kind in KINDS
    assert bug.verdict in VERDICTS
    assert bug.origin and ("http" in bug.origin or "seed" in bug.origin)
    assert bug.threads and len(set(bug.threads)) == len(bug.threads)
    assert bug.primitives and bug.interleaving and bug.fix
    assert bug.blocked and set(bug.blocked) <= set(bug.threads)
    assert callable(bug.buggy) and callable(bug.fixed)
    module = sys.modules[bug.module]
    assert module.__doc__ and "Origin" in module.__doc__
    for key, deps in bug.schedule.items():
        for point in (key, *deps):
            thread, _, label = point.rpartition(":")
            assert thread in bug.threads and label, point


def test_kinds_cover_the_issue() -> None:
    wanted = {
        "lock-order",
        "lock-queue",
        "condition-no-notifier",
        "queue-no-partner",
        "barrier-parties",
        "pool-starvation",
        "rwlock-writer-preference",
        "missing-release",
    }
    assert wanted <= {b.kind for b in BUGS.values()}


def test_measured_rates_recorded() -> None:
    """The full table (200 plain runs each) was measured and the fixed twins never blocked."""
    for bug in BUGS.values():
        assert bug.plain_runs is not None and bug.plain_runs >= 200, bug.name
        assert bug.plain_blocked is not None
        assert bug.plain_hit_rate.startswith(f"{bug.plain_blocked}/{bug.plain_runs}")
        assert bug.fixed_runs is not None and bug.fixed_runs >= 200, bug.name
        assert bug.fixed_blocked == 0, bug.name


def test_no_primitive_captured_at_import() -> None:
    """Programs must look primitives up at call time: no ``from threading import Lock``."""
    runtime = ("__init__", "meta", "points", "golike", "rwlock", *NAMES)
    for path in (ZOO_DIR / f"{stem}.py" for stem in runtime):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in {
                "threading",
                "queue",
                "concurrent.futures",
            }:
                pytest.fail(f"{path.name}:{node.lineno} imports names from {node.module}")


def test_import_runs_nothing_and_primitives_are_looked_up_at_call_time() -> None:
    code = f"""
import sys, threading
sys.path.insert(0, {str(ZOO_DIR.parent)!r})
import zoo
assert threading.active_count() == 1, threading.enumerate()
real = threading.Lock
made = []
def counting_lock(*a, **k):
    made.append(threading.current_thread().name)
    return real(*a, **k)
threading.Lock = counting_lock
for name, bug in zoo.BUGS.items():
    made.clear()
    bug.fixed()
    assert made, name
    assert threading.active_count() == 1, (name, threading.enumerate())
print("ok")
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


# -- forced interleavings ------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_buggy_blocks_when_forced(name: str, forced_buggy: dict[str, ForceResult]) -> None:
    result = forced_buggy[name]
    assert result.outcome == "blocked", result
    # The script played out: the threads are stuck in the program, not in the harness.
    assert not result.timed_out and not result.unreached and not result.parked, result
    live = set(result.threads) - {MAIN}
    assert live == set(BUGS[name].blocked), result.threads
    for thread, frames in result.threads.items():
        assert not any("points.py" in f for f in frames), (thread, frames)


@pytest.mark.parametrize("name", NAMES)
def test_fixed_completes_under_same_schedule(
    name: str, forced_fixed: dict[str, ForceResult]
) -> None:
    result = forced_fixed[name]
    assert result.outcome == "completed", result


# -- plain runs ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_fixed_twin_plain_runs(name: str) -> None:
    result = stress(name, runs=5, timeout=20.0, fixed=True, jobs=5)
    assert result.blocked == 0 and result.errors == 0, result


def test_stress_counts_always_blocking_program() -> None:
    result = stress("moby_25384", runs=2, timeout=1.0, jobs=2)
    assert (result.blocked, result.errors) == (2, 0), result


# -- helpers -------------------------------------------------------------------------------


def _daemon(target: Callable[[], object], name: str) -> threading.Thread:
    t = threading.Thread(target=target, name=name, daemon=True)
    t.start()
    return t


def test_rwlock_prefers_writers() -> None:
    rw = RWLock()
    rw.acquire_read()

    def write() -> None:
        with rw.write():
            pass

    writer = _daemon(write, "w")
    for _ in range(500):
        if rw._waiting_writers:
            break
        writer.join(0.01)
    assert rw._waiting_writers == 1
    assert rw.acquire_read(blocking=False) is False  # queued behind the writer
    rw.release_read()
    writer.join(5)
    assert not writer.is_alive()
    assert rw.acquire_read(blocking=False) is True
    rw.release_read()


def test_rendezvous_and_waitgroup() -> None:
    ch: Rendezvous[int] = Rendezvous()
    with pytest.raises(Empty):
        ch.try_recv()
    got: list[int] = []
    receiver = _daemon(lambda: got.append(ch.recv()), "r")
    ch.send(7)  # returns only once received
    receiver.join(5)
    assert got == [7]
    wg = WaitGroup()
    wg.add(2)
    workers = [_daemon(wg.done, f"d{i}") for i in range(2)]
    wg.wait()
    for w in workers:
        w.join(5)


def test_schedule_orders_threads_and_never_hangs() -> None:
    s = Schedule({"b:go": ["a:ready"]}, timeout=5.0)
    order: list[str] = []

    def b() -> None:
        s.at("go")
        order.append("b")

    def a() -> None:
        order.append("a")
        s.at("ready")

    tb = _daemon(b, "b")
    ta = _daemon(a, "a")
    ta.join(5)
    tb.join(5)
    assert order == ["a", "b"] and s.settled() and not s.timed_out
    lonely = Schedule({"c:wait": ["nobody:comes"]}, timeout=0.05)
    tc = _daemon(lambda: lonely.at("wait"), "c")
    tc.join(5)
    assert lonely.timed_out == ["c:wait <- nobody:comes"]

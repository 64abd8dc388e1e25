"""Thread pools that starve themselves, idle pools, and a thread waiting on a loop it blocks.

A job queued in a pool can only run on that pool's workers; when every worker waits for a job
queued behind it, nothing can run it (pool starvation). ``concurrent.futures`` is modelled that
way; ``multiprocessing.pool.ThreadPool`` (its own task queue, result handler and housekeeping
threads) must be too, and an idle pool's workers wait for work, they are not "running".
A thread joined by the event loop's thread, waiting with ``run_coroutine_threadsafe`` for a
coroutine on that loop, can never be answered: when no thread can run, that is proven.

Each program runs under ``stuck run`` as a user would run it; a hang is bounded by a timeout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

TIMEOUT = 25.0  # a proven stall ends the program in a second or two; a missed one never does

THREADPOOL_APPLY_ON_ITSELF = """
from multiprocessing.pool import ThreadPool
pool = ThreadPool(1)
def leaf(x):
    return x + 1
def branch(x):
    return pool.apply(leaf, (x,))   # the only worker waits for a job queued behind it
print("start", flush=True)
print(pool.apply(branch, (1,)), flush=True)
"""

THREADPOOL_IDLE = """
from multiprocessing.pool import ThreadPool
import time
with ThreadPool(2) as pool:
    for batch in range(2):
        print(sum(pool.map(lambda x: x * x, range(100))), flush=True)
        time.sleep(2.5)
print("bye")
"""

LOOP_JOINS_ITS_CALLER = """
import asyncio, threading
async def lookup(key):
    return key.upper()
def blocking_sync(loop):
    out = []
    def worker():
        fut = asyncio.run_coroutine_threadsafe(lookup("k"), loop)
        out.append(fut.result())   # needs the loop, whose thread joins this one
    t = threading.Thread(target=worker, name="bridge")
    t.start()
    t.join()
    return out[0]
async def main():
    print("calling", flush=True)
    print(blocking_sync(asyncio.get_running_loop()))
asyncio.run(main())
"""

NESTED_SUBMIT = """
from concurrent.futures import ThreadPoolExecutor
import time
pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="api")
def part(i):
    return i * 10
def handle(req):
    parts = [pool.submit(part, req * 100 + k) for k in range(3)]
    time.sleep(0.2)
    return sum(p.result() for p in parts)
print("start", flush=True)
futs = [pool.submit(handle, r) for r in range(2)]
print("results", [f.result() for f in futs], flush=True)
"""


def _run(tmp_path: Path, source: str, *options: str) -> tuple[int, str, str, dict[str, Any]]:
    """Run ``source`` under ``stuck run OPTIONS --json r.json``: exit code, stdout, stderr and
    the report (empty when none was written). A program still running at TIMEOUT is killed
    and reported with exit code -9."""
    (tmp_path / "prog.py").write_text(source)
    report = tmp_path / "r.json"
    try:
        done = subprocess.run([sys.executable, "-m", "stuck", "run", *options, "--json",
                               str(report), "prog.py"], cwd=tmp_path, capture_output=True,
                              text=True, timeout=TIMEOUT,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    except subprocess.TimeoutExpired as hung:
        out = hung.stdout.decode() if isinstance(hung.stdout, bytes) else (hung.stdout or "")
        err = hung.stderr.decode() if isinstance(hung.stderr, bytes) else (hung.stderr or "")
        return -9, out, err, {}
    data = json.loads(report.read_text()) if report.exists() else {}
    return done.returncode, done.stdout, done.stderr, data


def _threads(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["id"]: t for p in data.get("processes", []) for t in p["threads"]}


@pytest.mark.xfail(strict=True, reason="D1: multiprocessing.pool.ThreadPool is not modelled: "
                   "its workers' wait in SimpleQueue.get and ApplyResult.wait are unknown to "
                   "the rules, so a pool whose only worker waits on a job queued behind it "
                   "is never proven and --policy abort leaves it hung")
def test_threadpool_waiting_on_itself_is_proven_and_aborted(tmp_path: Path) -> None:
    rc, out, err, data = _run(tmp_path, THREADPOOL_APPLY_ON_ITSELF, "--policy", "abort")
    assert rc == 86, err[-3000:]
    assert out == "start\n"
    certain = [f for f in data["findings"] if f["confidence"] == "certain"]
    assert len(certain) == 1, data["findings"]
    threads = _threads(data)
    # The pool's worker is one of the stuck threads, and it is said to be blocked.
    workers = [t for t in threads.values() if t["name"].endswith("(worker)")]
    assert workers and all(t["state"] == "blocked" for t in workers), workers
    assert any(t["id"] in certain[0]["threads"] for t in workers)
    # Nothing blames the pool's housekeeping threads, which only wait for work.
    assert "_handle_results" not in certain[0]["summary"]
    assert "_handle_workers" not in certain[0]["summary"]


@pytest.mark.xfail(strict=True, reason="D2: an idle multiprocessing.pool.ThreadPool's workers "
                   "(in SimpleQueue.get, a C call) and its handler threads are taken for "
                   "running threads that make no progress: --hang-after reports false hangs")
def test_idle_threadpool_gets_no_hang_report(tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text(THREADPOOL_IDLE)
    plain = subprocess.run([sys.executable, "prog.py"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=60)
    assert plain.returncode == 0 and plain.stderr == ""
    rc, out, err, data = _run(tmp_path, THREADPOOL_IDLE, "--hang-after", "1s")
    assert (rc, out, err) == (0, plain.stdout, ""), err[-3000:]
    assert data == {}


@pytest.mark.xfail(strict=True, reason="D4: a thread waiting on run_coroutine_threadsafe's "
                   "future for a loop whose thread joins it is kept 'probable' (who could "
                   "complete that future is not known), though no thread can run: abort "
                   "never acts")
def test_thread_waiting_on_the_loop_that_joins_it_is_proven(tmp_path: Path) -> None:
    rc, out, err, data = _run(tmp_path, LOOP_JOINS_ITS_CALLER, "--policy", "abort")
    assert rc == 86, err[-3000:]
    assert out == "calling\n"
    certain = [f for f in data["findings"] if f["confidence"] == "certain"]
    assert len(certain) == 1, data["findings"]
    threads = _threads(data)
    # bridge's wait is the root; MainThread, which joins it, is stuck behind it.
    named = {threads[t]["name"] for t in certain[0]["threads"] if t in threads}
    behind = {threads[t]["name"] for t in certain[0].get("blocked_behind", []) if t in threads}
    assert "bridge" in named and "MainThread" in named | behind, certain[0]


@pytest.mark.xfail(strict=True, reason="D7: a concurrent.futures pool starved by its own "
                   "workers is reported as one self-deadlock per worker ('api_1 waits for "
                   "future-3, which only api_1 can complete'), though either worker could run "
                   "either queued job")
def test_starved_executor_is_one_finding_naming_every_worker(tmp_path: Path) -> None:
    rc, out, err, data = _run(tmp_path, NESTED_SUBMIT, "--policy", "abort")
    assert rc == 86, err[-3000:]
    assert out == "start\n"
    assert "which only api_" not in err, err
    assert len(data["findings"]) == 1, [f["summary"] for f in data["findings"]]
    finding = data["findings"][0]
    assert finding["confidence"] == "certain"
    threads = _threads(data)
    named = {threads[t]["name"] for t in finding["threads"] if t in threads}
    assert {"api_0", "api_1"} <= named, finding

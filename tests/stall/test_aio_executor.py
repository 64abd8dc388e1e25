"""asyncio and executors, run as users would (``programs/aio_executor.py``).

A task that holds a threading lock across the await of a call running in an executor, whose
thread waits for that lock, is a deadlock: the live report names the task, the loop's thread,
the worker, the lock and the callable; abort exits 86; the saved JSON given to ``stuck
analyze`` yields the same cycle. A lock the loop's thread took outside any coroutine's own
code stays the loop thread's, and the stall names the chain. A busy or sleeping executor gets
no finding and the program's own output.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tests.stall.test_live_json_agrees import verdicts

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = Path(__file__).resolve().parent / "programs" / "aio_executor.py"


def stuck_run(tmp_path: Path, *args: str, options: tuple[str, ...] = ("--policy", "abort"),
              ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any] | None]:
    report = tmp_path / "live.json"
    run = subprocess.run([sys.executable, "-m", "stuck", "run", *options, "--json",
                          str(report), str(PROGRAM), *args], capture_output=True, text=True,
                         timeout=120, cwd=str(tmp_path),
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return run, json.loads(report.read_text()) if report.exists() else None


def snapshot_while_reading(tmp_path: Path, program: list[str], report: Path,
                           answer: str) -> tuple[int, str, str]:
    """``stuck run --json report`` of ``program``, which prints "ready" and then reads a line
    in a worker: the snapshot is asked for by SIGUSR1 while it reads, then ``answer`` is given.
    (returncode, stdout, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "stuck", "run", "--json", str(report),
                             *program], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=str(tmp_path),
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.3)  # the worker is in its read
        proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 60
        while not report.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        out, err = proc.communicate(answer, timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err


def analyzed(tmp_path: Path) -> dict[str, Any]:
    again = subprocess.run([sys.executable, "-m", "stuck", "analyze", "--json", "-",
                            str(tmp_path / "live.json")], capture_output=True, text=True,
                           timeout=90)
    return json.loads(again.stdout)  # type: ignore[no-any-return]


def thread_named(doc: dict[str, Any], name: str) -> str:
    return next(t["id"] for p in doc["processes"] for t in p["threads"] if t["name"] == name)


# mode -> the worker running the call, the callable, the threads between it and the task
DEADLOCKS = {
    "held": ("asyncio_0", "blocking", []),
    "wrapped": ("wrapped_0", "blocking", []),
    "chain": ("asyncio_0", "through_other", ["middle"]),
    "gathered": ("", "blocking", []),  # whichever of the pool's two threads took it
}


@pytest.mark.parametrize("mode", sorted(DEADLOCKS))
def test_a_lock_held_across_an_await_of_its_taker_is_a_certain_deadlock(
        mode: str, tmp_path: Path) -> None:
    worker, call, between = DEADLOCKS[mode]
    run, live = stuck_run(tmp_path, mode)
    assert run.returncode == 86, run.stderr[-3000:]
    assert live is not None
    if not worker:
        lock_id = next(r["id"] for r in live["resources"] if r["label"] == "lock")
        worker = next(t["name"] for p in live["processes"] for t in p["threads"]
                      if t["name"].startswith("asyncio_") and t["waits"] is not None
                      and t["waits"]["resource"] == lock_id)
    deadlocks = [f for f in live["findings"] if f["kind"] == "deadlock"]
    assert len(deadlocks) == 1, live["findings"]
    f = deadlocks[0]
    assert f["confidence"] == "certain", f
    summary = f["summary"]
    for word in ("Task-1", "MainThread", worker, f"{call}()", "held by Task-1 itself"):
        assert word in summary, (word, summary)
    assert f["details"]["callable"] == call and f["details"]["event_loop_thread"] == "MainThread"
    task, worker_id = "task:Task-1", thread_named(live, worker)
    others = [thread_named(live, name) for name in between]
    # The cycle: the task waits for the future its worker runs; the worker (through the
    # threads between) for the lock the task holds.
    path = [task, worker_id, *others]
    edges = {(e["thread"], e["held_by"]) for e in f["cycle"]}
    assert edges == {(path[i], path[(i + 1) % len(path)]) for i in range(len(path))}
    resources = {r["id"]: r for r in live["resources"]}
    lock_edge = next(e for e in f["cycle"] if e["held_by"] == task)
    lock = resources[lock_edge["waits_for"]]
    assert lock["label"] == "lock" and lock["owners"] == [task]
    future = resources[next(e for e in f["cycle"] if e["thread"] == task)["waits_for"]]
    assert future["kind"] == "future" and future["owners"] == [worker_id]
    assert f"{call}()" in future["label"]
    # The loop's thread no longer shows the lock as its own: the task holds it.
    main = next(t for p in live["processes"] for t in p["threads"] if t["name"] == "MainThread")
    assert lock["id"] not in main["holds"]
    assert "DEADLOCK (certain)" in run.stderr and "STALL" not in run.stderr
    assert verdicts(analyzed(tmp_path)) == verdicts(live)


@pytest.mark.parametrize(("mode", "able"), [("heartbeat", "heartbeat"), ("ticker", "ticker")])
def test_a_thread_or_task_able_to_run_beside_the_cycle_makes_it_probable(
        mode: str, able: str, tmp_path: Path) -> None:
    """A thread that keeps running could release the plain Lock or complete the future by
    hand; another task of the loop runs on the thread that owns the lock: the deadlock is
    probable, the policy does not act on it (the program is stopped here once the report is
    written), and ``stuck analyze`` of the report says the same."""
    report = tmp_path / "live.json"
    proc = subprocess.Popen([sys.executable, "-m", "stuck", "run", "--policy", "abort",
                             "--json", str(report), str(PROGRAM), mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=str(tmp_path), env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        while not report.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        time.sleep(0.5)  # written whole
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode != 86  # a probable finding is reported, not acted on
    live = json.loads(report.read_text())
    (f,) = [f for f in live["findings"] if f["kind"] == "deadlock"]
    assert f["confidence"] == "probable"
    assert any(able in m for m in f["missing_evidence"]), f["missing_evidence"]
    assert verdicts(analyzed(tmp_path)) == verdicts(live)


def test_a_lock_the_loop_thread_took_outside_a_coroutine_stays_the_loop_threads(
        tmp_path: Path) -> None:
    """Taken in a plain function the task called, the lock cannot be given to a task: the
    loop's thread holds it, and on the stalled loop that thread runs nothing until the task
    resumes, which closes the cycle through it."""
    run, live = stuck_run(tmp_path, "helper")
    assert run.returncode == 86, run.stderr[-3000:]
    assert live is not None
    (f,) = [f for f in live["findings"] if f["kind"] in ("stall", "deadlock")]
    assert (f["kind"], f["confidence"]) == ("deadlock", "certain"), f
    assert f["summary"] == ("Task-1 (on the event loop in thread MainThread) awaits blocking() running on "
            "thread asyncio_0, which waits for lock lock, held by the event loop's thread "
            "MainThread, which runs nothing until Task-1 resumes")
    main, worker = thread_named(live, "MainThread"), thread_named(live, "asyncio_0")
    lock = next(r for r in live["resources"] if r["label"] == "lock")
    assert lock["owners"] == [main]
    assert {(e["thread"], e["held_by"]) for e in f["cycle"]} == {
        ("task:Task-1", worker), (worker, main), (main, "task:Task-1")}
    assert verdicts(analyzed(tmp_path)) == verdicts(live)


def test_a_producer_that_died_is_named_with_its_exception(tmp_path: Path) -> None:
    run, live = stuck_run(tmp_path, "producer")
    assert run.returncode == 86, run.stderr[-3000:]
    assert live is not None
    (f,) = [f for f in live["findings"] if f["kind"] == "stall"]
    assert ("waits to get from empty queue q, whose producer Task-2 ended with RuntimeError: "
            "sensor offline at aio_executor.py:") in f["summary"], f["summary"]
    assert "done or stuck" not in f["summary"]


MODES: dict[str, tuple[str, ...]] = {
    "report": (),
    "raise": ("--policy", "raise"),
    "hang-raise": ("--hang-after", "1s", "--hang-policy", "raise"),
}
# (A call that sleeps past --hang-after is that rule's finding, as for any thread: the sleepy
# program runs without a hang limit.)
BUSY = {"busy": (("2000",), MODES), "sleepy": ((), {k: MODES[k] for k in ("report", "raise")})}


@pytest.mark.parametrize("program", sorted(BUSY))
def test_a_busy_or_sleeping_executor_gets_no_finding(program: str, tmp_path: Path) -> None:
    args, modes = BUSY[program]
    plain = subprocess.run([sys.executable, str(PROGRAM), program, *args],
                           capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0 and plain.stderr == "", plain
    for mode, options in modes.items():
        run, live = stuck_run(tmp_path, program, *args, options=options)
        assert (run.returncode, run.stdout, run.stderr) == \
            (plain.returncode, plain.stdout, plain.stderr), f"{program} under {mode}"
        assert live is None, f"{program} under {mode}: {live and live['findings']}"


# The asyncio internals read (the future ``_chain_future`` closes over) on each interpreter
# installed, through the runtime's API (the CLI's dependencies are this venv's only).
VERSIONS = ["3.10", "3.11", "3.12", "3.13"]
VIA_API = """
import runpy, sys
import stuck.runtime as rt
rt.install(policy="abort", json_path=sys.argv[2])
sys.argv = [sys.argv[1], "held"]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def interpreter(version: str) -> str | None:
    """A python``version`` that runs: on PATH, or one pyenv installed (its shims answer only
    for the versions selected)."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [shutil.which(f"python{version}"),
                  *sorted(str(p) for p in pyenv.glob(f"versions/{version}.*/bin/python{version}"))]
    for python in candidates:
        if python is None:
            continue
        probe = subprocess.run([python, "-c", "import sys; print(sys.version_info[:2])"],
                               capture_output=True, text=True, timeout=30)
        if probe.returncode == 0 and probe.stdout.strip() == str(
                tuple(int(x) for x in version.split("."))):
            return python
    return None


@pytest.mark.parametrize("version", VERSIONS)
def test_the_deadlock_is_found_on_every_supported_interpreter(version: str,
                                                              tmp_path: Path) -> None:
    python = interpreter(version)
    if python is None:
        pytest.skip(f"python{version} is not installed (on PATH or under pyenv)")
    report = tmp_path / "live.json"
    run = subprocess.run([python, "-c", VIA_API, str(PROGRAM), str(report)],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert run.returncode == 86, run.stderr[-3000:]
    (f,) = json.loads(report.read_text())["findings"]
    assert (f["kind"], f["confidence"]) == ("deadlock", "certain"), f
    assert "awaits blocking() running on thread asyncio_0" in f["summary"]


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs SIGUSR1")
def test_a_snapshot_of_a_lock_held_across_an_await_that_will_end_reads_as_nothing_stuck(
        tmp_path: Path) -> None:
    """The snapshot asked for by SIGUSR1 while a task holds a Lock across the await of a call
    in I/O, and a thread waits for that Lock: the lock is the task's, and neither the live
    report nor ``stuck analyze`` of it finds anything (the task's loop may resume it)."""
    report = tmp_path / "live.json"
    returncode, out, err = snapshot_while_reading(tmp_path, [str(PROGRAM), "across"], report,
                                                  "go\n")
    assert returncode == 0, err
    assert "finished" in out
    live = json.loads(report.read_text())
    assert verdicts(live) == []
    lock = next(r for r in live["resources"] if r["label"] == "lock")
    assert lock["owners"] == ["task:Task-1"]
    waiter = next(t for p in live["processes"] for t in p["threads"] if t["name"] == "waiter")
    assert waiter["waits"]["resource"] == lock["id"] and waiter["waits"]["duration"] > 2.0
    assert verdicts(analyzed(tmp_path)) == []

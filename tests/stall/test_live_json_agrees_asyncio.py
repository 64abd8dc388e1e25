"""One rule for every source, for asyncio: the live report of a stuck asyncio program, saved as
JSON and given to ``stuck analyze``, yields the same findings (kind, confidence, tasks and
threads, cycle), and a stall of an event loop the same words: the event-loop rule
(``stuck.rules.loop``) judges the loop's facts the live source recorded in the snapshot
(``model.EventLoop``, the history on each primitive, tasks that ended as dead threads), not the
live objects.

Each program is run as its users would, under ``stuck run --policy abort``; ``timer`` is a
thread that keeps sleeping beside the loop (it could still call
``loop.call_soon_threadsafe``), so that stall is only probable, abort does not act, and the
program ends itself.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from stuck.errors import EXIT_ABORT

HEAD = "import asyncio, os, threading, time\n"
PROGRAMS: dict[str, tuple[str, str]] = {  # name -> (program, the words both must say)
    "event nobody sets": ("""
async def main():
    shutdown_requested = asyncio.Event()
    async def drain():
        await shutdown_requested.wait()
    await asyncio.create_task(drain(), name="drainer")
asyncio.run(main())
""", "drainer waits for event shutdown_requested, which nothing has ever set"),
    "producer died": ("""
async def main():
    q = asyncio.Queue()
    async def produce():
        await q.put(1)
        raise RuntimeError("sensor offline")
    async def consume():
        while True:
            await q.get()
    producer = asyncio.create_task(produce(), name="producer")  # noqa: F841 (kept alive)
    await asyncio.create_task(consume(), name="consumer")
asyncio.run(main())
""", "whose producer producer ended with RuntimeError: sensor offline at program.py:7"),
    "lock left held": ("""
async def main():
    session_lock = asyncio.Lock()
    async def leaky():
        await session_lock.acquire()
    await asyncio.create_task(leaky(), name="leaky")
    async with session_lock:
        pass
asyncio.run(main())
""", "held by task leaky, which ended without releasing it"),
    "future nobody completes": ("""
async def main():
    fut = asyncio.get_running_loop().create_future()
    await asyncio.create_task(asyncio.wait_for(fut, None), name="waiter")
asyncio.run(main())
""", "waiter awaits a future that nothing left running can complete"),
    "worker waits forever": ("""
never = threading.Event()
def blocking():
    never.wait()
async def main():
    await asyncio.get_running_loop().run_in_executor(None, blocking)
asyncio.run(main())
""", "Task-1 awaits blocking() running on thread asyncio_0"),
    "await cycle": ("""
async def main():
    lock = asyncio.Lock()
    go = asyncio.Event()
    async def helper():
        await go.wait()
        async with lock:
            pass
    async def owner():
        async with lock:
            child = asyncio.create_task(helper(), name="helper")
            await asyncio.sleep(0)
            go.set()
            await asyncio.sleep(0.01)
            await child
    await asyncio.create_task(owner(), name="owner")
asyncio.run(main())
""", "helper"),
    "queue cycle": ("""
async def main():
    a = asyncio.Queue()
    b = asyncio.Queue()
    async def ping():
        await a.put(0)
        await b.get()
        await b.get()
    async def pong():
        await a.get()
        await b.put(1)
        await a.get()
    await asyncio.gather(asyncio.create_task(ping(), name="ping"),
                         asyncio.create_task(pong(), name="pong"))
asyncio.run(main())
""", "ping gets from empty queue b, which only pong puts to"),
    "timer thread beside": ("""
import sys
def later():  # ends the program once its report is written (the test names the file)
    while not os.path.exists(sys.argv[1]):
        time.sleep(0.05)
    os._exit(3)
threading.Thread(target=later, name="timer", daemon=True).start()
async def main():
    ready = asyncio.Event()
    await asyncio.create_task(ready.wait(), name="waiter")
asyncio.run(main())
""", "Threads still able to run: timer"),
}


def verdicts(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
    return sorted((f["kind"], f["confidence"], tuple(sorted(f["threads"])),
                   tuple(sorted(f["blocked_behind"])),
                   tuple(sorted((e["thread"], e["waits_for"], e["held_by"])
                                for e in f["cycle"])))
                  for f in doc["findings"] if f["kind"] in ("stall", "deadlock"))


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_a_saved_asyncio_report_is_judged_as_it_was_live(name: str, tmp_path: Path) -> None:
    program, words = PROGRAMS[name]
    script = tmp_path / "program.py"
    script.write_text(HEAD + program)
    report = tmp_path / "live.json"
    run = subprocess.run([sys.executable, "-m", "stuck", "run", "--policy", "abort", "--json",
                          str(report), str(script), str(report)], capture_output=True, text=True,
                         timeout=90, cwd=str(tmp_path),
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert report.exists(), run.stderr[-3000:]
    live: dict[str, Any] = json.loads(report.read_text())
    assert verdicts(live), live["findings"]
    certain = all(f["confidence"] == "certain" for f in live["findings"])
    assert run.returncode == (EXIT_ABORT if certain else 3), run.stderr[-3000:]
    again = subprocess.run([sys.executable, "-m", "stuck", "analyze", "--json", "-",
                            str(report)], capture_output=True, text=True, timeout=90)
    assert again.returncode == 1, again.stderr
    analysed = json.loads(again.stdout)
    assert verdicts(analysed) == verdicts(live)
    stalls = [f for f in live["findings"] if f["kind"] == "stall"]
    assert [f["summary"] for f in analysed["findings"] if f["kind"] == "stall"] \
        == [f["summary"] for f in stalls]
    said = " ".join(f["summary"] + " " + f["explanation"] for f in live["findings"])
    assert words in said


# The report asked for on demand (SIGUSR1) says what the watchdog said: both are the rules'
# verdict on the live snapshot (``stuck.rules.evaluate``), and so is ``stuck analyze`` of it.
ON_DEMAND: dict[str, str] = {
    "await cycle": """
async def main():
    tasks = {}
    async def first():
        await asyncio.sleep(0)
        await tasks["second"]
    async def second():
        await asyncio.sleep(0)
        await tasks["first"]
    tasks["first"] = asyncio.create_task(first(), name="first")
    tasks["second"] = asyncio.create_task(second(), name="second")
    await asyncio.gather(tasks["first"], tasks["second"])
asyncio.run(main())
""",
    "loop nothing can wake": PROGRAMS["event nobody sets"][0],
}


def _report_written(path: Path, proc: subprocess.Popen[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists():
            return dict(json.loads(path.read_text()))
        time.sleep(0.05)
    raise AssertionError(f"no report was written (exit {proc.poll()})")


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs SIGUSR1")
@pytest.mark.parametrize("name", sorted(ON_DEMAND))
def test_the_report_asked_for_says_what_the_watchdog_and_analyze_say(
        name: str, tmp_path: Path) -> None:
    script = tmp_path / "program.py"
    script.write_text(HEAD + ON_DEMAND[name])
    report = tmp_path / "live.json"
    proc = subprocess.Popen([sys.executable, "-m", "stuck", "run", "--json", str(report),
                             str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, cwd=str(tmp_path))
    try:
        watchdog = _report_written(report, proc)  # the watchdog's, once it found the tasks
        report.rename(tmp_path / "watchdog.json")
        proc.send_signal(signal.SIGUSR1)
        asked = _report_written(report, proc)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    found = verdicts(watchdog)
    assert found and all(f["confidence"] == "certain" for f in watchdog["findings"]), found
    assert verdicts(asked) == found
    again = subprocess.run([sys.executable, "-m", "stuck", "analyze", "--json", "-",
                            str(report)], capture_output=True, text=True, timeout=90)
    assert again.returncode == 1, again.stderr
    assert verdicts(json.loads(again.stdout)) == found

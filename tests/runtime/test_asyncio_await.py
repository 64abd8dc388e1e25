"""asyncio tasks that await each other, or futures only the other will complete: nothing in the
loop can ever run again, and the watchdog says so (``stuck run``, in a subprocess: the program
never ends by itself, so each test reads the report and then kills it)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

LIMIT = 30.0

AWAIT_TASKS = """
    import asyncio

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
    """

AWAIT_FUTURES = """
    import asyncio

    async def main():
        loop = asyncio.get_running_loop()
        fut_a = loop.create_future()  # completed only by task b
        fut_b = loop.create_future()  # completed only by task a

        async def task_a():
            await fut_a
            fut_b.set_result("from a")

        async def task_b():
            await fut_b
            fut_a.set_result("from b")

        await asyncio.gather(task_a(), task_b())

    asyncio.run(main())
    """


def read_until(tmp_path: Path, program: str, marker: str, *,
               then_signal: bool = False) -> str:
    """Run ``program`` under stuck run; the stderr it wrote once ``marker`` appeared (and, with
    ``then_signal``, the snapshot that SIGUSR1 asks for after it)."""
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent(program))
    proc = subprocess.Popen([sys.executable, "-m", "stuck", "run", str(script)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    text = b""
    try:
        deadline = time.monotonic() + LIMIT
        sent = False
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stderr], [], [], 0.2)
            if ready:
                chunk = os.read(proc.stderr.fileno(), 65536)
                if not chunk:
                    break
                text += chunk
            decoded = text.decode(errors="replace")
            if marker in decoded and not then_signal:
                break
            if marker in decoded and not sent:
                before = len(text)
                proc.send_signal(signal.SIGUSR1)
                sent = True
            if sent and len(text) > before and "Threads (" in decoded[before:]:
                time.sleep(0.3)  # the rest of the snapshot
                ready, _, _ = select.select([proc.stderr], [], [], 0.5)
                if ready:
                    text += os.read(proc.stderr.fileno(), 65536)
                break
    finally:
        proc.kill()
        proc.wait()
    return text.decode(errors="replace")


def test_tasks_awaiting_each_other_under_gather_are_a_deadlock(tmp_path: Path) -> None:
    out = read_until(tmp_path, AWAIT_TASKS, "DEADLOCK")
    assert "DEADLOCK (certain): 2 asyncio tasks wait for each other" in out, out
    assert "first awaits task second; second awaits task first" in out
    assert "Blocked behind it: Task-1" in out  # main, in the gather


def test_tasks_awaiting_futures_only_the_other_completes_are_a_stall(tmp_path: Path) -> None:
    out = read_until(tmp_path, AWAIT_FUTURES, "STALL")
    assert "STALL (certain)" in out, out
    assert "Task-2 awaits a future that nothing left running can complete" in out
    assert "Task-3 awaits a future that nothing left running can complete" in out
    assert "no callback ready to run, no timer scheduled and no I/O to watch" in out


def test_snapshot_of_a_stuck_loop_names_states(tmp_path: Path) -> None:
    # The loop's thread sits in select with nothing to do: idle, not running; tasks suspended
    # on futures are blocked, not "unknown".
    out = read_until(tmp_path, AWAIT_FUTURES, "STALL", then_signal=True)
    snapshot = out.split("STALL", 1)[1]
    assert "thread · idle: MainThread" in snapshot, out
    assert "thread · blocked: Task-2 (task:Task-2)" in snapshot
    assert "unknown" not in snapshot.split("Threads (")[-1]

"""What stuck knows of an executor's call that runs without blocking on a tracked primitive:
its worker notes the call only when it blocks (no per-task cost), yet a snapshot still shows
the task awaiting it as waiting for that call, and finds nothing stuck."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from tests.stall.test_aio_executor import snapshot_while_reading

PROGRAM = '''
import asyncio, sys

def read_line():
    return sys.stdin.readline().strip()  # I/O: not a wait on a tracked primitive

async def main():
    loop = asyncio.get_running_loop()
    call = loop.run_in_executor(None, read_line)
    print("ready", flush=True)
    print("got", await call, flush=True)

asyncio.run(main())
'''


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs SIGUSR1")
def test_a_task_awaiting_a_running_call_waits_for_that_call(tmp_path: Path) -> None:
    script, report = tmp_path / "reader.py", tmp_path / "live.json"
    script.write_text(PROGRAM)
    returncode, out, err = snapshot_while_reading(tmp_path, [str(script)], report, "hello\n")
    assert returncode == 0, err
    assert out.endswith("got hello\n")
    live = json.loads(report.read_text())
    assert live["findings"] == []
    task = next(t for p in live["processes"] for t in p["threads"] if t["name"] == "Task-1")
    call = next(r for r in live["resources"] if r["id"] == task["waits"]["resource"])
    assert (call["kind"], call["label"]) == ("future", "read_line() in an executor"), call

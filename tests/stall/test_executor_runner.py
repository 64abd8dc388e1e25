"""What stuck knows of an executor's call that runs without blocking on a tracked primitive:
its worker notes the call only when it blocks (no per-task cost), yet a snapshot still shows
the task awaiting it as waiting for that call, and finds nothing stuck."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

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
    proc = subprocess.Popen([sys.executable, "-m", "stuck", "run", "--json", str(report),
                             str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
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
        out, err = proc.communicate("hello\n", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out.endswith("got hello\n")
    live = json.loads(report.read_text())
    assert live["findings"] == []
    task = next(t for p in live["processes"] for t in p["threads"] if t["name"] == "Task-1")
    call = next(r for r in live["resources"] if r["id"] == task["waits"]["resource"])
    assert (call["kind"], call["label"]) == ("future", "read_line() in an executor"), call

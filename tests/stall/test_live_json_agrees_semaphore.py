"""The live verdict on permits taken by threads that ended, saved as JSON and given to
``stuck analyze``, is the same verdict (kind, confidence, threads): the saved snapshot names
the ended holders as threads of their own, even when a later thread got their ident."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .test_live_json_agrees import verdicts

ENDED_HOLDERS = """
import threading
slots = threading.Semaphore(2)
def work(i):
    slots.acquire()
    if i < 2:
        return  # forgot to release
    slots.release()
ts = [threading.Thread(target=work, args=(i,), name=f"w{i}") for i in range(4)]
for t in ts[:2]: t.start()
for t in ts[:2]: t.join()
for t in ts[2:]: t.start()
for t in ts[2:]: t.join()
"""


def test_ended_semaphore_holders_live_and_analyze_agree(tmp_path: Path) -> None:
    script = tmp_path / "ended_holders.py"
    script.write_text(ENDED_HOLDERS)
    report = tmp_path / "live.json"
    run = subprocess.run([sys.executable, "-m", "stuck", "run", "--policy", "abort", "--json",
                          str(report), str(script)], capture_output=True, text=True,
                         timeout=90, cwd=str(tmp_path), env={**os.environ,
                                                             "PYTHONUNBUFFERED": "1"})
    assert run.returncode == 86, run.stderr[-3000:]
    live = json.loads(report.read_text())
    found = verdicts(live)
    assert found and {v[0:2] for v in found} == {("stall", "certain")}, live["findings"]
    again = subprocess.run([sys.executable, "-m", "stuck", "analyze", "--json", "-",
                            str(report)], capture_output=True, text=True, timeout=90)
    assert verdicts(json.loads(again.stdout)) == found

"""Waiters of one resource stuck for one reason are one finding, listing every waiter.

Three threads waiting on a semaphore whose two permits were taken by threads that ended
without releasing them are one stall, as the waiters of a barrier that can never fill are: the
cause is one, and a count of findings is what a reader reads first. Live and from the saved
JSON report (``stuck analyze``), the same."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

LEAKED_PERMITS = """
import threading
slots = threading.BoundedSemaphore(2)
def fetch(i):
    slots.acquire()
    if i % 2 == 0:
        try:
            raise OSError("timeout")
        except OSError:
            return                      # leaks the slot
    slots.release()
ts = [threading.Thread(target=fetch, args=(i,), name=f"fetch-{i}") for i in range(6)]
for t in ts: t.start()
for t in ts: t.join()
"""


def test_three_waiters_of_leaked_permits_are_one_stall(tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text(LEAKED_PERMITS)
    done = subprocess.run([sys.executable, "-m", "stuck", "run", "--policy", "abort", "--json",
                           "r.json", "prog.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 86, done.stderr
    assert "stuck: 1 stall found" in done.stderr, done.stderr
    live = json.loads((tmp_path / "r.json").read_text())["findings"]
    assert len(live) == 1
    threads = [t for p in json.loads((tmp_path / "r.json").read_text())["processes"]
               for t in p["threads"]]
    waiting = {t["id"] for t in threads if t["name"].startswith("fetch") and t["state"] ==
               "blocked"}
    assert len(waiting) == 3 and waiting == set(live[0]["threads"])
    assert " wait for semaphore slots, acquired by fetch-" in live[0]["summary"]
    assert "which ended without releasing their permits" in live[0]["summary"]
    for t in threads:
        if t["id"] in waiting:
            assert t["name"] in live[0]["summary"]
    again = subprocess.run([sys.executable, "-m", "stuck", "analyze", "r.json", "--json", "-"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=60)
    saved = json.loads(again.stdout)["findings"]
    assert [(f["kind"], f["confidence"], sorted(f["threads"])) for f in saved] == \
        [(f["kind"], f["confidence"], sorted(f["threads"])) for f in live]

"""A thread that has ended is listed once, also when a running thread got its ident.

Idents are reused as soon as a thread ends: a producer that dies before putting its sentinel
often leaves its ident to the consumer started right after it. The stall checker names the
ended thread as the queue's only putter, and the report adds the program's ended threads:
both must give it the same id, or the report and the JSON list it twice."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

MISSING_SENTINEL = """
import queue, threading

q = queue.Queue(maxsize=10)

def producer():
    for rec in ["1", "2", "x", "4"]:
        q.put(int(rec))          # ValueError on "x": the thread dies, no sentinel
    q.put(None)

def consumer():
    while q.get() is not None:
        pass

p = threading.Thread(target=producer, name="producer")
c = threading.Thread(target=consumer, name="consumer")
p.start(); c.start()
p.join(); c.join()
"""


def test_a_dead_producer_is_listed_once(tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text(MISSING_SENTINEL)
    reused = 0
    for n in range(4):  # the ident is reused in most runs; each run must list it once
        out = tmp_path / f"r{n}.json"
        done = subprocess.run([sys.executable, "-m", "stuck", "run", "--policy", "abort",
                               "--json", str(out), "prog.py"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 86, done.stderr
        threads = [t for p in json.loads(out.read_text())["processes"] for t in p["threads"]]
        names = Counter(t["name"] for t in threads)
        assert names == {"MainThread": 1, "consumer": 1, "producer": 1}, threads
        assert "Threads (3) in 3 groups" in done.stderr, done.stderr
        assert "1 thread · dead: producer ended (ValueError" in done.stderr
        producer = next(t for t in threads if t["name"] == "producer")
        assert producer["state"] == "dead"
        reused += "-ended-" in producer["id"]
    print(f"ident reused in {reused} of 4 runs")

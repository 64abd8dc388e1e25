"""The seven rows of issue 11's table, each run as a user would, under ``--policy abort``.

Each program starts its threads and the main thread joins them without a timeout. Every
thread ends up asleep, and none of the programs has a closed cycle of holding and waiting: the
verdict is a stall, never a deadlock, its explanation names the root wait and why nothing can
end it, and the abort policy ends the program with 86 once the stall has formed (how soon: the
2 s goal is measured by benchmarks/abort_latency.py, not asserted here, where the machine's
load decides when the watchdog gets the CPU; ``HANG`` bounds only a real hang). The
saved JSON given to ``stuck analyze`` must give the same finding; under ``pytest --stuck`` a
test whose thread stalls fails with the report; a pure-Python spin under ``--hang-policy abort``
exits 86, never 0.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from stuck.errors import EXIT_ABORT

HANG = 60  # seconds after which a program under --policy abort is taken to hang

EVENT_NOBODY_SETS = """
    import threading
    ready = threading.Event()
    waiter = threading.Thread(target=ready.wait, name="waiter")
    waiter.start()
    print("formed", time.time(), flush=True)
    waiter.join()
"""
DEAD_CONSUMER = """
    import queue, threading
    jobs = queue.Queue(maxsize=2)
    def consume():
        while True:
            if jobs.get() == 3:
                raise ValueError("cannot handle item 3")
    def produce():
        for i in range(10):
            jobs.put(i)
    consumer = threading.Thread(target=consume, name="consumer")
    producer = threading.Thread(target=produce, name="producer")
    consumer.start(); producer.start()
    consumer.join()  # dies at item 3; the producer then fills the queue and blocks
    print("formed", time.time(), flush=True)
    producer.join()
"""
NOTIFIER_RETURNED = """
    import threading
    cv = threading.Condition()
    done = []
    def notify():
        return  # meant to do the work and notify; returns without notifying
    def wait():
        with cv:
            while not done:
                cv.wait()
    notifier = threading.Thread(target=notify, name="notifier"); notifier.start()
    notifier.join()
    waiter = threading.Thread(target=wait, name="waiter"); waiter.start()
    print("formed", time.time(), flush=True)
    waiter.join()
"""
POOL_WITHOUT_WORKERS = """
    import queue, threading
    class Pool:  # a hand-written worker pool: a queue and N threads
        def __init__(self, workers):
            self.jobs = queue.Queue()
            for i in range(workers):
                threading.Thread(target=self.work, name=f"pool{i}", daemon=True).start()
        def work(self):
            while True:
                self.jobs.get()()
        def submit(self, fn):
            self.jobs.put(fn)
    class Store:
        def __init__(self):
            self.bg_cv = threading.Condition()
            self.compacted = False
            self.pool = Pool(0)  # made with zero workers
        def compact(self):
            with self.bg_cv:
                self.compacted = True
                self.bg_cv.notify_all()
        def write(self):
            self.pool.submit(self.compact)
            with self.bg_cv:
                while not self.compacted:
                    self.bg_cv.wait()
    store = Store()
    writer = threading.Thread(target=store.write, name="writer"); writer.start()
    print("formed", time.time(), flush=True)
    writer.join()
"""


def stuck_run(tmp_path: Path, code: str, *options: str) -> tuple[int, str, dict[str, Any],
                                                                float, Path]:
    """Exit code, stderr, JSON report, and the time (the program's own ``time.time()``) at
    which the program printed ``formed``, just before its last wait, of ``code`` run under
    ``stuck run``."""
    script = tmp_path / "prog.py"
    script.write_text("import time\n" + textwrap.dedent(code))
    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "stuck", "run", "--json", str(report),
                           *options, str(script)], capture_output=True, text=True,
                          timeout=HANG, cwd=str(tmp_path),
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    formed = [float(line.split()[1]) for line in proc.stdout.splitlines()
              if line.startswith("formed ")]
    assert formed, proc.stdout + proc.stderr
    data = json.loads(report.read_text()) if report.exists() else {}
    return proc.returncode, proc.stderr, data, formed[0], report


def the_stall(data: dict[str, Any]) -> dict[str, Any]:
    assert [f["kind"] for f in data["findings"]] == ["stall"], data["findings"]
    finding: dict[str, Any] = data["findings"][0]
    return finding


def names(data: dict[str, Any], ids: list[str]) -> set[str]:
    threads = {t["id"]: t["name"] for p in data["processes"] for t in p["threads"]}
    return {threads.get(i, i) for i in ids}


def check_aborted(code: int, stderr: str, data: dict[str, Any], formed: float) -> None:
    assert code == EXIT_ABORT, stderr
    assert "DEADLOCK" not in stderr
    assert "aborting (policy abort, a proven stall)" in stderr
    check_taken_after(data, formed)


def check_taken_after(data: dict[str, Any], formed: float) -> None:
    """The report the abort wrote is of the state once formed (both times are the program's
    clock), not of an earlier moment that happened to look the same."""
    assert data.get("taken_at") is not None, data
    assert data["taken_at"] >= formed, (data["taken_at"], formed)


def test_event_nobody_sets_is_a_stall_not_a_deadlock(tmp_path: Path) -> None:
    code, err, data, formed, _ = stuck_run(tmp_path, EVENT_NOBODY_SETS, "--policy", "abort")
    check_aborted(code, err, data, formed)
    stall = the_stall(data)
    assert stall["confidence"] == "certain"
    assert names(data, stall["threads"]) == {"waiter"}
    assert names(data, stall["blocked_behind"]) == {"MainThread"}
    assert "waiter waits on event ready" in stall["summary"]
    assert "No thread has ever signalled it" in stall["explanation"]


def test_dead_consumer_is_named_with_its_exception(tmp_path: Path) -> None:
    code, err, data, formed, _ = stuck_run(tmp_path, DEAD_CONSUMER, "--policy", "abort")
    check_aborted(code, err, data, formed)
    stall = the_stall(data)
    assert names(data, stall["threads"]) == {"producer"}
    assert "waits to put on full queue jobs" in stall["summary"]
    assert "consumer (died of ValueError at prog.py:" in stall["explanation"]


def test_notifier_that_returned_is_named(tmp_path: Path) -> None:
    code, err, data, formed, _ = stuck_run(tmp_path, NOTIFIER_RETURNED, "--policy", "abort")
    check_aborted(code, err, data, formed)
    stall = the_stall(data)
    assert names(data, stall["threads"]) == {"waiter"}
    assert "waiter waits on condition cv" in stall["summary"]
    assert "notifier (returned)" in stall["explanation"]


def test_job_queued_where_no_live_thread_reads_is_named(tmp_path: Path) -> None:
    code, err, data, formed, _ = stuck_run(tmp_path, POOL_WITHOUT_WORKERS, "--policy", "abort")
    check_aborted(code, err, data, formed)
    stall = the_stall(data)
    assert names(data, stall["threads"]) == {"writer"}
    # (an instance may be numbered, Store#1, when the report names several of a class)
    assert re.search(r"writer waits on condition Store(#\d)?\.bg_cv", stall["summary"])
    assert re.search(r"the job queued on Pool(#\d)?\.jobs can never run", stall["summary"])
    assert re.search(r"\(Store\.compact\) that writer queued on Pool(#\d)?\.jobs will never run",
                     stall["explanation"])




JOIN_AFTER_WORKER_DIED = """
    import queue, threading
    jobs = queue.Queue()
    def work():
        while True:
            if jobs.get() == 3:
                raise ValueError("cannot handle item 3")
            jobs.task_done()
    threading.Thread(target=work, name="worker", daemon=True).start()
    for i in range(5):
        jobs.put(i)
    print("formed", time.time(), flush=True)
    jobs.join()  # item 3 is never marked done: its worker died with it
"""
BARRIER_SHORT = """
    import threading
    gate = threading.Barrier(3)
    parties = [threading.Thread(target=gate.wait, name=f"party{i}") for i in range(2)]
    for p in parties: p.start()
    print("formed", time.time(), flush=True)
    for p in parties: p.join()
"""


def test_queue_join_whose_worker_died_names_the_worker(tmp_path: Path) -> None:
    """``Queue.join()`` waits for ``task_done``, which the takers call: not a ``get``."""
    code, err, data, formed, _ = stuck_run(tmp_path, JOIN_AFTER_WORKER_DIED, "--policy", "abort")
    check_aborted(code, err, data, formed)
    stall = the_stall(data)
    assert stall["confidence"] == "certain"  # nothing is left able to run
    assert names(data, stall["threads"]) == {"MainThread"}
    assert "waits for the items of queue jobs to be done (join)" in stall["summary"]
    assert "worker died of ValueError at prog.py:" in stall["summary"]
    assert "get from" not in stall["summary"]


def test_barrier_short_of_parties_with_nothing_left_to_run_is_certain(tmp_path: Path) -> None:
    """Who used a barrier before says who may arrive; with every thread blocked for good,
    nobody can, whoever it is: certain, and the abort policy acts on it."""
    code, err, data, formed, _ = stuck_run(tmp_path, BARRIER_SHORT, "--policy", "abort")
    check_aborted(code, err, data, formed)
    stall = the_stall(data)
    assert stall["confidence"] == "certain"
    assert names(data, stall["threads"]) == {"party0", "party1"}
    assert "can never collect its 3 parties" in stall["summary"]


def test_saved_live_report_gives_the_same_finding_to_analyze(tmp_path: Path) -> None:
    code, err, data, _, report = stuck_run(tmp_path, EVENT_NOBODY_SETS, "--policy", "abort")
    assert code == EXIT_ABORT, err
    out = subprocess.run([sys.executable, "-m", "stuck", "analyze", "--json", "-",
                          str(report)], capture_output=True, text=True, timeout=60)
    again = json.loads(out.stdout)

    def key(d: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [(f["kind"], f["confidence"], sorted(f["threads"]),
                 [(e["thread"], e["waits_for"], e["held_by"]) for e in f["cycle"]])
                for f in d["findings"]]

    assert key(again) == key(data)


def test_pytest_stuck_fails_a_stalled_test_with_the_report(tmp_path: Path) -> None:
    (tmp_path / "test_stalls.py").write_text(textwrap.dedent("""
        import threading

        def test_waits_on_an_event_nobody_sets():
            ready = threading.Event()
            waiter = threading.Thread(target=ready.wait, name="waiter", daemon=True)
            waiter.start()
            waiter.join()

        def test_next_one_runs():
            pass
    """))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "--stuck", "-p",
                           "no:cacheprovider", "test_stalls.py"], capture_output=True,
                          text=True, timeout=120, cwd=str(tmp_path))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 failed, 1 passed" in proc.stdout
    assert "StallError" in proc.stdout
    assert "STALL (certain): waiter waits on event ready" in proc.stdout
    assert "Blocked behind it: MainThread" in proc.stdout


def test_hang_policy_abort_on_a_pure_python_spin_exits_86(tmp_path: Path) -> None:
    script = tmp_path / "spin.py"
    script.write_text(textwrap.dedent("""
        import threading
        flag = []
        def spin():
            while not flag:
                pass
        t = threading.Thread(target=spin, name="spinner")
        t.start()
        t.join()
    """))
    proc = subprocess.run([sys.executable, "-m", "stuck", "run", "--hang-after", "1s",
                           "--hang-policy", "abort", str(script)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == EXIT_ABORT, proc.stderr
    assert "HANG (possible): spinner has made no progress" in proc.stderr
    assert "HangError" not in proc.stderr

"""The stall rules on real programs under ``stuck run``, each in a subprocess with a timeout.

Each program stalls (or, for the negative cases, waits in a way that can still end); a stalled
one would give up by itself after ``GIVE_UP`` seconds, and is ended once its report is written.
The report must appear while it is stuck, name the verdict, the threads and the resources, and
say nothing about the cases that could still be woken. How soon a report appears is measured
in benchmarks/abort_latency.py, not here: a test waits for the report, not for a fixed time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
# Seconds a stalled program waits (with a timeout, so it stays able to run) before it gives
# up: long past its report, even on a loaded machine. The test ends it once the report is in.
GIVE_UP = 30


def stuck_run(script: Path, *args: str, extra: tuple[str, ...] = (), timeout: float = 40,
              until: Callable[[dict[str, Any]], bool] | None = None, cwd: Path = ROOT,
              report: Path | None = None) -> tuple[str, dict[str, object] | None, Path]:
    """``stuck run`` of ``script``: its output and its JSON report. A program that ends by
    itself is waited for (``timeout`` only bounds a real hang). With ``until``, a program
    stuck for good is ended as soon as its report satisfies ``until``: the test waits for the
    report, not for a fixed time, so the watchdog may be slow to get the CPU on a loaded
    machine; a report that never comes fails the test after ``timeout``."""
    # The report goes to a private directory: never beside the script (examples/ is the repo).
    if report is None:
        report = Path(tempfile.mkdtemp(prefix="stuck-live-")) / (script.stem + ".report.json")
    cmd = [sys.executable, "-m", "stuck", "run", "--json", str(report), *extra, str(script),
           *args]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, cwd=str(cwd),
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + timeout
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                if until is not None:
                    data = read_report(report)
                    if data is not None and until(data):
                        break
                time.sleep(0.05)
        finally:
            if proc.poll() is None:  # stuck for good (or past the deadline): end it
                proc.kill()
            proc.wait()
        out.seek(0)
        err.seek(0)
        text = err.read() + out.read()
    return text, read_report(report), report


def read_report(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None  # not written yet, or being written


def has_stall(rule: str | None = None) -> Callable[[dict[str, Any]], bool]:
    """``until`` for ``stuck_run``: the report names a stall (found by ``rule``)."""
    return lambda doc: any(f["kind"] == "stall" and (rule is None or f["details"].get("rule")
                                                     == rule) for f in doc["findings"])


def program(tmp_path: Path, code: str) -> Path:
    """``code`` as a script; ``GIVE_UP`` in it is the seconds a stalled program waits."""
    path = tmp_path / "prog.py"
    path.write_text(textwrap.dedent(code).replace("GIVE_UP", str(GIVE_UP)))
    return path


def stalls(data: dict[str, object] | None) -> list[dict[str, object]]:
    if data is None:
        return []
    return [f for f in data["findings"] if f["kind"] == "stall"]  # type: ignore[index, attr-defined, union-attr]


def names(data: dict[str, object] | None, ids: object) -> set[str]:
    threads = {t["id"]: t["name"] for p in data["processes"]  # type: ignore[index, union-attr]
               for t in p["threads"]}  # type: ignore[index]
    return {threads.get(i, i) for i in ids}  # type: ignore[union-attr, attr-defined]


def test_store_stall_names_writer_condition_idle_worker_and_pool() -> None:
    text, data, _ = stuck_run(EXAMPLES / "store_stall.py", str(GIVE_UP), until=has_stall())
    [stall] = stalls(data)
    assert "DEADLOCK" not in text and "HANG" not in text
    assert "writer waits on condition Store#1.bg_cv" in stall["summary"]  # type: ignore[operator]
    assert "BackgroundPool('compaction').jobs can never run" in stall["summary"]  # type: ignore[operator]
    assert "flush:bg0 is idle on empty queue BackgroundPool('flush').jobs" in stall["explanation"]  # type: ignore[operator]
    assert names(data, stall["threads"]) == {"writer", "flush:bg0"}


def test_event_whose_only_setter_died() -> None:
    _, data, _ = stuck_run(EXAMPLES / "event_setter_died.py", str(GIVE_UP), until=has_stall())
    [stall] = stalls(data)
    assert names(data, stall["threads"]) == {"follower"}
    assert "event tick" in stall["summary"]  # type: ignore[operator]
    # The setter is named with what it died of (its exception and the program's line).
    assert "ticker (died of ZeroDivisionError at event_setter_died.py:29)" \
        in stall["explanation"]  # type: ignore[operator]


def test_queue_consumer_whose_producer_exited() -> None:
    _, data, _ = stuck_run(EXAMPLES / "queue_producer_exited.py", str(GIVE_UP),
                              until=has_stall())
    [stall] = stalls(data)
    assert stall["details"]["rule"] == "queue-get-no-producer"  # type: ignore[index]
    assert names(data, stall["threads"]) == {"consumer"}
    assert "producer (has ended)" in stall["explanation"]  # type: ignore[operator]


def test_future_whose_executor_workers_are_all_blocked_for_good(tmp_path: Path) -> None:
    _, data, _ = stuck_run(program(tmp_path, """
        import threading
        from concurrent.futures import ThreadPoolExecutor
        gate = threading.Event()
        def open_and_close():
            gate.set(); gate.clear()         # the only thread that ever opens the gate
        opener = threading.Thread(target=open_and_close, name="opener")
        opener.start(); opener.join()
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="compactor")
        pool.submit(gate.wait)               # its only worker waits for a gate nobody opens
        job = pool.submit(sum, [1, 2])        # queued behind it: no worker can run it
        client = threading.Thread(target=job.result, name="client", daemon=True)
        client.start()
        client.join(GIVE_UP)
        import os; os._exit(0)
    """), until=has_stall("future-executor"))
    found = stalls(data)
    [mine] = [f for f in found if "client" in names(data, f["threads"])]
    assert mine["details"]["rule"] == "future-executor"  # type: ignore[index]
    assert names(data, mine["threads"]) == {"client", "compactor_0"}
    assert "compactor" in mine["summary"] and "sum" in mine["summary"]  # type: ignore[operator]
    assert "opener (has ended)" not in mine["explanation"]  # the worker's own wait is named:
    assert "compactor_0" in mine["explanation"]  # type: ignore[operator]


def test_barrier_that_can_never_fill(tmp_path: Path) -> None:
    _, data, _ = stuck_run(program(tmp_path, """
        import threading
        phase = threading.Barrier(3)
        def member(rounds):
            for _ in range(rounds):
                phase.wait()
        ts = [threading.Thread(target=member, args=(2,), name=f"m{i}", daemon=True)
              for i in range(2)]
        quitter = threading.Thread(target=member, args=(1,), name="quitter")
        for t in ts + [quitter]:
            t.start()
        ts[0].join(GIVE_UP)
    """), until=has_stall())
    [stall] = stalls(data)
    assert stall["details"]["rule"] == "barrier"  # type: ignore[index]
    assert names(data, stall["threads"]) == {"m0", "m1"}
    assert "quitter (returned)" in stall["explanation"]  # type: ignore[operator]


def test_lost_wakeup(tmp_path: Path) -> None:
    _, data, _ = stuck_run(program(tmp_path, """
        import threading
        done = threading.Condition()
        def finish():
            with done:
                done.notify_all()            # nobody waits yet: the wake-up is lost
        t = threading.Thread(target=finish, name="finisher")
        t.start(); t.join()
        def await_done():
            with done:
                done.wait()                  # no predicate: waits for a notify already gone
        w = threading.Thread(target=await_done, name="waiter", daemon=True)
        w.start()
        w.join(GIVE_UP)
    """), until=has_stall())
    [stall] = stalls(data)
    assert stall["details"]["rule"] == "lost-wakeup"  # type: ignore[index]
    assert names(data, stall["threads"]) == {"waiter"}
    assert "finisher did notify" in stall["explanation"]  # type: ignore[operator]


def test_every_thread_asleep_without_a_cycle_is_a_stall_not_a_deadlock(tmp_path: Path) -> None:
    # Every thread waits for good, but nothing holds what another waits for: no cycle. The
    # root wait is the Event nobody can set; the main thread only waits behind it.
    text, data, _ = stuck_run(program(tmp_path, """
        import threading
        ready = threading.Event()
        w = threading.Thread(target=ready.wait, name="waiter", daemon=True)
        w.start()
        w.join()                             # main waits for the waiter, nobody sets ready
    """), until=lambda doc: any(f["confidence"] == "certain" for f in doc["findings"]))
    assert "DEADLOCK" not in text, text
    [stall] = stalls(data)
    assert stall["confidence"] == "certain", text
    assert names(data, stall["threads"]) == {"waiter"}
    assert names(data, stall["blocked_behind"]) == {"MainThread"}
    assert "event ready" in stall["summary"]  # type: ignore[operator]


@pytest.mark.parametrize("code", [
    # a timed wait
    """
    import threading
    e = threading.Event()
    w = threading.Thread(target=lambda: e.wait(2.5), name="timed", daemon=True)
    w.start(); w.join()
    """,
    # a consumer whose producer is alive but slow
    """
    import queue, threading, time
    q = queue.Queue()
    def produce():
        for i in range(2):
            time.sleep(1.2); q.put(i)
    def consume():
        for _ in range(2):
            q.get()
    p = threading.Thread(target=produce, name="producer"); p.start()
    c = threading.Thread(target=consume, name="consumer"); c.start()
    c.join()
    """,
    # a waiter on a socket
    """
    import socket, threading, time
    a, b = socket.socketpair()
    r = threading.Thread(target=lambda: a.recv(1), name="reader", daemon=True); r.start()
    time.sleep(2)
    """,
    # a condition whose notifier sleeps and then notifies
    """
    import threading, time
    cv = threading.Condition(); state = []
    def later():
        time.sleep(1.5)
        with cv:
            state.append(1); cv.notify_all()
    def waiter():
        with cv:
            while not state:
                cv.wait()
    threading.Thread(target=later, name="notifier").start()
    w = threading.Thread(target=waiter, name="waiter"); w.start(); w.join()
    """,
    # daemon threads idling at shutdown
    """
    import queue, threading, time
    q = queue.Queue()
    for i in range(3):
        threading.Thread(target=q.get, name=f"idle{i}", daemon=True).start()
    time.sleep(1.5)
    """,
], ids=["timed-wait", "slow-producer", "socket", "sleeping-notifier", "daemon-idle"])
def test_waits_that_can_still_end_are_not_stalls(tmp_path: Path, code: str) -> None:
    text, data, _ = stuck_run(program(tmp_path, code))
    assert "STALL" not in text and "DEADLOCK" not in text, text
    assert stalls(data) == []


def test_queue_producer_whose_ident_a_new_thread_took_is_still_gone(tmp_path: Path) -> None:
    # Thread idents are reused as soon as a thread ends. A producer that put once and ended,
    # then a new thread given its ident: the new thread never touched the queue, so the
    # consumer still waits for a producer that has ended (and no cycle runs through the new
    # thread).
    script = program(tmp_path, """
        import queue, sys, threading, time

        records = queue.Queue()
        stop = threading.Event()

        def producer():
            records.put("alpha")

        def consumer():
            while records.get() is not None:
                pass

        def idle():  # never touches the queue
            while not stop.is_set():
                time.sleep(0.05)

        reader = threading.Thread(target=consumer, name="consumer", daemon=True)
        reader.start()
        first = threading.Thread(target=producer, name="producer")
        first.start()
        first.join()
        for n in range(200):
            t = threading.Thread(target=idle, name=f"idle{n}", daemon=True)
            t.start()
            if t.ident == first.ident:
                break
            stop.set()
            t.join()
            stop.clear()
        else:
            print("no ident reused", file=sys.stderr)
            sys.exit(3)
        print("reused", file=sys.stderr)
        reader.join(timeout=GIVE_UP)
        sys.exit(1 if reader.is_alive() else 0)
    """)
    text, data, _ = stuck_run(script, until=has_stall())
    if "no ident reused" in text:
        pytest.skip("this system's threads did not reuse an ident within 200 threads")
    [stall] = stalls(data)
    assert stall["details"]["rule"] == "queue-get-no-producer"  # type: ignore[index]
    assert names(data, stall["threads"]) == {"consumer"}
    explanation = str(stall["explanation"])
    assert ("producer (has ended)" in explanation or "producer (returned)" in explanation) \
        and "idle" not in explanation, explanation

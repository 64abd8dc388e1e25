"""The watchdog never scans the heap (``gc.get_objects()``) to name ended threads. Run from its
own thread while the program runs, a heap scan hands out objects other threads are still
building: pebble's pool manager builds ``tuple(w for w in workers if not w.is_alive())``, and
the extra reference made that tuple's final resize fail with "SystemError: bad argument to
internal function" (pebble 5.2.3's suite under ``pytest --stuck``: tests that pass plain
failed, and its pool-manager threads died)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import stuck.runtime
from stuck.runtime import endings

PROGRAM = r"""
import gc, io, json, queue, sys, threading, time
import stuck

stuck.install(policy="report", report_stream=io.StringIO(), signal=None)
from stuck.runtime import stall

scans = []
_get_objects = gc.get_objects

def counting_get_objects(*args, **kwargs):
    scans.append(threading.current_thread().name)
    return _get_objects(*args, **kwargs)

gc.get_objects = counting_get_objects
sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter allows

jobs = queue.Queue()


def producer():  # the queue's only putter ends: the waiter's queue names an ended waker
    jobs.put(1)


p = threading.Thread(target=producer, name="producer")
p.start()
p.join()
waiter = threading.Thread(target=lambda: (jobs.get(), jobs.get()), name="waiter", daemon=True)
waiter.start()  # its second get waits for good: a stall the checks report, naming producer

stop = threading.Event()
errors = []
built = [0]


def pool_manager():  # pebble's WorkerManager.inspect_workers
    workers = [threading.Thread(target=lambda: None) for _ in range(20)]
    while not stop.is_set():
        try:
            tuple(w for w in workers if not w.is_alive())
            built[0] += 1
        except SystemError as exc:
            errors.append(str(exc))


manager = threading.Thread(target=pool_manager, name="manager")
manager.start()
checker = stall.LiveChecker()
checks = 0
named = set()
deadline = time.monotonic() + float(sys.argv[1])
while time.monotonic() < deadline or checks < 3:
    snap, findings = checker.check(0.0)
    named.update(t.name for t in snap.threads() if t.state == "dead")
    checks += 1
stop.set()
manager.join()
print(json.dumps({"checks": checks, "built": built[0], "errors": errors[:3],
                  "scans": scans, "named_dead": sorted(n for n in named if n)}))
"""


def test_checks_leave_tuples_being_built_by_other_threads_alone() -> None:
    proc = subprocess.run([sys.executable, "-c", PROGRAM, "3"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["checks"] >= 3 and result["built"] > 0, result
    assert result["errors"] == [], result  # before: ~15 SystemErrors in 20 checks
    assert result["scans"] == [], result
    # The ended putter is still named, from the Thread object stuck noted when it started.
    assert "producer" in result["named_dead"], result


def test_a_thread_started_under_install_is_known_after_it_ends() -> None:
    was_installed = stuck.runtime.installed()
    if not was_installed:
        stuck.runtime.install(policy="report", signal=None)
    try:
        t = threading.Thread(target=lambda: None, name="short-lived")
        t.start()
        t.join()
        assert t in endings.known_threads()
        assert t.ident is not None
        others = [o for o in endings.known_threads() if o is not t and o.ident == t.ident]
        end = endings.ending(t.ident, alive=set())
        if others:
            assert end is None  # several ended threads had that ident: not guessed
        else:
            assert end is not None and end.name == "short-lived"
    finally:
        if not was_installed:
            stuck.runtime.uninstall()

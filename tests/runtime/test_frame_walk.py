"""The walk over other threads' stacks (reports, the watchdog, the stall checker) is safe by
construction: it reads only what is safe on a frame another thread is running (code, line,
caller, globals), never that frame's locals, and never asks the garbage collector who refers
to an object. A stress run hammers the walk while many threads make and leave deep stacks."""

from __future__ import annotations

import json
import subprocess
import sys

STRESS = r"""
import gc, io, json, sys, threading, time
import stuck

stuck.install(policy="report", report_stream=io.StringIO(), signal=None)
from stuck.runtime import livereport, stall, watchdog

referrer_calls = []
_get_referrers = gc.get_referrers

def counting_get_referrers(*objs):
    referrer_calls.append(threading.current_thread().name)
    return _get_referrers(*objs)

gc.get_referrers = counting_get_referrers

stop = threading.Event()


class Account:  # named in reports by its lock's owner: "Account#1.lock"
    def __init__(self):
        self.lock = threading.Lock()


def deep(n, box):
    if n == 0:
        def inner():  # a closure: its frame starts by copying its free variables
            return box
        gen = (x for x in range(3))
        next(gen)  # a suspended generator on the way
        class Local:  # a class body's frame
            value = inner()
        time.sleep(0)
        return Local.value
    return deep(n - 1, box)


def churn():
    while not stop.is_set():
        threads = [threading.Thread(target=deep, args=(120, object())) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def sentinel(out):
    # The dict locals() returns is this frame's own: another thread that read this frame's
    # f_locals would write the current value of x into it.
    x = 1
    snapshot = locals()
    x = 2
    while not stop.wait(0.01):  # a timed wait: able to run, its stack walked as a root
        pass
    out["x"] = snapshot.get("x")
    return x


accounts = [Account(), Account()]
accounts[0].lock.acquire()  # held for good: a stall candidate for the waiter below
never = threading.Event()
stuck_waiter = threading.Thread(target=never.wait, name="waiter", daemon=True)
stuck_waiter.start()
out = {}
workers = [threading.Thread(target=churn, name=f"churn{i}") for i in range(3)]
workers.append(threading.Thread(target=sentinel, args=(out,), name="sentinel"))
for t in workers:
    t.start()

checker = stall.LiveChecker()
walks = deepest = 0
labels = set()
deadline = time.monotonic() + float(sys.argv[1])
while time.monotonic() < deadline:
    snap, _, _ = livereport.take()
    deepest = max([deepest, *(len(t.frames) for t in snap.threads())])
    labels.update(r.label for r in snap.resources)
    checker.check(0.0)
    watchdog.stack_snapshot()
    walks += 1
stop.set()
for t in workers:
    t.join()
print(json.dumps({"walks": walks, "deepest": deepest, "sentinel_x": out.get("x"),
                  "referrer_calls": referrer_calls, "labels": sorted(labels)}))
"""


def test_the_walk_survives_threads_making_and_leaving_deep_stacks() -> None:
    proc = subprocess.run([sys.executable, "-c", STRESS, "3"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]  # a crash in the walk ends it with -11
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["walks"] >= 3, result
    assert result["deepest"] >= 60, result  # deep stacks were walked (64 frames kept at most)
    # No foreign frame's locals were read: the sentinel's own locals dict kept x == 1.
    assert result["sentinel_x"] == 1, result
    # Owners are named from what the lock recorded when it was made, not through the
    # garbage collector.
    assert result["referrer_calls"] == [], result
    assert "Account#1.lock" in result["labels"], result

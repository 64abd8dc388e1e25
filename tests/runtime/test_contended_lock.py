"""A contended Lock is first waited for by giving the GIL away (``primitives._SPIN_YIELDS``),
then by blocking as a registered waiter. These tests hold the parts a user could see: the
program's own ``time.sleep`` is never called by it, every thread gets the lock, and a thread
blocked on a held lock is shown waiting once the spin is over. (What the spin is for, speed
under contention, is measured by ``benchmarks/busy.py --workloads many``.)"""

from __future__ import annotations

import io
import select
import threading
import time

import stuck.runtime
from stuck.runtime import patch


def test_contending_threads_never_call_the_programs_time_sleep(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert patch.active() is None
    stuck.runtime.install(report_stream=io.StringIO(), signal=None)
    calls: list[float] = []
    try:
        lock = threading.Lock()
        count = [0]
        start = threading.Barrier(8)

        def work() -> None:
            start.wait()
            for _ in range(300):
                with lock:
                    count[0] += 1
                    select.select([], [], [], 0)  # gives the GIL away while holding the lock

        # A program that replaces time.sleep (a test double, a clock library) after stuck
        # was installed: stuck's spin must not run it.
        monkeypatch.setattr(time, "sleep", lambda seconds: calls.append(seconds))
        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        monkeypatch.undo()
        stuck.runtime.uninstall()
    assert count[0] == 8 * 300
    assert calls == []


def test_a_thread_blocked_on_a_held_lock_is_shown_waiting_once_the_spin_is_over() -> None:
    assert patch.active() is None
    stuck.runtime.install(report_stream=io.StringIO(), signal=None)
    try:
        lock = threading.Lock()
        lock.acquire()
        t = threading.Thread(target=lambda: lock.acquire(), name="blocked")
        t.start()
        waiting = False
        deadline = time.monotonic() + 30
        while not waiting and time.monotonic() < deadline:
            snap = stuck.runtime.snapshot().snapshot
            waiting = any(th.name == "blocked" and th.waits is not None
                          and th.waits.op == "acquire" for th in snap.threads())
            time.sleep(0.01)
        lock.release()
        t.join()
    finally:
        stuck.runtime.uninstall()
    assert waiting

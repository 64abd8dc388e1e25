"""What no thread able to run can reach, nobody can signal: the reachability pass proves a
stall while other threads still run. stuck's own registry refers to every primitive waited on,
and is no way for the program to one: the pass does not walk through stuck's modules."""

from __future__ import annotations

import subprocess
import sys

from stuck.errors import EXIT_ABORT

# The main thread runs (module-level code: its namespace is its globals); the waiter waits on
# an Event that only its own frame refers to, or one the main thread's globals hold too. (An
# Event given to the thread as an argument is reachable: the Thread object keeps its args.)
ORPHANED_EVENT = """
import sys, threading, time
import stuck
stuck.install(policy="abort", signal=None)
kept = []

def waiter():
    event = threading.Event()  # its own: no other thread was given it
    if sys.argv[1] == "kept":
        kept.append(event)  # the running main thread can reach it: it may still set it
    event.wait()

threading.Thread(target=waiter, name="waiter", daemon=True).start()
for _ in range(30):
    time.sleep(0.1)
print("finished")
"""


def _run(how: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", ORPHANED_EVENT, how], capture_output=True,
                          text=True, timeout=60)


def test_an_event_no_running_thread_can_reach_is_a_certain_stall() -> None:
    out = _run("orphaned")
    assert out.returncode == EXIT_ABORT, out.stderr
    assert "STALL (certain): waiter waits on event" in out.stderr
    assert "no thread able to run can reach it" in out.stderr
    assert "aborting (policy abort, a proven stall)" in out.stderr


def test_an_event_a_running_thread_can_reach_is_no_finding() -> None:
    out = _run("kept")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "finished\n"
    assert "STALL" not in out.stderr

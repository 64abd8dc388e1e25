"""stuck's own threads never take a signal meant for the program.

A program that blocks a signal with ``pthread_sigmask`` and takes it with ``sigwait`` in a
thread of its own must behave under ``stuck run`` as it does plain: a thread stuck started
before the program blocked the signal must not be the one the kernel delivers it to (where it
would have its default action and end the process: exit 143 for SIGTERM, 140 for SIGUSR2)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from stuck.runtime.ownthread import signals_blocked, start_own_thread

pytestmark = pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"),
                                reason="needs POSIX signal masks")

# The shape of a threaded server's shutdown: the signal blocked in every thread of the
# program, taken by one thread with sigwait. The program sends it to itself (process-directed,
# as `kill PID` from a supervisor): the kernel gives it to a thread that does not block it,
# and only stuck's could be one.
SIGWAIT_PROGRAM = """\
import os, signal, threading
SIG = signal.{sig}
signal.pthread_sigmask(signal.SIG_BLOCK, {{SIG}})
stop = threading.Event()
def sig_thread():
    signal.sigwait({{SIG}})
    stop.set()
threading.Thread(target=sig_thread, name="signals", daemon=True).start()
os.kill(os.getpid(), SIG)
stop.wait()
print("stopped cleanly")
"""


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.mark.parametrize(("sig", "policy"), [
    ("SIGTERM", "report"), ("SIGUSR2", "report"), ("SIGINT", "report"),
    ("SIGTERM", "abort"), ("SIGUSR2", "raise"),  # raise sets a SIGUSR2 handler of its own
])
def test_sigwait_program_behaves_as_plain(tmp_path: Path, sig: str, policy: str) -> None:
    script = tmp_path / "sigwait_prog.py"
    script.write_text(SIGWAIT_PROGRAM.format(sig=sig))
    plain = _run([sys.executable, str(script)])
    under = _run([sys.executable, "-m", "stuck", "run", "--policy", policy, str(script)])
    assert plain.returncode == 0 and plain.stdout == "stopped cleanly\n", plain
    assert (under.returncode, under.stdout) == (plain.returncode, plain.stdout), under.stderr
    assert "stuck:" not in under.stderr, under.stderr


def _blocked_in(start: object) -> set[int]:
    """The signal mask a thread started by ``start`` has as its first step (its target's)."""
    seen: list[set[int]] = []
    ran = threading.Event()

    def target() -> None:
        seen.append({int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])})
        ran.set()

    start(target)  # type: ignore[operator]
    assert ran.wait(10), "the thread never ran"
    return seen[0]


def test_own_thread_blocks_asynchronous_signals_only() -> None:
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    mask = _blocked_in(lambda target: start_own_thread(target))
    assert {int(signal.SIGTERM), int(signal.SIGINT), int(signal.SIGUSR1),
            int(signal.SIGUSR2), int(signal.SIGALRM), int(signal.SIGCHLD)} <= mask
    # A fault in stuck's own thread still reaches faulthandler.
    assert not {int(signal.SIGSEGV), int(signal.SIGBUS), int(signal.SIGABRT)} & mask
    # The creating thread's mask is its own again.
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before


def test_a_thread_started_inside_signals_blocked_is_born_blocked() -> None:
    """Inherited from the creator, so no signal reaches it before its first step."""

    def plain_start(target: object) -> threading.Thread:
        t = threading.Thread(target=target, daemon=True)  # type: ignore[arg-type]
        with signals_blocked():
            t.start()
        return t

    assert int(signal.SIGTERM) in _blocked_in(plain_start)
    assert int(signal.SIGTERM) not in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_snapshot_signal_still_handled_by_the_program(tmp_path: Path) -> None:
    """The snapshot handover (SIGUSR1, a Python handler stuck sets) runs in the main thread as
    before: the report is written while the program keeps running."""
    script = tmp_path / "snap_prog.py"
    script.write_text(textwrap.dedent("""\
        import os, signal, sys, time
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.5)
        print("still running")
    """))
    done = _run([sys.executable, "-m", "stuck", "run", str(script)])
    assert done.returncode == 0, done.stderr
    assert done.stdout == "still running\n"
    assert "stuck: nothing found in live" in done.stderr, done.stderr


def test_every_thread_stuck_starts_goes_through_start_own_thread() -> None:
    """A thread started any other way would be born with the program's signals unblocked.
    (``stuck.explore`` is left out: its workers run the program's own code, as its threads.)"""
    import re

    src = Path(__file__).resolve().parents[2] / "src" / "stuck"
    starts = re.compile(r"\bThread\(\s*target|start_new_thread\(|\bTimer\(|\bThread\(\)")
    offenders = [f"{path.relative_to(src)}:{n}"
                 for path in src.rglob("*.py")
                 if path.parts[-2] != "explore" and path.name != "ownthread.py"
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if starts.search(line) and not line.lstrip().startswith("#")]
    assert offenders == [], "start these with stuck.runtime.ownthread.start_own_thread"

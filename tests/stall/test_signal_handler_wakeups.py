"""Waits a Python signal handler ends: the graceful-shutdown pattern under ``stuck run``.

The main thread waits for an Event (a Semaphore, an asyncio Event) that a signal handler sets
when the signal comes (SIGTERM from a supervisor, SIGALRM from ``signal.alarm``). Nothing else
can end the wait, so without the handler it would be a certain stall. The handler's code names
the primitive (a global, a closure cell), so the wait is a wait for the signal, as a read waits
for its peer (``stuck.rules.confidence.signal_handler_doubt``): no finding, and the program's
exit code, standard output and standard error are those of a plain run. A genuine stall with a
handler installed that names none of its primitives is still found, as probable (the handler
might reach it through calls), naming the handler.

The signal comes a few seconds after the wait starts, past the moment the watchdog judges it,
so a false certain finding would have ended the program first (as it did before)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .test_live import GIVE_UP, has_stall, program, stalls, stuck_run

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

DELAY = 3  # seconds before the signal comes: past the watchdog's judgement (about 1 s)

PROGRAMS = {
    # An Event set by a SIGTERM handler; a supervisor sends SIGTERM.
    "sigterm_event": f"""\
        import threading, signal, os, subprocess
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *a: stop.set())
        subprocess.Popen(["sh", "-c", f"sleep {DELAY}; kill -TERM {{os.getpid()}}"])
        print("serving")
        stop.wait()
        print("graceful shutdown")
    """,
    # A Semaphore released by a SIGALRM handler.
    "alarm_semaphore": f"""\
        import threading, signal
        sem = threading.Semaphore(0)
        signal.signal(signal.SIGALRM, lambda *a: sem.release())
        signal.alarm({DELAY})
        sem.acquire()
        print("alarm released sem")
    """,
    # An asyncio Event set through call_soon_threadsafe from a SIGTERM handler.
    "asyncio_event": f"""\
        import asyncio, signal, os, subprocess
        async def main():
            loop = asyncio.get_running_loop()
            stop = asyncio.Event()
            signal.signal(signal.SIGTERM, lambda *a: loop.call_soon_threadsafe(stop.set))
            subprocess.Popen(["sh", "-c", f"sleep {DELAY}; kill -TERM {{os.getpid()}}"])
            await stop.wait()
            print("async graceful stop")
        asyncio.run(main())
    """,
}

MODES = {
    "abort": ("--policy", "abort"),
    "raise": ("--policy", "raise"),
    "hang-raise": ("--hang-after", "1s", "--hang-policy", "raise"),
}


def _start(cmd: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_a_wait_a_signal_handler_ends_runs_as_plain(tmp_path: Path, name: str) -> None:
    script = tmp_path / f"{name}.py"
    script.write_text(textwrap.dedent(PROGRAMS[name]))
    # The plain run and one run per policy at once: the signal's delay dominates.
    procs = {"plain": _start([sys.executable, str(script)])}
    for mode, options in MODES.items():
        procs[mode] = _start([sys.executable, "-m", "stuck", "run", *options, str(script)])
    done = {mode: (p.communicate(timeout=60), p.returncode) for mode, p in procs.items()}
    (plain_out, plain_err), plain_code = done.pop("plain")
    assert plain_code == 0, plain_err
    for mode, ((out, err), code) in done.items():
        assert (code, out, err) == (plain_code, plain_out, plain_err), f"{mode}: {err}"


def test_a_genuine_stall_with_an_unrelated_handler_is_still_found_as_probable(
        tmp_path: Path) -> None:
    script = program(tmp_path, """\
        import signal, threading
        def on_hup(signum, frame):
            print("reloading configuration")
        signal.signal(signal.SIGHUP, on_hup)
        never = threading.Event()
        never.wait()  # nothing sets it: a stall, whatever on_hup does
    """)
    text, data, _ = stuck_run(script, extra=("--policy", "abort"), until=has_stall(),
                              timeout=GIVE_UP)
    [stall] = stalls(data)
    assert stall["confidence"] == "probable"
    assert "STALL (probable)" in text and "aborting" not in text
    first = stall["missing_evidence"][0]  # type: ignore[index]
    assert f"SIGHUP: on_hup at {script}:2" in first
    assert "if the signal never comes, this is a stall" in first
    assert "event never" in stall["summary"]  # type: ignore[operator]
    # abort acts on certain findings only; asked to act on probable ones, it ends the program.
    out = subprocess.run([sys.executable, "-m", "stuck", "run", "--policy", "abort",
                          "--act-on", "probable", str(script)],
                         capture_output=True, text=True, timeout=GIVE_UP)
    assert out.returncode == 86, out.stderr
    assert "STALL (probable)" in out.stderr


ABBA = """\
    import signal, threading
    signal.signal(signal.SIGTERM, lambda *a: print("terminating"))
    a, b = threading.{kind}(), threading.{kind}()
    both = threading.Barrier(2)
    def one(x, y):
        with x:
            both.wait()
            with y:
                pass
    t1 = threading.Thread(target=one, args=(a, b), name="t1", daemon=True)
    t2 = threading.Thread(target=one, args=(b, a), name="t2", daemon=True)
    t1.start(); t2.start()
    t1.join()
"""


def test_a_cycle_of_rlocks_a_handler_cannot_release_is_still_certain(tmp_path: Path) -> None:
    # Only its owner releases an RLock: the handler in the main thread cannot end these waits.
    script = program(tmp_path, ABBA.replace("{kind}", "RLock"))
    out = subprocess.run([sys.executable, "-m", "stuck", "run", "--policy", "abort",
                          str(script)], capture_output=True, text=True, timeout=GIVE_UP)
    assert out.returncode == 86, out.stderr
    assert "DEADLOCK (certain)" in out.stderr and "signal handler" not in out.stderr


def test_a_cycle_of_plain_locks_a_handler_could_release_is_probable(tmp_path: Path) -> None:
    # Any thread may release a plain Lock, the main thread running the handler too: the cycle
    # found when the second thread blocked is reported as probable and not acted on.
    script = program(tmp_path, ABBA.replace("{kind}", "Lock"))
    text, data, _ = stuck_run(script, extra=("--policy", "abort"), timeout=GIVE_UP,
                              until=lambda doc: any(f["kind"] == "deadlock"
                                                    for f in doc["findings"]))
    assert data is not None
    [deadlock] = [f for f in data["findings"] if f["kind"] == "deadlock"]
    assert deadlock["confidence"] == "probable"
    assert "if the signal never comes, this is a deadlock" in deadlock["missing_evidence"][0]
    assert "aborting" not in text

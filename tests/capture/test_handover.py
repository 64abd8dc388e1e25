"""The live report a program under stuck hands to ``stuck capture`` is left in /tmp only when
capture asked for it: a snapshot signal sent by hand writes the report as usual and leaves no
file behind."""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stuck.capture import handover

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")

PROGRAM = """
import sys, threading, time
print("ready", flush=True)
time.sleep(30)
"""


def _start(tmp_path: Path) -> subprocess.Popen[str]:
    script = tmp_path / "idle.py"
    script.write_text(PROGRAM)
    proc = subprocess.Popen([sys.executable, "-m", "stuck", "run", str(script)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 20
    while not handover.catches(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert handover.catches(proc.pid)
    return proc


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.kill()
    _, err = proc.communicate(timeout=20)
    return err


def test_a_snapshot_signal_sent_by_hand_leaves_no_file(tmp_path: Path) -> None:
    proc = _start(tmp_path)
    path = Path(handover.handover_path(proc.pid))
    seen = ""
    try:
        os.kill(proc.pid, signal.SIGUSR1)
        # Once the snapshot report itself is written (as before), no file was left beside it:
        # waited for by its text, not for a fixed time, which load may make too short.
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        while "MainThread" not in seen and time.monotonic() < deadline:
            if select.select([proc.stderr], [], [], 0.1)[0]:
                chunk = os.read(proc.stderr.fileno(), 65536)  # unbuffered: select sees all
                if not chunk:
                    break
                seen += chunk.decode(errors="replace")
        assert not path.exists()
    finally:
        err = seen + _stop(proc)
        left = path.exists()  # nor written later, up to the program's end
        path.unlink(missing_ok=True)
    assert not left
    assert "MainThread" in err  # the snapshot report itself was written, as before


def test_capture_asks_and_takes_the_report(tmp_path: Path) -> None:
    proc = _start(tmp_path)
    try:
        text = handover.request(proc.pid, 15.0)
        assert text is not None and '"schema"' in text
        assert not Path(handover.handover_path(proc.pid)).exists()  # taken
        assert not Path(handover.request_path(proc.pid)).exists()  # and the request removed
    finally:
        _stop(proc)


NATIVE_WAIT = """
import ctypes
libc = ctypes.CDLL(None)
mutex = ctypes.create_string_buffer(64)  # zeroed: a default (non-recursive) glibc mutex
libc.pthread_mutex_lock(mutex)
print("ready", flush=True)
libc.pthread_mutex_lock(mutex)  # waits inside glibc for ever: no signal brings it back
"""


def test_the_watchdog_answers_while_the_main_thread_is_stuck_in_native_code(
        tmp_path: Path) -> None:
    """A Python signal handler would run only once the main thread is back in the
    interpreter, which a thread waiting in a C library never is: the watchdog answers."""
    script = tmp_path / "native_wait.py"
    script.write_text(NATIVE_WAIT)
    proc = subprocess.Popen([sys.executable, "-m", "stuck", "run", str(script)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        text = handover.request(proc.pid, 15.0)
        assert text is not None and '"schema"' in text
        assert not Path(handover.handover_path(proc.pid)).exists()
        assert proc.poll() is None  # asked without a signal: the program runs on
    finally:
        err = _stop(proc)
    assert "could not hand" not in err


def test_only_a_plain_file_of_this_user_or_root_is_a_request() -> None:
    marker = Path(handover.request_path(os.getpid()))
    marker.unlink(missing_ok=True)
    try:
        assert handover.requested() is None
        marker.symlink_to("/etc/passwd")
        assert handover.requested() is None  # a link is nobody's request
        marker.unlink()
        marker.touch()
        first = handover.requested()
        assert first is not None
        if os.geteuid() == 0:
            os.chown(marker, 12345, 12345)
            assert handover.requested() is None  # another user may not ask
    finally:
        marker.unlink(missing_ok=True)


def _native_wait_verdict(tmp_path: Path, under_stuck: bool) -> list[tuple[str, str]]:
    from stuck.capture import collect, report, syscalls

    script = tmp_path / "native_wait.py"
    script.write_text(NATIVE_WAIT)
    argv = [sys.executable, *(["-m", "stuck", "run"] if under_stuck else []), str(script)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        main_thread = f"/proc/{proc.pid}/task/{proc.pid}/syscall"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # until it sleeps in the second lock's futex
            with open(main_thread) as f:
                call = syscalls.parse(f.read(), os.uname().machine)
            if call is not None and call.name == "futex":
                break
            time.sleep(0.05)
        rep = report(collect([proc.pid]))
        return [(f.kind, f.confidence) for f in rep.findings]
    finally:
        _stop(proc)


@pytest.mark.skipif(shutil.which("py-spy") is None, reason="py-spy is not installed")
def test_stucks_watchdog_is_no_waker_of_the_programs_waits(tmp_path: Path) -> None:
    """The watchdog thread runs none of the program's code: under `stuck run`, a wait only it
    could have ended gets the verdict it gets without stuck."""
    plain = _native_wait_verdict(tmp_path, under_stuck=False)
    assert plain == [("stall", "probable")]
    assert _native_wait_verdict(tmp_path, under_stuck=True) == plain

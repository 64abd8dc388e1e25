"""A program running under stuck hands its own live report to ``stuck capture``.

Seen from outside, a Python lock is a futex with no owner. The program's own stuck runtime
knows every owner, waiter and waker. On SIGUSR1 (the snapshot signal) the runtime writes its
report as usual, and, when capture asked for it (``request_path(pid)`` exists), also leaves it
as JSON at ``handover_path(pid)``, readable only by its user. A SIGUSR1 a user sends by hand
leaves no file behind. Capture asks with that signal only when the process is seen running
stuck's watchdog and catching SIGUSR1, so a program that does not expect the signal never gets
it.

Standard library only: ``write`` runs inside the program, in its signal handler.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

from stuck.model import Report

MAX_BYTES = 64 << 20


HANDOVER_DIR = "/tmp"  # fixed: the program and capture may see different TMPDIRs


def handover_path(pid: int) -> str:
    return os.path.join(HANDOVER_DIR, f"stuck-report-{pid}.json")


def request_path(pid: int) -> str:
    return os.path.join(HANDOVER_DIR, f"stuck-request-{pid}")


def write_if_requested(report: Report) -> bool:
    """Inside the program: leave ``report`` for capture when capture asked for it (its request
    file exists); True when written."""
    if not os.path.lexists(request_path(os.getpid())):
        return False  # not asked: a snapshot signal sent by hand leaves nothing in /tmp
    write(report)  # (the request is capture's to remove: /tmp's sticky bit may forbid us)
    return True


def write(report: Report) -> None:
    """Inside the program: leave ``report`` for capture (atomically, mode 0600)."""
    from stuck.report.json import dumps

    path = handover_path(os.getpid())
    tmp = f"{path}.{time.monotonic_ns()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(dumps(report))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def catches(pid: int, signum: int = signal.SIGUSR1) -> bool:
    """Does ``pid`` handle ``signum`` (``SigCgt`` in /proc/PID/status)? A signal a process
    does not catch would end it."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    except (OSError, ValueError, IndexError):
        return False
    return False


def request(pid: int, timeout: float) -> str | None:
    """Ask ``pid`` for its live report and wait for it; None when none came in time."""
    path = handover_path(pid)
    try:
        uid = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None
    asked = time.time()
    marker = request_path(pid)
    try:
        os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
    except OSError:
        return None
    try:
        return _wait_for(pid, path, uid, asked, timeout)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(marker)  # not taken in time: the program will not write late


def _wait_for(pid: int, path: str, uid: int, asked: float, timeout: float) -> str | None:
    try:
        os.kill(pid, signal.SIGUSR1)
    except OSError:
        return None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:
            time.sleep(0.05)
            continue
        if st.st_uid == uid and st.st_mtime >= asked - 1 and st.st_size <= MAX_BYTES:
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    text = f.read(MAX_BYTES)
            except OSError:
                return None
            with contextlib.suppress(OSError):
                os.unlink(path)
            return text
        time.sleep(0.05)
    return None

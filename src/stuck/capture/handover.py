"""A program running under stuck hands its own live report to ``stuck capture``.

Seen from outside, a Python lock is a futex with no owner. The program's own stuck runtime
knows every owner, waiter and waker. Capture asks for that knowledge by leaving a request file
(``request_path(pid)``); stuck's watchdog thread, which looks for it after each of its checks,
answers with its latest report as JSON at ``handover_path(pid)``, readable only by its user.

The watchdog answers, not a signal handler: a Python signal handler runs only on the main
thread, and only once that thread is back in the interpreter. A main thread stuck in native
code (a C library's mutex, a wait that retries after a signal) never gets there, and a signal
the kernel delivers to another thread leaves it asleep: the request would go unanswered. The
watchdog's report is also the one taken from outside the waits, so the main thread shows as
it waits (in the selector of an idle event loop, say), not as running a handler. Capture asks
only when the process is seen running stuck's watchdog (its frames in the Python stacks), and
sends no signal: a program that does not expect one never gets one.

Standard library only: ``answer`` runs inside the program, in the watchdog thread.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import time

from stuck.model import Report

MAX_BYTES = 64 << 20


HANDOVER_DIR = "/tmp"  # fixed: the program and capture may see different TMPDIRs


def handover_path(pid: int) -> str:
    return os.path.join(HANDOVER_DIR, f"stuck-report-{pid}.json")


def request_path(pid: int) -> str:
    return os.path.join(HANDOVER_DIR, f"stuck-request-{pid}")


def requested(pid: int | None = None) -> tuple[int, int] | None:
    """Inside the program: the identity of capture's pending request (inode, change time), or
    None when there is none. One ``lstat``: cheap enough for every watchdog check."""
    try:
        st = os.lstat(request_path(os.getpid() if pid is None else pid))
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_uid not in (os.geteuid(), 0):
        return None  # only this user (or root) may ask: /tmp is everyone's
    return (st.st_ino, st.st_ctime_ns)


def write_if_requested(report: Report) -> bool:
    """Inside the program: leave ``report`` for capture when capture asked for it (its request
    file exists); True when written."""
    if requested() is None:
        return False  # not asked: nothing is left in /tmp
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
    """Ask ``pid`` for its live report (its watchdog answers after its next check) and wait
    for it; None when none came in time."""
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
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:
            if not os.path.exists(f"/proc/{pid}"):
                return None  # it ended: nobody will answer
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

"""Running an outside tool against a live process: time-bounded, never left behind.

Every tool runs in its own session with a deadline. A tool that overruns is killed with its
whole process group; a target that a killed debugger left stopped is continued (a debugger that
dies while attached can leave its target in a stop), so capture never leaves stopped a process
that was running.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass


@dataclass(slots=True)
class Ran:
    out: str
    err: str
    code: int | None  # None: killed at the deadline


def find(name: str) -> str | None:
    """The tool on PATH, or next to the running Python (a venv's bin holds py-spy, pystack)."""
    import sys

    found = shutil.which(name)
    if found:
        return found
    near = os.path.join(os.path.dirname(sys.executable), name)
    return near if os.access(near, os.X_OK) else None


def run(argv: list[str], timeout: float, target: int | None = None) -> Ran:
    """Run a tool against ``target`` within ``timeout`` seconds. A target that was running
    before and is found stopped after a killed tool is continued; one the user had stopped
    is left as it was."""
    env = dict(os.environ, LC_ALL="C", PYTHONWARNINGS="ignore")
    was_stopped = target is not None and stopped(target)
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True, env=env)
    try:
        out, err = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        code = None
    finally:
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if target is not None and code is None and not was_stopped:
        _continue_if_left_stopped(target)
    return Ran(out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), code)


def _continue_if_left_stopped(pid: int, grace: float = 0.5) -> None:
    """Continue ``pid`` if a killed debugger left any of its threads stopped. The kernel
    detaches the threads of a dead tracer one by one, and a stop the tracer asked for may be
    delivered just after, so the threads are watched for ``grace`` seconds, not looked at once."""
    deadline = time.monotonic() + grace
    while True:
        if any_thread_stopped(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGCONT)
        if time.monotonic() >= deadline:
            return
        time.sleep(0.02)


def any_thread_stopped(pid: int) -> bool:
    """Is any thread of ``pid`` stopped (by a signal or a tracer)?"""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    return any(stopped(pid, tid) for tid in tids)


def stopped(pid: int, tid: str | None = None) -> bool:
    """Is ``pid`` (or its thread ``tid``) stopped (by a signal or a tracer)?"""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:][:1] in ("T", "t")


def first_line(text: str) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("warning:", "Warning:")):
            return line[:300]
    return ""

"""multiprocessing under `stuck run`: the parent's blocked pipe read is I/O to its worker, and
the abort policy does not leave the worker running without its parent."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest
from tests.capture.conftest import PROGRAMS


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_parent_reading_its_workers_pipe_is_io_to_the_child(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out.txt"
    with open(out, "w") as sink:
        run = subprocess.Popen([sys.executable, "-m", "stuck", "run", "--hang-after", "1s",
                                str(PROGRAMS / "py_mp_waits_for_worker.py")],
                               stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while "HANG" not in out.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        text = out.read_text()
    finally:
        os.killpg(run.pid, 9)
        run.wait()
    child = re.search(r"child (\d+)", text)
    assert child is not None, text
    hang = next(line for line in text.splitlines() if line.startswith("HANG"))
    assert "in I/O (read on pipe:[" in hang
    assert f"child pid {child.group(1)}" in hang
    assert "going round" not in text
    assert f"stuck capture --tree {run.pid}" in text  # the program runs in stuck's process


def test_abort_policy_ends_the_multiprocessing_worker_too() -> None:
    run = subprocess.run([sys.executable, "-m", "stuck", "run", "--policy", "abort",
                          str(PROGRAMS / "py_mp_abort.py")], capture_output=True, text=True,
                         timeout=120, start_new_session=True)
    child = re.search(r"child (\d+)", run.stdout)
    assert child is not None, run.stdout + run.stderr
    pid = int(child.group(1))
    try:
        assert run.returncode == 86, run.stderr
        assert "DEADLOCK" in run.stdout + run.stderr
        assert not _alive(pid)  # ended with its parent, not left with parent 1
    finally:
        if _alive(pid):
            os.kill(pid, 9)


if not sys.platform.startswith("linux"):
    pytest.skip("reads Linux /proc", allow_module_level=True)


def test_a_write_to_a_full_pipe_points_to_capture(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The parent fills its child's stdin while the child fills a stdout nobody reads: from
    inside, one thread in I/O; the report says how to see the other end."""
    script = tmp_path / "fill.py"
    script.write_text(
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import sys\\n"
        "for l in sys.stdin: sys.stdout.write(l * 50)'], stdin=subprocess.PIPE,\n"
        "                         stdout=subprocess.PIPE)\n"
        "for i in range(100000):\n"
        "    child.stdin.write(b'x' * 100 + b'\\n')\n")
    run = subprocess.run([sys.executable, "-m", "stuck", "run", "--hang-after", "1s",
                          "--hang-policy", "abort", str(script)], capture_output=True,
                         text=True, timeout=120, start_new_session=True)
    assert run.returncode == 86, run.stderr
    hang = next(line for line in run.stderr.splitlines() if line.startswith("HANG"))
    assert "in I/O (write" in hang
    pid = re.search(r"`stuck capture (\d+)` reads it from outside", run.stderr)
    assert pid is not None, run.stderr

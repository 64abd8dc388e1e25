"""A child forked while another thread held a lock: the classic fork-while-locked hang. The
child has only the thread that forked; it gets a watchdog of its own, so the wait is found
there, and the abort policy ends the child (its parent, waiting for it, goes on)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

FORK_WHILE_LOCKED = """
    import os, threading, time
    lock = threading.Lock()
    holding = threading.Event()
    def hold():
        with lock:
            holding.set()
            time.sleep(3)
    threading.Thread(target=hold, name="holder", daemon=True).start()
    holding.wait()
    pid = os.fork()
    if pid == 0:
        with lock:  # its holder is not in this process
            print("child got it", flush=True)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    print("child exit", os.waitstatus_to_exitcode(status), flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_while_a_lock_was_held_is_found_and_aborted(tmp_path: Path) -> None:
    script = tmp_path / "fork_locked.py"
    script.write_text(textwrap.dedent(FORK_WHILE_LOCKED))
    run = subprocess.run([sys.executable, "-m", "stuck", "run", "--policy", "abort",
                          str(script)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr  # the parent's own exit
    assert "child exit 86" in run.stdout, run.stdout + run.stderr
    assert "child got it" not in run.stdout
    assert "STALL (certain): MainThread waits for mutex lock, held by holder" in run.stderr

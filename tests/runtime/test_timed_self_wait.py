"""A thread that tries, with a timeout, a Lock it holds itself waits until the timeout and is
told False: a wait that ends by itself, not a deadlock. readerwriterlock 1.0.10's tests do it
to show that a second writer is refused (``test_write_req06``): under ``pytest --stuck`` they
were reported as "DEADLOCK (probable): MainThread takes RWLockWrite#10.c_resource, which it
already holds" and failed, though they pass plain. The same wait without a timeout is still a
deadlock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TESTS = '''
import threading

class RWLockWrite:  # readerwriterlock's shape: a plain Lock guarding the resource
    def __init__(self):
        self.c_resource = threading.Lock()

    def acquire(self, timeout):
        return self.c_resource.acquire(blocking=True, timeout=timeout)


def test_a_second_writer_is_refused():
    lock = RWLockWrite()
    assert lock.acquire(timeout=1)
    assert not lock.acquire(timeout=0.3)  # the same thread: refused when the timeout ends
    lock.c_resource.release()
'''

FOREVER = '''
import threading
lock = threading.Lock()
lock.acquire()
lock.acquire()  # no timeout: waits for good
'''


def test_a_timed_try_of_a_lock_one_holds_is_no_finding(tmp_path: Path) -> None:
    (tmp_path / "test_shape.py").write_text(TESTS)
    for cmd in ([sys.executable, "-m", "pytest", "--stuck", "-q", "-p", "no:cacheprovider",
                 "test_shape.py"],
                [sys.executable, "-m", "stuck", "run", "--policy", "raise", "--lock-order",
                 "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_shape.py"]):
        proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-3000:]
        assert "1 passed" in out, out[-3000:]
        assert "DEADLOCK" not in out, out[-3000:]


def test_the_same_wait_without_a_timeout_is_still_a_deadlock(tmp_path: Path) -> None:
    (tmp_path / "forever.py").write_text(FOREVER)
    proc = subprocess.run([sys.executable, "-m", "stuck", "run", "--policy", "abort",
                           str(tmp_path / "forever.py")], capture_output=True, text=True,
                          timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 86, out[-3000:]
    assert "DEADLOCK (certain)" in out, out[-3000:]

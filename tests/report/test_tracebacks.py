"""stuck's own frames are left out of the tracebacks of the errors it raises in a program (the
tracked primitive, the deadlock walk, the policy), in a thread, in the main thread and under
pytest; ``--debug`` / ``STUCK_DEBUG=1`` keeps them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import stuck

STUCK_DIR = os.path.dirname(os.path.abspath(stuck.__file__))

# The main thread closes the cycle (it asks for `a` last), so DeadlockError ends the program.
# Each waits until the other is where the order needs it (stuck's registry of waits), not a
# fixed time: on a loaded machine a thread may get the CPU seconds late.
MAIN_CLOSES = '''
import threading, time
from stuck.runtime import registry
a = threading.Lock()
b = threading.Lock()
has_a = threading.Event()
def one():
    with a:
        has_a.set()
        with b:
            pass
with b:
    t = threading.Thread(target=one, name="one", daemon=True)
    t.start()
    has_a.wait()
    while getattr(registry.waits.get(t.ident), "op", None) != "acquire":
        time.sleep(0.005)
    with a:  # the program's line
        pass
'''

# A thread closes the cycle: its DeadlockError goes through threading.excepthook.
THREAD_CLOSES = '''
import threading, time
from stuck.runtime import registry
a = threading.Lock()
b = threading.Lock()
main = threading.get_ident()
def one():
    with a:
        while getattr(registry.waits.get(main), "op", None) != "join":
            time.sleep(0.005)
        with b:  # the program's line
            pass
with b:
    t = threading.Thread(target=one, name="one")
    t.start()
    t.join()
'''

IN_PYTEST = '''
import threading, time
import stuck

def test_deadlock():
    stuck.install(policy="raise")
    try:
        from stuck.runtime import registry
        a = threading.Lock()
        b = threading.Lock()
        has_a = threading.Event()
        def one():
            with a:
                has_a.set()
                with b:
                    pass
        with b:
            t = threading.Thread(target=one, daemon=True)
            t.start()
            has_a.wait()
            while getattr(registry.waits.get(t.ident), "op", None) != "acquire":
                time.sleep(0.005)
            with a:  # the program's line
                pass
    finally:
        stuck.uninstall()
'''


def run(tmp_path: Path, program: str, *options: str) -> str:
    path = tmp_path / "prog.py"
    path.write_text(program, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "stuck", "run", "--policy", "raise", *options,
                           str(path)], capture_output=True, text=True, timeout=120)
    assert "DeadlockError" in done.stderr, done.stderr
    return done.stderr[done.stderr.index("Traceback"):]


def test_main_thread_traceback_shows_the_program_only(tmp_path: Path) -> None:
    tb = run(tmp_path, MAIN_CLOSES)
    assert "the program's line" in tb
    assert STUCK_DIR not in tb


def test_thread_traceback_shows_the_program_only(tmp_path: Path) -> None:
    tb = run(tmp_path, THREAD_CLOSES)
    assert "the program's line" in tb
    assert STUCK_DIR not in tb


def test_debug_keeps_stucks_frames(tmp_path: Path) -> None:
    tb = run(tmp_path, MAIN_CLOSES, "--debug")
    assert os.path.join(STUCK_DIR, "runtime", "policy.py") in tb


def test_pytest_failure_shows_the_test_only(tmp_path: Path) -> None:
    (tmp_path / "test_prog.py").write_text(IN_PYTEST, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(tmp_path / "test_prog.py")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert done.returncode == 1, done.stdout
    assert "DeadlockError" in done.stdout and "the program's line" in done.stdout
    assert "stuck/runtime/" not in done.stdout, done.stdout


def test_pytest_shows_stucks_frames_under_stuck_debug(tmp_path: Path) -> None:
    (tmp_path / "test_prog.py").write_text(IN_PYTEST, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "STUCK_DEBUG": "1"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(tmp_path / "test_prog.py")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert done.returncode == 1 and "stuck/runtime/" in done.stdout, done.stdout

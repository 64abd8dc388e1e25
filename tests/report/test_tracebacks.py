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


# Any exception leaving a wait through a tracked primitive, not only stuck's own: a Ctrl-C
# during q.get() shows the traceback plain Python shows.
CTRL_C = '''
import queue, threading
q = queue.Queue()
print("waiting", flush=True)
try:
    q.get()
finally:
    print("cleanup", flush=True)
'''


def _interrupted(cmd: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run ``cmd``, send SIGINT once the program is in its wait, return (rc, stdout, stderr)."""
    import signal
    import time

    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "waiting\n"
    # "waiting" is printed just before q.get(): signal once the main thread sleeps in a futex
    # (its wait), read from /proc where there is one.
    wchan = Path(f"/proc/{proc.pid}/wchan")
    deadline = time.monotonic() + 10
    while wchan.exists() and "futex" not in wchan.read_text() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, "waiting\n" + out, err


def test_ctrl_c_in_a_wait_shows_the_same_traceback_as_plain_python(tmp_path: Path) -> None:
    (tmp_path / "ctrlc.py").write_text(CTRL_C, encoding="utf-8")
    plain = _interrupted([sys.executable, "ctrlc.py"], tmp_path)
    under = _interrupted([sys.executable, "-m", "stuck", "run", "ctrlc.py"], tmp_path)
    assert plain[0] == under[0] == -2
    assert plain[1] == under[1] == "waiting\ncleanup\n"
    traceback_plain = plain[2][plain[2].index("Traceback"):]
    traceback_under = under[2][under[2].index("Traceback"):]
    assert "queue.py" in traceback_plain and traceback_plain.endswith("KeyboardInterrupt\n")
    assert traceback_under == traceback_plain


def test_any_exception_is_shown_without_stucks_frames() -> None:
    from stuck.tracebacks import for_display

    def own() -> None:  # stands for a frame of stuck's: compiled as if in its package
        raise KeyboardInterrupt

    code = compile("def inner(f):\n    f()\n", os.path.join(STUCK_DIR, "runtime", "x.py"),
                   "exec")
    space: dict[str, object] = {}
    exec(code, space)
    try:
        space["inner"](own)  # type: ignore[operator]
    except KeyboardInterrupt as exc:
        tb = for_display(exc, exc.__traceback__)
    files = []
    while tb is not None:
        files.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    assert files == [__file__, __file__]  # this test's frame and own(): not the package's


MISSING_SENTINEL_TEST = '''
import queue, threading

def test_missing_sentinel():
    q = queue.Queue()
    def consumer():
        while q.get() is not None:
            pass
    t = threading.Thread(target=consumer, name="consumer")
    t.start()
    t.join()  # the program's line
'''


def test_pytest_stuck_stall_in_join_shows_the_test_only(tmp_path: Path) -> None:
    (tmp_path / "test_prog.py").write_text(MISSING_SENTINEL_TEST, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--stuck", str(tmp_path / "test_prog.py")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert done.returncode == 1, done.stdout
    assert "StallError" in done.stdout and "the program's line" in done.stdout
    assert "stuck/runtime/" not in done.stdout, done.stdout

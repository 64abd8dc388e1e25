"""``stuck run`` end to end, in subprocesses with a time bound: the examples' reports, the abort
exit code, the JSON report against the shipped schema, argv/__main__/exit code, the signal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest

from stuck.errors import EXIT_ABORT
from stuck.report.json import schema

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
STUCK = [sys.executable, "-m", "stuck"]
LIMIT = 30


def run(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*STUCK, "run", *args], capture_output=True, text=True,
                          timeout=LIMIT, cwd=ROOT, **kwargs)  # type: ignore[call-overload]


def line_of(path: Path, text: str, nth: int = 1) -> int:
    hits = [i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line]
    return hits[nth - 1]


def test_two_lock_example_aborts_with_a_report_and_valid_json(tmp_path: Path) -> None:
    example = EXAMPLES / "heartbeat_deadlock.py"
    report_file = tmp_path / "report.json"
    started = time.monotonic()
    proc = run("--policy", "abort", "--json", str(report_file), "examples/heartbeat_deadlock.py")
    elapsed = time.monotonic() - started
    assert proc.returncode == EXIT_ABORT, proc.stderr
    assert elapsed < LIMIT
    out = proc.stderr
    assert "DEADLOCK (certain)" in out
    for name in ("raft-scheduler", "heartbeat-coalescer", "raft_mu", "coalesced_mu"):
        assert name in out
    # where each lock was taken and where each thread waits
    for text in ("with raft_mu:", "with coalesced_mu:"):
        for nth in (1, 2):
            assert f"heartbeat_deadlock.py:{line_of(example, text, nth)}" in out
    doc = json.loads(report_file.read_text())
    jsonschema.validate(doc, schema())
    finding = doc["findings"][0]
    assert finding["kind"] == "deadlock" and len(finding["cycle"]) == 2
    names = {t["id"]: t["name"] for p in doc["processes"] for t in p["threads"]}
    assert {names[e["thread"]] for e in finding["cycle"]} == {"raft-scheduler",
                                                               "heartbeat-coalescer"}


@pytest.mark.parametrize("example,names", [
    ("three_lock_cycle.py", ("transfer", "reconcile", "audit")),
    ("gateway_engine.py", ("gateway", "engine", "requests", "responses")),
])
def test_other_examples_are_found(example: str, names: tuple[str, ...]) -> None:
    proc = run("--policy", "abort", f"examples/{example}")
    assert proc.returncode == EXIT_ABORT, proc.stderr
    assert "DEADLOCK" in proc.stderr
    for name in names:
        assert name in proc.stderr


def test_policy_raise_lets_the_program_recover() -> None:
    proc = run("--policy", "raise", "examples/heartbeat_deadlock.py")
    assert proc.returncode == 0, proc.stderr
    assert "backing off (deadlock)" in proc.stdout
    assert "done: both threads finished" in proc.stdout


def test_script_sees_argv_main_path_and_exit_code(tmp_path: Path) -> None:
    script = tmp_path / "prog.py"
    script.write_text(
        "import sys, threading\n"
        "print(repr(sys.argv), __name__, sys.path[0])\n"
        "print(type(threading.Lock())._stuck_kind)\n"
        "sys.exit(int(sys.argv[2]))\n")
    proc = run(str(script), "--flag", "7")
    assert proc.returncode == 7, proc.stderr
    first, second = proc.stdout.splitlines()
    assert first == f"{[str(script), '--flag', '7']!r} __main__ {tmp_path}"
    assert second == "mutex"  # a tracked lock


def test_module_mode_and_uncaught_exception(tmp_path: Path) -> None:
    pkg = tmp_path / "demo_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "boom.py").write_text(
        "import sys\nprint(sys.argv[1:], __name__)\nraise ValueError('boom')\n")
    proc = run("-m", "demo_pkg.boom", "a", "b", env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 1
    assert proc.stdout.strip() == "['a', 'b'] __main__"
    assert "ValueError: boom" in proc.stderr


def _main_as_seen(runner: list[str], args: list[str], cwd: Path) -> str:
    proc = subprocess.run([*runner, *args], capture_output=True, text=True, timeout=LIMIT,
                          cwd=cwd)
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("how", ["relative", "dotted", "symlink", "module"])
def test_main_file_argv_path_and_traceback_are_pythons(tmp_path: Path, how: str) -> None:
    # Python 3.9+ makes the script's __file__ (and the file name in its tracebacks) absolute
    # without normalizing it, keeps sys.argv[0] as given and resolves symlinks for sys.path[0].
    (tmp_path / "real").mkdir()
    (tmp_path / "pkg").mkdir()
    program = ("import sys\n"
               "main = sys.modules['__main__']\n"
               "print(__file__, sys.argv, sys.path[0], type(main.__loader__).__name__,\n"
               "      main.__spec__ and main.__spec__.name, getattr(main, '__cached__', '-'))\n"
               "raise ValueError('boom')\n")
    (tmp_path / "real" / "prog.py").write_text(program)
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "__main__.py").write_text(program)
    (tmp_path / "link.py").symlink_to(tmp_path / "real" / "prog.py")
    args = {"relative": ["real/prog.py", "x"], "dotted": ["./real/../real/prog.py"],
            "symlink": ["link.py"], "module": ["-m", "pkg", "y"]}[how]
    expected = _main_as_seen([sys.executable], args, tmp_path)
    assert "ValueError: boom" in expected and str(tmp_path) in expected
    assert _main_as_seen([*STUCK, "run"], args, tmp_path) == expected


@pytest.mark.parametrize("args,message", [
    ((), "nothing to run"),
    (("no/such/file.py",), "no such file"),
    (("--signal", "NOPE", "examples/three_lock_cycle.py"), "unknown signal"),
    (("--act-on", "possible", "examples/three_lock_cycle.py"), "--act-on"),
])
def test_usage_errors_exit_2_with_one_line(args: tuple[str, ...], message: str) -> None:
    proc = run(*args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs SIGUSR1")
def test_signal_writes_a_snapshot_without_stopping(tmp_path: Path) -> None:
    script = tmp_path / "waiting.py"
    script.write_text(
        "import sys, threading, time\n"
        "from stuck.runtime import registry\n"
        "jobs_lock = threading.Lock()\n"
        "go = threading.Event()\n"
        "def worker():\n"
        "    with jobs_lock:\n"
        "        go.wait(20)\n"
        "t = threading.Thread(target=worker, name='job-runner')\n"
        "t.start()\n"
        # ready once the worker waits (not when it was started: it may not have run yet)
        "while getattr(registry.waits.get(t.ident), 'op', None) != 'wait':\n"
        "    time.sleep(0.005)\n"
        "print('ready', flush=True)\n"
        "sys.stdin.readline()\n"
        "go.set()\n"
        "t.join()\n"
        "print('finished', flush=True)\n")
    report_file = tmp_path / "snap.json"
    proc = subprocess.Popen([*STUCK, "run", "--json", str(report_file), str(script)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + LIMIT
        while not report_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        out, err = proc.communicate("\n", timeout=LIMIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "finished" in out
    assert "nothing found" in err
    assert "job-runner" in err and "jobs_lock" in err
    doc = json.loads(report_file.read_text())
    jsonschema.validate(doc, schema())
    runner = next(t for p in doc["processes"] for t in p["threads"] if t["name"] == "job-runner")
    assert runner["holds"] and runner["waits"] is not None


# -- the program behaves as under python ----------------------------------------------------


def test_uncaught_keyboard_interrupt_dies_by_sigint_like_python(tmp_path: Path) -> None:
    script = tmp_path / "interrupted.py"
    script.write_text("import atexit\n"
                      "atexit.register(lambda: print('atexit ran', flush=True))\n"
                      "raise KeyboardInterrupt\n")
    plain = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                           timeout=LIMIT)
    under = run(str(script))
    assert plain.returncode == -signal.SIGINT
    assert under.returncode == plain.returncode, under.stderr
    assert under.stdout == plain.stdout == "atexit ran\n"
    assert "KeyboardInterrupt" in under.stderr


@pytest.mark.slow
def test_ctrl_c_at_any_moment_of_start_up_ends_by_sigint_like_python(tmp_path: Path) -> None:
    # Ctrl-C before the program's first line: python ends by SIGINT; so does stuck run, with
    # no click "Aborted!" and no traceback from inside stuck. Once the program runs, it sees
    # python's own SIGINT handler and a KeyboardInterrupt ends it by SIGINT too. The command
    # is the console script's own two lines, timed from the moment main() is called (a SIGINT
    # during the interpreter's own start-up makes python itself exit 1: not stuck's to test).
    script = tmp_path / "waits.py"
    script.write_text("import signal, time\n"
                      "print('started', signal.getsignal(signal.SIGINT) is "
                      "signal.default_int_handler, flush=True)\n"
                      "time.sleep(60)\n")
    entry = ("import os, sys\n"
             "from stuck.cli import main\n"
             f"sys.argv = ['stuck', 'run', {str(script)!r}]\n"
             "os.write(1, b'up\\n')\n"
             "sys.exit(main())\n")
    in_start_up = 0
    for i in range(20):
        delay = 0.5 * i / 19
        proc = subprocess.Popen([sys.executable, "-c", entry], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        assert proc.stdout is not None
        assert proc.stdout.readline() == "up\n"
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=LIMIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            pytest.fail(f"SIGINT {delay:.2f} s into start-up did not end stuck run")
        where = f"SIGINT {delay:.2f} s after main(): stdout {out!r}, stderr {err!r}"
        assert proc.returncode == -signal.SIGINT, where
        assert "Aborted!" not in err, where
        if "started" in out:
            assert out == "started True\n", where  # python's handler, as under python
            frames = [line for line in err.splitlines() if line.lstrip().startswith("File ")]
            assert frames and all(str(script) in line for line in frames), where
        else:
            in_start_up += 1
            assert err == "", where
    assert in_start_up  # start-up (importing click, installing) was hit, not only the program


def test_install_leaves_a_signal_the_program_handles_alone(tmp_path: Path) -> None:
    script = tmp_path / "own_handler.py"
    script.write_text(
        "import os, signal, stuck\n"
        "seen = []\n"
        "signal.signal(signal.SIGUSR1, lambda *a: seen.append('program'))\n"
        "stuck.install()\n"
        "os.kill(os.getpid(), signal.SIGUSR1)\n"
        "print(seen)\n"
        "stuck.uninstall()\n"
        "print(signal.getsignal(signal.SIGUSR1).__name__)\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=LIMIT, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["['program']", "<lambda>"]
    assert "snapshot" not in done.stderr.lower() and "nothing found" not in done.stderr


def test_stuck_run_takes_the_signal_only_while_it_is_the_default(tmp_path: Path) -> None:
    # The program sets its own handler after stuck run installed: the program's handler wins.
    script = tmp_path / "late_handler.py"
    script.write_text(
        "import os, signal\n"
        "seen = []\n"
        "signal.signal(signal.SIGUSR1, lambda *a: seen.append('program'))\n"
        "os.kill(os.getpid(), signal.SIGUSR1)\n"
        "print(seen)\n")
    done = run(str(script))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "['program']\n"
    assert "nothing found" not in done.stderr


def test_pytest_under_stuck_run_starts_with_warnings_as_errors(tmp_path: Path) -> None:
    # Projects with `filterwarnings = error` (filelock, janus): pytest warns about plugin
    # packages imported before it could rewrite their asserts, and stuck is imported first.
    (tmp_path / "pytest.ini").write_text("[pytest]\nfilterwarnings = error\n")
    (tmp_path / "test_sum.py").write_text("def test_sum():\n    assert 1 + 1 == 2\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    done = subprocess.run([*STUCK, "run", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "test_sum.py"], capture_output=True, text=True, timeout=LIMIT,
                          cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_multiprocessing_manager_starts_under_stuck_run(tmp_path: Path, method: str) -> None:
    # The manager's registry holds threading.Lock as it was when multiprocessing.managers was
    # imported (the replacement, under stuck run) and pickles it for the server process.
    script = tmp_path / "manager.py"
    script.write_text(
        "import multiprocessing, sys\n"
        "if __name__ == '__main__':\n"
        "    multiprocessing.set_start_method(sys.argv[1])\n"
        "    with multiprocessing.Manager() as manager:\n"
        "        lock = manager.Lock()\n"
        "        with lock:\n"
        "            print('locked', type(lock).__name__)\n")
    done = run(str(script), method)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "locked AcquirerProxy\n"


def test_lock_order_run_report_says_how_much_it_checked(tmp_path: Path) -> None:
    script = tmp_path / "nested.py"
    script.write_text("import threading\n"
                      "outer, inner = threading.Lock(), threading.RLock()\n"
                      "with outer:\n"
                      "    with inner:\n"
                      "        pass\n")
    done = run("--lock-order", str(script))
    assert done.returncode == 0, done.stderr
    assert "no lock-order problem found" in done.stderr
    assert "checked 2 lock classes" in done.stderr
    assert "primitives tracked: 1 mutex, 1 rlock" in done.stderr


# Two full queues, each side waiting for the other to take, while a thread able to run (the
# drainer, asleep) could take from them, and does: probable when the cycle forms, never proven.
# --policy abort leaves it alone and the program ends as without stuck; --act-on probable asks
# for the abort at once.
QUEUE_CYCLE_A_SLEEPER_ENDS = """
import queue, threading, time
requests, responses = queue.Queue(maxsize=1), queue.Queue(maxsize=1)

def engine():
    while (item := requests.get()) is not None:
        responses.put(item)

def gateway():
    requests.put(0)
    responses.get()
    for i in range(4):
        requests.put(i)
    requests.put(None)

def drainer():
    # Asleep while the cycle forms (both sides waiting to put, in stuck's registry of waits)
    # and a while after: its waking is what ends the cycle, not the load of the machine.
    from stuck.runtime import registry
    while not all(getattr(registry.waits.get(t.ident), "op", None) == "put"
                  for t in threads[:2]):
        time.sleep(0.01)
    time.sleep(1.5)
    for _ in range(4):
        responses.get()

threads = [threading.Thread(target=f) for f in (engine, gateway, drainer)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("finished")
"""


def test_act_on_chooses_whether_abort_acts_on_a_probable_finding(tmp_path: Path) -> None:
    program = tmp_path / "queue_cycle.py"
    program.write_text(QUEUE_CYCLE_A_SLEEPER_ENDS)
    left_alone = run("--policy", "abort", str(program))
    assert left_alone.returncode == 0, left_alone.stderr
    assert left_alone.stdout == "finished\n"
    assert "DEADLOCK (probable)" in left_alone.stderr
    assert "Policy abort acts only on certain findings" in left_alone.stderr
    acted = run("--policy", "abort", "--act-on", "probable", str(program))
    assert acted.returncode == 86, acted.stderr
    assert acted.stdout == ""
    assert "DEADLOCK (probable)" in acted.stderr

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from stuck.explore.cli import explore_command

HERE = Path(__file__).parent
TARGETS = str(HERE / "explore_targets.py")


def test_cli_finds_deadlock_and_replays_it() -> None:
    runner = CliRunner()
    found = runner.invoke(explore_command, [f"{TARGETS}::abba", "--seed", "1", "--no-progress"])
    assert found.exit_code == 1, found.output
    assert "DEADLOCK (" in found.output and "switches that matter" in found.output
    token = next(line.split()[-1] for line in found.output.splitlines()
                 if line.startswith("replay token:"))
    again = runner.invoke(explore_command, [f"{TARGETS}::abba", "--replay", token])
    assert again.exit_code == 1 and "DEADLOCK (" in again.output


def test_cli_passes_on_a_correct_program_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    res = CliRunner().invoke(explore_command, [f"{TARGETS}::abba_fixed", "-n", "50",
                                               "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "pass: 50 executions" in res.output
    assert json.loads(out.read_text())["schema"] == "stuck.report/1"


def test_cli_usage_errors_exit_2_with_one_line() -> None:
    runner = CliRunner()
    for args in (["nowhere.py::f"], [f"{TARGETS}::missing"], ["not-a-target"],
                 [f"{TARGETS}::abba", "--replay", "s7:zz"],
                 [f"{TARGETS}::abba", "--strategy", "bogus"]):
        res = runner.invoke(explore_command, args)
        assert res.exit_code == 2, (args, res.output)
        assert "Traceback" not in res.output


def test_cli_module_target_and_jobs() -> None:
    env = dict(os.environ, PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-m", "stuck", "explore", "explore_targets:abba", "-j", "2", "-n", "200"],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert proc.returncode == 1, proc.stderr
    assert "DEADLOCK (" in proc.stdout


def _plugin_installed() -> bool:
    from importlib.metadata import entry_points

    return any(e.value == "stuck.explore.pytest_plugin"
               for e in entry_points(group="pytest11"))


def test_pytest_marker_prints_replay_command_that_reproduces(tmp_path: Path) -> None:
    test_file = tmp_path / "test_marked.py"
    test_file.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(HERE)!r})
        import pytest
        import explore_targets

        @pytest.mark.stuck_explore(executions=500, seed=0)
        def test_abba():
            explore_targets.abba()

        @pytest.mark.stuck_explore(executions=50)
        def test_fine():
            explore_targets.abba_fixed()
    """))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    if not _plugin_installed():  # an install older than the entry point: load it by hand
        cmd += ["-p", "stuck.explore.pytest_plugin"]
    cmd.append(str(test_file))
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert first.returncode == 1, first.stdout
    assert "1 failed, 1 passed" in first.stdout
    line = next(x for x in first.stdout.splitlines() if "--stuck-replay=" in x)
    token = line.split("--stuck-replay=")[1].split()[0]
    again = subprocess.run([*cmd[:-1], f"{test_file}::test_abba", f"--stuck-replay={token}"],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert again.returncode == 1
    assert "DEADLOCK (" in again.stdout
    # The token given with a test that does not run under the scheduler: not replayed, and
    # the session says so and fails as a usage error instead of reporting a pass.
    plain = tmp_path / "test_plain.py"
    plain.write_text("def test_plain():\n    pass\n")
    unmarked = subprocess.run([*cmd[:-1], str(plain), f"--stuck-replay={token}"],
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert unmarked.returncode == 4, unmarked.stdout
    assert "the token was not replayed" in unmarked.stdout


def test_cli_target_that_needs_fixtures_is_a_usage_error_pointing_to_the_marker(
        tmp_path: Path) -> None:
    target = tmp_path / "test_with_fixture.py"
    target.write_text("def test_writes(tmp_path, monkeypatch):\n"
                      "    (tmp_path / 'x').write_text('x')\n")
    res = CliRunner().invoke(explore_command, [f"{target}::test_writes", "--no-progress"])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and "replay token" not in res.output
    assert "tmp_path, monkeypatch" in res.output
    assert "@pytest.mark.stuck_explore" in res.output


def test_cli_spinning_target_ends_within_its_time_budget_with_a_hang(tmp_path: Path) -> None:
    # The spinner never reaches a synchronization point, so the scheduler never gets control
    # back: the budget has to bound the execution itself, and the report must name the thread.
    target = tmp_path / "spin_target.py"
    target.write_text(textwrap.dedent("""
        import threading

        def test_spin():
            stop = [False]

            def spin():
                turns = 0
                while not stop[0]:
                    turns += 1

            worker = threading.Thread(target=spin, name="spinner")
            worker.start()
            worker.join()
        """))
    budget = 4.0
    proc = subprocess.run([sys.executable, "-m", "stuck", "explore", f"{target}::test_spin",
                           "--time-budget", str(budget), "--no-progress"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "HANG (possible): spinner reached no synchronization point" in proc.stdout
    assert "spin_target.py:9 " in proc.stdout or "spin_target.py:10 " in proc.stdout  # the spin
    elapsed = next(line for line in proc.stdout.splitlines() if "reached no" in line)
    seconds = float(elapsed.split(" for ")[1].split(" s ")[0])
    assert seconds <= budget  # the wait it reports fitted in the budget


def test_locks_bound_to_names_are_called_by_them_as_stuck_run_does(tmp_path: Path) -> None:
    target = tmp_path / "test_pair.py"
    target.write_text(textwrap.dedent("""\
        import threading
        def test_pair():
            first = threading.Lock(); second = threading.Lock()
            def forward():
                with first:
                    with second: pass
            def backward():
                with second:
                    with first: pass
            t1 = threading.Thread(target=forward); t2 = threading.Thread(target=backward)
            t1.start(); t2.start(); t1.join(); t2.join()
        """))
    found = CliRunner().invoke(explore_command, [f"{target}::test_pair", "--seed", "1",
                                                 "--no-progress"])
    assert found.exit_code == 1, found.output
    summary = found.output.splitlines()[0]
    assert summary.startswith("DEADLOCK (certain)")
    assert "waits for Lock first (made at" in summary and "waits for Lock second (made at" in summary
    assert "Lock #" not in found.output


MODULE_LOCKS = """\
    import threading
    from {shared} import SHARED
    first = threading.Lock(); second = threading.Lock()

    class Account:
        audit = threading.Lock()

    def forward():
        with first:
            with second: pass

    def backward():
        with second:
            with first: pass

    def test_pair():
        t1 = threading.Thread(target=forward); t2 = threading.Thread(target=backward)
        t1.start(); t2.start(); t1.join(); t2.join()

    def test_shared():
        with SHARED:
            with Account.audit: pass
    """


def _module_locks(tmp_path: Path, stem: str) -> Path:
    """The program above as ``<stem>.py`` (a module name of its own: the test process keeps
    what it imported), with the lock it imports in ``<stem>_shared.py``."""
    (tmp_path / f"{stem}_shared.py").write_text("import threading\nSHARED = threading.Lock()\n")
    target = tmp_path / f"{stem}.py"
    target.write_text(textwrap.dedent(MODULE_LOCKS).format(shared=f"{stem}_shared"))
    return target


def test_locks_made_at_module_level_are_controlled(tmp_path: Path) -> None:
    """A test file's module-level locks are made when the file is imported, before exploring:
    explored as they were, no interleaving of them would ever be tried (this said "pass").
    The target's module runs afresh in each execution, so they are made under control."""
    target = _module_locks(tmp_path, "module_locks_pair")
    found = CliRunner().invoke(explore_command, [f"{target}::test_pair", "--no-progress"])
    assert found.exit_code == 1, found.output
    assert found.output.startswith("DEADLOCK (certain)")
    token = next(line.split()[-1] for line in found.output.splitlines()
                 if line.startswith("replay token:"))
    again = CliRunner().invoke(explore_command, [f"{target}::test_pair", "--replay", token,
                                                 "--no-progress"])
    def first_line(output: str) -> str:  # thread names count up within the process
        return re.sub(r"Thread-\d+", "Thread-N", output.splitlines()[0])

    assert again.exit_code == 1 and first_line(again.output) == first_line(found.output)
    assert "not controlled" not in found.output


def test_locks_imported_from_another_module_are_named_as_not_controlled(tmp_path: Path) -> None:
    target = _module_locks(tmp_path, "module_locks_shared")
    result = CliRunner().invoke(explore_command, [f"{target}::test_shared", "-n", "20",
                                                  "--no-progress"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("pass:")
    note = next(line for line in result.output.splitlines() if "not controlled" in line)
    assert "module_locks_shared.SHARED" in note  # the name the target reads it by
    assert "Account.audit" not in note  # the class is made again with the module


def test_teardown_of_pool_workers_prints_nothing(tmp_path: Path) -> None:
    """Each execution ends by raising explore's private Aborted in blocked threads; a pool
    worker catches it as BaseException and logged "Exception in worker" with a traceback,
    hundreds of times per exploration. Only the result is printed now."""
    target = tmp_path / "nested_pool.py"
    target.write_text(textwrap.dedent("""\
        from concurrent.futures import ThreadPoolExecutor
        def test_nested():
            with ThreadPoolExecutor(1) as ex:
                def outer():
                    return ex.submit(lambda: 1).result()
                assert ex.submit(outer).result() == 1
        """))
    run = subprocess.run([sys.executable, "-m", "stuck", "explore", f"{target}::test_nested",
                          "-n", "50", "--no-progress"], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "can never run" in run.stdout.splitlines()[0]
    assert run.stderr == ""


def test_locks_one_line_assigns_to_names_are_called_by_them(tmp_path: Path) -> None:
    """``first, second = Lock(), Lock()``: the line shows which lock is which name, so the
    report calls them by it (they were "Lock #1" and "Lock #2"); a line that names them not
    (``locks = [Lock(), Lock()]``) keeps the numbered names."""
    target = tmp_path / "test_pair_together.py"
    target.write_text(textwrap.dedent("""\
        import threading
        def test_pair():
            first, second = threading.Lock(), threading.Lock()
            locks = [threading.Lock(), threading.Lock()]
            def forward():
                with first:
                    with second:
                        with locks[0]:
                            with locks[1]: pass
            def backward():
                with locks[1]:
                    with locks[0]: pass
                with second:
                    with first: pass
            t1 = threading.Thread(target=forward); t2 = threading.Thread(target=backward)
            t1.start(); t2.start(); t1.join(); t2.join()
        """))
    seen = set()
    for seed in range(1, 40):
        found = CliRunner().invoke(explore_command, [f"{target}::test_pair", "--seed", str(seed),
                                                     "--no-progress"])
        assert found.exit_code == 1, found.output
        summary = found.output.splitlines()[0]
        assert summary.startswith("DEADLOCK (certain)"), summary
        if "Lock first (made at" in summary:
            assert "waits for Lock second (made at" in summary
            assert "Lock #" not in summary
            seen.add("named")
        else:
            assert "Lock #1 made at" in summary and "Lock #2 made at" in summary
            seen.add("numbered")
        if seen == {"named", "numbered"}:
            break
    assert seen == {"named", "numbered"}



@pytest.mark.skipif(sys.version_info < (3, 11), reason="reads the call's column (co_positions)")
def test_queues_one_line_assigns_are_called_by_their_names_and_tracebacks_are_the_programs(
        tmp_path: Path) -> None:
    # A Queue's locks are made inside Queue.__init__: the Queue's own binding names them.
    target = tmp_path / "test_rpc_pair.py"
    target.write_text(textwrap.dedent("""\
        import queue, threading
        def test_rpc():
            requests, replies = queue.Queue(), queue.Queue()
            def server():
                requests.get()
                raise ConnectionError("server crashed")
            threading.Thread(target=server, name="server").start()
            requests.put("ping")
            replies.get()
        """))
    found = CliRunner().invoke(explore_command, [f"{target}::test_rpc", "--no-progress"])
    assert found.exit_code == 1, found.output
    summary = found.output.splitlines()[0]
    assert "main waits on condition Queue replies at " in summary, summary
    assert "`requests, replies" not in found.output
    tb = found.output[found.output.index("Traceback (most recent call last):"):]
    tb = tb[:tb.index("ConnectionError: server crashed")]
    assert "stuck" not in tb.replace(str(tmp_path), "")
    assert "test_rpc_pair.py\", line 6, in server" in tb
INVENTORY = """\
    import threading

    class Inventory:
        def __init__(self):
            self.items_lock = threading.Lock()
            self.stats_lock = threading.Lock()
            self.hits = 0

        def add(self):
            with self.items_lock:
                with self.stats_lock:
                    self.hits += 1

        def report(self):
            with self.stats_lock:
                with self.items_lock:
                    return self.hits

    def test_add_and_report():
        inv = Inventory()
        t1 = threading.Thread(target=inv.add); t2 = threading.Thread(target=inv.report)
        t1.start(); t2.start(); t1.join(); t2.join()
    """


def test_explore_speaks_the_reports_words(tmp_path: Path) -> None:
    # The verdict as every report writes it (DEADLOCK, not deadlock), an object's lock named as
    # `stuck run` names it (Inventory#1.stats_lock, from stuck.runtime.naming.owned_name), and
    # threads numbered as in a run of the test by itself, in every execution and the replay.
    target = tmp_path / "test_inventory.py"
    target.write_text(textwrap.dedent(INVENTORY))
    runner = CliRunner()
    found = runner.invoke(explore_command, [f"{target}::test_add_and_report", "--seed", "0",
                                            "--no-progress"])
    assert found.exit_code == 1, found.output
    headline = found.output.splitlines()[0]
    names = {"Thread-1 (add)": "Inventory#1.stats_lock", "Thread-2 (report)":
             "Inventory#1.items_lock"}
    other = {"Thread-1 (add)": "Thread-2 (report)", "Thread-2 (report)": "Thread-1 (add)"}
    assert headline.startswith("DEADLOCK (certain): 2 threads wait for each other: "), headline
    for thread, lock in names.items():
        assert f"{thread} waits for {lock} held by {other[thread]}" in headline, headline
    assert "made at" not in found.output and "Thread-3" not in found.output
    token = next(line.split()[-1] for line in found.output.splitlines()
                 if line.startswith("replay token:"))
    again = runner.invoke(explore_command, [f"{target}::test_add_and_report", "--replay", token])
    assert again.exit_code == 1
    assert again.output.splitlines()[0] == headline

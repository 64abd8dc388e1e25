"""``stuck run --lock-order`` and its alias ``python -m stuck.runtime.lockorder``, end to end in
subprocesses with a time bound: findings on stderr and in the JSON report, the exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import jsonschema
import pytest

from stuck.report.json import schema

LIMIT = 30

INVERSION = """
    import threading
    a = threading.Lock()
    b = threading.Lock()

    def forward():
        with a:
            with b:
                pass

    def backward():
        with b:
            with a:
                pass

    forward()
    t = threading.Thread(target=backward, name="later")  # not daemon: run waits for it
    t.start()
    {exit}
"""

TIMED = """
    import threading
    a = threading.Lock()
    b = threading.Lock()
    with a:
        with b:
            pass
    with b:
        if a.acquire(timeout=1):
            a.release()
"""


def script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "prog.py"
    path.write_text(textwrap.dedent(body))
    return path


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=LIMIT, cwd=cwd)


def test_inversion_reported_with_exit_1_and_json(tmp_path: Path) -> None:
    prog = script(tmp_path, INVERSION.format(exit=""))
    out = tmp_path / "report.json"
    proc = run("-m", "stuck", "run", "--lock-order", "--json", str(out), prog.name,
               cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "1 lock-order finding" in proc.stderr
    assert "`a` -> `b`" in proc.stderr or "`b` -> `a`" in proc.stderr
    assert "later" in proc.stderr  # the thread joined before the report is in it
    assert "runner.py" not in proc.stderr  # stuck's own frames are not in the stacks
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, schema())
    [finding] = doc["findings"]
    assert finding["kind"] == "lock-order" and finding["confidence"] == "probable"


def test_program_exit_code_wins_when_not_zero(tmp_path: Path) -> None:
    prog = script(tmp_path, INVERSION.format(exit="t.join(); raise SystemExit(3)"))
    proc = run("-m", "stuck", "run", "--lock-order", prog.name, cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert "1 lock-order finding" in proc.stderr


def test_clean_program_exits_0_and_says_so(tmp_path: Path) -> None:
    prog = script(tmp_path, """
        import threading
        a = threading.Lock()
        b = threading.Lock()
        for _ in range(3):
            with a:
                with b:
                    pass
    """)
    proc = run("-m", "stuck", "run", "--lock-order", prog.name, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "no lock-order problem found" in proc.stderr


def test_without_the_flag_nothing_is_checked(tmp_path: Path) -> None:
    prog = script(tmp_path, INVERSION.format(exit=""))
    proc = run("-m", "stuck", "run", prog.name, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "lock-order" not in proc.stderr


@pytest.mark.parametrize("strict", [False, True])
def test_strict_makes_a_timed_cycle_a_finding_of_its_own_kind(tmp_path: Path,
                                                               strict: bool) -> None:
    prog = script(tmp_path, TIMED)
    flag = "--lock-order-strict" if strict else "--lock-order"
    proc = run("-m", "stuck", "run", flag, prog.name, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    deadlock_title = "circular lock order, a deadlock waiting to happen"
    assert (deadlock_title in proc.stderr) == strict


def test_module_alias_runs_the_same(tmp_path: Path) -> None:
    prog = script(tmp_path, INVERSION.format(exit=""))
    out = tmp_path / "alias.json"
    proc = run("-m", "stuck.runtime.lockorder", "--json", str(out), prog.name, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "1 lock-order finding" in proc.stderr
    assert json.loads(out.read_text())["findings"][0]["kind"] == "lock-order"
    bad = run("-m", "stuck.runtime.lockorder", "--nope", prog.name, cwd=tmp_path)
    assert bad.returncode == 2 and "unknown option" in bad.stderr


FORKS = """
    import os, sys, threading
    a = threading.Lock()
    b = threading.Lock()
    with a, b:
        pass
    pid = os.fork()
    if pid == 0:
        with b, a:  # the reverse order, in the child only
            pass
        sys.exit(0)
    _, status = os.waitpid(pid, 0)
    print("child exit", os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_forked_child_keeps_its_exit_status_and_writes_no_report(tmp_path: Path) -> None:
    prog = script(tmp_path, FORKS)
    plain = run(str(prog), cwd=tmp_path)
    assert plain.stdout == "child exit 0\n"
    out = run("-m", "stuck", "run", "--lock-order", str(prog), cwd=tmp_path)
    assert out.stdout == plain.stdout  # the child exited 0, as without stuck
    assert out.returncode == 0
    assert out.stderr.count("lock-order") == 1  # the parent's report only
    assert "no lock-order problem found" in out.stderr


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_forked_child_reports_when_asked(tmp_path: Path) -> None:
    prog = script(tmp_path, FORKS)
    out = run("-m", "stuck", "run", "--lock-order", "--lock-order-children", str(prog),
              cwd=tmp_path)
    assert out.stdout == "child exit 1\n"
    assert "lock-order report of forked child" in out.stderr
    assert "LOCK-ORDER (" in out.stderr and "circular lock order" in out.stderr
    assert out.returncode == 0  # the parent itself found nothing

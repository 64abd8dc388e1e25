"""A Lock held by a thread that ended, waited for by a later thread given the same ident: a
stall naming the ended holder, never "a thread takes a lock it already holds"."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stuck.errors import EXIT_ABORT

PROGRAM = Path(__file__).parent / "programs" / "holder_ended.py"


def test_a_reused_ident_does_not_inherit_an_ended_holders_lock(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "stuck", "run", "--policy", "abort", "--json",
                           str(report), str(PROGRAM)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    if proc.stdout == "ident reused: False\n":
        pytest.skip("the system gave no new thread the ended holder's ident in 100 tries")
    assert proc.stdout == "ident reused: True\n", proc.stderr
    assert proc.returncode == EXIT_ABORT, proc.stderr
    assert "STALL (certain): user waits for mutex gate, held by holder, which ended without " \
           "releasing it" in proc.stderr, proc.stderr
    assert "DEADLOCK" not in proc.stderr and "already holds" not in proc.stderr
    assert "dead: holder ended" in proc.stderr
    saved = json.loads(report.read_text())
    gate = next(r for r in saved["resources"] if r["label"] == "gate")
    threads = {t["id"]: t for p in saved["processes"] for t in p["threads"]}
    (owner,) = gate["owners"]
    assert threads[owner]["name"] == "holder" and threads[owner]["state"] == "dead"
    user = next(t for t in threads.values() if t["name"] == "user")
    assert gate["id"] not in user.get("holds", [])
    # The saved report read back gives the same verdict.
    again = subprocess.run([sys.executable, "-m", "stuck", "analyze", str(report)],
                           capture_output=True, text=True, timeout=60)
    assert "STALL (certain): user waits for mutex gate, held by holder" in again.stdout, \
        again.stdout

"""Go quiescence with the program's source beside the dump (``stuck.stacks.gosource``): a
goroutine that may run again (a ticker loop) ends no wait its code cannot reach.

The dumps are real SIGQUIT output of the programs beside them (tests/fixtures/dumps/gosource);
the truth comes from the programs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stuck.analysis import analyze
from stuck.dumps import load_dump
from stuck.model import Report
from stuck.stacks import gosource

HERE = Path(__file__).parent.parent / "fixtures" / "dumps" / "gosource"
PRINTED_DIR = "/tmp/stranger/go/"


def _analyze(name: str, source_dir: Path | None) -> Report:
    """The dump of program ``name``, its paths pointing at ``source_dir`` (None: a directory
    where the source is not)."""
    text = (HERE / f"{name}.sigquit.txt").read_text()
    if source_dir is not None:
        shutil.copy(HERE / f"{name}.go", source_dir / f"{name}.go")
        text = text.replace(PRINTED_DIR, f"{source_dir}/")
    else:
        text = text.replace(PRINTED_DIR, "/nonexistent/stuck-test/")
    gosource.forget()
    loaded = load_dump(text, name=f"{name}.sigquit.txt")
    return analyze(loaded.snapshot, loaded.stated, loaded.inferred)


@pytest.mark.parametrize("name", ["ticker_mutex_send", "store_audit"])
def test_main_waiting_for_the_mutex_a_blocked_sender_holds_is_a_possible_deadlock(
        name: str, tmp_path: Path) -> None:
    """main locks the mutex the worker holds while the worker sends to main; a ticker
    goroutine beside them may run again, but its loop names neither and calls only the
    standard library."""
    rep = _analyze(name, tmp_path)
    [f] = rep.findings
    assert (f.kind, f.confidence) == ("deadlock", "possible")
    assert "goroutine 1" in f.threads and len(f.threads) == 2
    kinds = {rep.snapshot.resource_map()[r].kind for r in f.resources}
    assert kinds == {"mutex", "channel"}
    ticker = next(t.id for t in rep.snapshot.threads() if t.detail == "chan receive")
    assert ticker not in f.threads and ticker not in f.blocked_behind
    assert f.details["source_read"] and "source files on disk" in " ".join(f.missing_evidence)
    assert "cannot end goroutine 1" in f.explanation


@pytest.mark.parametrize("name", ["ticker_worker_quit", "heartbeat_lines"])
def test_main_sending_to_a_worker_that_returned_is_a_possible_stall(name: str,
                                                                   tmp_path: Path) -> None:
    """main sends on an unbuffered channel whose only receiver returned; a ticker goroutine
    beside it may run again (possible), but its loop cannot receive on that channel."""
    rep = _analyze(name, tmp_path)
    [f] = rep.findings
    assert (f.kind, f.confidence) == ("stall", "possible")
    assert f.threads == ["goroutine 1"]
    assert rep.snapshot.resource_map()[f.resources[0]].kind == "channel"


@pytest.mark.parametrize("name", ["ticker_mutex_send", "store_audit", "ticker_worker_quit",
                                  "heartbeat_lines"])
def test_without_the_source_a_child_that_may_run_may_end_main_s_wait(name: str) -> None:
    """The dump alone cannot tell what the ticker goroutine will do: main is not claimed."""
    rep = _analyze(name, None)
    assert not any("goroutine 1" in f.threads for f in rep.findings)


def test_a_ticker_goroutine_that_sends_on_what_main_waits_for_keeps_it_unclaimed(
        tmp_path: Path) -> None:
    """A correct program: main waits on done, which the ticker goroutine's loop sends on."""
    rep = _analyze("ticker_polls_done", tmp_path)
    assert rep.findings == []


def test_a_body_that_calls_the_program_s_code_may_reach_anything(tmp_path: Path) -> None:
    src = tmp_path / "m.go"
    src.write_text('package main\n\nimport "time"\n\nfunc main() {\n'
                   '\tgo func() { for range time.Tick(time.Second) { poll() } }()\n'
                   '\tgo func() { for range time.Tick(time.Second) {} }()\n'
                   '\tjobs <- 1\n}\n')
    gosource.forget()
    names = gosource.names_at(str(src), 8)
    assert names == frozenset({"jobs"})
    calls = gosource.literal_body(str(src), 6)
    quiet = gosource.literal_body(str(src), 7)
    assert calls is not None and quiet is not None
    assert not gosource.cannot_reach(calls, names)
    assert gosource.cannot_reach(quiet, names)
    assert gosource.literal_body(str(src), 8) is None  # no go statement there
    assert gosource.names_at(str(tmp_path / "absent.go"), 1) is None


@pytest.mark.parametrize("name", ["ticker_worker_quit", "ticker_mutex_send"])
def test_stuck_analyze_reads_the_go_source_under_source_dir(name: str, tmp_path: Path) -> None:
    """The dump prints paths where the source is not (it was built elsewhere): `stuck analyze
    --source DIR` reads it under DIR, as it does Python files."""
    dump = tmp_path / f"{name}.sigquit.txt"
    dump.write_text((HERE / f"{name}.sigquit.txt").read_text()
                    .replace(PRINTED_DIR, "/nonexistent/stuck-test/build/"))
    src = tmp_path / "checkout"
    src.mkdir()
    shutil.copy(HERE / f"{name}.go", src / f"{name}.go")

    def main_claimed(*extra: str) -> bool:
        run = subprocess.run([sys.executable, "-m", "stuck", "analyze", "--json", "-", *extra,
                              str(dump)], capture_output=True, text=True, timeout=120)
        assert run.returncode in (0, 1), run.stderr
        return any("goroutine 1" in f["threads"] for f in json.loads(run.stdout)["findings"])

    assert not main_claimed()
    assert main_claimed("--source", str(src))


def test_sync_cond_waiters_are_on_the_cond_their_notify_list_names(tmp_path: Path) -> None:
    """Go 1.18+ often prints a Cond's receiver as ``sync.(*Cond).Wait(0x0?)`` (lost with the
    register ABI) but ``sync.runtime_notifyListWait``'s first argument, the Cond's notify list,
    exactly: both waiters of cond_wait wait on that one Cond, not on one each."""
    rep = _analyze("cond_wait", tmp_path)
    [f] = rep.findings
    assert (f.kind, f.confidence) == ("stall", "possible")
    assert len(f.threads) == 2
    [cond] = [rep.snapshot.resource_map()[r] for r in f.resources]
    assert cond.kind == "condition" and cond.address == "0xc000082050"

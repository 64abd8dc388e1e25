"""stuck capture on real C processes: pipes between processes, and mutexes read by gdb."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.capture.conftest import settle

from stuck.capture import collect, report
from stuck.model import Report

needs_gdb = pytest.mark.skipif(shutil.which("gdb") is None,
                               reason="gdb is not installed (CI: .ci/packages)")


def _capture(*pids: int, tree: bool = False, native: bool = True) -> Report:
    """Capture ``pids``; ``native=False`` leaves out gdb (the kernel's view decides alone)."""
    return report(collect(list(pids), tree=tree, runtime_views=native))


def _process_of(rep: Report) -> dict[str, int | None]:
    return {t.id: p.pid for p in rep.snapshot.processes for t in p.threads}


def test_two_processes_through_two_full_pipes_deadlock(c_program, start) -> None:  # type: ignore[no-untyped-def]
    pair = start([str(c_program("pipe_pair"))])
    server, worker = settle(pair, 2)
    rep = _capture(server)  # only one pid given: the peer is followed through the pipe
    [finding] = rep.findings
    assert finding.kind == "deadlock"
    assert finding.confidence == "certain"
    owner = _process_of(rep)
    assert {owner[t] for t in finding.threads} == {server, worker}
    resources = rep.snapshot.resource_map()
    pipes = [resources[e.waits_for] for e in finding.cycle]
    assert {p.kind for p in pipes} == {"pipe"}
    assert len({p.inode for p in pipes}) == 2
    for edge in finding.cycle:
        waiter = rep.snapshot.thread(edge.thread)
        assert waiter is not None and waiter.waits is not None
        assert waiter.waits.direction == "write"
        pipe = resources[edge.waits_for]
        assert pipe.capacity and pipe.queued == pipe.capacity  # full
        assert owner[edge.held_by] != owner[edge.thread]  # the other process holds the reader
        assert str(pipe.inode) in pipe.label and "to be read" in pipe.label
        # The explanation names resources by label: it said "waits for 553301 to be read".
        assert f"waits for pipe {pipe.inode} to be read" in finding.explanation


def test_a_pipe_wait_is_not_stuck_while_a_reader_could_still_be_woken(c_program, start) -> None:  # type: ignore[no-untyped-def]
    # The worker's helper thread could read the pipe once signalled, and a thread that still
    # runs could signal it: neither process is proven stuck.
    pair = start([str(c_program("pipe_pair_helper")), "waker"])
    server = pair.pid
    settle_writers(pair)
    rep = _capture(server, native=False)
    assert rep.findings == [], [f.summary for f in rep.findings]
    assert {t.state for t in rep.snapshot.threads() if t.detail and "write on" in t.detail} \
        == {"io"}


def test_a_pipe_deadlock_through_a_reader_only_the_cycle_could_wake(c_program, start) -> None:  # type: ignore[no-untyped-def]
    pair = start([str(c_program("pipe_pair_helper"))])
    server, worker = settle(pair, 2)
    rep = _capture(server, native=False)
    deadlocks = [f for f in rep.findings if f.kind == "deadlock"]
    assert len(deadlocks) == 1
    assert _process_of(rep)[deadlocks[0].threads[0]] in {server, worker}


def settle_writers(pair, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    """Wait until every process of the group has a thread asleep in write()."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = pair.pids()
        if len(pids) == 2 and all(_writing(p) for p in pids):
            time.sleep(0.3)
            return
        time.sleep(0.05)
    raise AssertionError("the pair did not block in write")


def _writing(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/syscall").read_text().split()[0] in ("1", "64")
    except (OSError, IndexError):
        return False


@needs_gdb
def test_abba_mutex_deadlock_is_certain_with_owners_read_by_gdb(c_program, start) -> None:  # type: ignore[no-untyped-def]
    prog = start([str(c_program("mutex_abba"))])
    [pid] = settle(prog, 1)
    rep = _capture(pid)
    deadlocks = [f for f in rep.findings if f.kind == "deadlock"]
    assert len(deadlocks) == 1
    [d] = deadlocks
    assert d.confidence == "certain" and len(d.cycle) == 2
    resources = rep.snapshot.resource_map()
    assert {resources[e.waits_for].label.split()[0] for e in d.cycle} == {"a", "b"}
    for e in d.cycle:
        assert resources[e.waits_for].kind == "mutex"
        assert resources[e.waits_for].owners == [e.held_by]  # read from __data.__owner
    assert d.blocked_behind == [f"LWP {pid}"]  # main joins a thread of the cycle


@needs_gdb
def test_rwlock_writer_read_by_gdb_closes_a_cycle_with_a_mutex(c_program, start) -> None:  # type: ignore[no-untyped-def]
    prog = start([str(c_program("rwlock_mutex"))])
    [pid] = settle(prog, 1)
    rep = _capture(pid)
    [d] = rep.findings
    assert (d.kind, d.confidence) == ("deadlock", "certain")
    resources = rep.snapshot.resource_map()
    kinds = {resources[e.waits_for].kind: e for e in d.cycle}
    assert set(kinds) == {"rwlock", "mutex"}
    table = resources[kinds["rwlock"].waits_for]
    assert table.label.startswith("table") and table.owners == [kinds["rwlock"].held_by]


@needs_gdb
def test_self_deadlock_on_a_non_recursive_mutex_is_certain(c_program, start) -> None:  # type: ignore[no-untyped-def]
    prog = start([str(c_program("mutex_self"))])
    [pid] = settle(prog, 1)
    rep = _capture(pid)
    [d] = rep.findings
    assert (d.kind, d.confidence) == ("deadlock", "certain")
    assert [(e.thread, e.held_by) for e in d.cycle] == [(f"LWP {pid}", f"LWP {pid}")]


@needs_gdb
def test_condition_waiter_whose_notifier_exited_is_a_stall(c_program, start) -> None:  # type: ignore[no-untyped-def]
    prog = start([str(c_program("cond_orphan"))])
    [pid] = settle(prog, 1)
    rep = _capture(pid)
    [stall] = rep.findings
    assert stall.kind == "stall"
    resources = rep.snapshot.resource_map()
    assert [resources[r].kind for r in stall.resources] == ["condition"]
    assert resources[stall.resources[0]].label.startswith("ready")
    assert stall.blocked_behind == [f"LWP {pid}"]  # main joins the waiter


def _verdicts(rep: Report) -> list[tuple[str, str, list[str]]]:
    return [(f.kind, f.confidence, sorted(f.threads)) for f in rep.findings]


@needs_gdb
def test_a_wait_a_sleeper_may_end_gets_the_verdict_its_gdb_dump_gets(c_program, start) -> None:  # type: ignore[no-untyped-def]
    # main waits on a condition that a thread now in nanosleep will signal when it wakes.
    # capture and `stuck analyze` of a gdb dump of the same moment see the same threads, so
    # they must hand the rules the same facts: every thread of the process is shown (capture
    # read them all from /proc), and the sleeper is sleeping, also once a debugger has
    # attached (the kernel then resumes its sleep through restart_syscall). The sleeper may
    # be the signaller: a stall, at most possible, naming it.
    from stuck.analysis import analyze
    from stuck.dumps import load_dump

    prog = start([str(c_program("cond_sleeper_signals"))])
    [pid] = settle(prog, 1)
    first = _capture(pid)  # before any debugger attached: the sleeper is in clock_nanosleep
    dump = subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "thread apply all bt"],
                          capture_output=True, text=True, timeout=120).stdout
    loaded = load_dump(dump, name="bt.txt")
    from_dump = analyze(loaded.snapshot, loaded.stated, loaded.inferred)
    again = _capture(pid)  # the sleeper was interrupted by gdb: restart_syscall now
    sleeper = next(t for t in again.snapshot.threads() if t.tid != pid)
    assert sleeper.state == "sleeping", sleeper.detail
    expected = [("stall", "possible", [f"LWP {pid}"])]
    assert _verdicts(from_dump) == expected, [f.summary for f in from_dump.findings]
    assert _verdicts(first) == expected, [f.summary for f in first.findings]
    assert _verdicts(again) == expected, [f.summary for f in again.findings]
    for rep in (first, again):
        [stall] = rep.findings
        assert any(f"LWP {sleeper.tid}" in m and "time to pass" in m
                   for m in stall.missing_evidence), stall.missing_evidence


def test_healthy_pipeline_gives_no_finding(c_program, start) -> None:  # type: ignore[no-untyped-def]
    pipeline = start(["sh", "-c", f"{c_program('busy_pipeline')} | cat > /dev/null"])
    time.sleep(0.5)
    pids = pipeline.pids()
    for native in (True, False, False):
        rep = _capture(pipeline.pid, tree=True, native=native)
        assert rep.findings == [], [f.summary for f in rep.findings]
    assert len(rep.snapshot.processes) >= len(pids)


def test_slow_producer_keeps_consumer_waiting_without_a_finding(start) -> None:  # type: ignore[no-untyped-def]
    pipeline = start(["sh", "-c", "while :; do echo tick; sleep 5; done | cat > /dev/null"])
    time.sleep(0.5)
    rep = _capture(pipeline.pid, tree=True, native=False)
    assert rep.findings == []
    readers = [t for t in rep.snapshot.threads() if t.name and t.name.startswith("cat")]
    assert readers and readers[0].state == "io"  # the pipe's writer can still run


def test_idle_server_gives_no_finding(start) -> None:  # type: ignore[no-untyped-def]
    server = start([sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1"])
    settle(server, 1)
    rep = _capture(server.pid)
    assert rep.findings == []


def test_cli_json_exit_code_and_saved_evidence(c_program, start, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pair = start([str(c_program("pipe_pair"))])
    server, worker = settle(pair, 2)
    saved = tmp_path / "evidence"
    out = tmp_path / "report.json"
    run = subprocess.run([sys.executable, "-m", "stuck", "capture", str(server), "--json",
                          str(out), "--save", str(saved)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 1, run.stderr
    assert "DEADLOCK (certain)" in run.stdout
    doc = json.loads(out.read_text())
    assert doc["source"]["kind"] == "proc"
    assert {p["pid"] for p in doc["processes"]} == {server, worker}
    pair.kill()
    again = subprocess.run([sys.executable, "-m", "stuck", "analyze", str(saved), "--json"],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 1, again.stderr
    redo = json.loads(again.stdout)
    assert [f["summary"] for f in redo["findings"]] == [f["summary"] for f in doc["findings"]]


def test_a_pid_that_does_not_exist_is_a_usage_error() -> None:
    run = subprocess.run([sys.executable, "-m", "stuck", "capture", "999999999"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr and "999999999" in run.stderr
    for word in ("abc", "\u00b2", "0"):
        bad = subprocess.run([sys.executable, "-m", "stuck", "capture", word],
                             capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and "not a process id" in bad.stderr, bad.stderr


def test_zombie_is_reported_with_what_is_missing(start) -> None:  # type: ignore[no-untyped-def]
    # The shell execs sleep after forking a child that exits at once: nobody reaps it.
    parent = start(["sh", "-c", "sh -c 'exit 0' & exec sleep 30"])
    deadline = time.monotonic() + 10
    zombie = None
    while zombie is None and time.monotonic() < deadline:
        for name in Path("/proc").iterdir():
            if not name.name.isdigit():
                continue
            try:
                stat = (name / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] == "Z" and int(fields[1]) == parent.pid:
                zombie = int(name.name)
        time.sleep(0.05)
    assert zombie is not None
    rep = _capture(zombie)
    assert rep.findings == []
    assert any("zombie" in n for n in rep.snapshot.notes)


@pytest.mark.parametrize("register", ["0xffffffff", "0xffffffffffffffff"])
def test_wait4_for_any_child_is_read_as_minus_one_whatever_the_upper_half(register: str) -> None:
    from stuck.capture import syscalls

    call = syscalls.parse(f"61 {register} 0x7ffd 0x0 0x0 0x1 0x8 0x7ffd 0x7f12", "x86_64")
    assert call is not None and call.meaning == "wait-child"
    assert call.child() == -1
    named = syscalls.parse("61 0x1f40 0x7ffd 0x0 0x0 0x1 0x8 0x7ffd 0x7f12", "x86_64")
    assert named is not None and named.child() == 8000
    by_id = syscalls.parse("247 0x1 0x1f41 0x7ffd 0x4 0x0 0x0 0x7ffd 0x7f12", "x86_64")
    assert by_id is not None and by_id.child() == 8001


def test_shell_waiting_for_its_background_child_follows_it_without_a_finding(start) -> None:  # type: ignore[no-untyped-def]
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    shell = start(["bash", "-c", "sleep 30 & wait"])
    pids = settle(shell, 2)
    child = next(p for p in pids if p != shell.pid)
    rep = _capture(shell.pid, native=False)  # no --tree: the wait itself leads to the child
    assert rep.findings == [], [f.summary for f in rep.findings]
    assert {p.pid for p in rep.snapshot.processes} == {shell.pid, child}
    waiter = next(t for p in rep.snapshot.processes if p.pid == shell.pid for t in p.threads)
    assert waiter.detail is not None and f"child pid {child} (sleep)" in waiter.detail
    assert all(str((1 << 32) - 1) not in n for n in rep.snapshot.notes)


def test_an_unwritable_report_path_is_refused_before_capturing(tmp_path: Path) -> None:
    """It was found after the whole capture, and said as 'stuck analyze: cannot write …'."""
    missing = tmp_path / "no-such-dir" / "report.json"
    run = subprocess.run([sys.executable, "-m", "stuck", "capture", str(os.getpid()), "--json",
                          str(missing)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.startswith("stuck capture: cannot write ") and run.stdout == ""


@needs_gdb
def test_waiters_on_one_condition_variable_wait_on_one_resource(c_program, start) -> None:  # type: ignore[no-untyped-def]
    # glibc puts waiters in two groups, each asleep on its own futex word inside the
    # pthread_cond_t: both are waits on the variable, named by its address.
    prog = start([str(c_program("cond_two_groups"))])
    [pid] = settle(prog, 1)
    rep = _capture(pid)
    [stall] = rep.findings
    assert stall.kind == "stall"
    threads = rep.snapshot.thread_map()
    waits = {threads[t].waits.resource for t in stall.threads  # type: ignore[union-attr]
             if threads[t].waits is not None}
    assert len(stall.threads) == 2 and len(waits) == 1, waits
    [res] = [rep.snapshot.resource_map()[r] for r in waits]
    assert res.kind == "condition" and res.label.startswith("job_posted (0x")
    assert res.address is not None and res.label.endswith(f"({res.address})")


@needs_gdb
def test_workers_waiting_for_a_dispatcher_that_waits_for_input_get_no_finding(  # type: ignore[no-untyped-def]
        c_program, start) -> None:
    prog = start([str(c_program("cond_two_groups")), "input"], stdin=subprocess.PIPE)
    [pid] = settle(prog, 1)
    rep = _capture(pid)
    assert rep.findings == [], [f.summary for f in rep.findings]

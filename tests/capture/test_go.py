"""stuck capture on Go programs: goroutines read by gdb from the runtime's tables (the program
keeps running), goroutines parked in the netpoller linked to the pipe or socket they wait on."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.capture.conftest import PROGRAMS, settle

from stuck.capture import collect, gdb, report
from stuck.model import Report

pytestmark = pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed")

# Programs whose SIGQUIT dumps are fixtures of the Go source rule: one file serves both tests.
GO_SOURCE_FIXTURES = Path(__file__).parent.parent / "fixtures" / "dumps" / "gosource"


def go_source(name: str) -> Path:
    """tests/capture/programs/NAME.go, or the program of the dump fixture NAME."""
    here = PROGRAMS / f"{name}.go"
    return here if here.exists() else GO_SOURCE_FIXTURES / f"{name}.go"


@pytest.fixture(scope="session")
def go_program(build_dir: Path):  # type: ignore[no-untyped-def]
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if shutil.which("go") is None:
            pytest.skip("Go is not installed (CI: golang-go in .ci/packages)")
        if name not in built:
            out = build_dir / name
            subprocess.run(["go", "build", "-o", str(out), str(go_source(name))],
                           check=True, capture_output=True, cwd=build_dir,
                           env={**os.environ, "GO111MODULE": "off"})
            built[name] = out
        return built[name]

    return get


def _pids_in(rep: Report, threads: list[str]) -> set[int | None]:
    owner = {t.id: p.pid for p in rep.snapshot.processes for t in p.threads}
    return {owner[t] for t in threads}


def _unix_pair(go_program, start, tmp_path: Path, *client_args: str) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    exe = str(go_program("go_unix_pair"))
    sock = str(tmp_path / "s.sock")
    server = start([exe, "server", sock])
    assert server.proc.stdout is not None
    server.proc.stdout.readline()  # listening
    client = start([exe, "client", sock, *client_args])
    settle(server, 1)
    settle(client, 1)
    return server.pid, client.pid


def test_server_and_client_both_reading_a_unix_socket_deadlock(go_program, start,  # type: ignore[no-untyped-def]
                                                               tmp_path: Path) -> None:
    """Both goroutines wait in the netpoller; every OS thread is the runtime's, idle. This was
    'nothing found' with a note that goroutines cannot be read."""
    server, client = _unix_pair(go_program, start, tmp_path)
    rep = report(collect([server]))  # the client is found through the socket
    [d] = rep.findings
    assert (d.kind, d.confidence) == ("deadlock", "certain")
    assert set(d.threads) == {f"goroutine 1 (pid {client})", f"goroutine 1 (pid {server})"}
    kinds = {rep.snapshot.resource_map()[e.waits_for].kind for e in d.cycle}
    assert kinds == {"socket"}
    assert not any("goroutines were not read" in n for n in rep.snapshot.notes)
    with open(f"/proc/{server}/stat") as f:
        assert f.read().rsplit(")", 1)[1].split()[0] == "S"  # left running


def test_a_goroutine_a_timer_may_wake_keeps_a_socket_wait_from_being_proven(  # type: ignore[no-untyped-def]
        go_program, start, tmp_path: Path) -> None:
    """The client keeps a ticker goroutine: when its timer fires it runs, and could write to
    the socket; the capture cannot tell that it will not."""
    server, _ = _unix_pair(go_program, start, tmp_path, "ticker")
    rep = report(collect([server]))
    assert not [f for f in rep.findings if f.confidence == "certain"]


def test_goroutines_asleep_on_channels_beside_a_ticker_are_shown_without_a_finding(  # type: ignore[no-untyped-def]
        go_program, start) -> None:
    """A pending timer may feed a receive (Go's own check would not fire either): no claim,
    but every goroutine is shown where it waits."""
    prog = start([str(go_program("go_channels_asleep"))])
    settle(prog, 1)
    rep = report(collect([prog.pid]))
    assert rep.findings == []
    goroutines = [t for t in rep.snapshot.threads() if t.id.startswith("goroutine ")]
    at = {(f.function, f.line) for t in goroutines for f in t.frames
          if (f.file or "").endswith("go_channels_asleep.go")}
    assert ("main.main.func1", 18) in at and ("main.main.func2", 19) in at
    assert ("main.main", 26) in at  # wg.Wait()
    assert not [t for t in rep.snapshot.threads() if t.id.startswith("LWP ")]


def test_go_gateway_and_c_engine_deadlock_through_the_goroutine_parked_on_the_pipe(  # type: ignore[no-untyped-def]
        go_program, c_program, start) -> None:
    """Seed 002 with a real Go gateway: its goroutine writing the engine's full input pipe
    parks in the netpoller (no thread writes); the engine writes the gateway's full pipe."""
    pair = start([str(go_program("go_gateway")), str(c_program("engine"))])
    assert pair.proc.stdout is not None
    gateway, engine = (int(x) for x in pair.proc.stdout.readline().split())
    settle(pair, 1)
    rep = report(collect([engine]))
    [d] = rep.findings
    assert (d.kind, d.confidence) == ("deadlock", "certain")
    assert set(d.threads) == {f"LWP {engine}", f"goroutine 1 (pid {gateway})"}
    assert {rep.snapshot.resource_map()[e.waits_for].kind for e in d.cycle} == {"pipe"}


@pytest.mark.parametrize("family", ["tcp", "unix"])
def test_a_goroutine_parked_on_a_connection_its_server_has_not_accepted(  # type: ignore[no-untyped-def]
        go_program, start, tmp_path: Path, family: str) -> None:
    """The client's goroutine reads a connection waiting in the accept queue of a server whose
    only goroutine reads a pipe the client writes after the answer: a cycle across two
    processes through an accept queue, found from either side, and at most probable."""
    where = "tcp" if family == "tcp" else str(tmp_path / "s.sock")
    pair = start([str(go_program("go_accept_pair")), where])
    assert pair.proc.stdout is not None
    server = int(pair.proc.stdout.readline())
    settle(pair, 2)
    for asked in (pair.pid, server):
        rep = report(collect([asked]))
        [d] = rep.findings
        assert (d.kind, d.confidence) == ("deadlock", "probable")
        assert set(d.threads) == {f"goroutine 1 (pid {pair.pid})", f"goroutine 1 (pid {server})"}
        waits = {rep.snapshot.resource_map()[e.waits_for].label.split(" (")[0] for e in d.cycle}
        assert any(w.startswith("a connection to be accepted on listening socket")
                   for w in waits), waits
        assert any("will ever accept" in m for m in d.missing_evidence)


def test_goroutines_gdb_cannot_read_are_said_to_be_missing(  # type: ignore[no-untyped-def]
        go_program, c_program, start, monkeypatch) -> None:
    """gdb reads the OS threads (the runtime's, idle) but not the goroutine table (a stripped
    binary): the engine's wait is a possible hang behind the Go program, which says why."""
    monkeypatch.setattr(gdb, "GO_SCRIPT", "")
    pair = start([str(go_program("go_gateway")), str(c_program("engine"))])
    assert pair.proc.stdout is not None
    gateway, engine = (int(x) for x in pair.proc.stdout.readline().split())
    settle(pair, 1)
    rep = report(collect([engine]))
    [hang] = rep.findings
    assert (hang.kind, hang.confidence) == ("hang", "possible")
    assert f"LWP {engine}" in hang.blocked_behind + hang.threads
    assert any(f"pid {gateway} is a Go program and its goroutines were not read" in m
               for m in hang.missing_evidence)


def test_a_lock_inlined_into_main_keeps_main_s_frame_and_its_wait(go_program, start) -> None:  # type: ignore[no-untyped-def]
    """sync.(*Mutex).Lock is inlined into main.main: gdb's block for that code names Lock, and
    main.main (with the call's line) is the block around it. Both are shown, as SIGQUIT
    prints them; main is blocked on the mutex, not idle, and the worker's channel is named
    by its address (the sudog it is parked on)."""
    prog = start([str(go_program("store_audit"))])
    settle(prog, 1)
    rep = report(collect([prog.pid]))
    main = next(t for t in rep.snapshot.threads() if t.id == f"goroutine 1 (pid {prog.pid})")
    names = [f.function for f in main.frames]
    at = names.index("main.main")
    assert names[at - 1] == "sync.(*Mutex).Lock" and "runtime.semacquire1" in names
    assert main.frames[at].line == 37  # s.mu.Lock()
    assert main.frames[0].function == "runtime.gopark"
    assert main.state == "blocked"
    resources = rep.snapshot.resource_map()
    audit = next(t for t in rep.snapshot.threads()
                 if any(f.function == "main.(*store).audit" for f in t.frames))
    assert audit.waits is not None
    assert (resources[audit.waits.resource].address or "").startswith("0xc")
    # the source is on disk: the ticker goroutine's loop cannot end main's wait
    [f] = rep.findings
    assert (f.kind, f.confidence) == ("deadlock", "possible")
    assert set(f.threads) == {main.id, audit.id}


def test_a_stripped_go_binary_is_said_to_be_stripped(start, build_dir: Path) -> None:  # type: ignore[no-untyped-def]
    """`go run` and -ldflags="-s -w" leave no symbol table: the note says so, and what to do."""
    if shutil.which("go") is None:
        pytest.skip("Go is not installed (CI: golang-go in .ci/packages)")
    exe = build_dir / "store_audit_stripped"
    if not exe.exists():
        subprocess.run(["go", "build", "-ldflags=-s -w", "-o", str(exe),
                        str(go_source("store_audit"))], check=True, capture_output=True,
                       cwd=build_dir, env={**os.environ, "GO111MODULE": "off"})
    prog = start([str(exe)])
    settle(prog, 1)
    rep = report(collect([prog.pid]))
    notes = " ".join(rep.snapshot.notes)
    assert f"pid {prog.pid} is a Go program and its goroutines were not read" in notes
    assert "stripped" in notes and "go build" in notes and f"kill -QUIT {prog.pid}" in notes
    # the command line: not "nothing found", which would read as "not stuck"
    run = subprocess.run([sys.executable, "-m", "stuck", "capture", str(prog.pid)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and "stripped" in run.stderr


def test_main_sending_to_a_receiver_that_returned_beside_a_heartbeat_is_a_possible_stall(  # type: ignore[no-untyped-def]
        go_program, start) -> None:
    """The heartbeat goroutine may run again when its timer fires, and it is main's child;
    its source (on disk, beside the binary's paths) shows its loop cannot receive main's
    lines, so main's send is claimed, as possible."""
    prog = start([str(go_program("heartbeat_lines"))])
    settle(prog, 1)
    rep = report(collect([prog.pid]))
    [f] = rep.findings
    assert (f.kind, f.confidence) == ("stall", "possible")
    assert f.threads == [f"goroutine 1 (pid {prog.pid})"]
    assert f.details["source_read"]


def test_two_goroutines_waiting_for_one_mutex_left_locked_are_a_stall_not_a_cycle(  # type: ignore[no-untyped-def]
        go_program, start) -> None:
    """Each waiter's mutex is read from the runtime's semaphore table (the sudog it sleeps
    in names the semaphore, four bytes into the sync.Mutex): both wait for one mutex, which
    no goroutine left holds. Without the address they were two mutexes, and a cycle."""
    prog = start([str(go_program("go_lock_left_locked"))])
    settle(prog, 1)
    rep = report(collect([prog.pid]))
    [f] = rep.findings
    assert f.kind == "stall"
    assert len(f.threads) == 2
    [res] = [rep.snapshot.resource_map()[r] for r in f.resources]
    assert res.kind == "mutex" and (res.address or "").startswith("0xc")
    waits = {t.waits.resource for t in rep.snapshot.threads() if t.id in f.threads and t.waits}
    assert waits == {res.id}


def test_source_given_with_source_dir_is_read_where_the_binary_s_paths_are_not(  # type: ignore[no-untyped-def]
        start, tmp_path: Path) -> None:
    """The binary records the path it was built from; the source has moved since (another
    checkout, another machine). Without --source the heartbeat goroutine's code cannot be
    read and main's send stays unclaimed; with --source DIR it is read there."""
    if shutil.which("go") is None:
        pytest.skip("Go is not installed (CI: golang-go in .ci/packages)")
    built_in, moved = tmp_path / "built", tmp_path / "moved"
    built_in.mkdir()
    shutil.copy(go_source("heartbeat_lines"), built_in / "heartbeat_lines.go")
    exe = tmp_path / "heartbeat_lines"
    subprocess.run(["go", "build", "-o", str(exe), "heartbeat_lines.go"], check=True,
                   capture_output=True, cwd=built_in, env={**os.environ, "GO111MODULE": "off"})
    built_in.rename(moved)
    prog = start([str(exe)])
    settle(prog, 1)
    main = f"goroutine 1 (pid {prog.pid})"
    ev = collect([prog.pid])
    assert not any(main in f.threads for f in report(ev).findings)
    [f] = report(ev, [str(moved)]).findings
    assert (f.kind, f.confidence, f.threads) == ("stall", "possible", [main])
    assert f.details["source_read"]
    run = subprocess.run([sys.executable, "-m", "stuck", "capture", str(prog.pid), "--source",
                          str(moved), "--json", "-"], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 1, run.stderr
    assert '"possible"' in run.stdout and main in run.stdout


def test_sync_cond_waiters_carry_the_cond_s_address_as_a_sigquit_dump_prints_it(  # type: ignore[no-untyped-def]
        go_program, start) -> None:
    """Two goroutines wait on one sync.Cond nobody signals. Capture reads the Cond's notify
    list where the runtime keeps it (notifyListWait's first argument): both waits are on one
    resource, with the address SIGQUIT's traceback prints, and a dump of the same moment
    gets the same verdict. Without the address each waiter had a Cond of its own."""
    from stuck.analysis import analyze
    from stuck.dumps import load_dump

    prog = start([str(go_program("cond_wait"))])
    assert prog.proc.stdout is not None
    assert int(prog.proc.stdout.readline()) == prog.pid
    settle(prog, 1)
    rep = report(collect([prog.pid]))
    resources = rep.snapshot.resource_map()
    takers = [t for t in rep.snapshot.threads()
              if any(f.function == "main.(*queue).take" for f in t.frames)]
    assert len(takers) == 2
    [cond] = {resources[t.waits.resource].id for t in takers if t.waits is not None}
    address = resources[cond].address
    assert resources[cond].kind == "condition" and (address or "").startswith("0xc")
    os.kill(prog.pid, signal.SIGQUIT)
    _, err = prog.proc.communicate(timeout=30)
    dump = err.decode()
    assert f"sync.runtime_notifyListWait({address}, " in dump
    loaded = load_dump(dump, name="sigquit.txt")
    from_dump = analyze(loaded.snapshot, loaded.stated, loaded.inferred)

    def verdicts(r: Report) -> list[tuple[str, str, list[str], list[str | None]]]:
        res = r.snapshot.resource_map()
        return [(f.kind, f.confidence, sorted(t.split(" (pid")[0] for t in f.threads),
                 [res[x].address for x in f.resources]) for f in r.findings]

    assert verdicts(rep) == verdicts(from_dump)
    assert verdicts(rep)[0][:2] == ("stall", "possible")
    assert verdicts(rep)[0][3] == [address]

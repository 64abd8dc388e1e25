"""A connection not yet accepted: its client waits for whoever holds the listening socket.

The hung programs close a wait through an accept queue, in one process (a server calling
itself, as a single-threaded ``http.server`` does) or across two (a client and a server that
waits on the client through a pipe before it accepts). The correct ones (a server with a thread
of its own per request, a slow acceptor, a server still computing, a selector watching the
listener) must give no finding.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.capture.conftest import PROGRAMS, Started, settle

from stuck.capture import collect, peers, report, syscalls
from stuck.capture.evidence import SocketEvidence
from stuck.model import Finding, Report

# /proc/net/tcp rows as the kernel prints them (trailing columns cut): a listener on
# 127.0.0.1:37345 (one connection queued), the client 127.0.0.1:57836 connected to it, and the
# server end of that connection, which no process holds yet (inode 0).
HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  " \
    "timeout inode\n"
LISTEN = "   1: 0100007F:91E1 00000000:0000 0A 00000000:00000001 00:00000000 00000000     0" \
    "        0 4316682 2 0000000000000000 100 0 0 10 0\n"
UNHELD = "   3: 0100007F:91E1 0100007F:E1EC 01 00000000:0000007F 00:00000000 00000000     0" \
    "        0 0 1 0000000000000000 20 4 30 10 -1\n"
CLIENT = "   5: 0100007F:E1EC 0100007F:91E1 01 00000000:00000000 00:00000000 00000000     0" \
    "        0 4316687 1 0000000000000000 20 0 0 11 -1\n"
ACCEPTED = UNHELD.replace(" 0 1 0000", " 4316690 1 0000")


def test_a_client_whose_server_end_no_process_holds_waits_in_the_listeners_queue() -> None:
    assert peers.accept_queue([], HEADER + LISTEN + UNHELD + CLIENT) == {4316687: [4316682]}


def test_an_accepted_connection_is_in_no_queue() -> None:
    assert peers.accept_queue([], HEADER + LISTEN + ACCEPTED + CLIENT) == {}


def test_a_listener_on_the_wildcard_address_of_the_port_is_the_one() -> None:
    wildcard = LISTEN.replace("0100007F:91E1 00000000", "00000000:91E1 00000000")
    assert peers.accept_queue([], wildcard + UNHELD + CLIENT) == {4316687: [4316682]}
    elsewhere = LISTEN.replace("0100007F:91E1", "0100007F:91E2")  # another port
    assert peers.accept_queue([], elsewhere + UNHELD + CLIENT) == {}


def test_a_dual_stack_listener_meets_an_ipv4_client_through_the_mapped_address() -> None:
    # tcp6 shows an IPv4 peer of a [::] listener as ::ffff:127.0.0.1
    mapped = "0000000000000000FFFF00000100007F"
    listen6 = "   0: 00000000000000000000000000000000:91E1 00000000000000000000000000000000:0000" \
        " 0A 00000000:00000001 00:00000000 00000000     0        0 555 1 0 100 0 0 10 0\n"
    unheld6 = f"   1: {mapped}:91E1 {mapped}:E1EC 01 00000000:00000000 00:00000000 00000000" \
        "     0        0 0 1 0 20 4 30 10 -1\n"
    assert peers.accept_queue([], HEADER + CLIENT + HEADER + listen6 + unheld6) \
        == {4316687: [555]}


def test_a_listening_unix_sockets_pending_clients_wait_in_it() -> None:
    listener = SocketEvidence(inode=10, listening=True, pending=[11, 12])
    assert peers.accept_queue([listener, SocketEvidence(inode=11)], "") \
        == {11: [10], 12: [10]}


def test_the_saved_table_keeps_the_unheld_end_of_a_kept_client_only() -> None:
    stranger = UNHELD.replace("0100007F:E1EC", "0100007F:E1ED")
    kept = peers.unheld_tcp_rows(HEADER + LISTEN + UNHELD + stranger + CLIENT,
                                 {4316687, 4316682})
    assert kept.splitlines() == [LISTEN.rstrip("\n"), UNHELD.rstrip("\n"),
                                 CLIENT.rstrip("\n")]


def _started(start, argv: list[str]) -> Started:  # type: ignore[no-untyped-def]
    prog: Started = start(argv)
    assert prog.proc.stdout is not None
    line = prog.proc.stdout.readline()
    assert line, prog.proc.communicate(timeout=10)
    return prog


def _accept_waits(rep: Report) -> list[str]:
    return [r.id for r in rep.snapshot.resources if r.id.startswith("accept:")]


def _probable_through_the_queue(finding: Finding, rep: Report) -> None:
    assert finding.confidence == "probable"  # never certain: no snapshot proves no accept
    assert set(_accept_waits(rep)) & set(finding.resources)
    assert any("will ever accept on listening socket" in m and "two readings" in m
               for m in finding.missing_evidence), finding.missing_evidence


def test_single_threaded_http_server_calling_itself_is_a_deadlock_through_its_queue(  # type: ignore[no-untyped-def]
        start) -> None:
    prog = _started(start, [sys.executable, str(PROGRAMS / "py_accept_self_call.py"), "http"])
    settle(prog, 1)
    rep = report(collect([prog.pid]))
    [d] = rep.findings
    assert d.kind == "deadlock"
    _probable_through_the_queue(d, rep)
    threads = rep.snapshot.thread_map()
    assert {threads[t].name.split(" [")[0] for t in d.threads if threads[t].name} \
        == {"MainThread", "serving"}
    [rid] = _accept_waits(rep)
    label = rep.snapshot.resource_map()[rid].label
    assert "to be accepted on listening socket" in label and "tcp 127.0.0.1:" in label
    assert "1 connection in its accept queue" in label


@pytest.mark.parametrize("family", ["tcp", "unix"])
def test_one_thread_waiting_on_its_own_listener_is_a_stall(start, family: str) -> None:  # type: ignore[no-untyped-def]
    prog = _started(start, [sys.executable, str(PROGRAMS / "py_accept_self_call.py"), family])
    settle(prog, 1)
    rep = report(collect([prog.pid]))
    [s] = rep.findings
    assert s.kind == "stall"
    _probable_through_the_queue(s, rep)
    [rid] = _accept_waits(rep)
    assert family in rep.snapshot.resource_map()[rid].label


@pytest.mark.parametrize("family", ["tcp", "unix"])
def test_client_and_server_waiting_on_each_other_across_two_processes(  # type: ignore[no-untyped-def]
        c_program, start, family: str) -> None:
    prog = _started(start, [str(c_program("accept_pipe_pair")), family])
    client, server = settle(prog, 2)
    for asked in (client, server):  # either side leads to the other
        rep = report(collect([asked], runtime_views=False))
        [d] = rep.findings
        assert d.kind == "deadlock"
        _probable_through_the_queue(d, rep)
        pid_of = {t.id: p.pid for p in rep.snapshot.processes for t in p.threads}
        assert {pid_of[t] for t in d.threads} == {client, server}
        kinds = {rep.snapshot.resource_map()[e.waits_for].kind for e in d.cycle}
        assert kinds == {"socket", "pipe"}


def test_a_unix_connect_asleep_on_a_full_queue_waits_for_the_listeners_holders(  # type: ignore[no-untyped-def]
        c_program, start) -> None:
    prog = _started(start, [str(c_program("accept_pipe_pair")), "unix-full"])
    client, server = settle(prog, 2)
    rep = report(collect([client], runtime_views=False))
    [d] = rep.findings
    assert d.kind == "deadlock" and d.confidence == "probable"
    room = [r for r in rep.snapshot.resources if r.id.startswith("room:")]
    assert len(room) == 1 and room[0].id in d.resources
    assert room[0].label.startswith("a place in the accept queue of listening socket")
    assert "unix /tmp/accept_pipe_pair." in room[0].label and "full: 1 connection" in room[0].label
    pid_of = {t.id: p.pid for p in rep.snapshot.processes for t in p.threads}
    assert {pid_of[t] for t in d.threads} == {client, server}
    waiter = rep.snapshot.thread(f"LWP {client}")
    assert waiter is not None and waiter.waits is not None
    assert waiter.waits.direction == "connect"


@pytest.mark.parametrize("mode", ["tcp", "unix", "unix-full"])
def test_saved_evidence_of_the_queue_gives_the_same_finding(c_program, start,  # type: ignore[no-untyped-def]
                                                            tmp_path: Path, mode: str) -> None:
    prog = _started(start, [str(c_program("accept_pipe_pair")), mode])
    settle(prog, 2)
    saved, out = tmp_path / "evidence", tmp_path / "report.json"
    run = subprocess.run([sys.executable, "-m", "stuck", "capture", str(prog.pid), "--json",
                          str(out), "--save", str(saved)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 1, run.stderr
    assert "DEADLOCK (probable)" in run.stdout
    prog.kill()
    again = subprocess.run([sys.executable, "-m", "stuck", "analyze", str(saved), "--json"],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 1, again.stderr
    first = json.loads(out.read_text())["findings"]
    assert [(f["summary"], f["confidence"]) for f in json.loads(again.stdout)["findings"]] \
        == [(f["summary"], f["confidence"]) for f in first]
    # The report's own JSON, analysed again, keeps the capture's doubt (it said certain).
    report_again = subprocess.run([sys.executable, "-m", "stuck", "analyze", str(out),
                                   "--json"], capture_output=True, text=True, timeout=120)
    assert report_again.returncode == 1, report_again.stderr
    redo = json.loads(report_again.stdout)["findings"]
    assert [(f["summary"], f["confidence"]) for f in redo] \
        == [(f["summary"], f["confidence"]) for f in first]
    assert any("will ever accept" in m for m in redo[0]["missing_evidence"])


@pytest.mark.parametrize("call", ["accept", "epoll_wait"])
def test_a_holder_in_accept_or_epoll_keeps_the_queue_from_closing(c_program, start,  # type: ignore[no-untyped-def]
                                                                 call: str) -> None:
    """The hung pair's evidence, with the server's thread seen (both times) in accept on its
    listener, or in an epoll wait with no timeout, instead of reading the pipe: it may accept,
    so the client waits on a queue that can drain, and nothing is stuck."""
    prog = _started(start, [str(c_program("accept_pipe_pair")), "tcp"])
    client, server = settle(prog, 2)
    ev = collect([client], runtime_views=False)
    assert report(ev).findings  # as read: the cycle
    [pe] = [p for p in ev.processes if p.pid == server]
    listener = next(f.fd for f in pe.fds if f.target.startswith("socket:"))
    number = {name: n for n, name in syscalls.NUMBERS[ev.machine].items()}[call]
    args = f"{listener:#x} 0x0 0x0 0x0 0x0 0x0" if call == "accept" \
        else "0x9 0x7ffd0000 0x1 0xffffffff 0x0 0x0"
    for te in pe.threads:
        te.syscall = te.syscall2 = f"{number} {args} 0x7ffd0000 0x7f000000"
    rep = report(ev)
    assert rep.findings == [], [f.summary for f in rep.findings]
    waiter = rep.snapshot.thread(f"LWP {client}")
    assert waiter is not None and waiter.state == "io"
    assert waiter.detail is not None and "not accepted yet" in waiter.detail


def _queued_clients(rep: Report) -> int:
    return sum(1 for t in rep.snapshot.threads() if t.detail and (
        "whose connection is not accepted yet" in t.detail
        or "whose accept queue is full" in t.detail))


@pytest.mark.parametrize(("mode", "queued"), [
    ("busy-server", True),  # its only thread computes: it will accept
    ("slow-acceptor", True),  # sleeps between accepts while clients queue
    ("slow-unix-acceptor", True),  # the same, and clients sleep in connect on a full queue
    ("selector", False),  # the listener is in the epoll set a thread waits on
])
def test_correct_servers_with_clients_waiting_give_no_finding(start, mode: str,  # type: ignore[no-untyped-def]
                                                              queued: bool) -> None:
    prog = _started(start, [sys.executable, str(PROGRAMS / "py_accept_correct.py"), mode])
    time.sleep(1.0)
    seen = 0
    for _ in range(3):
        rep = report(collect([prog.pid]))
        assert rep.findings == [], [f.summary for f in rep.findings]
        seen += _queued_clients(rep)
    assert (seen > 0) is queued  # the queue was seen, and judged able to drain


def test_threading_http_server_calling_itself_gives_no_finding(start) -> None:  # type: ignore[no-untyped-def]
    prog = _started(start, [sys.executable, str(PROGRAMS / "py_accept_self_call.py"),
                            "threading"])
    settle(prog, 1)
    rep = report(collect([prog.pid]))
    assert rep.findings == [], [f.summary for f in rep.findings]
    assert _accept_waits(rep) == []  # each request was accepted at once

"""Inference from context (issue 12, point 2) on genuine dumps: each rule says which evidence
it used and claims no more than that evidence carries.

Go quiescence: SIGQUIT dumps (GOTRACEBACK=system and all) of tests/fixtures/programs/go/quiet,
where every goroutine waits and os/signal's goroutine keeps the runtime from saying so itself;
and the runtime's own "all goroutines are asleep" (tests/fixtures/programs/go/main.go).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.dumps.helpers import GENERATED, dump_text, report_for

from stuck.model import Report


def by_function(report: Report, tids: list[str]) -> list[str]:
    """Each thread by its innermost program frame (goroutine ids change between captures)."""
    threads = report.snapshot.thread_map()
    out = []
    for tid in tids:
        t = threads[tid]
        at = t.waits.at.function if t.waits is not None and t.waits.at is not None else "?"
        out.append(at)
    return sorted(out)


# --- Go: all goroutines asleep ------------------------------------------------------------

def test_go_every_goroutine_waiting_with_no_timer_is_a_probable_all_asleep() -> None:
    report = report_for(GENERATED / "go-quiet-signal-notify-system.txt")
    assert report.snapshot.processes[0].complete is True  # a SIGQUIT dump: every goroutine
    [f] = report.findings
    assert (f.kind, f.confidence) == ("stall", "probable")
    # the producer is stuck; main waits behind it, for the goroutine it started
    assert by_function(report, f.threads) == ["main.producer"]
    assert by_function(report, f.blocked_behind) == ["main.main"]
    assert "all goroutines are asleep" in f.summary
    res = report.snapshot.resource_map()
    channel = next(r for r in f.resources if res[r].kind == "channel")
    assert res[channel].address and res[channel].address in f.explanation  # names the channel
    assert "whoever would serve it has returned" in f.explanation
    # the evidence the rule used, and what could still change it
    assert f.details["evidence"] == "every thread of the process is shown and none can run"
    assert f.details["rule"] == "go quiescence"
    assert any("signal.Notify" in m for m in f.missing_evidence)
    threads = report.snapshot.thread_map()
    signal_goroutine = [t for t in threads.values() if t.detail == "signal wait"]
    assert len(signal_goroutine) == 1 and signal_goroutine[0].state == "idle"


def test_go_channel_served_by_a_goroutine_that_passes_its_address() -> None:
    # built with -N -l: arguments are printed, so the goroutine handed the channel is known.
    # The program is a cycle (main holds mu and waits for the producer; the producer's
    # receiver waits for mu): the sender and the lock waiter, the only goroutines that could
    # serve each other, are a probable deadlock with main behind them; no edge is claimed.
    report = report_for(GENERATED / "go-quiet-held-N-l-system.txt")
    [f] = report.findings
    assert (f.kind, f.confidence) == ("deadlock", "probable")
    assert f.cycle == []
    assert by_function(report, f.threads) == ["main.lockedConsumer", "main.producer"]
    assert by_function(report, f.blocked_behind) == ["main.main"]
    res = report.snapshot.resource_map()
    threads = report.snapshot.thread_map()
    [channel] = [res[r] for r in f.resources if res[r].kind == "channel"]
    assert [threads[t].waits.at.function for t in channel.referenced_by  # type: ignore[union-attr]
            ] == ["main.lockedConsumer"]
    assert "could have been served by" in f.explanation
    assert any("Go does not record mutex owners" in m for m in f.missing_evidence)


def test_go_receive_a_timer_could_end_makes_the_claim_possible_and_is_not_named() -> None:
    report = report_for(GENERATED / "go-quiet-logger-all.txt")
    [f] = report.findings
    assert (f.kind, f.confidence) == ("stall", "possible")
    # the logger's receive may be a timer's: it, and main (which started it), may run again
    assert by_function(report, f.threads) == ["main.producer"]
    assert any("timer" in m for m in f.missing_evidence)
    able = f.details["able_to_run_again"]
    assert isinstance(able, list) and len(able) == 2


def test_go_runtime_said_all_asleep_is_certain_and_names_the_channels() -> None:
    report = report_for(GENERATED / "go-all-goroutines-asleep.txt")
    stall = next(f for f in report.findings if f.kind == "stall")
    assert stall.confidence == "certain"
    assert "The runtime itself reported it" in stall.explanation
    assert "On chan send in main.sender: goroutine 6 (chan send)" in stall.explanation


def test_go_excerpt_with_left_out_goroutines_is_not_complete() -> None:
    text = dump_text(GENERATED / "go-quiet-signal-notify-system.txt")
    head, sep, rest = text.partition("\ngoroutine 1 [")
    excerpt = head + "\n...\n" + sep.lstrip("\n") + rest
    from tests.dumps.helpers import analyse_text
    report = analyse_text(excerpt)
    assert report.snapshot.processes[0].complete is False
    assert all(f.confidence == "possible" or f.kind == "hang" for f in report.findings)


def test_go_ticker_keeps_a_sigquit_dump_from_a_probable_claim() -> None:
    # main.go "ticker": a heartbeat goroutine on a time.Ticker's channel is woken every 500 ms
    for name in ("go-sigquit-deadlock.txt", "go-sigquit-deadlock-1-minute.txt"):
        report = report_for(GENERATED / name)
        assert report.findings, name
        assert {f.confidence for f in report.findings} == {"possible"}, name
        heartbeat = [t.id for t in report.snapshot.threads()
                     if t.waits and t.waits.at and t.waits.at.function == "main.heartbeat"]
        assert heartbeat and not any(h in f.threads or h in f.blocked_behind
                                     for f in report.findings for h in heartbeat)


# --- Python: the source beside the dump ---------------------------------------------------

PY_PROGRAMS = Path(__file__).resolve().parents[1] / "fixtures" / "programs" / "python"
PY_DUMPS = ["pyspy-python-deadlock.txt", "pyspy-locals-python-deadlock.txt",
            "pystack-remote-python-deadlock.txt", "pystack-core-python-deadlock.txt",
            "faulthandler-python-deadlock.txt", "pyspy-json-python-deadlock.txt"]


def _with_source(name: str, sources: list[str]) -> Report:
    from stuck.analysis import analyze
    from stuck.dumps import load_dump
    loaded = load_dump(dump_text(GENERATED / name), sources=sources)
    return analyze(loaded.snapshot, loaded.stated, loaded.inferred)


def _blocked_lines(report: Report, tids: list[str]) -> list[int | None]:
    threads = report.snapshot.thread_map()
    return sorted(threads[t].waits.at.line for t in tids  # type: ignore[union-attr]
                  if threads[t].waits is not None)


@pytest.mark.parametrize("name", PY_DUMPS)
def test_python_lock_inversion_read_from_the_source_is_a_probable_deadlock(name: str) -> None:
    # stuck_threads.py: `with lock_b:` (line 29) inside `with lock_a:`, and the reverse (37)
    report = _with_source(name, [str(PY_PROGRAMS)])
    deadlocks = [f for f in report.findings if f.kind == "deadlock"]
    assert len(deadlocks) == 1
    f = deadlocks[0]
    assert f.confidence == "probable"  # never certain from source
    assert _blocked_lines(report, f.threads) == [29, 37]
    res = report.snapshot.resource_map()
    assert sorted(res[r].label for r in f.resources) == ["lock_a (stuck_threads.py)",
                                                          "lock_b (stuck_threads.py)"]
    assert any("read from the source" in m and "`with lock_a:`" in m
               for m in f.missing_evidence)


@pytest.mark.parametrize("name", PY_DUMPS)
def test_python_dump_without_its_source_claims_no_deadlock(name: str, tmp_path: Path) -> None:
    report = _with_source(name, [str(tmp_path)])  # nothing there
    assert "deadlock" not in {f.kind for f in report.findings} or all(
        f.confidence == "possible" for f in report.findings if f.kind == "deadlock")
    assert all(f.confidence != "certain" for f in report.findings)


def test_source_option_on_the_command_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from stuck.analyze import analyze_command
    dump = tmp_path / "pystack.txt"
    dump.write_text(dump_text(GENERATED / "pystack-remote-python-deadlock.txt"))
    res = CliRunner().invoke(analyze_command, ["--source", str(PY_PROGRAMS), str(dump)])
    assert res.exit_code == 1 and "DEADLOCK (probable)" in res.output
    res = CliRunner().invoke(analyze_command, [str(dump)])
    assert "DEADLOCK" not in res.output


def test_enclosing_locks_reads_with_blocks_and_unreleased_acquires(tmp_path: Path) -> None:
    from stuck.dumps.pysource import SourceReader, enclosing_locks
    src = tmp_path / "m.py"
    src.write_text(
        "import threading\n"                       # 1
        "a = threading.Lock()\n"                   # 2
        "b = threading.RLock()\n"                  # 3
        "def f(x):\n"                              # 4
        "    a.acquire()\n"                        # 5
        "    b.acquire()\n"                        # 6
        "    b.release()\n"                        # 7
        "    with x.lock, b as held:\n"            # 8
        "        if x:\n"                          # 9
        "            with a:\n"                    # 10
        "                pass\n")                  # 11
    source = SourceReader().get(str(src))
    assert source is not None
    held, waits = enclosing_locks(source, 10)
    assert waits == ["a"]
    assert [h.expr for h in held] == ["x.lock", "b", "a"]  # b was released before line 8
    held, waits = enclosing_locks(source, 11)
    assert waits == [] and [h.expr for h in held] == ["a", "x.lock", "b", "a"]


def test_faulthandler_timeout_header_is_how_long_nothing_progressed() -> None:
    # dump_traceback_later(3): "Timeout (0:00:03)!" heads the dump
    name = "faulthandler-timeout-python-deadlock.txt"
    report = _with_source(name, [str(PY_PROGRAMS)])
    assert [p.no_progress_for for p in report.snapshot.processes] == [3.0]
    waits = [t.waits for t in report.snapshot.threads() if t.waits is not None]
    assert len(waits) == 4 and {w.duration for w in waits} == {3.0}
    [deadlock] = [f for f in report.findings if f.kind == "deadlock"]
    assert _blocked_lines(report, deadlock.threads) == [29, 37]
    # without the source too, every wait the dump shows is at least that old, and says so
    from stuck.analysis import analyze
    from stuck.dumps import load_dump
    text = dump_text(GENERATED / name).replace("/tmp/stuck-fixtures/", "/nonexistent/")
    loaded = load_dump(text, sources=[])  # no source: nothing but the dump
    report = analyze(loaded.snapshot, loaded.stated, loaded.inferred)
    assert report.findings and all("(3 s)" in f.explanation for f in report.findings)


def test_no_progress_survives_a_json_round_trip() -> None:
    from stuck.report import json as json_report
    report = _with_source("faulthandler-timeout-python-deadlock.txt", [str(PY_PROGRAMS)])
    again = json_report.loads(json_report.dumps(report))
    assert [p.no_progress_for for p in again.snapshot.processes] == [3.0]
    assert [p.complete for p in again.snapshot.processes] == [True]


# --- JVM: a visibly complete dump, and the JVM's own threads ------------------------------

def test_jstack_full_dump_is_complete_and_the_jvm_threads_are_idle() -> None:
    text = dump_text(GENERATED / "jstack-l-deadlock.txt")
    from tests.dumps.helpers import analyse_text
    report = analyse_text(text)
    assert [p.complete for p in report.snapshot.processes] == [True]
    states = {t.name: t.state for t in report.snapshot.threads()}
    for jvm in ("Signal Dispatcher", "Service Thread", "C2 CompilerThread0", "VM Thread",
                "Reference Handler", "Finalizer"):
        assert states.get(jvm, "idle") == "idle", jvm
    # StuckJava: a monitor cycle and a ReentrantLock cycle; main joins one of them: a victim
    # whose joined thread jstack does not name, so it is not claimed stuck on its own
    assert [(f.kind, f.confidence) for f in report.findings] == [("deadlock", "certain")] * 2
    # cut off before the dump's end ("JNI global refs"), or with "..." for left-out threads:
    # an excerpt, whatever its header says
    cut = text[:text.index("JNI global")]
    assert [p.complete for p in analyse_text(cut).snapshot.processes] == [False]
    healthy = report_for(GENERATED / "jstack-l-healthy.txt")
    assert healthy.findings == [] and healthy.snapshot.processes[0].complete is True

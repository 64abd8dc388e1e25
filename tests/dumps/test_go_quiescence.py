"""The Go quiescence rule (stuck.rules.quiescence) on dumps outside the dump zoo: a ledger
service (tests/fixtures/programs/go/ledger/main.go) stuck five ways and busy once, captured with
SIGQUIT beside a metrics goroutine on a time.Ticker, and with the runtime's own "all goroutines
are asleep" (tests/fixtures/build_dumps.py, group goledger). Each rule is checked here on a
program written for it, and on the zoo's programs by tests/dumps/test_dumpzoo.py."""

from __future__ import annotations

import pytest
from tests.dumps.helpers import GENERATED, analyse_text, dump_text, report_for

from stuck.model import Finding, Report


def where(report: Report, tids: list[str]) -> list[str]:
    """Each goroutine by the innermost function of the program on its stack."""
    threads = report.snapshot.thread_map()
    out = []
    for tid in tids:
        fn = next((f.function for f in threads[tid].frames
                   if f.function.startswith("main.")), "?")
        out.append(fn)
    return sorted(out)


def only(report: Report) -> Finding:
    [f] = report.findings
    return f


def metrics_named(report: Report) -> bool:
    named = {t for f in report.findings for t in [*f.threads, *f.blocked_behind]}
    return any("main.metrics" in where(report, [t]) for t in named)


def test_package_level_lock_order_cycle_is_a_possible_deadlock_beside_a_ticker() -> None:
    # No receiver shows who holds configMu or routesMu; nothing runs but the metrics
    # goroutine, which a ticker wakes: the two lock waiters can only wait for each other.
    report = report_for(GENERATED / "go-ledger-config-sigquit-all.txt")
    f = only(report)
    assert (f.kind, f.confidence) == ("deadlock", "possible")
    assert where(report, f.threads) == ["main.reload", "main.route"]
    assert f.cycle == []  # Go shows no holders: no wait-for edge is claimed
    assert f.details["rule"] == "go quiescence"
    assert any("Go does not record mutex owners" in m for m in f.missing_evidence)
    # SIGQUIT ended the program: the later dump is the next hang's, or pprof's, never "again"
    assert any("', N minutes'" in m and "debug/pprof/goroutine?debug=2" in m
               for m in f.missing_evidence)
    assert not any("PID again" in m for m in f.missing_evidence)
    assert not metrics_named(report)


def test_package_level_lock_order_cycle_is_certain_when_the_runtime_said_so() -> None:
    report = report_for(GENERATED / "go-ledger-config-asleep.txt")
    f = only(report)
    assert (f.kind, f.confidence) == ("deadlock", "certain")
    assert where(report, f.threads) == ["main.reload", "main.route"]
    assert where(report, f.blocked_behind) == ["main.config"]  # main joins them
    assert "The runtime itself reported it" in f.explanation


@pytest.mark.parametrize("name", ["go-ledger-transfer-sigquit-all.txt",
                                  "go-ledger-transfer-asleep.txt"])
def test_transfer_cycle_through_receivers_is_drawn_from_the_arguments(name: str) -> None:
    # Each transfer runs (*account).withdraw on the account whose mutex the other waits for
    # (the receiver's address is the mutex's): the holders are inferred, the cycle drawn.
    report = report_for(GENERATED / name)
    f = report.findings[0]
    assert (f.kind, f.confidence) == ("deadlock", "probable")
    assert len(f.cycle) == 2 and {e.held_by for e in f.cycle} == set(f.threads)
    assert where(report, f.threads) == ["main.(*account).deposit"] * 2
    assert not metrics_named(report)
    if "asleep" in name:  # main, joining both, is their victim, not a separate stall
        assert len(report.findings) == 1
        assert where(report, f.blocked_behind) == ["main.transfer"]


def test_relocking_from_a_method_further_out_on_the_same_object_is_a_self_deadlock() -> None:
    # (*ledger).Post(l) holds l.mu and calls (*ledger).audit(l), which locks it again
    report = report_for(GENERATED / "go-ledger-repost-sigquit-system.txt")
    f = only(report)
    assert (f.kind, f.confidence) == ("deadlock", "probable")
    assert [(e.thread, e.held_by) for e in f.cycle] == [(f.threads[0], f.threads[0])]
    assert "(*ledger).Post" in " ".join(f.missing_evidence)  # says where it was inferred from


def test_relocking_is_at_most_possible_from_an_excerpt() -> None:
    text = dump_text(GENERATED / "go-ledger-repost-sigquit-system.txt")
    start = text.rindex("\ngoroutine ", 0, text.index("main.(*ledger).audit"))
    block = text[start:text.index("\n\n", start + 1)]
    report = analyse_text(block.lstrip("\n") + "\n")
    assert report.snapshot.processes[0].complete is False  # no goroutine 1
    f = only(report)
    assert (f.kind, f.confidence) == ("deadlock", "possible")


def test_senders_left_by_a_collector_that_returned_are_a_stall_not_a_cycle() -> None:
    # Two workers block sending on the one results channel whose reader returned: peers on
    # one channel are not each other's partners.
    report = report_for(GENERATED / "go-ledger-leak-sigquit-all.txt")
    f = only(report)
    assert (f.kind, f.confidence) == ("stall", "possible")
    assert where(report, f.threads) == ["main.reconcile", "main.reconcile"]
    assert len(set(f.resources)) == 1
    assert "whoever would serve it has returned" in f.explanation
    assert not metrics_named(report)


def test_a_pool_driven_by_time_tick_gets_no_finding() -> None:
    # every goroutine is parked at that instant, but the scheduler's channel is a timer's
    report = report_for(GENERATED / "go-ledger-ticking-sigquit-all.txt")
    assert report.findings == []


def test_a_goroutine_waiting_for_its_child_process_is_a_possible_hang() -> None:
    report = report_for(GENERATED / "go-ledger-child-sigquit-all.txt")
    f = only(report)
    assert (f.kind, f.confidence) == ("hang", "possible")
    assert where(report, f.threads) == ["main.runArchiver"]
    res = report.snapshot.resource_map()
    assert [res[r].kind for r in f.resources] == ["process"]
    assert any("stuck capture --tree PID" in m for m in f.missing_evidence)


def test_a_cut_off_paste_is_incomplete_and_keeps_the_cut_frame() -> None:
    text = dump_text(GENERATED / "go-ledger-config-sigquit-all.txt")
    cut = text[:text.index("main.route(") + len("main.rou")]
    report = analyse_text(cut)
    assert report.snapshot.processes[0].complete is False
    assert all(f.confidence == "possible" or f.kind == "hang" for f in report.findings)
    threads = report.snapshot.threads()
    assert any(fr.function == "main.rou" for t in threads for fr in t.frames)


def test_prose_that_says_goroutine_before_the_dump_keeps_it_complete() -> None:
    text = dump_text(GENERATED / "go-ledger-config-sigquit-all.txt")
    report = analyse_text("The goroutine dump, as the service printed it:\n\n" + text)
    assert report.snapshot.processes[0].complete is True
    assert [f.kind for f in report.findings] == ["deadlock"]


@pytest.mark.parametrize("rule_case", ["child_wait", "self_relock"])
def test_a_go_excerpt_asks_for_every_goroutine_whichever_rule_reports_it(rule_case: str) -> None:
    # The quiescence rule and the rules for any wait read from stacks (here a hang and a
    # self-deadlock) say what the excerpt lacks in the same words: goroutines, and the command
    # that prints every one of them.
    from pathlib import Path

    zoo = Path(__file__).resolve().parent.parent / "fixtures" / "dumpzoo" / "cases" / "go"
    report = report_for(zoo / rule_case / "excerpt-cutoff.txt")
    [finding] = report.findings
    assert any("the text lacks goroutines of this program (an excerpt)" in m
               and "capture every goroutine (GOTRACEBACK=all and kill -QUIT PID)" in m
               for m in finding.missing_evidence), finding.missing_evidence

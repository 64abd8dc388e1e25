from __future__ import annotations

import json
import random
import threading

import explore_targets as targets
import pytest

from stuck.explore import ExploreFailure, explore, explores, replay
from stuck.explore.portfolio import Portfolio
from stuck.explore.portfolio import make as make_strategy
from stuck.explore.random_walk import RandomWalk
from stuck.explore.replayer import TokenError, decode, encode


def test_abba_deadlock_found_with_cycle_and_shrunk() -> None:
    result = explore(targets.abba, executions=1000, seed=1)
    assert result.found
    v = result.verdict
    assert v is not None and v.kind == "deadlock"
    assert {a for a, _, _ in v.cycle} == {1, 2}
    assert {w.name for w in v.table} >= {"forward", "backward"}
    assert result.preemptions <= result.unshrunk_preemptions
    assert result.decisions <= result.unshrunk_decisions
    assert result.preemptions == 1  # an AB/BA deadlock needs exactly one preemption
    # the shown switches name the primitive and the file:line in the program
    assert any("explore_targets.py" in s.where for s in result.switches)
    assert any(s.preemption for s in result.switches)
    report = v.report
    assert report is not None and report.findings[0].kind == "deadlock"
    assert report.findings[0].confidence == "certain"
    assert len(report.findings[0].cycle) == 2


def test_replay_reproduces_ten_times_out_of_ten() -> None:
    result = explore(targets.abba, executions=1000, seed=2)
    assert result.token is not None
    for _ in range(10):
        again = replay(targets.abba, result.token)
        assert again.verdict is not None and again.verdict.kind == "deadlock"
        assert again.divergence is None


def test_unshrunk_token_reproduces_too() -> None:
    result = explore(targets.abba, strategy="random", executions=1000, seed=5)
    assert result.unshrunk_token is not None
    again = replay(targets.abba, result.unshrunk_token)
    assert again.verdict is not None and again.verdict.kind == "deadlock"


def test_replay_on_changed_code_reports_divergence() -> None:
    result = explore(targets.abba, executions=1000, seed=1)
    assert result.token is not None
    other = replay(targets.raises, result.token)
    assert other.divergence is not None
    assert "diverged" in other.divergence.describe()


def test_condition_never_notified_is_a_stall_naming_the_condition() -> None:
    result = explore(targets.never_notified, executions=200, seed=0)
    v = result.verdict
    assert v is not None and v.kind == "stall"
    waiter = next(w for w in v.table if w.name == "waiter")
    assert waiter.op == "wait"
    # Called by the name the program binds it to, and where it was made.
    assert waiter.resource.startswith("Condition ready")
    assert "explore_targets.py:47" in waiter.resource
    assert waiter.wakers == []
    assert "waiter waits on condition Condition" in v.summary


def test_spin_loop_is_a_hang_within_the_step_budget() -> None:
    result = explore(targets.spin, executions=5, max_steps=500)
    v = result.verdict
    assert v is not None and v.kind == "hang"
    assert v.steps <= 502
    assert "500" in v.summary and "spinner" in v.summary


def test_exception_in_a_thread_is_reported_with_its_traceback() -> None:
    result = explore(targets.raises, executions=10)
    v = result.verdict
    assert v is not None and v.kind == "exception"
    assert v.errors[0].name == "broken"
    assert "ValueError: bad input in worker" in v.errors[0].traceback
    assert 'raise ValueError("bad input in worker")' in v.errors[0].traceback


def test_two_full_bounded_queues_block_each_other() -> None:
    result = explore(targets.two_queues, executions=1000, seed=0)
    v = result.verdict
    assert v is not None and v.kind == "deadlock"
    assert {a for a, _, _ in v.cycle} == {1, 2}


def test_work_handed_to_a_pool_without_workers_is_a_stall_not_a_deadlock() -> None:
    result = explore(targets.result_from_an_empty_pool, executions=500, seed=0)
    v = result.verdict
    assert v is not None and v.kind == "stall", v and v.summary
    assert v.cycle == []
    # the summary names the waiter and the place the work went (the submit call in the client)
    assert v.summary.startswith("STALL (certain): client waits on condition Condition")
    assert "cleanup.submit(job(\"second\"))" in v.summary
    finding = v.report.findings[0] if v.report is not None else None
    assert finding is not None and finding.kind == "stall"
    # every thread is blocked: the stall is proven; its cause (work nobody takes) is inferred
    # from who was seen waiting where, and the finding says so
    assert finding.confidence == "certain"
    assert any("seen waiting on it so far" in m for m in finding.missing_evidence)
    again = replay(targets.result_from_an_empty_pool, result.token or "")
    assert again.verdict is not None and again.verdict.kind == "stall"


def test_served_pool_twin_passes() -> None:
    result = explore(targets.result_from_a_served_pool, executions=300, seed=0)
    assert not result.found, result.verdict and result.verdict.summary


def test_thread_pool_starvation_is_found() -> None:
    result = explore(targets.pool_starvation, executions=100, seed=0)
    v = result.verdict
    assert v is not None and v.kind in ("deadlock", "stall")
    assert any(w.op == "wait" for w in v.table)


@pytest.mark.parametrize("target", [targets.abba_fixed, targets.primitives_ok, targets.pool_ok,
                                    targets.sleepy])
def test_correct_programs_pass(target: object) -> None:
    result = explore(target, executions=300, seed=3)  # type: ignore[arg-type]
    assert not result.found, result.verdict and result.verdict.summary
    assert result.executions == 300


@pytest.mark.parametrize("strategy", ["random", "random:0.9", "pct:2", "pos", "dfs:1",
                                      "portfolio"])
def test_every_strategy_finds_abba(strategy: str) -> None:
    result = explore(targets.abba, strategy=strategy, executions=1000, seed=4)
    assert result.verdict is not None and result.verdict.kind == "deadlock"


def _switches_per_choice(walk: RandomWalk, executions: int = 50) -> float:
    """Fraction of the walk's choices (with three threads runnable) that leave the current one."""
    switched = made = 0
    for i in range(executions):
        walk.begin(i)
        current = 0
        for step in range(100):
            nxt = walk.choose([0, 1, 2], current, step)
            switched += nxt != current
            made += 1
            current = nxt
    return switched / made


def test_sticky_random_walk_switches_less_and_still_reaches_every_thread() -> None:
    uniform = _switches_per_choice(RandomWalk(7))
    sticky = _switches_per_choice(RandomWalk(7, stay=0.75))
    assert 0.6 < uniform < 0.73  # two threads out of three are a switch
    assert 0.12 < sticky < 0.22  # a quarter of the draws, two thirds of which switch
    walk = RandomWalk(7, stay=0.75)
    walk.begin(0)
    assert {walk.choose([0, 1, 2], 0, s) for s in range(200)} == {0, 1, 2}
    # a blocked current thread (not runnable) is never kept
    assert {walk.choose([1, 2], 0, s) for s in range(200)} == {1, 2}


def test_uniform_walk_is_unchanged_by_the_stay_option() -> None:
    """``random`` (stay 0) draws exactly as before, so its replay tokens and seeds keep working."""
    walk, reference = RandomWalk(3), random.Random()
    for execution in range(5):
        walk.begin(execution)
        reference.seed(3 * 1_000_003 + execution)
        for step in range(50):
            runnable = list(range(1 + step % 4))
            assert walk.choose(runnable, 0, step) == runnable[int(reference.random() * len(runnable))]


def test_stay_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="staying"):
        RandomWalk(0, stay=1.0)
    with pytest.raises(ValueError, match="staying"):
        make_strategy("random:-0.1")


def test_portfolio_choice_is_its_active_member_s_and_walks_sticky() -> None:
    portfolio = make_strategy("portfolio", 0)
    assert isinstance(portfolio, Portfolio)
    assert "random(stay=" in portfolio.describe()
    for execution in range(len(portfolio.members)):
        portfolio.begin(execution)
        chooser = portfolio.chooser()
        assert getattr(chooser, "__self__", None) is portfolio.active


def test_bounded_dfs_exhausts_on_a_correct_program() -> None:
    result = explore(targets.abba_fixed, strategy="dfs:2", executions=10_000)
    assert result.exhausted and result.bound == 2
    assert not result.found
    assert 1 < result.executions < 10_000


def test_bounded_dfs_with_bound_zero_cannot_see_abba() -> None:
    result = explore(targets.abba, strategy="dfs:0", executions=10_000)
    assert result.exhausted and not result.found


def test_virtual_time_makes_sleeps_instant() -> None:
    import time

    start = time.monotonic()
    result = explore(targets.sleepy, executions=20)
    assert not result.found
    # 20 executions of an hour's sleep each: one real sleep alone would outlast this bound,
    # which is far from what the executions take however loaded the machine (no speed goal).
    assert time.monotonic() - start < 600


def test_no_thread_leaks_between_executions() -> None:
    baseline = threading.active_count()
    explore(targets.abba, executions=50, strategy="random", shrink_failures=False)
    explore(targets.never_notified, executions=5)
    explore(targets.spin, executions=2, max_steps=200)
    assert threading.active_count() == baseline


def test_uncontrolled_thread_is_noted() -> None:
    result = explore(targets.raw_thread, executions=1, stall_seconds=2.0)
    assert any("start_new_thread" in n and "cannot control" in n for n in result.notes)


def test_primitives_restored_after_exploration() -> None:
    explore(targets.abba_fixed, executions=3)
    lock = threading.Lock()
    assert type(lock).__module__ == "_thread"
    assert type(threading.Condition()).__module__ == "threading"


def test_token_roundtrip_and_errors() -> None:
    choices = [0, 0, 1, 2, 2, 2, 1, 0, 300, 300]
    tok = encode(choices, "deadlock")
    assert tok.startswith("s2:")
    back = decode(tok)
    assert back.choices == choices and back.verdict == "deadlock"
    with pytest.raises(TokenError, match="version"):
        decode("s9:AAAA")
    with pytest.raises(TokenError):
        decode("garbage")
    with pytest.raises(TokenError):
        decode("s2:" + tok[3:-2])


def test_a_token_whose_last_character_was_changed_is_refused() -> None:
    # A token's last character carries bits the bytes do not use: any other character that
    # differs only there decodes to the same bytes, and must not pass as the token.
    import base64
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    refused = 0
    for choices in ([0, 1, 1, 2], [0, 0, 1, 2, 2, 2, 1, 0, 300, 300], [1] * 7):
        tok = encode(choices, "deadlock")
        body = tok[3:]
        data = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        twins = [c for c in alphabet if c != body[-1] and base64.urlsafe_b64decode(
            body[:-1] + c + "=" * (-len(body) % 4)) == data]
        for c in twins:
            with pytest.raises(TokenError, match="not a token stuck wrote"):
                decode(tok[:-1] + c)
            refused += 1
        assert decode(tok).choices == choices
    assert refused >= 15 + 3  # 2 and 4 unused bits in the first two tokens' last characters


def test_json_report_validates_against_the_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from stuck.report import json as report_json

    result = explore(targets.abba, executions=1000, seed=1)
    assert result.verdict is not None and result.verdict.report is not None
    doc = json.loads(report_json.dumps(result.verdict.report))
    jsonschema.validate(doc, report_json.schema())
    assert doc["source"]["kind"] == "explore"
    assert doc["findings"][0]["kind"] == "deadlock"


def test_decorator_fails_with_schedule_and_token() -> None:
    @explores(executions=500, seed=0)
    def test_body() -> None:
        targets.abba()

    with pytest.raises(ExploreFailure) as info:
        test_body()
    text = str(info.value)
    assert "DEADLOCK (" in text and "replay token: s2:" in text
    assert "--stuck-replay=s2:" in text  # running under pytest: the command to reproduce


def test_executions_count_their_hand_overs_between_os_threads() -> None:
    """What the benchmark reports next to executions/s: fewer preemptions, fewer hand-overs."""
    from stuck.explore import engine, primitives

    def total(strategy: str) -> int:
        strat = make_strategy(strategy, 1)
        switches = 0
        primitives.install()
        try:
            for i in range(20):
                strat.begin(i)
                ex = engine.run_once(targets.abba_fixed, strat)
                strat.end(ex.verdict.failed)
                assert not ex.verdict.failed
                switches += ex.switches
        finally:
            primitives.uninstall()
        return switches

    never = total("dfs:0")  # runs each thread until it blocks or ends
    uniform = total("random")
    assert never >= 20 * 2  # at least: main -> a started thread, and back to main to join
    assert uniform > never

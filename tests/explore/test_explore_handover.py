"""Hand-overs between OS threads: the scheduler saves those that change nothing.

A thread chosen to run while the lock it is about to take is held would wake only to block
again; the scheduler blocks it without waking it. These tests check that this saves hand-overs
and changes no decision, verdict or step count (replay tokens keep their meaning).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import explore_targets as targets
import pytest

from stuck.explore import engine, primitives
from stuck.explore.portfolio import make as make_strategy
from stuck.explore.scheduler import CThread, Scheduler


@pytest.fixture
def installed() -> Iterator[None]:
    primitives.install()
    try:
        yield
    finally:
        primitives.uninstall()


def _runs(target: Callable[[], object], strategy: str, executions: int
          ) -> list[tuple[list[int], int, str, str, int]]:
    strat = make_strategy(strategy, 5)
    out = []
    for i in range(executions):
        strat.begin(i)
        ex = engine.run_once(target, strat, max_steps=5_000)
        strat.end(ex.verdict.failed)
        out.append((ex.choices, ex.steps, ex.verdict.kind, ex.verdict.summary, ex.switches))
    return out


def _contended_condition() -> None:
    """Producer and consumer on one condition: every notify happens with the lock held."""
    cond = threading.Condition()
    items: list[int] = []

    def produce() -> None:
        for i in range(4):
            with cond:
                items.append(i)
                cond.notify()

    def consume() -> None:
        for _ in range(4):
            with cond:
                while not items:
                    cond.wait()
                items.pop()

    threads = [threading.Thread(target=f) for f in (consume, produce, consume, produce)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _joins() -> None:
    """Threads joining threads that are still running, some with a timeout."""
    done: list[int] = []

    def leaf(i: int) -> None:
        with lock:
            done.append(i)

    def middle() -> None:
        inner = [threading.Thread(target=leaf, args=(i,)) for i in range(2)]
        for t in inner:
            t.start()
        inner[0].join()
        inner[1].join(timeout=5.0)
        inner[1].join()

    lock = threading.Lock()
    outer = [threading.Thread(target=middle) for _ in range(2)]
    for t in outer:
        t.start()
    for t in outer:
        t.join()
    assert len(done) == 4


PROGRAMS = [_joins, targets.abba, targets.abba_fixed, targets.two_queues, targets.primitives_ok,
            targets.pool_ok, _contended_condition]


@pytest.mark.parametrize("strategy", ["random", "pos", "portfolio"])
@pytest.mark.parametrize("target", PROGRAMS, ids=lambda f: f.__name__)
def test_skipping_wake_ups_changes_no_decision(installed: None, target: Callable[[], object],
                                               strategy: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    saving = _runs(target, strategy, 25)
    # The same executions with every chosen thread woken, as a scheduler without the saving.
    monkeypatch.setattr(Scheduler, "_runner", lambda self, nxt, me: nxt)
    waking = _runs(target, strategy, 25)
    assert [r[:4] for r in saving] == [r[:4] for r in waking]
    assert sum(r[4] for r in saving) <= sum(r[4] for r in waking)


def test_contended_lock_saves_hand_overs(installed: None,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    saving = sum(r[4] for r in _runs(_contended_condition, "random", 40))
    monkeypatch.setattr(Scheduler, "_runner", lambda self, nxt, me: nxt)
    waking = sum(r[4] for r in _runs(_contended_condition, "random", 40))
    assert saving < 0.85 * waking


def test_no_thread_is_woken_only_to_block_again(installed: None,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread resumed by a hand-over never blocks on a lock or a join before doing anything."""
    fresh: dict[int, bool] = {}
    blocked_at_once: list[tuple[int, str]] = []
    resumed = 0
    real_switch, real_yield, real_block = Scheduler._switch, Scheduler.yield_point, Scheduler.block

    def switch(self: Scheduler, me: CThread, nxt: CThread) -> None:
        nonlocal resumed
        real_switch(self, me, nxt)
        fresh[me.index] = True  # ``me`` runs again
        resumed += 1

    def yield_point(self: Scheduler, me: CThread, *args: Any) -> None:
        fresh[me.index] = False
        real_yield(self, me, *args)

    def block(self: Scheduler, me: CThread, resource: Any, op: str,
              deadline: float | None = None, *args: Any) -> bool:
        if fresh.get(me.index) and op in ("acquire", "join") and deadline is None:
            blocked_at_once.append((me.index, op))
        fresh[me.index] = False
        return real_block(self, me, resource, op, deadline, *args)

    monkeypatch.setattr(Scheduler, "_switch", switch)
    monkeypatch.setattr(Scheduler, "yield_point", yield_point)
    monkeypatch.setattr(Scheduler, "block", block)
    for target in (_contended_condition, targets.two_queues, targets.abba, _joins):
        _runs(target, "random", 30)
    assert resumed > 100
    assert blocked_at_once == []

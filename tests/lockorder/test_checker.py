"""The lock-order checker on its own, fed by locks that call the documented hooks."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable

import jsonschema
import pytest

from stuck.model import Finding, Report, Snapshot, Source
from stuck.report import json as json_report
from stuck.report.lockorder import render
from stuck.runtime.lockorder import LockOrderChecker, order_by

from .lo_fakes import FakeLock, in_thread, make_condition, make_lock, make_rlock


def cycles(checker: LockOrderChecker, variant: str = "deadlock") -> list[Finding]:
    return [f for f in checker.findings() if f.details["variant"] == variant]


class Replica:
    """The seed's shape: one path holds raft_mu and takes coalesced_mu, another the reverse."""

    def __init__(self, checker: LockOrderChecker) -> None:
        self.raft_mu = make_lock(checker)
        self.coalesced_mu = make_lock(checker)

    def report_unreachable(self) -> None:
        with self.raft_mu:  # noqa: SIM117 (the seed's shape: one line per lock)
            with self.coalesced_mu:
                pass

    def send_heartbeats(self) -> None:
        with self.coalesced_mu:  # noqa: SIM117
            with self.raft_mu:
                pass


# -- the seed --------------------------------------------------------------------------------


def _check_seed_finding(f: Finding, threads: set[str]) -> None:
    assert f.kind == "lock-order"
    assert set(f.resources) == {"Replica.raft_mu", "Replica.coalesced_mu"}
    edges = f.details["edges"]
    assert isinstance(edges, list) and len(edges) == 2
    by_from = {e["from"]: e for e in edges}
    fwd = by_from["Replica.raft_mu"]["witness"]
    back = by_from["Replica.coalesced_mu"]["witness"]
    # both witness pairs: where the held lock was taken and where the new one was taken
    assert fwd["held_at"][0]["function"] == "Replica.report_unreachable"
    assert fwd["taken_at"][0]["function"] == "Replica.report_unreachable"
    assert fwd["taken_at"][0]["line"] == fwd["held_at"][0]["line"] + 1
    assert back["held_at"][0]["function"] == "Replica.send_heartbeats"
    assert back["taken_at"][0]["function"] == "Replica.send_heartbeats"
    assert {fwd["thread"], back["thread"]} == threads


def test_seed_orders_from_one_thread_sequentially() -> None:
    checker = LockOrderChecker()
    r = Replica(checker)
    r.report_unreachable()
    r.send_heartbeats()
    [f] = checker.findings()
    _check_seed_finding(f, {threading.current_thread().name})
    assert f.confidence == "possible"  # one thread only: lower confidence


def test_seed_orders_from_two_threads_that_never_overlap() -> None:
    checker = LockOrderChecker()
    r = Replica(checker)
    in_thread(r.report_unreachable, "W-1")
    in_thread(r.send_heartbeats, "W-2")
    [f] = checker.findings()
    _check_seed_finding(f, {"W-1", "W-2"})
    assert f.confidence == "probable"
    text = render([f])
    assert "thread W-1 holds `Replica.raft_mu` (test_checker.py:" in text
    assert "and takes `Replica.coalesced_mu` (test_checker.py:" in text
    assert "thread W-2 holds `Replica.coalesced_mu`" in text
    assert "*** DEADLOCK ***" in text
    assert text.count("was taken at:") == 4  # two witness stacks per edge


def test_finding_is_valid_report_json() -> None:
    checker = LockOrderChecker()
    r = Replica(checker)
    in_thread(r.report_unreachable, "W-1")
    in_thread(r.send_heartbeats, "W-2")
    report = Report(Snapshot(Source("live")), findings=checker.findings())
    doc = json.loads(json_report.dumps(report))
    jsonschema.validate(doc, json_report.schema())
    [f] = doc["findings"]
    assert f["kind"] == "lock-order"
    assert len(f["details"]["edges"]) == 2


def test_repeated_cycle_reported_once_and_checking_continues() -> None:
    checker = LockOrderChecker()
    r = Replica(checker)
    for _ in range(50):
        r.report_unreachable()
        r.send_heartbeats()
    assert len(checker.findings()) == 1
    a, b = make_lock(checker, "A"), make_lock(checker, "B")
    with a, b:
        pass
    with b, a:
        pass
    assert len(checker.findings()) == 2


def test_repeated_pattern_hits_the_chain_cache() -> None:
    checker = LockOrderChecker()
    calls = []
    slow = checker._check
    checker._check = lambda *a: (calls.append(1), slow(*a))[1]  # type: ignore[method-assign]
    r = Replica(checker)
    for _ in range(20):
        r.report_unreachable()
    assert len(calls) == 1  # one slow check, then one lookup per repeat


# -- cycles of any length ------------------------------------------------------------------


def test_three_class_cycle() -> None:
    checker = LockOrderChecker()
    a, b, c = make_lock(checker, "A"), make_lock(checker, "B"), make_lock(checker, "C")

    def ab() -> None:
        with a, b:
            pass

    def bc() -> None:
        with b, c:
            pass

    def ca() -> None:
        with c, a:
            pass

    in_thread(ab, "T-ab")
    in_thread(bc, "T-bc")
    assert checker.findings() == []
    in_thread(ca, "T-ca")
    [f] = cycles(checker)
    assert sorted(f.resources) == ["A", "B", "C"]
    assert f.confidence == "probable"
    assert len(f.details["edges"]) == 3  # type: ignore[arg-type]
    assert "T3 waits for `" in render([f])


def test_five_philosophers() -> None:
    checker = LockOrderChecker()
    forks = [make_lock(checker, f"fork{i}") for i in range(5)]

    def dine(i: int) -> Callable[[], None]:
        def run() -> None:
            with forks[i], forks[(i + 1) % 5]:
                pass
        return run

    for i in range(5):
        in_thread(dine(i), f"philosopher-{i}")
    [f] = cycles(checker)
    assert len(f.resources) == 5
    assert f.details["signature"].startswith("deadlock:")  # type: ignore[union-attr]


def test_five_philosophers_same_class_with_declared_order() -> None:
    checker = LockOrderChecker()
    forks = [order_by(make_lock(checker), i) for i in range(5)]  # one class: made on one line

    def dine(i: int, lowest_first: bool) -> Callable[[], None]:
        first, second = i, (i + 1) % 5
        if lowest_first:
            first, second = min(first, second), max(first, second)

        def run() -> None:
            with forks[first], forks[second]:  # type: ignore[attr-defined]
                pass
        return run

    for i in range(5):
        in_thread(dine(i, lowest_first=True), f"p-{i}")
    assert checker.findings() == []  # the declared order is respected: silent
    in_thread(dine(4, lowest_first=False), "p-4-reversed")
    # fork[4] -> fork[0] closes two cycles: against p-0's direct order and the whole table
    found = sorted(len(f.resources) for f in cycles(checker))
    assert found == [2, 5]


def test_one_new_edge_closing_two_cycles_reports_both() -> None:
    checker = LockOrderChecker()
    a, b, c, d = (make_lock(checker, n) for n in "ABCD")
    for x, y in ((a, b), (a, c), (b, d), (c, d)):
        with x, y:
            pass
    with d, a:
        pass
    assert sorted(sorted(f.resources) for f in cycles(checker)) == [
        ["A", "B", "D"], ["A", "C", "D"]]


# -- the rules against false alarms ---------------------------------------------------------


def test_try_acquire_adds_no_edge_into_the_tried_lock() -> None:
    checker = LockOrderChecker()
    a, b = make_lock(checker, "A"), make_lock(checker, "B")

    def try_b_under_a() -> None:
        with a:
            assert b.acquire(blocking=False)
            b.release()

    def b_then_a() -> None:
        with b, a:
            pass

    in_thread(try_b_under_a, "T-1")
    in_thread(b_then_a, "T-2")
    assert checker.findings() == []


def test_lock_taken_by_try_gets_edges_out_of_it() -> None:
    checker = LockOrderChecker()
    a, b = make_lock(checker, "A"), make_lock(checker, "B")

    def try_a_then_b() -> None:
        assert a.acquire(blocking=False)
        with b:
            pass
        a.release()

    def b_then_a() -> None:
        with b, a:
            pass

    in_thread(try_a_then_b, "T-1")
    in_thread(b_then_a, "T-2")
    [f] = cycles(checker)
    assert set(f.resources) == {"A", "B"}


@pytest.mark.parametrize("strict", [False, True])
def test_timed_acquire_is_a_separate_kind_unless_strict(strict: bool) -> None:
    checker = LockOrderChecker(strict=strict)
    a, b = make_lock(checker, "A"), make_lock(checker, "B")

    def a_then_b() -> None:
        with a, b:
            pass

    def b_then_a_with_timeout() -> None:
        with b:
            assert a.acquire(timeout=1)
            a.release()

    in_thread(a_then_b, "T-1")
    in_thread(b_then_a_with_timeout, "T-2")
    if strict:
        assert len(cycles(checker, "deadlock")) == 1
        assert cycles(checker, "timed") == []
    else:
        assert cycles(checker, "deadlock") == []
        [f] = cycles(checker, "timed")
        assert "timeout" in f.summary
        assert "LOCK-ORDER (probable): circular lock order through a timed acquire" in render([f])
        # the same order taken without a timeout later is a deadlock risk after all
        in_thread(lambda: b.__enter__() and a.__enter__() and (a.release(), b.release()),
                  "T-3")
        assert len(cycles(checker, "deadlock")) == 1


def test_rlock_reentry_adds_nothing() -> None:
    checker = LockOrderChecker()
    r = make_rlock(checker, "R")
    a = make_lock(checker, "A")

    def nested() -> None:
        with r, a, r:  # re-entry of r under a: no edge a -> r
            pass

    def a_then_r_elsewhere() -> None:
        with r, r:
            pass

    in_thread(nested, "T-1")
    in_thread(a_then_r_elsewhere, "T-2")
    assert checker.findings() == []
    assert checker.edge_count() == 1  # r -> a only


def test_lock_released_by_another_thread_is_a_signal_not_a_mutex() -> None:
    checker = LockOrderChecker()
    ready = make_lock(checker, "ready")  # used as a one-shot signal
    m = make_lock(checker, "M")
    ready.acquire()

    def producer() -> None:
        with m:
            ready.release()  # released by a thread that did not take it

    in_thread(producer, "producer")
    ready.acquire()  # the consumer waits for the signal ...
    with m:  # ... and takes M while "holding" it: no edge ready -> M
        pass
    ready.release()
    assert checker.findings() == []
    assert checker.edge_count() == 0
    assert any("ready" in s for s in checker.signal_classes())


def test_signal_class_retracts_a_cycle_already_reported() -> None:
    checker = LockOrderChecker()
    flag = make_lock(checker, "flag")
    m = make_lock(checker, "M")
    with flag, m:
        pass
    with m, flag:
        pass
    assert len(checker.findings()) == 1
    flag.acquire()
    in_thread(flag.release, "other")
    assert checker.findings() == []
    assert any("retracted" in n for n in checker.notes())


def test_condition_wait_releases_its_lock() -> None:
    checker = LockOrderChecker()
    cond = make_condition(checker, "cond")
    a = make_lock(checker, "A")
    b = make_lock(checker, "B")
    woken = threading.Event()

    def waiter() -> None:
        with cond:
            cond.wait(5)
            woken.set()
            with b:  # cond is held again after the wait
                pass
        with a:  # cond released: no edge cond -> a
            pass

    t = threading.Thread(target=waiter, name="waiter", daemon=True)
    t.start()
    while not cond._waiters:
        threading.Event().wait(0.001)

    def notifier() -> None:
        with a, cond:  # a -> cond: with a stale cond in the waiter's stack, a cycle
            cond.notify_all()

    in_thread(notifier, "notifier")
    t.join(5)
    assert woken.is_set()
    assert checker.findings() == []
    edges = {(checker._nodes[e.src].cls.name, checker._nodes[e.dst].cls.name)
             for out in checker._out.values() for e in out.values()}
    assert edges == {("cond", "B"), ("A", "cond")}


def test_same_class_nesting_in_both_orders_is_its_own_finding() -> None:
    checker = LockOrderChecker()
    accounts = [make_lock(checker) for _ in range(3)]  # one class: locks made in a loop

    def transfer(src: FakeLock, dst: FakeLock) -> None:
        with src, dst:
            pass

    transfer(accounts[0], accounts[1])
    transfer(accounts[0], accounts[2])
    assert checker.findings() == []  # one order between the instances so far
    in_thread(lambda: transfer(accounts[1], accounts[0]), "T-2")
    [f] = checker.findings()
    assert f.details["variant"] == "same-class"
    assert f.details["reason"] == "both-orders"
    assert f.confidence == "probable"  # the two orders came from two threads
    text = render([f])
    assert "LOCK-ORDER (probable): same-class nesting" in text
    edges = f.details["edges"]
    assert isinstance(edges, list) and len(edges) == 2  # both orders, each with its stacks
    assert {e["witness"]["thread"] for e in edges} == {"MainThread", "T-2"}
    assert all(e["witness"]["taken_at"][0]["function"].endswith("transfer") for e in edges)


def test_same_class_cycle_over_several_instances_is_found() -> None:
    """Dining philosophers: each takes its left fork then its right; no two forks are ever
    taken both ways, but the instance order is a cycle."""
    checker = LockOrderChecker()
    forks = [make_lock(checker) for _ in range(5)]
    for i in range(5):
        with forks[i], forks[(i + 1) % 5]:
            pass
        assert (checker.findings() == []) == (i < 4)
    [f] = checker.findings()
    assert f.details["reason"] == "both-orders"
    assert f.confidence == "possible"  # one thread only
    assert "the nestings were seen in one thread only" in f.missing_evidence


def test_locks_in_a_list_taken_in_index_order_give_no_finding() -> None:
    """Lock striping (fasteners' shape): locks made in a loop, taken in list order by one
    wrapper, from several threads, any subset."""
    checker = LockOrderChecker()
    stripes = [make_lock(checker) for _ in range(10)]

    def take(indices: list[int]) -> None:
        held = [stripes[i] for i in sorted(indices)]
        for lk in held:
            lk.acquire()
        for lk in reversed(held):
            lk.release()

    take(list(range(10)))
    for n in range(1, 4):
        in_thread(lambda n=n: take(list(range(0, 10, n))), f"T-{n}")  # type: ignore[misc]
    assert checker.findings() == []
    take([9, 3])  # sorted: 3 then 9, still the same order
    assert checker.findings() == []
    with stripes[7], stripes[2]:  # now one pair the other way round
        pass
    [f] = checker.findings()
    assert f.details["reason"] == "both-orders"


def test_past_the_instance_bound_creation_order_decides(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """More pairs than are remembered: nestings that all follow creation order stay quiet; one
    against it is reported as no order that can be shown."""
    from stuck.runtime import lockorder as lo

    monkeypatch.setattr(lo, "MAX_INSTANCE_EDGES", 8)
    checker = LockOrderChecker()
    pairs = [(make_lock(checker), make_lock(checker)) for _ in range(20)]
    for first, second in pairs:
        with first, second:
            pass
    assert checker.findings() == []
    with pairs[-1][1], pairs[0][0]:  # made later, taken first: against the order seen
        pass
    [f] = checker.findings()
    assert f.details["reason"] == "no-order"
    assert f.missing_evidence


def test_same_class_nesting_with_declared_order_is_checked_as_an_order() -> None:
    checker = LockOrderChecker()
    accounts = [make_lock(checker) for _ in range(3)]
    for i, lk in enumerate(accounts):
        order_by(lk, i)

    def transfer(src: FakeLock, dst: FakeLock) -> None:
        first, second = sorted((src, dst), key=accounts.index)
        with first, second:
            pass

    transfer(accounts[2], accounts[0])
    transfer(accounts[1], accounts[2])
    in_thread(lambda: transfer(accounts[0], accounts[1]), "T-2")
    assert checker.findings() == []


def test_same_thread_orders_have_lower_confidence_than_two_threads() -> None:
    one = LockOrderChecker()
    r1 = Replica(one)
    in_thread(lambda: (r1.report_unreachable(), r1.send_heartbeats()), "only")
    two = LockOrderChecker()
    r2 = Replica(two)
    in_thread(r2.report_unreachable, "first")
    in_thread(r2.send_heartbeats, "second")
    assert [f.confidence for f in one.findings()] == ["possible"]
    assert [f.confidence for f in two.findings()] == ["probable"]
    assert one.findings()[0].missing_evidence


def test_bounds_are_visible(capfd: pytest.CaptureFixture[str]) -> None:
    checker = LockOrderChecker(max_edges=3)
    locks = [make_lock(checker, f"L{i}") for i in range(4)]
    with locks[1], locks[0]:
        pass
    for x, y in itertools.pairwise(locks):
        with x, y:
            pass
    assert checker.edge_count() == 3  # L1->L0, L0->L1, L1->L2; L2->L3 is over the bound
    assert any("3 edges" in n for n in checker.notes())
    assert "stuck: lock-order:" in capfd.readouterr().err
    assert len(checker.findings()) == 1  # what was found before the bound is kept


def test_out_of_order_release_keeps_the_held_stack_right() -> None:
    checker = LockOrderChecker()
    a, b, c = (make_lock(checker, n) for n in "ABC")
    a.acquire()
    b.acquire()
    a.release()  # hand-over-hand
    c.acquire()
    c.release()
    b.release()
    names = {(checker._nodes[e.src].cls.name, checker._nodes[e.dst].cls.name)
             for out in checker._out.values() for e in out.values()}
    assert names == {("A", "B"), ("B", "C")}
    with c, a:  # closes A -> B -> C -> A only: A was not held when C was taken
        pass
    [f] = checker.findings()
    assert sorted(f.resources) == ["A", "B", "C"]


def test_lock_left_acquired_and_dropped_is_not_held_any_more() -> None:
    checker = LockOrderChecker()

    def leave_locked() -> None:
        leaked = make_lock(checker, "leaked")
        leaked.acquire()  # never released; the lock is dropped when this returns

    leave_locked()
    a, b = make_lock(checker, "A"), make_lock(checker, "B")
    with a, b:
        pass
    names = {(checker._nodes[e.src].cls.name, checker._nodes[e.dst].cls.name)
             for out in checker._out.values() for e in out.values()}
    assert names == {("A", "B")}  # not leaked -> A, leaked -> B


def test_lock_left_acquired_but_still_referenced_stays_held() -> None:
    checker = LockOrderChecker()
    kept = make_lock(checker, "kept")
    kept.acquire()
    a = make_lock(checker, "A")
    with a:
        pass
    kept.release()
    assert checker.edge_count() == 1  # kept -> A: the program could still release it


def test_order_key_must_be_a_plain_value() -> None:
    checker = LockOrderChecker()
    lk = make_lock(checker)
    assert order_by(lk, (1, "a")) is lk
    with pytest.raises(TypeError, match="plain value"):
        order_by(lk, object())


def test_instance_pairs_are_bounded_over_all_classes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many classes each nesting their own locks: past the total bound, no class remembers more
    pairs (memory stays bounded) and creation order still decides."""
    from stuck.runtime import lockorder as lo

    monkeypatch.setattr(lo, "MAX_INSTANCE_EDGES_TOTAL", 6)
    monkeypatch.setattr(lo, "MAX_INSTANCE_WITNESSES_TOTAL", 2)
    checker = LockOrderChecker()

    classes = [  # three classes (a class is the line that made its locks), four pairs each
        [(make_lock(checker), make_lock(checker)) for _ in range(4)],
        [(make_lock(checker), make_lock(checker)) for _ in range(4)],
        [(make_lock(checker), make_lock(checker)) for _ in range(4)],
    ]
    for pairs in classes:
        for first, second in pairs:
            with first, second:
                pass
    assert checker._instance_edges == 6
    assert len(checker._instances) == 3 and checker._instances[max(checker._instances)].full
    assert checker._instance_witnesses == 2
    assert sum(len(i.witnesses) for i in checker._instances.values()) == 2
    assert checker.findings() == []
    last = classes[-1]
    with last[-1][1], last[0][0]:  # against creation order, in a class past the bound
        pass
    [f] = checker.findings()
    assert f.details["reason"] == "no-order"

"""The stall rules over recorded facts: one test per rule, and the cases that must stay quiet.

These build the facts the live instrumentation records (who waits on what, who ever signalled
what, which threads are alive) directly, so each rule is checked on exactly the situation it
names. The end-to-end tests (test_live.py) run the same situations with real threads.
"""

from __future__ import annotations

from stuck.rules.engine import judge
from stuck.rules.facts import (
    ExecutorFacts,
    Facts,
    ResourceFacts,
    Signal,
    ThreadFacts,
    ThreadWait,
)
from stuck.rules.knot import stuck_set
from stuck.runtime.stall import reachability

NOW = 1000.0


def waiting(tid: str, rid: str, op: str = "wait", since: float = NOW - 3, durable: bool = True,
            daemon: bool = False, holds: list[str] | None = None) -> ThreadFacts:
    return ThreadFacts(id=tid, name=tid, daemon=daemon, holds=holds or [],
                       wait=ThreadWait(resource=rid, op=op, durable=durable, since=since))  # type: ignore[arg-type]


def running(tid: str, daemon: bool = False) -> ThreadFacts:
    return ThreadFacts(id=tid, name=tid, daemon=daemon)


def dead(tid: str, how: str = "returned") -> ThreadFacts:
    return ThreadFacts(id=tid, name=tid, alive=False, ended=how)


def facts(threads: list[ThreadFacts], resources: list[ResourceFacts],
          executors: list[ExecutorFacts] | None = None) -> Facts:
    return Facts(threads={t.id: t for t in threads},
                     resources={r.id: r for r in resources},
                     executors={e.id: e for e in executors or []}, now=NOW)


def test_every_thread_asleep_without_a_cycle_is_a_stall_at_its_root() -> None:
    f = facts([waiting("main", "join-w", op="join"), waiting("w", "ev")],
              [ResourceFacts("join-w", "thread", "thread w", thread="w"),
               ResourceFacts("ev", "event", "ready", wakers=set())])
    [finding] = judge(f, unreachable={"ev"})
    assert finding.kind == "stall" and finding.confidence == "certain"
    assert finding.threads == ["w"] and finding.resources == ["ev"]
    assert finding.blocked_behind == ["main"]


def test_a_cycle_of_holding_and_waiting_is_a_deadlock() -> None:
    f = facts([waiting("a", "l1", op="acquire", holds=["l2"]),
               waiting("b", "l2", op="acquire", holds=["l1"]),
               waiting("main", "join-a", op="join")],
              [ResourceFacts("l1", "rlock", "first", owners=["b"]),
               ResourceFacts("l2", "rlock", "second", owners=["a"]),
               ResourceFacts("join-a", "thread", "thread a", thread="a")])
    [finding] = judge(f)
    assert finding.kind == "deadlock" and finding.confidence == "certain"
    assert {(e.thread, e.waits_for, e.held_by) for e in finding.cycle} == {
        ("a", "l1", "b"), ("b", "l2", "a")}
    assert finding.blocked_behind == ["main"]


def test_a_plain_lock_cycle_with_a_thread_able_to_run_is_not_certain() -> None:
    # Any thread may release a Lock: a sleeping thread may open it (a Lock used as a gate).
    def cycle(waited: float) -> Facts:
        return facts([waiting("a", "l1", op="acquire", holds=["l2"], since=NOW - waited),
                      waiting("b", "l2", op="acquire", holds=["l1"], since=NOW - waited),
                      running("sleeper")],
                     [ResourceFacts("l1", "mutex", "first", owners=["b"]),
                      ResourceFacts("l2", "mutex", "second", owners=["a"])])

    assert judge(cycle(1.0)) == []  # a gate is opened within moments
    [finding] = judge(cycle(5.0))
    assert finding.kind == "deadlock" and finding.confidence == "probable"
    assert "sleeper can still run" in finding.missing_evidence[0]


def test_a_runnable_thread_prevents_the_global_verdict() -> None:
    f = facts([waiting("main", "join-w", op="join"), waiting("w", "ev"), running("helper")],
              [ResourceFacts("join-w", "thread", "thread w", thread="w"),
               ResourceFacts("ev", "event", "ready", wakers=set())])
    assert [x for x in judge(f) if x.kind == "deadlock"] == []


def test_waiter_whose_every_waker_is_dead_is_a_stall() -> None:
    f = facts([running("main"), waiting("follower", "tick"), dead("ticker", "died of ValueError")],
              [ResourceFacts("tick", "event", "tick", wakers={"ticker"})])
    [finding] = judge(f)
    assert finding.kind == "stall"
    assert finding.threads == ["follower"] and finding.resources == ["tick"]
    assert "ticker (died of ValueError)" in finding.explanation
    assert finding.details["rule"] == "no-live-waker"


def test_waiter_whose_waker_is_alive_and_able_to_run_is_not_a_stall() -> None:
    f = facts([running("main"), waiting("follower", "tick"), running("ticker")],
              [ResourceFacts("tick", "event", "tick", wakers={"ticker"})])
    assert judge(f) == []


def test_store_shape_names_writer_condition_idle_worker_and_pool() -> None:
    # The writer waits on bg_cv; the flush worker (the only notifier) idles on its queue,
    # which only the writer feeds; the compaction job sits on a queue nobody takes from.
    f = facts(
        [running("main"), waiting("writer", "bg_cv"),
         waiting("flush:bg0", "flush.jobs", op="get", daemon=True)],
        [ResourceFacts("bg_cv", "condition", "Store.bg_cv", wakers={"flush:bg0"}),
         ResourceFacts("flush.jobs", "queue", "flush.jobs", wakers={"writer"},
                       getters={"flush:bg0"}, size=0),
         ResourceFacts("compaction.jobs", "queue", "compaction.jobs", wakers={"flush:bg0"},
                       getters=set(), size=1)])
    [finding] = judge(f)
    assert finding.kind == "stall"
    assert finding.threads == ["writer", "flush:bg0"]
    assert finding.resources == ["bg_cv", "flush.jobs", "compaction.jobs"]
    assert "idle on empty queue flush.jobs" in finding.explanation
    assert "compaction.jobs will never run" in finding.explanation
    assert "no worker" in finding.explanation


def test_future_whose_executor_has_no_live_worker() -> None:
    f = facts([running("main"), waiting("client", "fut", op="result")],
              [ResourceFacts("fut", "future", "future of compact", executor="ex",
                             task="compact()")],
              [ExecutorFacts("ex", "compaction-pool", workers=[], shutdown=True,
                             pending=["compact()"])])
    [finding] = judge(f)
    assert finding.kind == "stall" and finding.details["rule"] == "future-executor"
    assert finding.threads == ["client"]
    assert finding.resources[:2] == ["fut", "ex"]
    assert "compaction-pool" in finding.summary and "compact()" in finding.summary
    assert "shut down" in finding.explanation


def test_future_whose_executor_workers_are_all_blocked_for_good() -> None:
    f = facts([running("main"), waiting("client", "fut", op="result"),
               waiting("pool_0", "gate", daemon=True)],
              [ResourceFacts("fut", "future", "f", executor="ex", task="job()"),
               ResourceFacts("gate", "event", "gate", wakers=set())],
              [ExecutorFacts("ex", "pool", workers=["pool_0"], max_workers=1,
                             pending=["job()"])])
    # The gate was never set and (the reachability pass says) no runnable thread reaches it.
    [finding] = judge(f, unreachable={"gate"})
    assert finding.threads == ["client", "pool_0"]
    assert "pool_0" in finding.explanation and "blocked for good" in finding.explanation


def test_future_with_a_free_worker_is_not_a_stall() -> None:
    f = facts([running("main"), waiting("client", "fut", op="result"), running("pool_0")],
              [ResourceFacts("fut", "future", "f", executor="ex", task="job()")],
              [ExecutorFacts("ex", "pool", workers=["pool_0"])])
    assert judge(f) == []


def test_queue_get_with_no_live_producer() -> None:
    f = facts([running("main"), waiting("consumer", "q", op="get"), dead("producer")],
              [ResourceFacts("q", "queue", "records", wakers={"producer"},
                             getters={"consumer"}, size=0)])
    [finding] = judge(f)
    assert finding.details["rule"] == "queue-get-no-producer"
    assert finding.threads == ["consumer"] and finding.resources == ["q"]
    assert "producer (returned)" in finding.explanation


def test_queue_put_on_full_queue_with_no_live_getter() -> None:
    f = facts([running("main"), waiting("producer", "q", op="put"), dead("consumer")],
              [ResourceFacts("q", "queue", "jobs", wakers={"producer"},
                             getters={"consumer"}, size=2, maxsize=2)])
    [finding] = judge(f)
    assert finding.details["rule"] == "queue-put-no-getter"
    assert finding.threads == ["producer"]
    assert "consumer (returned)" in finding.explanation


def test_barrier_that_can_never_collect_its_parties() -> None:
    f = facts([running("main"), waiting("a", "b", op="barrier"), waiting("b1", "b", op="barrier"),
               dead("c", "died of RuntimeError")],
              [ResourceFacts("b", "barrier", "phase", parties=3, n_waiting=2, rounds=1,
                             wakers={"a", "b1", "c"})])
    # The first round was completed by a, b1 and c; c died, and main never reaches it.
    [finding] = judge(f, unreachable={"b"})
    assert finding.details["rule"] == "barrier"
    assert sorted(finding.threads) == ["a", "b1"]
    assert "c (died of RuntimeError)" in finding.explanation


def test_barrier_with_a_party_still_able_to_arrive_is_not_a_stall() -> None:
    f = facts([waiting("a", "b", op="barrier"), running("late")],
              [ResourceFacts("b", "barrier", "phase", parties=2, n_waiting=1, wakers=set())])
    assert judge(f) == []


def test_lost_wakeup_reports_the_notify_that_came_first() -> None:
    f = facts([running("main"), waiting("waiter", "cv", since=NOW - 2), dead("notifier")],
              [ResourceFacts("cv", "condition", "done_cv", wakers={"notifier"},
                             history=[Signal("notify", "notifier", NOW - 2.5, 0)])])
    [finding] = judge(f)
    assert finding.details["rule"] == "lost-wakeup"
    assert "lost wake-up" in finding.summary
    assert "notifier did notify 2.5 s ago while 0 thread(s) waited" in finding.explanation


def test_unreachable_primitive_nobody_signalled_is_stuck_for_good() -> None:
    f = facts([running("main"), waiting("w", "ev")],
              [ResourceFacts("ev", "event", "orphan", wakers=set())])
    assert judge(f) == []  # reachable (or not known to be unreachable): could be woken
    [finding] = judge(f, unreachable={"ev"})
    assert finding.confidence == "certain" and finding.details["rule"] == "unreachable"


def test_timed_waits_are_never_stuck() -> None:
    f = facts([waiting("main", "ev", durable=False), waiting("w", "ev", durable=False)],
              [ResourceFacts("ev", "event", "e", wakers=set())])
    assert stuck_set(f)[0] == set()
    assert judge(f, unreachable={"ev"}) == []


def test_short_waits_are_not_judged_before_they_settle() -> None:
    f = facts([running("main"), waiting("follower", "tick", since=NOW - 0.1), dead("ticker")],
              [ResourceFacts("tick", "event", "tick", wakers={"ticker"})])
    assert judge(f, settle=0.5) == []


def test_lock_waiters_behind_a_stalled_thread_are_its_victims() -> None:
    f = facts([running("main"), waiting("follower", "tick"), dead("ticker"),
               waiting("reader", "mu", op="acquire")],
              [ResourceFacts("tick", "event", "tick", wakers={"ticker"}),
               ResourceFacts("mu", "mutex", "state.mu", owners=["follower"])])
    [finding] = judge(f)
    assert finding.threads == ["follower"] and finding.blocked_behind == ["reader"]


class _Box:
    def __init__(self, item: object) -> None:
        self.item = item


def test_reachability_walks_references_and_respects_the_budget() -> None:
    target, other = object(), object()
    root = {"box": _Box([target])}
    # The walk may pass through _Box's class into its module and everything loaded: in a
    # whole test session that can be more than the default budget, which says nothing about
    # the walk itself.
    assert reachability({"t": target, "o": other}, [root], budget=10_000_000) == {"o"}
    assert reachability({"t": target}, [root], budget=1) is None


def test_a_cycle_whose_last_wait_has_not_settled_is_no_stall_of_its_first() -> None:
    # b has waited on the permit a holds for a while; a closed the cycle a moment ago (how
    # long after b depends on when a got the CPU). Until a's wait has settled the cycle is not
    # judged yet, and b's wait is part of it: not a stall of b with a "behind" it. Once a's
    # wait has settled, the same waits are the deadlock.
    def cycle(now: float) -> Facts:
        f = facts([waiting("b", "sem", op="acquire", holds=["rl"], since=NOW - 1.0),
                   waiting("a", "rl", op="acquire", holds=["sem"], since=NOW - 0.2),
                   waiting("main", "join-a", op="join", since=NOW - 1.0)],
                  [ResourceFacts("sem", "semaphore", "permits", owners=["a"], value=0),
                   ResourceFacts("rl", "rlock", "first", owners=["b"]),
                   ResourceFacts("join-a", "thread", "thread a", thread="a")])
        f.now = now
        return f

    assert judge(cycle(NOW), unreachable={"sem"}) == []
    [finding] = judge(cycle(NOW + 0.5), unreachable={"sem"})
    assert finding.kind == "deadlock"
    assert {e.thread for e in finding.cycle} == {"a", "b"}

"""asyncio under the live instrumentation: deadlock cycles among tasks are found when the last
task blocks (policy ``raise``: DeadlockError in that task, and the others go on), the watchdog
names an event loop none of whose tasks can run again, and correct programs behave exactly as
without stuck.

No scenario can hang the suite: every event loop runs in a daemon thread joined with a bound
(``asyncio.wait_for`` would add a timer to the loop, which changes what the rules see), stuck
loops are ended by cancelling their tasks, and the end-to-end runs are subprocesses with a
timeout.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import stuck
import stuck.rules
import stuck.runtime
from stuck.errors import EXIT_ABORT
from stuck.model import Finding, Report
from stuck.report.json import dumps, schema
from stuck.runtime import aio, livereport, policy

ROOT = Path(__file__).resolve().parents[2]
BOUND = 10.0  # seconds: the most any scenario or poll waits
Main = Callable[[], Coroutine[Any, Any, Any]]


def run_loop(main: Main) -> Any:
    """``asyncio.run(main())`` in a daemon thread, joined with a bound; its result (or error)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(main())
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="event-loop", daemon=True)
    thread.start()
    thread.join(BOUND)
    assert not thread.is_alive(), "the event loop is still stuck"
    if "error" in box:
        raise box["error"]
    return box["value"]


class LoopThread:
    """An event loop running ``main()`` in a daemon thread, for scenarios observed from outside
    while they run (and stuck ones, ended by cancelling every task)."""

    def __init__(self, main: Main) -> None:
        self.loop = asyncio.new_event_loop()
        self.box: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._run, args=(main,), name="event-loop",
                                       daemon=True)
        self.thread.start()

    def _run(self, main: Main) -> None:
        try:
            self.box["value"] = self.loop.run_until_complete(
                self.loop.create_task(main(), name="main"))
        except BaseException as exc:
            self.box["error"] = exc
        finally:
            self.loop.close()

    def cancel_all(self) -> None:
        def cancel() -> None:
            for task in asyncio.all_tasks(self.loop):
                task.cancel()

        self.loop.call_soon_threadsafe(cancel)

    def join(self) -> Any:
        self.thread.join(BOUND)
        assert not self.thread.is_alive(), "the event loop is still stuck"
        if "error" in self.box:
            raise self.box["error"]
        return self.box["value"]


def wait_for_tracked_waits(count: int = 1) -> None:
    """Wait until ``count`` tasks wait on tracked primitives."""
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        if len(aio.waits) >= count:
            return
        time.sleep(0.005)
    raise AssertionError(f"fewer than {count} tasks ever waited")


def findings_now() -> list[Finding]:
    """What the report asked for now says (no settle time): the rules' verdict on the
    snapshot, as the watchdog's."""
    return stuck.runtime.snapshot().findings


def watchdog_finding(kind: str) -> tuple[Finding, Report]:
    """The first finding of ``kind`` the watchdog reports (polled, bounded)."""
    dog = stuck.runtime._state["watchdog"]
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        for report in list(dog.reports):
            for finding in report.findings:
                if finding.kind == kind:
                    return finding, report
        time.sleep(0.05)
    raise AssertionError(f"the watchdog reported no {kind}")


def watchdog_findings() -> list[Finding]:
    dog = stuck.runtime._state.get("watchdog")
    return [] if dog is None else [f for r in list(dog.reports) for f in r.findings]


def thread_names(error: stuck.DeadlockError) -> set[str]:
    assert error.report is not None
    threads = error.report.snapshot.thread_map()
    return {threads[e.thread].name or "" for e in error.finding.cycle}


# --- deadlock cycles, found as they form ------------------------------------------------------


def test_two_lock_cycle_raises_in_the_task_that_closed_it_and_the_other_finishes(
        live: io.StringIO) -> None:
    async def main() -> dict[str, Any]:
        inventory_lock = asyncio.Lock()
        payments_lock = asyncio.Lock()
        outcome: dict[str, Any] = {}

        async def take(first: asyncio.Lock, second: asyncio.Lock) -> None:
            name = asyncio.current_task().get_name()  # type: ignore[union-attr]
            async with first:
                await asyncio.sleep(0)  # both hold their first lock before either asks
                await asyncio.sleep(0)
                try:
                    async with second:
                        outcome[name] = "done"
                except stuck.DeadlockError as exc:
                    outcome[name] = exc
                    outcome["still held"] = first.locked()

        await asyncio.gather(
            asyncio.create_task(take(inventory_lock, payments_lock), name="checkout"),
            asyncio.create_task(take(payments_lock, inventory_lock), name="refund"))
        return outcome

    outcome = run_loop(main)
    assert outcome["checkout"] == "done"  # went on once refund let go of payments_lock
    error = outcome["refund"]
    assert isinstance(error, stuck.DeadlockError)  # refund blocked last: it closed the cycle
    assert outcome["still held"] is True  # it holds what it held before the call
    finding = error.finding
    assert finding.kind == "deadlock" and finding.confidence == "certain"
    assert thread_names(error) == {"checkout", "refund"}
    assert [e.thread for e in finding.cycle] == ["task:refund", "task:checkout"]
    assert [e.held_by for e in finding.cycle] == ["task:checkout", "task:refund"]
    assert error.report is not None
    resources = error.report.snapshot.resource_map()
    assert [resources[e.waits_for].label for e in finding.cycle] == ["inventory_lock",
                                                                      "payments_lock"]
    assert {resources[e.waits_for].kind for e in finding.cycle} == {"mutex"}
    threads = error.report.snapshot.thread_map()
    assert threads["task:checkout"].state == "blocked"
    assert threads["task:checkout"].holds == [finding.cycle[0].waits_for]
    assert "DEADLOCK (certain)" in live.getvalue()
    jsonschema.validate(json.loads(dumps(error.report)), schema())


@pytest.mark.usefixtures("live")
def test_the_same_cycle_formed_again_after_a_retry_raises_again() -> None:
    async def main() -> list[list[str]]:
        first, second = asyncio.Lock(), asyncio.Lock()
        rounds = [asyncio.Event(), asyncio.Event()]
        steps: list[list[str]] = [[], []]

        async def take(a: asyncio.Lock, b: asyncio.Lock, name: str) -> None:
            for attempt in (0, 1):  # the same two tasks, the same locks, the same orders
                await rounds[attempt].wait()
                async with a:
                    await asyncio.sleep(0)
                    await asyncio.sleep(0)
                    try:
                        async with b:
                            steps[attempt].append("done")
                    except stuck.DeadlockError:
                        steps[attempt].append("deadlocked")
                if len(steps[attempt]) == 2 and attempt == 0:
                    rounds[1].set()

        rounds[0].set()
        await asyncio.gather(take(first, second, "x"), take(second, first, "y"))
        return steps

    assert [sorted(s) for s in run_loop(main)] == [["deadlocked", "done"]] * 2


@pytest.mark.usefixtures("live")
def test_three_tasks_in_a_ring() -> None:
    async def main() -> dict[int, Any]:
        locks = [asyncio.Lock() for _ in range(3)]
        outcome: dict[int, Any] = {}

        async def worker(i: int) -> None:
            async with locks[i]:
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                try:
                    async with locks[(i + 1) % 3]:
                        outcome[i] = "done"
                except stuck.DeadlockError as exc:
                    outcome[i] = exc

        await asyncio.gather(*(asyncio.create_task(worker(i), name=f"ring-{i}")
                               for i in range(3)))
        return outcome

    outcome = run_loop(main)
    errors = [v for v in outcome.values() if isinstance(v, stuck.DeadlockError)]
    assert len(errors) == 1 and isinstance(outcome[2], stuck.DeadlockError)  # the last to block
    assert outcome[0] == outcome[1] == "done"
    finding = errors[0].finding
    assert len(finding.cycle) == 3
    assert {e.thread for e in finding.cycle} == {"task:ring-0", "task:ring-1", "task:ring-2"}
    for edge in finding.cycle:  # each waits for a lock the next one holds
        assert edge.held_by != edge.thread
    assert finding.summary.startswith("3 asyncio tasks wait for each other")


@pytest.mark.usefixtures("live")
def test_a_task_awaiting_a_task_that_waits_for_a_lock_the_first_holds() -> None:
    async def main() -> Any:
        lock = asyncio.Lock()

        async def helper() -> str:
            async with lock:
                return "helped"

        async def owner() -> Any:
            async with lock:
                child = asyncio.create_task(helper(), name="helper")
                try:
                    return await child  # helper blocks on lock: the cycle closes there
                except stuck.DeadlockError as exc:
                    return exc

        return await asyncio.create_task(owner(), name="owner")

    error = run_loop(main)
    assert isinstance(error, stuck.DeadlockError)
    finding = error.finding
    assert finding.confidence == "certain"
    edges = {e.thread: e for e in finding.cycle}
    assert set(edges) == {"task:helper", "task:owner"}
    assert edges["task:helper"].held_by == "task:owner"
    assert edges["task:owner"].held_by == "task:helper"
    assert error.report is not None
    resources = error.report.snapshot.resource_map()
    assert resources[edges["task:helper"].waits_for].kind == "mutex"
    assert resources[edges["task:owner"].waits_for].kind == "task"  # awaits the helper task
    assert "owner awaits task helper" in finding.summary


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.TaskGroup is new in 3.11")
@pytest.mark.usefixtures("live")
def test_a_task_group_whose_task_needs_a_lock_its_parent_holds() -> None:
    async def main() -> Any:
        index_lock = asyncio.Lock()

        async def reindex() -> None:
            async with index_lock:
                pass

        async def parent() -> Any:
            try:
                async with index_lock, asyncio.TaskGroup() as group:  # type: ignore[attr-defined]
                    group.create_task(reindex(), name="reindex")
            except BaseException as exc:  # an ExceptionGroup holding the DeadlockError
                return exc

        return await asyncio.create_task(parent(), name="parent")

    group_error = run_loop(main)
    (error,) = group_error.exceptions
    assert isinstance(error, stuck.DeadlockError)
    edges = {e.thread: e for e in error.finding.cycle}
    assert set(edges) == {"task:reindex", "task:parent"}
    assert error.report is not None
    group = error.report.snapshot.resource_map()[edges["task:parent"].waits_for]
    assert group.kind == "task" and group.label == "TaskGroup(reindex)"
    assert error.finding.confidence == "certain"


@pytest.mark.usefixtures("live")
def test_taking_a_held_lock_again_when_no_other_task_can_release_it() -> None:
    async def main() -> Any:
        lock = asyncio.Lock()
        async with lock:
            try:
                async with lock:
                    return "reentered"
            except stuck.DeadlockError as exc:
                return exc

    error = run_loop(main)
    assert isinstance(error, stuck.DeadlockError)
    assert len(error.finding.cycle) == 1
    assert "which it already holds" in error.finding.summary


def test_a_lock_taken_again_and_released_by_another_task_is_no_deadlock(mode: str) -> None:
    async def main() -> list[str]:
        lock = asyncio.Lock()
        steps: list[str] = []
        await lock.acquire()

        async def releaser() -> None:
            await asyncio.sleep(0.05)
            steps.append("released by another task")
            lock.release()

        task = asyncio.create_task(releaser())
        await lock.acquire()  # a Lock used as a signal: another task releases it
        steps.append("taken again")
        lock.release()
        await task
        return steps

    assert run_loop(main) == ["released by another task", "taken again"]


@pytest.mark.usefixtures("act_on_probable")
def test_two_tasks_each_waiting_for_the_other_to_put_on_a_queue() -> None:
    # Probable (who puts to a queue is inferred), and never provable: the test's thread, able
    # to run, could reach the queues. So raise acts only under the opt-in.
    async def main() -> dict[str, Any]:
        to_a: asyncio.Queue[int] = asyncio.Queue()
        to_b: asyncio.Queue[int] = asyncio.Queue()
        outcome: dict[str, Any] = {}

        async def a() -> None:
            outcome["a got"] = await to_a.get()
            await to_b.put(1)
            try:
                outcome["a again"] = await to_a.get()  # only b ever put to to_a
            except stuck.DeadlockError as exc:
                outcome["a error"] = exc

        async def b() -> None:
            await to_a.put(1)
            outcome["b got"] = await to_b.get()
            try:
                outcome["b again"] = await to_b.get()  # only a ever put to to_b
            except stuck.DeadlockError as exc:
                outcome["b error"] = exc
                await to_a.put(2)  # recover: unblock a

        await asyncio.gather(asyncio.create_task(a(), name="a"),
                             asyncio.create_task(b(), name="b"))
        return outcome

    outcome = run_loop(main)
    error = outcome.get("b error") or outcome.get("a error")
    assert isinstance(error, stuck.DeadlockError)
    assert error.finding.confidence == "probable"  # who puts to a queue is inferred
    assert any("queue" in m for m in error.finding.missing_evidence)
    assert "gets from empty queue" in error.finding.summary


QUEUE_CYCLE_ALONE = """
import asyncio, sys
import stuck
stuck.install(policy=sys.argv[1], act_on=sys.argv[2], signal=None)

async def main():
    to_a, to_b = asyncio.Queue(), asyncio.Queue()
    outcome = {}

    async def a():
        outcome["a got"] = await to_a.get()
        await to_b.put(1)
        try:
            outcome["a again"] = await to_a.get()  # only b ever put to to_a
        except stuck.DeadlockError as exc:
            outcome["a error"] = exc.finding.confidence
            await to_b.put(2)  # recover: unblock b

    async def b():
        await to_a.put(1)
        outcome["b got"] = await to_b.get()
        try:
            outcome["b again"] = await to_b.get()  # only a ever put to to_b
        except stuck.DeadlockError as exc:
            outcome["b error"] = exc.finding.confidence
            await to_a.put(2)

    await asyncio.gather(asyncio.create_task(a(), name="a"),
                         asyncio.create_task(b(), name="b"))
    return sorted(outcome.items())

print(asyncio.run(main()))
"""


def test_a_task_cycle_through_queues_is_raised_once_the_watchdog_proves_it() -> None:
    # Alone in a process: when the loop has nothing else to run and no other thread can run,
    # nothing but the two tasks could ever put to the queues. Probable when it forms (who puts
    # to a queue is inferred), so raise waits; the watchdog proves it, and raises in a task.
    out = subprocess.run([sys.executable, "-c", QUEUE_CYCLE_ALONE, "raise", "certain"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    [result] = out.stdout.splitlines()
    assert "error', 'certain')" in result and "again', 2)" in result, out.stderr
    assert out.stderr.index("DEADLOCK (probable)") < out.stderr.index("is now certain")
    assert "nothing outside the cycle can" in out.stderr


def test_a_task_cycle_through_queues_aborts_once_the_watchdog_proves_it() -> None:
    out = subprocess.run([sys.executable, "-c", QUEUE_CYCLE_ALONE, "abort", "certain"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == EXIT_ABORT, out.stderr
    assert out.stdout == ""
    assert "aborting (policy abort, a proven deadlock)" in out.stderr


def test_a_cycle_through_a_timed_wait_is_not_a_deadlock(mode: str) -> None:
    async def main() -> list[str]:
        first, second = asyncio.Lock(), asyncio.Lock()
        steps: list[str] = []

        async def a() -> None:
            async with first:
                await asyncio.sleep(0)
                try:  # waits under a timeout: the cycle ends by itself
                    await asyncio.wait_for(second.acquire(), 0.3)
                    second.release()
                    steps.append("a took second")
                except asyncio.TimeoutError:
                    steps.append("a timed out")

        async def b() -> None:
            async with second:
                for _ in range(3):
                    await asyncio.sleep(0)  # a asks first
                async with first:
                    steps.append("b took first")

        await asyncio.gather(a(), b())
        return steps

    assert run_loop(main) == ["a timed out", "b took first"]


def test_waits_a_scheduled_callback_will_end_are_not_deadlocks(mode: str) -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        lock = asyncio.Lock()
        steps: list[str] = []
        await lock.acquire()
        # The child waits for a lock its awaiter holds, but a cancel is already scheduled.
        child = asyncio.create_task(lock.acquire())
        loop.call_soon(child.cancel)
        try:
            await child
        except asyncio.CancelledError:
            steps.append("cancelled")
        # Now a release is scheduled on a timer instead.
        loop.call_later(0.05, lock.release)
        steps.append(f"acquired: {await asyncio.create_task(lock.acquire())}")
        lock.release()
        return steps

    assert run_loop(main) == ["cancelled", "acquired: True"]
    assert watchdog_findings() == [] and not policy.findings_seen


def test_a_lock_bound_to_another_loop_fails_as_in_asyncio(mode: str) -> None:
    async def main() -> str:
        other = asyncio.new_event_loop()
        try:
            lock = asyncio.Lock()
            lock._loop = other  # type: ignore[attr-defined]  # as CPython's own test does
            async with lock:
                try:
                    await lock.acquire()  # asyncio's loop check comes before any cycle
                except RuntimeError as exc:
                    return str(exc).split(" is ")[-1]
            return "no error"
        finally:
            other.close()

    assert run_loop(main) == "bound to a different event loop"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is new in 3.11")
def test_a_cycle_closed_under_a_timeout_is_reported_not_raised(live: io.StringIO) -> None:
    async def main() -> list[str]:
        first, second = asyncio.Lock(), asyncio.Lock()
        steps: list[str] = []

        async def a() -> None:
            async with first:
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                async with second:
                    steps.append("a took second")

        async def b() -> None:
            async with second:
                for _ in range(3):
                    await asyncio.sleep(0)
                try:
                    async with asyncio.timeout(0.3):  # type: ignore[attr-defined]
                        async with first:
                            steps.append("b took first")
                except TimeoutError:
                    steps.append("b timed out")

        await asyncio.gather(a(), b())
        return steps

    assert run_loop(main) == ["b timed out", "a took second"]
    assert "DEADLOCK (probable)" in live.getvalue()  # reported, with the timeout in mind
    assert "waits under a timeout" in live.getvalue()  # and says why it is less sure


@pytest.mark.usefixtures("live")
def test_a_cycle_closed_by_a_condition_reacquiring_its_lock_is_reported_not_raised() -> None:
    async def main() -> list[Any]:
        cond = asyncio.Condition()
        other = asyncio.Lock()

        async def a() -> None:
            async with other, cond:
                await cond.wait()  # notified by b, then re-acquires cond's lock: held by b

        async def b() -> None:
            await asyncio.sleep(0)
            async with cond:
                cond.notify()
                async with other:  # held by a
                    pass

        ta = asyncio.create_task(a(), name="a")
        tb = asyncio.create_task(b(), name="b")
        for _ in range(int(BOUND / 0.01)):  # until the report is out, then end both
            if policy.findings_seen:
                break
            await asyncio.sleep(0.01)
        ta.cancel()
        tb.cancel()
        return list(await asyncio.gather(ta, tb, return_exceptions=True))

    results = run_loop(main)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)  # no DeadlockError
    finding = policy.findings_seen[-1].findings[0]
    assert {e.thread for e in finding.cycle} == {"task:a", "task:b"}
    assert finding.details["policy"] == "report"  # raising there would leave cond unlocked


# --- the watchdog's event-loop rule -----------------------------------------------------------


@pytest.mark.usefixtures("live")
def test_an_event_nobody_can_set_is_a_stall_naming_the_event() -> None:
    async def main() -> None:
        shutdown_requested = asyncio.Event()

        async def drain_connections() -> None:
            await shutdown_requested.wait()

        await asyncio.create_task(drain_connections(), name="drainer")

    scenario = LoopThread(main)
    try:
        finding, report = watchdog_finding("stall")
    finally:
        scenario.cancel_all()
    with pytest.raises(asyncio.CancelledError):
        scenario.join()
    assert "shutdown_requested" in finding.summary
    assert "which nothing has ever set" in finding.summary
    assert set(finding.threads) == {"task:drainer", "task:main"}
    resources = report.snapshot.resource_map()
    assert {resources[r].kind for r in finding.resources} == {"event", "task"}
    drainer = report.snapshot.thread_map()["task:drainer"]
    assert drainer.state == "blocked" and drainer.waits is not None
    assert resources[drainer.waits.resource].label == "shutdown_requested"
    # the test's own thread could still call loop.call_soon_threadsafe: not certain
    assert finding.confidence == "probable"
    assert any("call_soon_threadsafe" in m for m in finding.missing_evidence)
    jsonschema.validate(json.loads(dumps(report)), schema())


@pytest.mark.usefixtures("live")
def test_a_cycle_closed_by_awaiting_a_task_is_found_by_the_watchdog() -> None:
    async def main() -> None:
        lock = asyncio.Lock()
        go = asyncio.Event()

        async def helper() -> None:
            await go.wait()
            async with lock:  # blocks first: owner can still run, no cycle yet
                pass

        async def owner() -> None:
            async with lock:
                child = asyncio.create_task(helper(), name="helper")
                await asyncio.sleep(0)
                go.set()
                await asyncio.sleep(0.01)
                await child  # closes the cycle; awaiting a task is not intercepted

        await asyncio.create_task(owner(), name="owner")

    scenario = LoopThread(main)
    try:
        finding, _ = watchdog_finding("deadlock")
    except BaseException:
        scenario.cancel_all()
        raise
    # Proven (a lock's owner, a task awaited), so policy raise acts on it: DeadlockError in
    # the task of the cycle that waits on the lock, at its await, from where it propagates.
    with pytest.raises(stuck.DeadlockError) as info:
        scenario.join()
    assert info.value.finding is finding
    assert finding.confidence == "certain"
    assert {e.thread for e in finding.cycle} == {"task:owner", "task:helper"}
    assert finding.blocked_behind == ["task:main"]
    assert "found it once the event loop had nothing left to run" in finding.explanation


def _verdict(f: Finding) -> tuple[Any, ...]:
    return (f.kind, f.confidence, sorted(f.threads), sorted(f.blocked_behind),
            sorted((e.thread, e.waits_for, e.held_by) for e in f.cycle), f.summary)


@pytest.mark.usefixtures("live")
def test_the_rules_on_the_watchdogs_snapshot_say_what_the_watchdog_said() -> None:
    # One entry for every source: stuck.rules.evaluate on the live snapshot the watchdog
    # reported (its tasks and the loop's facts as model fields) finds what the watchdog found,
    # the cycle among the tasks and the stall of the task no cycle covers alike.
    async def main() -> None:
        lock = asyncio.Lock()
        go = asyncio.Event()
        never = asyncio.Event()

        async def helper() -> None:
            await go.wait()
            async with lock:
                pass

        async def owner() -> None:
            async with lock:
                child = asyncio.create_task(helper(), name="helper")
                await asyncio.sleep(0)
                go.set()
                await asyncio.sleep(0.01)
                await child  # closes the cycle: an await, which stuck does not intercept

        waiter = asyncio.create_task(never.wait(), name="waiter")
        try:
            await asyncio.gather(asyncio.create_task(owner(), name="owner"), waiter)
        finally:  # no task left behind for the next test to meet
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)

    scenario = LoopThread(main)
    try:
        _, report = watchdog_finding("deadlock")
    except BaseException:
        scenario.cancel_all()
        raise
    with pytest.raises(stuck.DeadlockError):  # policy raise acts on the proven cycle
        scenario.join()
    found = sorted(_verdict(f) for f in report.findings)
    again = sorted(_verdict(f) for f in stuck.rules.evaluate(report.snapshot))
    assert [k[:3] for k in found] == [
        ("deadlock", "certain", ["task:helper", "task:owner"]),
        ("stall", "probable", ["task:main", "task:waiter"])], found
    assert again == found


@pytest.mark.usefixtures("live")
def test_a_lock_left_held_by_a_task_that_ended_is_named_in_the_stall() -> None:
    async def main() -> None:
        session_lock = asyncio.Lock()

        async def leaky() -> None:
            await session_lock.acquire()  # and never releases it

        await asyncio.create_task(leaky(), name="leaky")
        async with session_lock:
            pass

    scenario = LoopThread(main)
    try:
        wait_for_tracked_waits()
        deadline = time.monotonic() + BOUND
        while True:  # its wait is recorded just before it suspends: until it has
            snap, _table, rid_of = livereport.take(with_tasks=False)
            assert not any(t.id.startswith("task:") for t in snap.threads())
            aio.extend_snapshot(snap, rid_of)  # what the watchdog does when it needs them
            main_task = snap.thread_map()["task:main"]
            if main_task.waits is not None or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        assert main_task.waits is not None
        assert snap.resource_map()[main_task.waits.resource].label == "session_lock"
        (finding,) = findings_now()
    finally:
        scenario.cancel_all()
    with pytest.raises(asyncio.CancelledError):
        scenario.join()
    assert finding.kind == "stall" and finding.threads == ["task:main"]
    assert "main waits for lock session_lock, held by task leaky, which ended without " \
           "releasing it" in finding.summary


def test_a_stalled_loop_alone_in_its_process_is_certain_and_aborts(tmp_path: Path) -> None:
    script = tmp_path / "stalled.py"
    script.write_text(  # abort raises no HangError first (issue 11): it is never told
        "import asyncio\n"
        "from stuck.runtime.watchdog import HangError\n"
        "async def main():\n"
        "    config_loaded = asyncio.Event()\n"
        "    async def serve():\n"
        "        while True:\n"
        "            try:\n"
        "                return await config_loaded.wait()\n"
        "            except HangError:\n"
        "                print('told', flush=True)\n"
        "    await asyncio.gather(asyncio.create_task(serve(), name='server'))\n"
        "asyncio.run(main())\n")
    report_file = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "stuck", "run", "--hang-policy", "abort",
                           "--json", str(report_file), str(script)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == EXIT_ABORT, proc.stderr
    assert proc.stdout.splitlines() == []
    assert "STALL (certain)" in proc.stderr
    assert "server waits for event config_loaded, which nothing has ever set" in proc.stderr
    doc = json.loads(report_file.read_text())
    jsonschema.validate(doc, schema())
    (finding,) = doc["findings"]
    assert finding["kind"] == "stall" and set(finding["threads"]) == {"task:server",
                                                                      "task:Task-1"}


def test_hang_policy_raise_raises_in_the_stalled_task_which_recovers(tmp_path: Path) -> None:
    script = tmp_path / "recovers.py"
    script.write_text(
        "import asyncio\n"
        "from stuck.runtime.watchdog import HangError\n"
        "async def main():\n"
        "    config_loaded = asyncio.Event()\n"
        "    async def serve():\n"
        "        try:\n"
        "            await config_loaded.wait()\n"
        "        except HangError as exc:\n"
        "            return f'recovered: {exc.finding.kind}'\n"
        "    print(await asyncio.create_task(serve(), name='server'))\n"
        "asyncio.run(main())\n")
    proc = subprocess.run([sys.executable, "-m", "stuck", "run", "--hang-policy", "raise",
                           str(script)], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "recovered: stall"
    assert "STALL (certain)" in proc.stderr


# --- no finding where nothing is stuck, and the same behaviour as without stuck ---------------


def _no_finding_meanwhile(mode: str, main: Main, waiting: int = 1) -> Any:
    """Run ``main`` in a loop thread; while it waits (instrumented), nothing is found."""
    scenario = LoopThread(main)
    if mode == "instrumented":
        wait_for_tracked_waits(waiting)
        assert findings_now() == []
    result = scenario.join()
    if mode == "instrumented":
        assert watchdog_findings() == []
    return result


def test_a_contended_lock_released_later(mode: str) -> None:
    async def main() -> list[str]:
        lock = asyncio.Lock()
        steps: list[str] = []

        async def holder() -> None:
            async with lock:
                steps.append("holder in")
                await asyncio.sleep(0.3)
                steps.append("holder out")

        async def waiter() -> None:
            await asyncio.sleep(0)
            async with lock:
                steps.append("waiter in")

        await asyncio.gather(holder(), waiter())
        return steps

    assert _no_finding_meanwhile(mode, main) == ["holder in", "holder out", "waiter in"]


@pytest.mark.usefixtures("live")
def test_contended_locks_without_a_cycle_read_no_loop_handles(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # 100 tasks queue on a Lock whose holder waits on a second Lock, held by a task that
    # sleeps: no cycle, but the holder's wait is tracked, so each new waiter walks. Reading
    # every handle the loop has scheduled for each of them made contended locks among many
    # tasks quadratic; the walk must settle this without that read.
    from stuck.runtime.aio import internals

    reads: list[int] = []
    original = internals._LoopView._read_pending

    def counted(self: Any) -> tuple[set[int], set[int]]:
        reads.append(1)
        return original(self)

    monkeypatch.setattr(internals._LoopView, "_read_pending", counted)

    async def main() -> int:
        first, second = asyncio.Lock(), asyncio.Lock()
        done: list[int] = []

        async def sleeper() -> None:
            async with second:
                await asyncio.sleep(0.2)

        async def holder() -> None:
            await asyncio.sleep(0)
            async with first, second:
                done.append(0)

        async def waiter(i: int) -> None:
            await asyncio.sleep(0.01)
            async with first:
                done.append(i)

        await asyncio.gather(sleeper(), holder(), *(waiter(i) for i in range(1, 101)))
        return len(done)

    assert run_loop(main) == 101
    assert reads == []


def test_a_task_that_sleeps_then_sets_an_event(mode: str) -> None:
    async def main() -> list[str]:
        ready = asyncio.Event()

        async def setter() -> str:
            await asyncio.sleep(0.3)
            ready.set()
            return "set"

        async def waiter() -> str:
            await ready.wait()
            return "woke"

        return list(await asyncio.gather(waiter(), setter()))

    assert _no_finding_meanwhile(mode, main) == ["woke", "set"]


def test_tasks_that_only_a_timer_callback_will_wake(mode: str) -> None:
    async def main() -> str:
        ready = asyncio.Event()
        asyncio.get_running_loop().call_later(0.3, ready.set)  # no task will set it: a timer

        async def waiter() -> str:
            await ready.wait()
            return "woke"

        return await asyncio.create_task(waiter())

    assert _no_finding_meanwhile(mode, main) == "woke"


def test_a_task_waiting_on_a_stream_read(mode: str) -> None:
    ours, theirs = socket.socketpair()

    def answer_later() -> None:
        time.sleep(0.3)
        theirs.sendall(b"hello\n")

    async def main() -> list[Any]:
        reader, writer = await asyncio.open_connection(sock=ours)
        line_read = asyncio.Event()

        async def read() -> bytes:
            line = await reader.readline()  # I/O: the other end answers later
            line_read.set()
            return line

        async def after() -> str:
            await line_read.wait()
            return "after the read"

        try:
            return list(await asyncio.gather(read(), after()))
        finally:
            writer.close()

    sender = threading.Thread(target=answer_later, daemon=True)
    sender.start()
    try:
        assert _no_finding_meanwhile(mode, main) == [b"hello\n", "after the read"]
    finally:
        sender.join(BOUND)
        theirs.close()


def test_a_queue_with_a_slow_producer(mode: str) -> None:
    async def main() -> list[int]:
        jobs: asyncio.Queue[int | None] = asyncio.Queue(maxsize=1)

        async def producer() -> None:
            for i in range(3):
                await asyncio.sleep(0.1)
                await jobs.put(i)
            await jobs.put(None)

        async def consumer() -> list[int]:
            done: list[int] = []
            while (job := await jobs.get()) is not None:
                done.append(job)
            return done

        consumed, _ = await asyncio.gather(consumer(), producer())
        return consumed

    assert _no_finding_meanwhile(mode, main) == [0, 1, 2]


def test_conditions_semaphores_and_queues_behave_as_asyncio_s(mode: str) -> None:
    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {}
        cond = asyncio.Condition()
        items: list[int] = []

        async def consume() -> int:
            async with cond:
                await cond.wait_for(lambda: len(items) >= 3)
                return sum(items)

        async def produce() -> None:
            for i in range(3):
                await asyncio.sleep(0)
                async with cond:
                    items.append(i)
                    cond.notify_all()

        out["condition"] = (await asyncio.gather(consume(), consume(), produce()))[:2]
        sem = asyncio.Semaphore(2)
        running = peak = 0

        async def limited() -> None:
            nonlocal running, peak
            async with sem:
                running += 1
                peak = max(peak, running)
                await asyncio.sleep(0.01)
                running -= 1

        await asyncio.gather(*(limited() for _ in range(5)))
        out["semaphore peak"] = peak
        bounded = asyncio.BoundedSemaphore(1)
        try:
            bounded.release()
        except ValueError as exc:
            out["bounded"] = str(exc)
        lifo: asyncio.LifoQueue[int] = asyncio.LifoQueue()
        prio: asyncio.PriorityQueue[int] = asyncio.PriorityQueue()
        for i in (2, 3, 1):
            lifo.put_nowait(i)
            prio.put_nowait(i)
        out["lifo"] = [lifo.get_nowait() for _ in range(3)]
        out["priority"] = [prio.get_nowait() for _ in range(3)]
        small: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
        small.put_nowait(1)
        try:
            small.put_nowait(2)
        except asyncio.QueueFull:
            out["full"] = True
        small.get_nowait()
        small.task_done()
        await small.join()
        try:
            small.get_nowait()
        except asyncio.QueueEmpty:
            out["empty"] = True
        lock = asyncio.Lock()
        try:
            lock.release()
        except RuntimeError as exc:
            out["release unlocked"] = str(exc)
        out["repr"] = re.sub(r"0x[0-9a-f]+", "ADDR", repr(lock))
        cancelled_waiter = asyncio.create_task(lock.acquire())
        await lock.acquire()
        await asyncio.sleep(0)
        cancelled_waiter.cancel()
        await asyncio.gather(cancelled_waiter, return_exceptions=True)
        lock.release()
        out["usable after a cancelled waiter"] = await lock.acquire()
        ev = asyncio.Event()
        ev.set()
        ev.clear()
        out["event"] = ev.is_set()
        return out

    out = run_loop(main)
    assert out == {
        "condition": [3, 3], "semaphore peak": 2, "bounded": "BoundedSemaphore released too many times",
        "lifo": [1, 3, 2], "priority": [1, 2, 3], "full": True, "empty": True,
        "release unlocked": "Lock is not acquired.",
        "repr": "<asyncio.locks.Lock object at ADDR [unlocked]>",
        "usable after a cancelled waiter": True, "event": False,
    }


@pytest.mark.usefixtures("live")
def test_the_tracked_classes_stand_in_for_asyncio_s() -> None:
    assert asyncio.Lock is aio.Lock and asyncio.locks.Lock is aio.Lock
    assert asyncio.Queue is aio.Queue and asyncio.queues.Queue is aio.Queue
    assert asyncio.Lock.__module__ == "asyncio.locks" and asyncio.Lock.__qualname__ == "Lock"
    assert asyncio.Queue.__name__ == "Queue" and asyncio.PriorityQueue.__name__ == "PriorityQueue"
    queue: asyncio.Queue[int] = asyncio.Queue()
    # asyncio's own plumbing stays original; the lock a Condition makes for itself is tracked
    assert type(queue._finished) is aio.primitives._OrigEvent
    assert type(asyncio.Condition()._lock) is aio.Lock  # type: ignore[attr-defined]
    if sys.version_info < (3, 11):  # the loop argument is refused as by asyncio in 3.10
        with pytest.raises(TypeError, match="loop"):
            asyncio.Lock(loop=None)  # type: ignore[call-arg]


@pytest.mark.usefixtures("live")
def test_a_snapshot_shows_tasks_as_threads_with_what_they_hold_and_wait_for() -> None:
    async def main() -> None:
        cache_lock = asyncio.Lock()
        release = asyncio.Event()

        async def holder() -> None:
            async with cache_lock:
                await release.wait()

        async def worker() -> None:
            await asyncio.sleep(0)
            async with cache_lock:
                pass

        tasks = [asyncio.create_task(holder(), name="holder"),
                 asyncio.create_task(worker(), name="worker"),
                 asyncio.create_task(worker(), name="worker")]
        await asyncio.sleep(0.01)
        snapshots.append(stuck.runtime.snapshot())
        release.set()
        await asyncio.gather(*tasks)

    snapshots: list[Report] = []
    run_loop(main)
    (report,) = snapshots
    assert report.findings == []
    threads = report.snapshot.thread_map()
    assert {"task:holder", "task:worker", "task:worker#2"} <= set(threads)
    holder = threads["task:holder"]
    (held,) = holder.holds
    assert report.snapshot.resource_map()[held].label == "cache_lock"
    assert holder.waits is not None and holder.state == "blocked"
    for tid in ("task:worker", "task:worker#2"):
        worker = threads[tid]
        assert worker.name == "worker" and worker.state == "blocked"
        assert worker.waits is not None and worker.waits.resource == held
        assert worker.frames and worker.frames[-1].function == "worker"
    jsonschema.validate(json.loads(dumps(report)), schema())


def test_the_asyncio_example_is_reported_and_recovers_under_raise() -> None:
    example = "examples/asyncio_lock_cycle.py"
    proc = subprocess.run([sys.executable, "-m", "stuck", "run", "--policy", "abort", example],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == EXIT_ABORT, proc.stderr
    # the words of a thread cycle (stuck.rules.wording.cycle_step)
    assert "DEADLOCK (certain): 2 asyncio tasks wait for each other: refund waits for " \
           "Store#1.inventory_lock held by checkout; checkout waits for Store#1.payments_lock " \
           "held by refund" in proc.stderr
    assert "Blocked behind it: Task-1 (task:Task-1)" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "stuck", "run", "--policy", "raise", example],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "sold a book",
        "DeadlockError: 2 asyncio tasks wait for each other: refund waits for "
        "Store#1.inventory_lock held by checkout; checkout waits for Store#1.payments_lock "
        "held by refund",
        "stock {'book': 2}, balance 12",
    ]


LATE_IMPORT = """
import sys
import stuck
stuck.install(policy="raise", signal=None, stalls=False)
print("imported by install:", "asyncio" in sys.modules)
import asyncio  # after install(): its primitives are tracked from here on
from stuck.runtime import aio
print("tracked:", asyncio.Lock is aio.Lock and asyncio.queues.Queue is aio.Queue)

async def main():
    a, b = asyncio.Lock(), asyncio.Lock()
    async def one(first, second):
        async with first:
            await asyncio.sleep(0.01)
            try:
                async with second:
                    return "ok"
            except stuck.DeadlockError:
                return "raised"
    return sorted(await asyncio.gather(one(a, b), one(b, a)))
print("results:", asyncio.run(main()))
stuck.uninstall()
print("restored:", asyncio.Lock is not aio.Lock)
"""


AIO_FIRST = """
import sys
import stuck
stuck.install(policy="raise", signal=None, stalls=False)
import stuck.runtime.aio  # imports asyncio, which the program has not imported yet
import asyncio
print("asyncio imported by stuck.runtime.aio:", "asyncio" in sys.modules)
print("tracked:", asyncio.Lock is stuck.runtime.aio.Lock)
stuck.uninstall()
print("restored:", asyncio.Lock is not stuck.runtime.aio.Lock)
"""


def test_importing_stuck_runtime_aio_before_asyncio_after_install() -> None:
    # asyncio is then imported from inside stuck.runtime.aio's own import: its primitives are
    # replaced once that import is complete, not from a module still half made.
    out = subprocess.run([sys.executable, "-c", AIO_FIRST], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["asyncio imported by stuck.runtime.aio: True",
                                       "tracked: True", "restored: True"], out.stderr


def test_asyncio_is_tracked_when_imported_after_install_and_not_imported_by_it() -> None:
    out = subprocess.run([sys.executable, "-c", LATE_IMPORT], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.splitlines() == ["imported by install: False", "tracked: True",
                                       "results: ['ok', 'raised']", "restored: True"], out.stderr

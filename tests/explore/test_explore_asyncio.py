"""asyncio under stuck explore: the loop is watched, not scheduled (stuck.explore.aio). Once the
thread that runs it waits in its selector with nothing ready, no timer and no I/O, unchanged
across two looks, the live runtime's asyncio walk says what its tasks are stuck on."""

from __future__ import annotations

import asyncio
import threading

from stuck.explore import explore


def _lock_cycle() -> None:
    async def main() -> None:
        a, b = asyncio.Lock(), asyncio.Lock()

        async def first() -> None:
            async with a:
                await asyncio.sleep(0.01)
                async with b:
                    pass

        async def second() -> None:
            async with b:
                await asyncio.sleep(0.01)
                async with a:
                    pass

        await asyncio.gather(asyncio.create_task(first(), name="first"),
                             asyncio.create_task(second(), name="second"))

    asyncio.run(main())


def test_await_cycle_between_tasks_is_a_deadlock_with_its_cycle() -> None:
    found = explore(_lock_cycle, executions=20, seed=0, stall_seconds=5.0)
    v = found.verdict
    assert found.found and v is not None and v.report is not None, v and v.summary
    assert (v.kind, found.executions) == ("deadlock", 1)
    [f] = [f for f in v.report.findings if f.kind == "deadlock"]
    assert f.confidence == "certain"
    assert sorted(f.threads) == ["task:first", "task:second"]
    assert {(e.thread, e.held_by) for e in f.cycle} == {("task:first", "task:second"),
                                                        ("task:second", "task:first")}
    # the cycle is told the way the live runtime tells it, with explore's context first
    assert "event loop's thread waited in its selector" in f.explanation
    # what the loop did is outside the schedule: shown as found, not shrunk; the token replays
    assert found.token is not None and found.decisions == found.unshrunk_decisions
    from stuck.explore import replay

    again = replay(_lock_cycle, found.token, stall_seconds=5.0)
    assert again.verdict is not None and again.verdict.kind == "deadlock"
    assert again.divergence is None


def _event_nobody_sets() -> None:
    async def main() -> None:
        ready = asyncio.Event()

        async def waiter() -> None:
            await ready.wait()

        await asyncio.create_task(waiter(), name="waiter")

    asyncio.run(main())


def test_task_waiting_on_an_event_nobody_sets_is_a_stall() -> None:
    found = explore(_event_nobody_sets, executions=20, seed=0, stall_seconds=5.0)
    v = found.verdict
    assert found.found and v is not None and v.report is not None, v and v.summary
    assert v.kind == "stall"
    [f] = v.report.findings
    assert "task:waiter" in f.threads and "nothing has ever set" in f.summary


def _busy_but_correct() -> None:
    async def main() -> None:
        lock = asyncio.Lock()
        total = [0]

        async def worker() -> None:
            for _ in range(5):
                async with lock:
                    await asyncio.sleep(0.001)  # timers fall due: the loop keeps real time
                    total[0] += 1

        await asyncio.gather(*(worker() for _ in range(3)))
        assert total[0] == 15

    asyncio.run(main())


def test_correct_asyncio_program_passes_and_threads_are_still_explored() -> None:
    found = explore(_busy_but_correct, executions=5, seed=0, stall_seconds=5.0)
    assert not found.found, found.verdict and found.verdict.summary
    assert found.executions == 5


def test_loop_another_thread_could_wake_is_no_more_than_a_hang() -> None:
    """The loop is quiet in its selector, its task awaiting a future that a controlled thread
    would complete with ``call_soon_threadsafe``; that thread is blocked, but on what the
    asyncio rule cannot see into, so it claims nothing and explore says no more than a hang."""
    def program() -> None:
        gate = threading.Lock()
        gate.acquire()

        async def main() -> None:
            loop = asyncio.get_running_loop()
            done = loop.create_future()

            def worker() -> None:
                with gate:  # never released: the worker blocks for good
                    pass
                loop.call_soon_threadsafe(done.set_result, None)

            threading.Thread(target=worker, name="worker").start()
            await done

        asyncio.run(main())

    found = explore(program, executions=5, seed=0, stall_seconds=1.0)
    v = found.verdict
    assert found.found and v is not None and v.report is not None
    assert v.kind == "hang"
    assert [(f.kind, f.confidence) for f in v.report.findings] == [("hang", "possible")]

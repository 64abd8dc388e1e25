"""Controlled threads on reused OS threads look like new threads to the program."""

from __future__ import annotations

import contextvars
import sys
import threading
from typing import Any

import pytest

from stuck.explore import engine, explore, workers

pytestmark = pytest.mark.skipif(not workers.available(),
                                reason="OS threads are reused only on CPython 3.10-3.12")

# Module-level state that survives executions: what a reused OS thread could leak.
_local = threading.local()
_var: contextvars.ContextVar[int] = contextvars.ContextVar("_var", default=0)


def _program(seen: list[dict[str, Any]]) -> Any:
    def body() -> None:
        me = threading.current_thread()
        row = {
            "name": me.name,
            "current_is_self": me is holder.get(me.name),
            "ident_ok": me.ident == threading.get_ident(),
            "native_ok": getattr(me, "native_id", None) == threading.get_native_id(),
            "local_before": getattr(_local, "value", None),
            "var_before": _var.get(),
            "alive": me.is_alive(),
            "trace": sys.gettrace(),
        }
        _local.value = me.name
        _var.set(7)
        seen.append(row)

    holder: dict[str, threading.Thread] = {}

    def program() -> None:
        threads = [threading.Thread(target=body, name=f"w{i}") for i in range(3)]
        for t in threads:
            holder[t.name] = t
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        holder.clear()

    return program


def test_reused_threads_start_clean_every_execution() -> None:
    seen: list[dict[str, Any]] = []
    result = explore(_program(seen), executions=30, seed=3, strategy="random")
    assert not result.found, result.verdict and result.verdict.summary
    assert result.notes == []  # the pool's own OS threads are not the program's
    assert len(seen) == 90
    for row in seen:
        assert row["current_is_self"], row
        assert row["ident_ok"] and row["native_ok"], row
        assert row["alive"], row
        # nothing set by an earlier execution on the same OS thread is visible
        assert row["local_before"] is None, row
        assert row["var_before"] == 0, row
        assert row["trace"] is None, row


def test_os_threads_are_reused_and_gone_after_the_exploration() -> None:
    before = threading.active_count()
    pool = workers.WorkerPool()
    engine._pool[0] = pool
    try:
        seen: list[dict[str, Any]] = []
        result = explore(_program(seen), executions=50, seed=0)
        assert not result.found
        # four controlled threads per execution (the target's and three it starts), on at most
        # a handful of OS threads in all
        assert 4 <= pool.started <= 8
    finally:
        engine._pool[0] = None
        pool.close()
    # finished controlled threads are not left registered with threading
    assert threading.active_count() == before


def test_finished_threads_report_dead_to_uncontrolled_code() -> None:
    made: list[threading.Thread] = []

    def program() -> None:
        t = threading.Thread(target=lambda: None, name="short")
        made.append(t)
        t.start()
        t.join()

    result = explore(program, executions=20, seed=0)
    assert not result.found
    assert len(made) == 20
    for t in made:
        assert not t.is_alive()
        t.join(timeout=1.0)  # returns at once: the thread is over
        assert t.ident is not None


def test_trace_hook_installed_in_every_controlled_thread() -> None:
    calls: list[str] = []

    def tracer(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_name == "traced_body":
            calls.append(threading.current_thread().name)

    def traced_body() -> None:
        pass

    def program() -> None:
        t = threading.Thread(target=traced_body, name="traced")
        t.start()
        t.join()

    threading.settrace(tracer)
    try:
        result = explore(program, executions=10, seed=0)
    finally:
        threading.settrace(None)  # type: ignore[arg-type]
    assert not result.found
    assert calls.count("traced") == 10


def test_a_stray_post_does_not_end_a_parked_worker() -> None:
    pool = workers.WorkerPool()
    engine._pool[0] = pool
    try:
        assert not explore(_program([]), executions=3, seed=0).found
        parked = list(pool.free)
        assert parked
        for w in parked:
            w.go.post()  # as an execution given up on posts every baton
        result = explore(_program([]), executions=10, seed=1, stall_seconds=2.0)
        # an OS thread that had taken the stray post for its end would never run its next
        # thread: the execution would hang
        assert not result.found, result.verdict and result.verdict.summary
        assert result.notes == []
    finally:
        engine._pool[0] = None
        pool.close()

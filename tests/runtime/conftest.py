"""Fixtures for the live instrumentation tests: installed for one test at a time, never left on."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

import stuck.runtime
from stuck.runtime import patch, policy


@pytest.fixture
def live() -> Iterator[io.StringIO]:
    """Instrumentation installed with policy ``raise``; yields the stream reports go to."""
    if patch.active() is not None:
        pytest.skip(f"another instrumentation is installed: {patch.active()}")
    stream = io.StringIO()
    stuck.runtime.install(policy="raise", report_stream=stream, signal=None)
    try:
        yield stream
    finally:
        stuck.runtime.uninstall()


@pytest.fixture(params=["original", "instrumented"])
def mode(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a scenario twice: with the standard primitives and with the tracked ones."""
    if request.param == "original":
        yield "original"
        return
    if patch.active() is not None:
        pytest.skip(f"another instrumentation is installed: {patch.active()}")
    stuck.runtime.install(policy="raise", report_stream=io.StringIO(), signal=None)
    try:
        yield "instrumented"
    finally:
        stuck.runtime.uninstall()


@pytest.fixture
def act_on_probable(live: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's opt-in (``stuck.install(act_on="probable")``, ``--act-on probable``): raise
    on probable cycles too, at the moment they form.

    For cycles through futures, queues or conditions that the test's own thread, able to run
    (its waits are timed) and holding the pool or the queues, could still end: such a cycle
    can never be proven, and without the opt-in raise leaves it alone. After ``live``, whose
    install() sets the default."""
    monkeypatch.setattr(policy.settings, "act_on", "probable")

"""Fixtures for the live instrumentation tests: installed for one test at a time, never left on."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

import stuck.runtime
from stuck.runtime import patch


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

"""Exceptions and exit codes shared by every part of stuck."""

from __future__ import annotations

TYPE_CHECKING = False  # not from typing: see stuck/__init__.py

if TYPE_CHECKING:
    from stuck.model import Finding, Report

# Exit codes of the command line (DESIGN.md): 0 nothing found, 1 findings, 2 bad usage or
# unreadable input. A program stopped by the ``abort`` policy exits with EXIT_ABORT, chosen
# outside the range programs commonly use for themselves.
EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_ABORT = 86


class StuckError(Exception):
    """Base class of stuck's own exceptions."""


def finding_line(finding: Finding) -> str:
    """A finding's summary as an exception's message, in one line: the names in it escaped (a
    thread name with a newline must not start a line of its own in a traceback)."""
    from stuck.report.names import clean

    return clean(finding.summary)


class DeadlockError(StuckError):
    """Raised (policy ``raise``) in the thread whose wait would close a deadlock cycle.

    The thread did not start waiting and holds exactly what it held before the call, so it can
    release its locks and recover. ``finding`` says what the cycle was; ``report`` is the full
    snapshot at that moment.
    """

    def __init__(self, finding: Finding, report: Report | None = None) -> None:
        super().__init__(finding_line(finding))
        self.finding = finding
        self.report = report


class StallError(StuckError):
    """Raised (policy ``raise``) in the main thread when it is blocked for good behind a stall
    or deadlock the watchdog has proven (under ``pytest --stuck``: the test fails with the
    report instead of hanging the session). ``finding`` says what was found; ``report`` is the
    full snapshot. The stalled threads themselves still wait: only the main thread, blocked in
    a wait a signal can interrupt, can be woken to recover."""

    def __init__(self, finding: Finding, report: Report | None = None,
                 text: str | None = None) -> None:
        super().__init__(text or f"{finding.kind.upper()} ({finding.confidence}): "
                         f"{finding_line(finding)}; stuck wrote the full report when it found "
                         "it")
        self.finding = finding
        self.report = report


class HangError(StuckError):
    """Raised by the hang policy ``raise`` (``--hang-policy raise``) in the chosen thread when
    the watchdog finds a hang or a stall. ``finding`` is what was found. The exception arrives
    when the thread next runs Python code: a thread blocked inside a C call (a socket read)
    receives it when that call returns. Import it as ``from stuck import HangError``."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding_line(finding))
        self.finding = finding


class UnrecognisedInput(StuckError, ValueError):
    """A dump that no parser recognises, or that a parser cannot read."""

"""What happens when a deadlock is found: ``report``, ``raise`` or ``abort``.

- ``report`` (default): write the report (text to the report stream, JSON to the ``--json``
  file) and let the threads keep waiting, as they would have without stuck. A cycle is
  reported once.
- ``raise``: write the report, then raise ``stuck.DeadlockError`` in the thread whose wait
  would close the cycle, before it blocks, so it holds exactly what it held before the call.
- ``abort``: write the report, flush, and end the process with ``EXIT_ABORT``.

Two cases fall back to ``report`` whatever the policy: a cycle closed by a timed wait (the
program will see the timeout), and the re-acquire of a lock at the end of ``Condition.wait``
(the caller expects to hold the lock when ``wait`` returns; raising there would leave it
without the lock inside its ``with`` block).
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from typing import Literal, TextIO

from stuck.errors import EXIT_ABORT, DeadlockError
from stuck.model import Report
from stuck.runtime import registry
from stuck.runtime.detect import Cycle
from stuck.tracebacks import hide_in_pytest

# pytest leaves these frames out of the tracebacks it shows (STUCK_DEBUG=1 keeps them).
__tracebackhide__ = hide_in_pytest()

Policy = Literal["report", "raise", "abort"]
POLICIES: tuple[Policy, ...] = ("report", "raise", "abort")


@dataclass(slots=True)
class Settings:
    policy: Policy = "report"
    json_path: str | None = None
    html_path: str | None = None
    stream: TextIO | None = None  # None: sys.stderr at the time of writing


settings = Settings()
_reported: set[frozenset[int]] = set()
findings_seen: list[Report] = []  # reports of every cycle found since install, oldest first
MAX_KEPT = 100


def reset() -> None:
    _reported.clear()
    findings_seen.clear()


def write_report(report: Report, stream: TextIO | None = None,
                 json_path: str | None = None) -> None:
    """Write the text report to the stream and the JSON report to the file, never raising."""
    from stuck.report import json as json_report
    from stuck.report import text as text_report

    out = stream or settings.stream or sys.stderr
    try:
        out.write(text_report.render(report))
        out.flush()
    except Exception:
        pass
    path = json_path if json_path is not None else settings.json_path
    if path:
        try:
            tmp = f"{path}.tmp{os.getpid()}"
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(json_report.dumps(report))
                f.write("\n")
            os.replace(tmp, path)
        except Exception as exc:
            with contextlib.suppress(Exception):
                out.write(f"stuck: could not write the JSON report to {path}: {exc}\n")
    if settings.html_path:
        from stuck.report.html import write_file_or_say
        write_file_or_say(report, settings.html_path, out)


def on_cycle(me: int, cycle: Cycle, may_raise: bool) -> None:
    """Apply the policy to a cycle that ``me``'s wait closes (called before ``me`` blocks)."""
    key = cycle.key()
    with registry.leaf:
        if key in _reported:
            return
        _reported.add(key)
    effective: Policy = settings.policy
    if cycle.timed or (effective == "raise" and not may_raise):
        effective = "report"
    from stuck.runtime.livereport import report_for

    report = report_for(cycle, effective)
    if len(findings_seen) < MAX_KEPT:
        findings_seen.append(report)
    write_report(report)
    if effective == "abort":
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        with contextlib.suppress(Exception):
            end_children()
        os._exit(EXIT_ABORT)
    if effective == "raise":
        raise DeadlockError(report.findings[0], report)


def end_children(grace: float = 1.0) -> None:
    """Before an abort: end the worker processes multiprocessing started, as its own exit
    handler would, so none is left running without its parent (os._exit skips that handler)."""
    mp = sys.modules.get("multiprocessing")
    if mp is None:
        return
    import time

    workers = list(mp.active_children())
    for w in workers:
        w.terminate()
    deadline = time.monotonic() + grace
    for w in workers:
        w.join(max(0.0, deadline - time.monotonic()))
        if w.is_alive():
            w.kill()
            w.join(grace)

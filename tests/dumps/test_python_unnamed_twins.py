"""Plain py-spy and faulthandler dumps of a lock wait made from the program's own line, beside
busy programs that print the same.

`with lock:` acquires in C: py-spy (without `--native`) and faulthandler show no frame for it,
so the thread stands on its own line with nothing above it, as a thread in `time.sleep()` or
`sock.recv()` does. The dump zoo's join_holding, self_relock and lock_inversion (stuck) and
the unseen set's recv_join_idle and sleep_join_idle and the zoo's busy_pool (not stuck) then
print the same picture: MainThread in `Thread.join` without a timeout, and threads idle at a
program line under `Thread.run`. Everything else those texts hold is the same too: py-spy
marks every thread idle (a thread blocked in a lock acquire holds no GIL, as a sleeper does),
the stdlib frames are `Thread.run` and `Thread.join` at lines that say only how the thread was
started and that the join has no timeout, and thread names are the program's labels. A rule
that told these texts apart would be reading the file, not the runtime: they must get the same
verdict. (With `--native`, pystack or `--source` the call is shown and the zoo finds the
deadlocks.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.dumps.helpers import analyse_text

from stuck.model import Report

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ZOO_PY = FIXTURES / "dumpzoo" / "cases" / "python"
UNSEEN_PY = FIXTURES / "unseen" / "cases" / "python"


def _picture(report: Report) -> list[tuple[str, str | None, float | None]]:
    """Each thread's state and what it waits for (kind, timeout): what the rules read."""
    res = report.snapshot.resource_map()
    return sorted((t.state, res[t.waits.resource].kind if t.waits else None,
                   t.waits.timeout if t.waits else None) for t in report.snapshot.threads())


def _verdicts(report: Report) -> list[tuple[str, str, int]]:
    return sorted((f.kind, f.confidence, len(f.threads)) for f in report.findings)


@pytest.mark.parametrize("style", ["pyspy", "faulthandler"])
@pytest.mark.parametrize(("stuck", "busy"), [("join_holding", "recv_join_idle"),
                                             ("self_relock", "sleep_join_idle")])
def test_a_join_on_a_lock_waiter_prints_as_a_join_on_a_sleeper_or_a_reader(
        stuck: str, busy: str, style: str) -> None:
    stuck_report = analyse_text((ZOO_PY / stuck / f"{style}.txt").read_text())
    busy_report = analyse_text((UNSEEN_PY / busy / f"{style}.txt").read_text())
    picture = _picture(stuck_report)
    assert picture == _picture(busy_report)
    assert picture == [("blocked", "thread", None), ("unknown", None, None),
                       ("unknown", None, None)]
    assert _verdicts(stuck_report) == _verdicts(busy_report) == []


@pytest.mark.parametrize("stuck", ["join_holding", "self_relock", "lock_inversion"])
def test_an_excerpt_of_a_lock_waiter_and_a_joiner_prints_as_a_busy_programs(stuck: str) -> None:
    # The zoo's ellipsis excerpts: MainThread joining and one thread at a program line; the
    # busy pool's excerpt shows main joining its producer, which sleeps between jobs.
    stuck_report = analyse_text((ZOO_PY / stuck / "excerpt-ellipsis.txt").read_text())
    busy_report = analyse_text((ZOO_PY / "busy_pool" / "excerpt-ellipsis.txt").read_text())
    assert _picture(stuck_report) == _picture(busy_report) == [
        ("blocked", "thread", None), ("unknown", None, None)]
    assert _verdicts(stuck_report) == _verdicts(busy_report) == []


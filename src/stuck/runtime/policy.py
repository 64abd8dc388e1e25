"""What happens when a deadlock is found: ``report``, ``raise`` or ``abort``.

- ``report`` (default): write the report (text to the report stream, JSON to the ``--json``
  file) and let the threads keep waiting, as they would have without stuck. A cycle is
  reported once.
- ``raise``: write the report, then raise ``stuck.DeadlockError`` in the thread whose wait
  would close the cycle, before it blocks, so it holds exactly what it held before the call.
- ``abort``: write the report, flush, and end the process with ``EXIT_ABORT``.

``raise`` and ``abort`` act only on ``certain`` findings, unless the user asked for more
(``settings.act_on``, ``--act-on probable``): ending or interrupting a program is right only
when the finding is proven. A cycle found when a thread blocks is certain when ownership proves
every step of it (locks, joins); one that passes through a semaphore, a queue, a condition or a
future rests on who used it so far, and is probable. Such a cycle is reported, its threads keep
waiting, and the watchdog re-checks it (``stuck.runtime.stall``): once its waits have been seen
unchanged twice and no thread able to run can reach what they wait for, it is certain, and the
policy acts then (``abort`` exits; ``raise`` raises where the program can recover: in the
thread that closed the cycle when it waits in slices, for a lock, a join or a future, else in
the main thread when its own wait is in the finding, else in a task of it, else in the main
thread blocked behind it; when none can take it while the main thread waits on it, the
program is ended as ``abort`` would, and so is a program that has ended while the interpreter
waits for threads proven stuck: see ``watchdog``). One that can never be proven (a thread able
to run could still release the semaphore) is left alone, and its reports say what is missing.

Two cases fall back to ``report`` whatever the policy: a cycle closed by a timed wait (the
program will see the timeout), and the re-acquire of a lock at the end of ``Condition.wait``
(the caller expects to hold the lock when ``wait`` returns; raising there would leave it
without the lock inside its ``with`` block).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from dataclasses import dataclass
from typing import IO, Any, Literal, TextIO

from stuck.errors import EXIT_ABORT, DeadlockError, StallError
from stuck.model import Confidence, Finding, Report
from stuck.rules.confidence import interrupts_only, steps_a_handler_could_end, timed_confidence
from stuck.runtime import detect, framewalk, registry
from stuck.runtime.detect import Cycle
from stuck.tracebacks import hide_in_pytest

# pytest leaves these frames out of the tracebacks it shows (STUCK_DEBUG=1 keeps them).
__tracebackhide__ = hide_in_pytest()

Policy = Literal["report", "raise", "abort"]
POLICIES: tuple[Policy, ...] = ("report", "raise", "abort")
# The least confidence ``raise`` and ``abort`` act on: ``certain`` (proven) by default, or
# ``probable`` when the user opts in.
ActOn = Literal["certain", "probable"]
ACT_ON: tuple[ActOn, ...] = ("certain", "probable")


@dataclass(slots=True)
class Settings:
    policy: Policy = "report"
    act_on: ActOn = "certain"
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
    detect._awaiting_proof.clear()
    detect._proofs.clear()


def write_report(report: Report, stream: IO[str] | None = None,
                 json_path: str | None = None, html_path: str | None = None,
                 text: str | None = None) -> None:
    """Write the text report (``text``, or the rendered report) to the stream, the JSON
    report and the HTML page to their files, never raising. The one place reports are
    written: the deadlock policy and the watchdog both come here."""
    from stuck.report import text as text_report

    out = stream or settings.stream or sys.stderr
    try:
        out.write(text if text is not None else text_report.render(report))
        out.flush()
    except Exception:
        pass
    path = json_path if json_path is not None else settings.json_path
    if path:
        write_json(report, path, out)
    page = html_path if html_path is not None else settings.html_path
    if page:
        from stuck.report.html import write_file_or_say
        write_file_or_say(report, page, out)


def write_json(report: Report, path: str, out: IO[str]) -> None:
    """The JSON report, written whole or not at all (a temporary file, then renamed): a
    reader never sees half a report, even when the program is aborted right after."""
    from stuck.report import json as json_report

    try:
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json_report.dumps(report))
            f.write("\n")
        os.replace(tmp, path)
    except Exception as exc:
        with contextlib.suppress(Exception):
            out.write(f"stuck: could not write the JSON report to {path}: {exc}\n")


def acts_on(confidence: Confidence | str) -> bool:
    """Whether ``raise``/``abort`` act on a finding of this confidence (``settings.act_on``)."""
    if confidence == "certain":
        return True
    return confidence == "probable" and settings.act_on == "probable"


def block_time_confidence(cycle: Cycle) -> Confidence:
    """The confidence of a cycle found when a thread or task blocked, as its report gives it
    (``stuck.rules.confidence``): certain when ownership proves every step, a step less when a
    wait of it has a timeout."""
    confidence: Confidence = "certain" if cycle.proven else "probable"
    if confidence == "certain" and _handler_could_end(cycle):
        confidence = "probable"  # as its report says (confidence.signal_handler_doubt)
    return timed_confidence(confidence) if cycle.timed else confidence


def _handler_could_end(cycle: Cycle) -> bool:
    """A Python signal handler of the program (not one that only interrupts) is installed,
    and could end a wait of ``cycle``: while the signal may still come, it is not proven."""
    if not steps_a_handler_could_end(detect.op_key(s.record) for s in cycle.steps):
        return False
    from stuck.runtime.sighandlers import python_signal_handlers

    return any(not interrupts_only(h) for h in python_signal_handlers())


def on_cycle(me: int, cycle: Cycle, may_raise: bool) -> None:
    """Apply the policy to a cycle that ``me``'s wait closes (called before ``me`` blocks)."""
    key = cycle.key()
    with registry.leaf:
        if key in _reported:
            return
        _reported.add(key)
    effective: Policy = settings.policy
    held_back = False  # raise/abort asked for, left to the watchdog until proven
    if cycle.timed or (effective == "raise" and not may_raise):
        effective = "report"
    elif effective != "report" and not acts_on(block_time_confidence(cycle)):
        effective, held_back = "report", True
    from stuck.runtime.livereport import UNPROVEN
    from stuck.runtime.reporting import report_for

    report = report_for(cycle, UNPROVEN if held_back else effective)
    if held_back:
        detect.await_proof(cycle)
        for f in report.findings:
            f.explanation += "\n" + not_acted_on(settings.policy, at_block=True)
            f.details["policy"] = settings.policy
            f.details["policy_waits_for_proof"] = True
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


def not_acted_on(policy: str, at_block: bool = False) -> str:
    """Why ``--policy raise``/``abort`` left a probable finding alone, and what ends the
    program on it anyway. ``at_block``: said when the thread closing the cycle blocked."""
    recheck = ("stuck leaves the threads waiting and re-checks the cycle in the watchdog; it "
               "acts as soon as it proves that nothing able to run can end these waits"
               if at_block else
               "stuck leaves the program waiting, and acts if it later proves the finding")
    return (f"Policy {policy} acts only on certain findings, and this one is probable (what "
            f"keeps it from certain is listed under what the source does not show): {recheck}. "
            "It does not end a program on a probable finding unless asked to (--act-on "
            "probable, stuck.install(act_on=\"probable\")): stop it yourself (Ctrl-C, kill), "
            "or give its waits a timeout.")


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


# --- raising in the main thread -----------------------------------------------------------
#
# A stall or deadlock the watchdog proves has no thread about to block to raise in: every
# thread of it already waits in C. The main thread is the exception: a wait there (a join, an
# Event, a lock) is interrupted by a signal, whose handler runs in it. So under ``raise``,
# when the main thread is blocked for good in or behind a proven finding, the watchdog sends
# it RAISE_SIGNAL and the handler raises StallError (DeadlockError for a cycle) there: a
# program (or a test under ``pytest --stuck``) can recover instead of hanging.

RAISE_SIGNAL: int | None = getattr(signal, "SIGUSR2", None)
_main: dict[str, Any] = {"armed": False, "pending": None}


def arm_main_raise() -> None:
    """Set the handler (from the main thread), only while RAISE_SIGNAL has its default action:
    a handler the program set stays the program's."""
    if RAISE_SIGNAL is None or threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(RAISE_SIGNAL) is signal.SIG_DFL:
            signal.signal(RAISE_SIGNAL, _raise_pending)
            _main["armed"] = True
    except (ValueError, OSError):
        _main["armed"] = False


def disarm_main_raise() -> None:
    if not _main["armed"] or RAISE_SIGNAL is None:
        return
    _main["armed"] = False
    _main["pending"] = None
    with contextlib.suppress(ValueError, OSError):
        if signal.getsignal(RAISE_SIGNAL) is _raise_pending:
            signal.signal(RAISE_SIGNAL, signal.SIG_DFL)


def _raise_pending(signum: int, frame: Any) -> None:
    exc = _main["pending"]
    _main["pending"] = None
    if exc is not None and not detect.in_shutdown(frame) \
            and threading.main_thread().is_alive():
        # (Not once the main thread has reached interpreter exit since the error was sent:
        # no code of the program is left there to recover; see raise_in_main.)
        raise exc


def error_for(finding: Finding, report: Report, text: str | None = None) -> BaseException:
    """The error ``raise`` raises for a finding the watchdog proved: DeadlockError for a
    cycle, StallError for a stall (its message: the finding in one line, or ``text``)."""
    if finding.kind == "deadlock":
        return DeadlockError(finding, report)
    return StallError(finding, report, text)


def raise_in_main(finding: Finding, report: Report, only_in: bool = False) -> bool:
    """Raise the finding in the main thread if it is blocked for good in it, or (unless
    ``only_in``) behind it; True when the signal was sent. Never at interpreter exit: no
    program code is left there to recover (nor in the exit callbacks after it: the
    interpreter ignores an error raised there; see ``detect.in_exit_callbacks``)."""
    main = threading.main_thread()
    if not _main["armed"] or RAISE_SIGNAL is None or main.ident is None \
            or not main.is_alive():
        return False
    me = f"0x{main.ident:x}"
    if me not in finding.threads and (only_in or me not in finding.blocked_behind):
        return False
    if framewalk.read_one(main.ident, detect.in_shutdown):
        return False
    # The report itself was written (stderr, by default) when the finding was made: the
    # error's message is the finding in one line, not the report a second time.
    exc = error_for(finding, report)
    _main["pending"] = exc
    try:
        signal.pthread_kill(main.ident, RAISE_SIGNAL)
    except (ValueError, OSError):
        _main["pending"] = None
        return False
    return True


detect.handle_cycles_with(on_cycle)  # detection hands every cycle it finds to the policy

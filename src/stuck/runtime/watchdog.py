"""The watchdog: notices threads that stop making progress and says why, as far as it can.

Deadlock detection works at the moment a thread blocks, and the stall rules (``stall.py``) prove
waits that nothing can end. Many hangs are neither: a thread reads a socket that never answers,
or spins on a flag nobody sets. The watchdog is the net under both. A daemon thread samples
every thread's Python stack (``sys._current_frames()``) at a fixed interval and keeps, per
thread, the evidence that it is moving:

- it is at a code position (function and line) it was not seen at before: it left the loop
  it was in;
- its stack has a shape not seen before (calls into new code);
- its state differs from the sample before: running, or in a wait, an I/O call or a sleep,
  and which call.

What a thread does between two samples is not seen. A poll loop (``while not ready:
time.sleep(0.1)``) enters and leaves its sleep many times between samples, and is seen
sleeping on the same line at every one: it makes no progress by this measure, and it is right
that it does not, since it goes round the same line in the same state until someone sets the
flag, which may never happen.

A local variable changing is not progress: a loop that increments a counter while it waits for
a flag nobody sets is as stuck as one that does nothing, and the two cannot be told apart from
a loop that computes without end. Neither is work done again and again by the same lines: a
loop that submits 20,000 jobs to a pool, slowed past the limit by a loaded machine, is reported
as a hang. Counting the tracked operations of each thread (the ``ops`` hook) would tell it apart
from a spin on a flag, but not a spin that polls a queue, and it would put a per-thread count on
every lock release; it is not wired in. Keep the hang limit above the longest such loop.

A thread with none of these for longer than the hang limit is *not progressing*. Whether that is
reported depends on what it is doing:

- in a wait the instrumentation explains (a lock, a condition, a queue, ...): the deadlock and
  stall rules decide; waiting for work is normal and never a hang by itself;
- idle by its stack (a pool worker waiting for a job, a server in ``accept``, an asyncio loop
  in ``select``, a ``sleep``): not a hang, unless others wait for a lock it holds;
- anything else (running, or in I/O such as a socket read): a **hang**, reported with its stack,
  and with the threads that wait behind it.

The report is rate-limited and acted on by policy (``_act``). The hang policy acts on hangs
(the user asked for it with ``--hang-after``) and on proven stalls and deadlocks: ``raise``
raises :class:`HangError` in a chosen thread, never while it runs code of threading, queue,
concurrent.futures, asyncio or stuck, where an exception between two steps could leave a lock
held or a waiter unwoken (a later check raises it); ``abort`` ends the process at once with 86,
never
raising first (a thread killed by it could let the program exit 0). The deadlock policy
(``--policy``) acts on proven stalls and deadlocks as on cycles found at block time, and is
how a cycle found at block time without proof (through a semaphore, queue, condition or
future) is acted on once the rules prove it: ``abort`` ends the process; ``raise`` raises
``StallError`` (``DeadlockError`` for a cycle) in the main thread when it is blocked in or
behind one (``policy.raise_in_main``). With ``act_on="probable"`` it acts on probable ones
too. Under all of it, ``faulthandler.dump_traceback_later`` is
armed and kept re-armed by the watchdog thread: if Python code cannot run at all (a C extension
holds the GIL), the C-level dump still fires.
"""

from __future__ import annotations

import _thread
import atexit
import contextlib
import ctypes
import faulthandler
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import CodeType, FrameType
from typing import IO, Protocol

from stuck.errors import EXIT_ABORT, HangError
from stuck.model import (
    Finding,
    Frame,
    Group,
    Process,
    Report,
    Resource,
    Snapshot,
    Source,
    Thread,
    ThreadState,
    Wait,
)
from stuck.rules.hang import hang_finding, held_up_by, is_hang
from stuck.runtime import detect, framewalk, registry
from stuck.runtime.activity import frame_activity, frames_of
from stuck.runtime.ownthread import start_own_thread
from stuck.runtime.policy import Policy
from stuck.runtime.tracing import in_library_internals, in_own_steps
from stuck.stacks.python import Activity
from stuck.tracebacks import debugging
from stuck.tracebacks import hide_in_pytest as _hide_in_pytest

Stack = tuple[Activity, list[Frame]]  # a thread's activity and frames, read in one pass

PROOF_INTERVAL = 0.1  # seconds between looks while a cycle waits for its proof
HELD_BACK_NOTE = 8  # checks a HangError could not be raised at before saying so




# ---------------------------------------------------------------------------------------------
# Durations on the command line

_DURATION = re.compile(r"\A\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|min|h)?\s*\Z")
_UNIT = {None: 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """``"30s"``, ``"500ms"``, ``"2m"``, ``"1.5"`` (seconds) -> seconds; ValueError otherwise."""
    m = _DURATION.match(text)
    if m is None:
        raise ValueError(f"not a duration: {text!r} (write it like 30s, 500ms, 2m or 1.5)")
    value = float(m.group(1)) * _UNIT[m.group(2)]
    if value <= 0:
        raise ValueError(f"a duration must be more than zero: {text!r}")
    return value


# ---------------------------------------------------------------------------------------------
# Progress

_MAX_SEEN = 512


@dataclass(slots=True)
class ThreadProgress:
    """What the watchdog remembers of one thread between samples."""

    ident: int
    first_seen: float
    last_progress: float
    seen: set[tuple[int, int]] = field(default_factory=set)  # (id(code), line) reached
    shapes: set[tuple[int, ...]] = field(default_factory=set)  # stack shapes reached
    last_ops: int | None = None
    last_activity: Activity = "running"
    last_call: str | None = None
    samples_since_progress: int = 0  # samples taken after the one that last showed progress
    codes: list[CodeType] = field(default_factory=list)  # keeps ids in `seen` meaningful

    def stalled_for(self, now: float) -> float:
        return now - self.last_progress


def _shape(frame: FrameType, limit: int = 24) -> tuple[int, ...]:
    out: list[int] = []
    f: FrameType | None = frame
    while f is not None and len(out) < limit:
        out.append(id(f.f_code))
        f = f.f_back
    return tuple(out)


class ProgressTracker:
    """Per-thread progress from successive samples of ``sys._current_frames()``."""

    def __init__(self) -> None:
        self.threads: dict[int, ThreadProgress] = {}

    def sample(self, frames: dict[int, FrameType], now: float,
               ops: Callable[[int], int | None] | None = None) -> None:
        for ident in list(self.threads):
            if ident not in frames:
                del self.threads[ident]
        for ident, frame in frames.items():
            p = self.threads.get(ident)
            count = ops(ident) if ops is not None else None
            activity, call = frame_activity(frame)
            if p is None:
                p = ThreadProgress(ident=ident, first_seen=now, last_progress=now)
                self.threads[ident] = p
                self._remember(p, frame)
                p.last_ops, p.last_activity, p.last_call = count, activity, call
                continue
            moved = False
            if count is not None and count != p.last_ops:
                moved = True
            if activity != p.last_activity or call != p.last_call:
                moved = True  # another state than at the sample before
            if self._remember(p, frame):
                moved = True
            if moved:
                p.last_progress = now
                p.samples_since_progress = 0
            else:
                p.samples_since_progress += 1
            p.last_ops, p.last_activity, p.last_call = count, activity, call

    @staticmethod
    def _remember(p: ThreadProgress, frame: FrameType) -> bool:
        """Record the frame's position and stack shape; True when either is new."""
        new = False
        if len(p.seen) > _MAX_SEEN:
            p.seen.clear()
            p.codes.clear()
        position = (id(frame.f_code), frame.f_lineno)
        if position not in p.seen:
            p.seen.add(position)
            p.codes.append(frame.f_code)
            new = True
        if len(p.shapes) > _MAX_SEEN:
            p.shapes.clear()
        shape = _shape(frame)
        if shape not in p.shapes:
            p.shapes.add(shape)
            new = True
        return new


# ---------------------------------------------------------------------------------------------
# Configuration


@dataclass(slots=True)
class WatchdogConfig:
    """How the watchdog behaves. Only ``hang_after`` is required.

    ``interval``: seconds between samples (default: a quarter of the limit, within 0.05-2 s).
    ``policy``: ``report`` | ``raise`` | ``abort`` (each step includes the ones before).
    ``raise_in``: where ``raise`` raises: ``"stuck"`` (the hung or stalled thread itself),
    ``"main"``, or a thread ident.
    ``report_every``: at most one report per this many seconds unless the findings change.
    ``stall_after``: how long a durable wait must last before the stall rules look at it.
    ``last_resort``: arm ``faulthandler.dump_traceback_later`` as the C-level fallback.
    """

    hang_after: float | None  # None: no hang findings, only the stall rules
    interval: float | None = None
    policy: Policy = "report"
    raise_in: str | int = "stuck"
    report_every: float | None = None
    stall_after: float = 0.5
    last_resort: bool = True
    stream: IO[str] | None = None  # default: sys.stderr at report time
    json_path: str | None = None  # also write each report as JSON (stuck.report/1) here
    html_path: str | None = None  # and as the HTML report here

    def sample_interval(self) -> float:
        if self.interval is not None:
            return self.interval
        if self.hang_after is None:
            return min(0.5, self.stall_after)
        return min(2.0, max(0.05, self.hang_after / 4), self.stall_after)

    def rate_limit(self) -> float:
        if self.report_every is not None:
            return self.report_every
        return max(self.hang_after or 30.0, 5.0)


class LiveRules(Protocol):
    """The live instrumentation's side of the watchdog (``stall.LiveChecker``)."""

    def settled(self, settle: float) -> bool:
        """True when some thread has been in a durable tracked wait for ``settle`` s."""

    def check(self, settle: float) -> tuple[Snapshot, list[Finding]]:
        """The live snapshot and what the stall rules find in it."""


# A live view the runtime provides: the snapshot of its registry, per-thread operation counts,
# and the stall rules over that snapshot. All optional: the watchdog works from stacks alone.
SnapshotFn = Callable[[], Snapshot]
OpsFn = Callable[[int], "int | None"]
RulesFn = Callable[[Snapshot, float], "list[Finding]"]


# ---------------------------------------------------------------------------------------------
# The watchdog


class Watchdog:
    """Samples every thread's stack at an interval; reports hangs, stalls and deadlocks."""

    def __init__(self, config: WatchdogConfig, *, snapshot: SnapshotFn | None = None,
                 ops: OpsFn | None = None, rules: RulesFn | None = None,
                 live: LiveRules | None = None) -> None:
        self.config = config
        self._live = live
        self._snapshot_fn = snapshot
        self._ops_fn = ops
        self._rules_fn = rules
        self.progress = ProgressTracker()
        self._stop = _thread.allocate_lock()
        self._stop.acquire()  # released to stop the loop
        self._ident: int | None = None  # the watchdog thread's, while it runs
        self._done = _thread.allocate_lock()
        self._last_report_at: float | None = None
        self._last_report_key: frozenset[str] = frozenset()
        self._first_found_at: dict[str, float] = {}  # finding key -> when first seen
        self._raised: set[str] = set()
        self._held_back: dict[str, int] = {}  # hang key -> checks that could not raise it
        # Non-daemon threads proven stuck for good where policy raise raised elsewhere: ident ->
        # the wait they were proven stuck in (see _end_at_exit).
        self._left_stuck: dict[int, registry.WaitRecord] = {}
        self.reports: list[Report] = []  # every report written, newest last (bounded)
        self._armed_at: float | None = None
        self._exiting = False  # the program's atexit handlers are done: no last resort now
        self._answered: tuple[int, int] | None = None  # the capture request last answered

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the watchdog's thread: a bare interpreter thread (``_thread``), not a
        ``threading.Thread``, so that the program does not see it: ``threading.enumerate()``,
        ``active_count()`` and the thread-leak checks of test suites count only the program's
        own threads, as in a plain run. Like a daemon thread it never keeps the process alive:
        at exit the interpreter stops it where it next needs the interpreter, and it takes
        nothing from threading (no trace or profile function set with ``threading.settrace``,
        no ``threading.excepthook``)."""
        if self._ident is not None:
            return
        self._done = done = _thread.allocate_lock()
        done.acquire()  # released by the thread as it ends: what stop() waits for
        go = _thread.allocate_lock()
        go.acquire()  # the thread starts once its ident is known to be stuck's
        try:
            ident = start_own_thread(self._run, (go, done))
            self._ident = ident
            registry.own_idents.add(ident)  # left out of reports: not the program's thread
        finally:
            go.release()
        # Registered now, so run after the program's own atexit handlers (last in, first out).
        self._exiting = False
        atexit.register(self._program_ended)

    def stop(self) -> None:
        ident = self._ident
        if ident is None:
            return
        with contextlib.suppress(RuntimeError):
            self._stop.release()
        if ident != _thread.get_ident():
            self._done.acquire(timeout=5)
        self._ident = None
        self._disarm()
        atexit.unregister(self._program_ended)

    def _program_ended(self) -> None:
        """The program's code, its non-daemon threads and its atexit handlers are done; what
        remains is the interpreter's own finalization, which the watchdog thread does not
        outlive. The last resort would stay armed through it, not re-armed, and a loaded
        machine can take longer than its timeout to finalize: it then printed a "Timeout"
        dump of a process with no Python frame into the stderr of a program that was fine."""
        self._exiting = True
        with contextlib.suppress(Exception):
            faulthandler.cancel_dump_traceback_later()
        self._armed_at = None

    def _run(self, go: _thread.LockType, done: _thread.LockType) -> None:
        ident = _thread.get_ident()
        try:
            go.acquire()
            self._loop()
        except Exception as exc:  # (a bare thread's error would be printed as "ignored")
            with contextlib.suppress(Exception):
                sys.stderr.write(f"stuck: the watchdog stopped: {exc!r}\n")
        except BaseException:
            pass  # SystemExit and the like: the watchdog ends quietly, the program goes on
        finally:
            registry.own_idents.discard(ident)
            done.release()

    def _loop(self) -> None:
        interval = self.config.sample_interval()
        ident = _thread.get_ident()
        while True:
            report: Report | None = None
            try:
                report = self.tick()
            except Exception as exc:  # the watchdog must never take the program down
                with contextlib.suppress(Exception):
                    sys.stderr.write(f"stuck: watchdog check failed: {exc!r}\n")
            self._answer_capture(report)
            # A cycle the policy left to be proven: look again soon, so that abort acts well
            # within 2 s of it forming (one look takes its waits' settle time plus the pause
            # between the two observations).
            pause = min(interval, PROOF_INTERVAL) if detect.proof_pending() else interval
            with contextlib.suppress(Exception):
                _forget_dummy_thread(ident)
            if self._stop.acquire(timeout=pause):
                return

    def _answer_capture(self, report: Report | None) -> None:
        """``stuck capture`` asked for this program's live report (``stuck.capture.handover``):
        hand over the report of this check, taken from this thread while the program's threads
        wait as they are, or a snapshot when this check needed none. Each request once."""
        if not sys.platform.startswith("linux"):
            return
        try:
            from stuck.capture import handover

            asked = handover.requested()
            if asked is None or asked == self._answered:
                return
            self._answered = asked
            if report is None:
                from stuck.runtime.policy import settings
                from stuck.runtime.reporting import report_for

                report = report_for(None, settings.policy)
            handover.write(report)
        except Exception as exc:  # never a reason to fail the program
            with contextlib.suppress(Exception):
                sys.stderr.write(f"stuck: could not hand the live report to stuck capture: "
                                 f"{exc!r}\n")

    # -- last resort ------------------------------------------------------------------------

    def _last_resort_after(self) -> float:
        return (self.config.hang_after or 0.0) + max(1.0, 4 * self.config.sample_interval())

    def _arm(self, now: float) -> None:
        if not self.config.last_resort or self.config.hang_after is None or self._exiting:
            return
        timeout = self._last_resort_after()
        # Re-arming starts a new C thread, so do it only when half the timeout has gone by.
        if self._armed_at is not None and now - self._armed_at < timeout / 2:
            return
        stream = self.config.stream or sys.stderr
        try:
            stream.flush()
            faulthandler.dump_traceback_later(timeout, repeat=False, file=stream, exit=False)
            self._armed_at = now
        except Exception:
            try:  # a stream without a file descriptor (captured output): fall back to stderr
                faulthandler.dump_traceback_later(timeout, repeat=False, exit=False)
                self._armed_at = now
            except Exception:
                self._armed_at = None
        if self._has_ended():  # the program ended while this thread armed it: take it back
            self._disarm()

    def _has_ended(self) -> bool:
        return self._exiting  # read again: the main thread may have set it meanwhile

    def _disarm(self) -> None:
        if self._armed_at is not None:
            with contextlib.suppress(Exception):
                faulthandler.cancel_dump_traceback_later()
            self._armed_at = None

    # -- one check ----------------------------------------------------------------------------

    def tick(self) -> Report | None:
        """Sample once, evaluate, and report or escalate if something is found."""
        now = time.monotonic()
        self._arm(now)
        self._end_at_exit()
        report = self.evaluate(now)
        if report is not None and report.findings:
            self._act(report, now)
            self._end_at_exit()  # what this check proved may be the last thread at exit
        else:
            self._first_found_at.clear()
        return report

    def evaluate(self, now: float | None = None) -> Report | None:
        """Sample the threads and return a report of what is found now (None if no live view
        is needed and nothing is suspicious)."""
        if now is None:
            now = time.monotonic()
        limit = self.config.hang_after
        if limit is None and self._live is not None and not self._live.settled(
                self.config.stall_after):
            return None  # stalls only, and no durable wait has lasted: nothing to sample
        own = threading.get_ident() if self._ident is None else self._ident
        settle = self.config.stall_after
        live_waiting = self._live.settled(settle) if self._live is not None else False
        suspects: set[int] = set()
        stacks: dict[int, Stack] = {}
        with framewalk.still():  # the threads' frames: taken and read at once (see framewalk)
            frames = framewalk.current()
            frames.pop(own, None)
            frames.pop(threading.get_ident(), None)
            if limit is not None:
                self.progress.sample(frames, now, self._ops_fn)
                suspects = {ident for ident, p in self.progress.threads.items()
                            if p.stalled_for(now) >= limit}
            if self._live is not None:
                waiting_long = live_waiting
            else:
                waiting_long = self._rules_fn is not None and any(
                    p.last_activity == "blocked" and p.stalled_for(now) >= settle
                    for p in self.progress.threads.values())
            if suspects or waiting_long:
                stacks = {ident: _stack(frame) for ident, frame in frames.items()}
            del frames
        if not suspects and not waiting_long:
            return None
        findings: list[Finding] = []
        if self._live is not None:
            snap, found = self._live.check(settle)
            self._fill_frames(snap, stacks)
            findings.extend(found)
        else:
            snap = self._take_snapshot(stacks, now)
            if self._rules_fn is not None and waiting_long:
                findings.extend(self._rules_fn(snap, settle))
        if suspects:
            findings.extend(self._hangs(snap, suspects, findings, now))
        if not findings:
            return Report(snapshot=snap)
        from stuck.groups import group_threads
        groups = group_threads(snap)
        return Report(snapshot=snap, findings=findings, groups=groups)

    def _take_snapshot(self, stacks: dict[int, Stack], now: float) -> Snapshot:
        snap: Snapshot | None = None
        if self._snapshot_fn is not None:
            try:
                snap = self._snapshot_fn()
            except Exception as exc:
                sys.stderr.write(f"stuck: watchdog could not read the live registry: {exc!r}\n")
        if snap is None:
            snap = stack_snapshot(stacks)
        self._fill_frames(snap, stacks)
        return snap

    @staticmethod
    def _fill_frames(snap: Snapshot, stacks: dict[int, Stack]) -> None:
        """Give threads the live view left without a stack their frames."""
        by_ident = _by_ident(snap, stacks)
        for ident, (_, frames) in stacks.items():
            t = by_ident.get(ident)
            if t is not None and not t.frames:
                t.frames = frames

    def _hangs(self, snap: Snapshot, suspects: set[int], found: list[Finding],
               now: float) -> list[Finding]:
        """Threads without progress past the limit whose state no rule explains."""
        explained = {t for f in found for t in (*f.threads, *f.blocked_behind)}
        by_tid = _by_ident(snap, suspects)
        holders = held_up_by(snap)  # thread id -> waiters on what it holds or signals
        out: list[Finding] = []
        for ident in sorted(suspects):
            p = self.progress.threads.get(ident)
            t = by_tid.get(ident)
            if p is None or t is None or t.id in explained:
                continue
            if t.waits is not None and t.waits.durable:
                continue  # an explained in-process wait: the rules judge it
            activity = p.last_activity
            call = p.last_call
            if activity == "running":
                # Python frames cannot tell a blocking system call (os.read on a pipe) from a
                # loop; the kernel can, and names the child at the pipe's other end.
                os_call = _os_wait(ident)
                if os_call is not None:
                    activity, call = "io", os_call
            behind = [w for w in holders.get(t.id, []) if w != t.id]
            if not is_hang(t, activity, behind):
                continue
            out.append(hang_finding(t, p.stalled_for(now), activity, call, behind,
                                    self.config.hang_after, os.getpid(),
                                    interval=self.config.sample_interval(),
                                    samples=p.samples_since_progress))
        return out

    # -- acting -----------------------------------------------------------------------------

    def _act(self, report: Report, now: float) -> None:
        keys = frozenset(_finding_key(f) for f in report.findings)
        for k in keys:
            self._first_found_at.setdefault(k, now)
        for k in list(self._first_found_at):
            if k not in keys:
                del self._first_found_at[k]
        changed = keys != self._last_report_key
        due = self._last_report_at is None or now - self._last_report_at >= \
            self.config.rate_limit()
        from stuck.runtime import policy as live_policy

        asked = live_policy.settings.policy
        if changed and asked != "report":
            for f in report.findings:  # say why --policy leaves them alone
                if f.kind in ("stall", "deadlock") and not live_policy.acts_on(f.confidence):
                    f.explanation += "\n" + live_policy.not_acted_on(asked)
        if changed:
            shown = self._shown_at_block(report)
            if shown is not None:
                # Every finding is a cycle the block-time check printed in full a moment ago,
                # less sure: one line each saying it is now proven, with the proof, and the
                # report files written again with the proven findings.
                live_policy.write_report(report, self.config.stream or sys.stderr,
                                         self.config.json_path or "",
                                         self.config.html_path or "", text=shown)
                self.reports.append(report)
                del self.reports[:-8]
            else:
                self._write(report, now)
            self._last_report_at = now
            self._last_report_key = keys
        elif due:
            # The same state again: one line saying it still holds, not the report again.
            self._remind(report, now)
            self._last_report_at = now
        # What each finding may set off. The hang policy (--hang-policy) is the user asking
        # for it: it acts on hangs whatever their confidence, and on stalls and deadlocks only
        # when they are proven. The deadlock policy (--policy) acts on proven stalls and
        # deadlocks the watchdog finds just as on cycles found when a thread blocks (those
        # it left to the watchdog because they were not proven then, too), and on probable
        # ones when the user asked for that (--act-on probable).
        proven = [f for f in report.findings
                  if f.kind in ("stall", "deadlock") and f.confidence == "certain"]
        acted_on = [f for f in report.findings if f.kind == "hang"] + proven
        for_policy = [f for f in report.findings
                      if f.kind in ("stall", "deadlock") and live_policy.acts_on(f.confidence)]
        if for_policy and live_policy.settings.policy == "abort":
            what = "a proven" if for_policy[0].confidence == "certain" else "a probable"
            self._abort(report, now, f"policy abort, {what} {for_policy[0].kind}")
        if self.config.policy == "abort" and acted_on:
            # At once, and no HangError first: a thread killed by it could let the program
            # exit 0. A hang finding has already lasted the limit.
            self._abort(report, now, f"hang policy abort, a {acted_on[0].kind}")
        if self.config.policy == "raise":
            for f in acted_on:
                k = _finding_key(f)
                if k in self._raised:
                    continue
                if self._raise(f, report):
                    self._raised.add(k)
                    continue
                tries = self._held_back[k] = self._held_back.get(k, 0) + 1
                if tries == HELD_BACK_NOTE:
                    self._note_held_back(f)
        if live_policy.settings.policy == "raise":
            for f in for_policy:
                k = "main:" + _finding_key(f)
                main_involved = _main_in(f)
                if f.confidence == "certain":
                    self._note_left_stuck(f)
                if k in self._raised:
                    continue
                if main_involved and f.confidence == "certain" \
                        and detect.in_exit_callbacks():
                    # An error raised into an atexit callable is printed and ignored by the
                    # interpreter, which then exits 0 as if nothing were wrong.
                    self._abort(report, now, f"policy raise, a proven {f.kind} in an exit "
                                "callback (atexit), where the interpreter ignores errors; "
                                "ended as abort would")
                # Where the error can break the finding and be recovered from: the thread
                # whose wait closed it, then the main thread when its wait is in it, then a
                # task of it, then the main thread when it is only blocked behind it.
                if self._raise_in_closer(f, report) \
                        or live_policy.raise_in_main(f, report, only_in=True) \
                        or self._raise_in_task(f, report) \
                        or live_policy.raise_in_main(f, report):
                    self._raised.add(k)
                elif main_involved and not detect.main_in_shutdown():
                    # Nowhere to raise that error (every thread of it waits where no
                    # error can reach it, and the main thread's signal is the program's).
                    self._abort(report, now, f"policy raise, a proven {f.kind} that no "
                                "thread of it can be interrupted in; ended as abort would")

    def _note_left_stuck(self, f: Finding) -> None:
        """Remember the non-daemon threads of ``f``, proven stuck for good, with their waits:
        an error raised in another thread does not end them, and the interpreter waits for
        them at exit (``_end_at_exit``). Every proof counts, the ones made after the program
        ended too (the stall rules prove threads behind the interpreter's join at exit as
        behind any join): a thread that stalls after the main thread got its error, or
        after it returned, is proven then, with the same rules and the same settling."""
        main = threading.main_thread().ident
        for tid in [*f.threads, *f.blocked_behind]:
            ident = _ident_of(tid)
            if tid in f.blocked_behind and ident != main:
                continue  # (the main thread: its wait in an atexit callable of threading)
            thread = threading._active.get(ident) if ident is not None else None  # type: ignore[attr-defined]
            record = registry.waits.get(ident) if ident is not None else None
            if ident is not None and thread is not None and not thread.daemon \
                    and record is not None:
                self._left_stuck[ident] = record

    def _end_at_exit(self) -> None:
        """Under ``--policy raise``: once the program has ended (its main thread at
        interpreter exit), if every thread the interpreter still waits for is one proven stuck
        for good, still in that wait, end the process as ``abort`` does: it would wait
        forever, and no code of the program is left to recover. A thread still working keeps
        the program running as it would without stuck, and a proof made while the program
        ends is acted on here only (``_act`` leaves it), once it covers every such thread.
        The main thread may still be in a callable of ``threading._register_atexit`` (a
        ``ThreadPoolExecutor`` joining its workers): then its own wait there must be one
        proven stuck for good too (blocked behind a proven finding)."""
        if not self._left_stuck or not detect.main_in_shutdown():
            return
        main = threading.main_thread().ident
        if not detect.joining_at_exit() and (
                main is None or self._left_stuck.get(main) is None
                or registry.waits.get(main) is not self._left_stuck[main]):
            return  # still running, or waiting in an atexit callable for what may end
        limbo: dict[object, threading.Thread] = threading._limbo  # type: ignore[attr-defined]
        if any(not t.daemon for t in list(limbo.values())):
            return  # a thread being started (by a daemon thread): it will run
        waited_for = []
        for ident in framewalk.idents():
            thread = threading._active.get(ident)  # type: ignore[attr-defined]
            if ident == main or ident in registry.own_idents or thread is None \
                    or thread.daemon:
                continue
            waited_for.append(ident)
        stuck = [i for i in waited_for if self._left_stuck.get(i) is not None
                 and registry.waits.get(i) is self._left_stuck[i]]
        if not stuck or len(stuck) < len(waited_for):
            return
        from stuck.report.names import clean

        names = ", ".join(sorted(clean(getattr(threading._active.get(i), "name", f"0x{i:x}"))  # type: ignore[attr-defined]
                                 for i in stuck))
        stream = self.config.stream or sys.stderr
        with contextlib.suppress(Exception):
            stream.write(f"stuck: the program has ended, but the interpreter waits at exit for "
                         f"{names}, proven stuck for good above; policy raise raised where "
                         "the program could recover, and now ends it as abort would\n")
            stream.flush()
        from stuck.runtime.policy import end_children
        with contextlib.suppress(Exception):
            end_children()
        os._exit(EXIT_ABORT)

    @staticmethod
    def _raise_in_closer(f: Finding, report: Report) -> bool:
        """Under ``--policy raise``: a proven cycle that a thread closed when it blocked, left
        to the watchdog then, raises its DeadlockError in that thread (waiting in slices for
        this), as it would have at once had it been proven then: it unwinds, and the others
        go on. True when that thread will raise it."""
        idents: set[int] = set()
        for tid in [*f.threads, *f.blocked_behind]:
            if tid.startswith("0x"):
                with contextlib.suppress(ValueError):
                    idents.add(int(tid, 16))
        if not idents:
            return False
        from stuck.runtime import policy as live_policy

        return detect.prove(idents, live_policy.error_for(f, report))

    @staticmethod
    def _raise_in_task(f: Finding, report: Report) -> bool:
        """Under ``--policy raise``: a proven finding among asyncio tasks raises its error in
        one of them, at the ``await`` of its wait, where it can recover (a cycle left to the
        watchdog when it formed gets the DeadlockError it would have got then)."""
        if not any(t.startswith("task:") for t in f.threads):
            return False
        tasks = registry.tasks_module()
        if tasks is None:
            return False
        from stuck.runtime import policy as live_policy

        return bool(tasks.raise_in_task(f, live_policy.error_for(f, report)))

    def _write(self, report: Report, now: float) -> None:
        from stuck.runtime.policy import write_report

        try:
            text = render_diagnosis(report)
        except Exception as exc:
            text = f"stuck: could not render the report: {exc!r}\n"
        write_report(report, self.config.stream or sys.stderr, self.config.json_path or "",
                     self.config.html_path or "", text=text)
        self.reports.append(report)  # after writing: a reader of `reports` sees the text too
        del self.reports[:-8]

    @staticmethod
    def _shown_at_block(report: Report) -> str | None:
        """The short text for a report whose findings are all deadlocks printed when a thread
        blocked (the same threads and resources), or None (then the report is written in
        full). Each is one line, saying it is now proven or that it still holds (the rules
        word a cycle alike whichever look found it: printing it again would repeat it), and
        the lines of its explanation the block-time report did not have."""
        from stuck.report.names import clean, raw_names, text_lines
        from stuck.runtime import policy as live_policy

        earlier = {_finding_key(f): f for r in list(live_policy.findings_seen)
                   for f in r.findings}
        lines: list[str] = []
        for f in report.findings:
            before = earlier.get(_finding_key(f)) if f.kind == "deadlock" else None
            if before is None:
                return None
            now_is = "still holds" if before.confidence == f.confidence \
                else f"is now {f.confidence}"
            lines.append(f"stuck: the deadlock reported above ({before.confidence}) {now_is}: "
                         f"{clean(f.summary)}\n")
            names = raw_names(report.snapshot)
            said = set(text_lines(before.explanation, names))
            lines.extend(f"  {line}\n" for line in text_lines(f.explanation, names)
                         if line.strip() and line not in said)
        return "".join(lines) or None

    def _remind(self, report: Report, now: float) -> None:
        from stuck.report.text import counted

        first = min((self._first_found_at.get(_finding_key(f), now) for f in report.findings),
                    default=now)
        with contextlib.suppress(Exception):
            stream = self.config.stream or sys.stderr
            stream.write(f"stuck: still the same {counted(report.findings).removesuffix(' found')}"
                         f" as reported above, for {now - first:.0f} s now\n")
            stream.flush()

    def _target(self, f: Finding, report: Report) -> int | None:
        choice = self.config.raise_in
        if isinstance(choice, int):
            return choice
        if choice == "main":
            return threading.main_thread().ident
        threads = report.snapshot.thread_map()
        for tid in f.threads:
            if tid.startswith("0x"):
                with contextlib.suppress(ValueError):
                    return int(tid, 16)
            t = threads.get(tid)
            if t is not None and t.tid is not None:
                return t.tid
        return None

    def _raise(self, f: Finding, report: Report) -> bool:
        """Raise ``HangError`` for ``f``; False when it must wait for a later check: the
        thread is running inside code that keeps locks, queues, futures or an event loop
        consistent (``in_library_internals``), where an exception arriving between two of
        its steps could leave that state broken and the program stuck for good."""
        ident = self._target(f, report)
        if ident is None:
            if self.config.raise_in == "stuck" and any(t.startswith("task:") for t in f.threads):
                from stuck.runtime import aio  # asyncio tasks: raised where they await

                aio.raise_in_task(f, HangError(f))
            return True
        return raise_in_thread(ident, HangError, f, unless=_unsafe_to_interrupt)

    def _note_held_back(self, f: Finding) -> None:
        """Say once that a hang's HangError is still not raised, and why: its thread was inside
        stuck's own steps (or the plumbing's, running) at every look."""
        from stuck.report.names import clean

        names = []
        for tid in f.threads:
            ident = _ident_of(tid)
            thread = threading._active.get(ident) if ident is not None else None  # type: ignore[attr-defined]
            names.append(clean(thread.name if thread is not None else tid))
        who = ", ".join(names)
        stream = self.config.stream or sys.stderr
        with contextlib.suppress(Exception):
            stream.write(f"stuck: HangError not raised in {who} yet: at every look it was "
                         "inside a lock's or queue's own steps, where an exception would leave "
                         "them broken (a lock held by nobody's with block); stuck keeps "
                         "trying at each check\n")
            stream.flush()

    def _abort(self, report: Report, now: float, why: str = "policy abort") -> None:
        stream = self.config.stream or sys.stderr
        try:
            if self._last_report_at != now:
                stream.write(render_diagnosis(report))
            stream.write(f"stuck: aborting ({why})\n")
            stream.flush()
        except Exception:
            pass
        if debugging():
            # Every thread's raw stack, stuck's own frames included: for working on stuck.
            # The report above already shows the program's threads without them.
            with contextlib.suppress(Exception):
                faulthandler.dump_traceback(all_threads=True)
        from stuck.runtime.policy import end_children
        with contextlib.suppress(Exception):
            end_children()
        os._exit(EXIT_ABORT)


def _os_wait(ident: int) -> str | None:
    """The kernel's word for what thread ``ident`` sleeps in, on Linux (see capture.selfview)."""
    thread = threading._active.get(ident)  # type: ignore[attr-defined]
    native = getattr(thread, "native_id", None)
    if native is None or not sys.platform.startswith("linux"):
        return None
    try:
        from stuck.capture.selfview import os_wait
        return os_wait(native)
    except Exception:  # never let the kernel's view break the watchdog
        return None


def _forget_dummy_thread(ident: int) -> None:
    """Take out of ``threading``'s table the ``_DummyThread`` that a call of
    ``threading.current_thread()`` on the watchdog's thread registers (stuck never makes one,
    but the report stream it writes to is the program's object, and may): the program would
    see it in ``threading.enumerate()``. As threading does for an ended thread."""
    active: dict[int, threading.Thread] = threading._active  # type: ignore[attr-defined]
    dummy = active.get(ident)
    if dummy is None or not isinstance(dummy, threading._DummyThread):
        return
    with threading._active_limbo_lock:  # type: ignore[attr-defined]
        if active.get(ident) is dummy:
            del active[ident]


_pending_exceptions: dict[int, Finding] = {}

_TRIES = 20  # looks for a moment the thread is out of ``unless``, a few milliseconds apart


def raise_in_thread(ident: int, exc_type: type[BaseException], finding: Finding,
                    unless: Callable[[FrameType | None], bool] | None = None) -> bool:
    """Ask the interpreter to raise ``exc_type`` in thread ``ident``; True when asked.

    The exception arrives where that thread stands when it next runs Python code. Asked while
    it waits for the GIL, that is the frame it was seen in; asked while it runs C code, at the
    next call or loop of that frame. So the look at its frame (``unless``: True where it must
    not arrive) and the asking are one pass of ``framewalk``, with no switch between them:
    asked after a separate look, the exception arrived inside stuck's ``Lock.__enter__``, after
    the lock was taken, in 264 of 500 tries of a thread looping on ``with lock:``, leaving the
    lock held. A thread that is there at every look is left for a later check (False).
    Asynchronous exceptions carry no arguments, so the finding is kept for
    ``HangError.finding`` via a subclass made per call."""
    exc_class = type(exc_type.__name__, (exc_type,), {
        "__init__": lambda self: exc_type.__init__(self, finding),
        "__module__": exc_type.__module__,
    })
    set_async = ctypes.pythonapi.PyThreadState_SetAsyncExc  # holds the GIL: no switch here
    set_async.argtypes = [ctypes.c_ulong, ctypes.py_object]
    set_async.restype = ctypes.c_int
    for attempt in range(_TRIES):
        if attempt:
            time.sleep(0.002)  # the thread runs on meanwhile
        with framewalk.still():
            if unless is not None and framewalk.read_one(ident, unless):
                continue
            count = set_async(ctypes.c_ulong(ident), exc_class)
        if count > 1:  # should never happen; undo rather than hit several threads
            set_async(ctypes.c_ulong(ident), None)
            return False
        return bool(count == 1)
    return False


def _by_ident(snap: Snapshot, idents: Iterable[int]) -> dict[int, Thread]:
    """Model threads by interpreter thread ident: a live snapshot names threads ``0x<ident>``
    (and keeps the native id in ``tid``); a stack snapshot keeps the ident in ``tid``."""
    by_id = snap.thread_map()
    by_tid = {t.tid: t for t in snap.threads() if t.tid is not None}
    out: dict[int, Thread] = {}
    for ident in idents:
        t = by_id.get(f"0x{ident:x}") or by_tid.get(ident)
        if t is not None:
            out[ident] = t
    return out


def _ident_of(tid: str) -> int | None:
    """The interpreter ident of a live snapshot's thread id (``0x<ident>``)."""
    if tid.startswith("0x"):
        with contextlib.suppress(ValueError):
            return int(tid, 16)
    return None


def _main_in(f: Finding) -> bool:
    """True when the main thread waits in ``f`` or is blocked behind it."""
    main = threading.main_thread().ident
    if main is None:
        return False
    me = f"0x{main:x}"
    return me in f.threads or me in f.blocked_behind


def _finding_key(f: Finding) -> str:
    return f"{f.kind}:{','.join(sorted(f.threads))}:{','.join(sorted(f.resources))}"


# The plumbing's waits that end by an exception as by a timeout, and clean up after it: a
# Condition's wait re-takes its lock and forgets its waiter, a join forgets nothing. (Every
# Event, Semaphore, Barrier and queue.Queue wait blocks in Condition.wait.)
_SAFE_WAITS = frozenset({"wait", "wait_for", "_wait_for_tstate_lock", "join"})
_THREADING_FILE = threading.__file__


def _unsafe_to_interrupt(frame: FrameType | None) -> bool:
    """Where an exception must not arrive: stuck's own steps, waiting or not, and the
    plumbing's, except its waits in ``threading`` that clean up after one. A blocking call in
    C consumes before the exception arrives: an idle pool worker interrupted in the
    ``SimpleQueue.get`` that had just returned the executor's shutdown sentinel died with it,
    and the workers after it never got theirs (the pool's shutdown then hung, 1 run in 100
    of the asyncio executor program under --hang-after 1s --hang-policy raise)."""
    if frame is None:
        return False
    if in_own_steps(frame):
        return True
    if not in_library_internals(frame):
        return False
    code = frame.f_code
    return frame_activity(frame)[0] == "running" or code.co_filename != _THREADING_FILE \
        or code.co_name not in _SAFE_WAITS


def _stack(frame: FrameType) -> Stack:
    return frame_activity(frame)[0], frames_of(frame)


def stack_snapshot(stacks: dict[int, Stack] | None = None) -> Snapshot:
    """A snapshot from stacks alone (no live registry): threads, names, frames, activity."""
    if stacks is None:
        stacks = framewalk.read(_stack)
    by_ident = {t.ident: t for t in threading.enumerate()}
    threads: list[Thread] = []
    state_of: dict[Activity, ThreadState] = {
        "running": "running", "io": "io", "blocked": "blocked", "idle": "idle",
        "sleeping": "sleeping",
    }
    for ident, (activity, frames) in stacks.items():
        if ident in registry.own_idents:
            continue  # stuck's own thread: not the program's
        pt = by_ident.get(ident)
        threads.append(Thread(
            id=pt.name if pt is not None else f"0x{ident:x}", tid=ident,
            name=pt.name if pt is not None else None, state=state_of[activity],
            frames=frames, daemon=pt.daemon if pt is not None else None,
        ))
    return Snapshot(source=Source(kind="live", format="python"),
                    processes=[Process(pid=os.getpid(), name=sys.argv[0] or None,
                                       threads=threads)],
                    taken_at=time.time())


# ---------------------------------------------------------------------------------------------
# The report: a diagnosis


def _seconds(value: float | None) -> str:
    if value is None or value < 0.05:  # a wait that has just begun
        return ""
    return f" for {value:.1f} s"


def render_diagnosis(report: Report) -> str:
    """Findings first, then the wait-for graph with owners and durations, the locks each
    thread holds, then the stacks grouped."""
    from stuck.report.names import resource_name, thread_name
    from stuck.report.text import render

    snap = report.snapshot
    threads = snap.thread_map()
    resources = snap.resource_map()
    head = render(Report(snapshot=snap, findings=report.findings, groups=[])).rstrip("\n")
    lines = [head]
    edges = _wait_lines(snap, threads, resources)
    if edges:
        lines.append("")
        lines.append("Wait-for graph:")
        lines.extend(edges)
    held = [t for t in snap.threads() if t.holds]
    if held:
        lines.append("")
        lines.append("Held locks:")
        for t in held:
            lines.append(f"  {thread_name(threads, t.id)} holds "
                         + ", ".join(resource_name(resources.get(r), r) for r in t.holds))
    if report.groups:
        lines.append("")
        lines.append(_groups_text(report.groups, threads, resources))
    return "\n".join(lines).rstrip("\n") + "\n"


def _wait_lines(snap: Snapshot, threads: dict[str, Thread],
                resources: dict[str, Resource]) -> list[str]:
    from stuck.report.names import clean, resource_name, thread_name

    out: list[str] = []
    for waiter in snap.threads():
        w: Wait | None = waiter.waits
        if w is None:
            continue
        res = resources.get(w.resource)
        line = f"  {thread_name(threads, waiter.id)} blocked on {resource_name(res, w.resource)}"
        if res is not None and res.owners:
            line += " held by " + ", ".join(thread_name(threads, o) for o in res.owners)
        elif res is not None and res.wakers is not None:
            line += (" (could be woken by " + ", ".join(thread_name(threads, o)
                                                       for o in res.wakers) + ")"
                     if res.wakers else " (nobody has ever signalled it)")
        line += _seconds(w.duration)
        if w.at is not None:
            line += f" at {clean(w.at.where())}"
        if not w.durable:
            line += " (timed or I/O)"
        out.append(line)
    return out


def _groups_text(groups: Iterable[Group], threads: dict[str, Thread],
                 resources: dict[str, Resource]) -> str:
    from stuck.report.text import render

    text = render(Report(snapshot=Snapshot(source=Source(kind="live"),
                                           processes=[Process(threads=list(threads.values()))],
                                           resources=list(resources.values())),
                         findings=[], groups=list(groups)))
    # render() starts with its own verdict line; keep only the grouped stacks.
    _, _, rest = text.partition("\nThreads (")
    return ("Threads (" + rest).rstrip("\n") if rest else ""


# pytest leaves these frames out of the tracebacks it shows (STUCK_DEBUG=1 keeps them): a
# program's wait passes through them, plain Python's does not (stuck.tracebacks).
__tracebackhide__ = _hide_in_pytest()

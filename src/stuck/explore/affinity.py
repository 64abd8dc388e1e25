"""Keeping an exploration's OS threads on one CPU, while that makes it faster.

Only one controlled thread runs at a time, yet the OS spreads the worker pool's threads over
the CPUs: a hand-over then wakes a thread on another, idle CPU, which costs an inter-processor
interrupt -- in a virtual machine an exit to the hypervisor -- several times the price of a
switch on one CPU (gateway_engine on a quiet 2-vCPU VM: some 40 us of CPU per hand-over against
some 5 pinned). Pinning the workers to one CPU saves that; but a CPU shared with another busy
process, or with another exploration (``pytest -n``, ``--jobs``), gives each only part of it.
So :class:`Affinity` measures: a window of executions unpinned, one pinned to the CPU the
exploring thread runs on, keeps the faster by a clear margin (unpinned when in doubt), and
measures again every few seconds. Only timing changes: no scheduling decision depends on it.

Only the pool's own OS threads are ever pinned, never the caller's. A process started from a
pinned worker would inherit the single CPU: a forked child gets the original affinity back at
once, and while exploring, the functions that start programs (``subprocess``'s fork_exec,
``os.posix_spawn``, ``os.system``, ``os.exec*``) run with the original affinity
(:func:`unpinned`, installed by :mod:`stuck.explore.primitives`).

Linux only (``os.sched_setaffinity``); elsewhere, or with a single CPU allowed, nothing is done.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import statistics
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

_setaffinity: Any = getattr(os, "sched_setaffinity", None)
_getaffinity: Any = getattr(os, "sched_getaffinity", None)
_native_id: Any = getattr(_thread, "get_native_id", None)
_get_ident = _thread.get_ident
_monotonic = time.monotonic  # captured before any exploration replaces time.monotonic

WARMUP = 8  # executions not measured at first (imports, first OS threads)
WINDOW = 24  # executions measured per mode: six rounds of the default portfolio
MARGIN = 0.85  # pinned must take at most this fraction of the unpinned time per execution
RECHECK = 3.0  # seconds in a chosen mode before measuring again


def _current_cpu() -> int | None:
    """The CPU the calling thread runs on (Linux), or None."""
    try:
        with open("/proc/thread-self/stat", "rb") as f:
            stat = f.read()
        return int(stat.rsplit(b")", 1)[1].split()[36])
    except (OSError, ValueError, IndexError):
        return None


def available() -> bool:
    """Whether worker threads can be pinned here (Linux)."""
    return _setaffinity is not None and _getaffinity is not None and _native_id is not None


class Affinity:
    """The CPU affinity of one worker pool's OS threads (see the module docstring)."""

    def __init__(self) -> None:
        allowed: frozenset[int] = frozenset()
        if available():
            with contextlib.suppress(OSError):
                allowed = frozenset(_getaffinity(0))
        self.allowed = allowed  # the exploring thread's CPUs: what workers get back
        self.enabled = len(allowed) > 1
        self.cpu: int | None = None  # the CPU the workers are pinned to, or None
        self.tids: set[int] = set()  # native ids of the pool's live OS threads
        self._seen = 0
        self._times: list[float] = []
        self._unpinned_median = 0.0
        self._phase = "warmup"
        self._until = 0.0
        self.choices: list[bool] = []  # each decision taken: pinned or not (for tests)

    # -- the pool's threads ---------------------------------------------------------------------

    def add_self(self) -> None:
        """Called by a worker when it starts: take the pool's current affinity (a thread
        started by a pinned one would otherwise inherit its single CPU)."""
        if not self.enabled:
            return
        self.tids.add(_native_id())
        _workers[_get_ident()] = self
        cpu = self.cpu
        self._apply(0, self.allowed if cpu is None else {cpu})

    def discard_self(self) -> None:
        """Called by a worker as it exits."""
        self.tids.discard(_native_id() if _native_id is not None else -1)
        _workers.pop(_get_ident(), None)

    def _apply(self, tid: int, cpus: set[int] | frozenset[int]) -> bool:
        try:
            _setaffinity(tid, cpus)
            return True
        except OSError:
            return False

    def _set_all(self, cpu: int | None) -> None:
        self.cpu = cpu
        cpus = self.allowed if cpu is None else {cpu}
        for tid in list(self.tids):
            if not self._apply(tid, cpus):
                self.tids.discard(tid)  # gone, or the CPU was taken away: leave it be
        if cpu is None:
            _pinned.discard(self)
        else:
            _pinned.add(self)

    def release(self) -> None:
        """Unpin for good (the pool is closing)."""
        if self.enabled and self.cpu is not None:
            self._set_all(None)
        self.enabled = False

    # -- measuring ------------------------------------------------------------------------------

    def record(self, seconds: float) -> None:
        """The wall time of one execution that just ended (every worker is parked)."""
        if not self.enabled:
            return
        phase = self._phase
        if phase == "warmup":
            self._seen += 1
            if self._seen >= WARMUP:
                self._phase = "unpinned"
            return
        if phase == "steady":
            if _monotonic() >= self._until:
                self._set_all(None)
                self._phase = "unpinned"
                self._times = []
            return
        self._times.append(seconds)
        if len(self._times) < WINDOW:
            return
        median = statistics.median(self._times)
        self._times = []
        if phase == "unpinned":
            cpu = _current_cpu()
            if cpu is None or cpu not in self.allowed:
                self._phase = "steady"
                self._until = _monotonic() + RECHECK
                return
            self._unpinned_median = median
            self._set_all(cpu)
            self._phase = "pinned"
            return
        keep = median < MARGIN * self._unpinned_median
        self.choices.append(keep)
        if not keep:
            self._set_all(None)
        self._phase = "steady"
        self._until = _monotonic() + RECHECK


# Worker thread ident -> its pool's Affinity (a forked child keeps the ident of the thread that
# forked); the pools pinned now.
_workers: dict[int, Affinity] = {}
_pinned: weakref.WeakSet[Affinity] = weakref.WeakSet()


@contextlib.contextmanager
def unpinned() -> Iterator[None]:
    """Run the block with the calling thread's original affinity, if it is a pinned worker."""
    aff = _workers.get(_get_ident()) if _pinned else None
    cpu = aff.cpu if aff is not None else None
    if aff is None or cpu is None:
        yield
        return
    aff._apply(0, aff.allowed)
    try:
        yield
    finally:
        aff._apply(0, {cpu})


def unpinning(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` (which starts a program) run with the original affinity from a pinned worker."""

    def call(*args: Any, **kwargs: Any) -> Any:
        with unpinned():
            return func(*args, **kwargs)

    call.__name__ = getattr(func, "__name__", "call")
    call.__qualname__ = getattr(func, "__qualname__", "call")
    call.__doc__ = getattr(func, "__doc__", None)
    return call


def _restore_in_child() -> None:
    """A forked child of a pinned worker gets the CPUs its pool started with."""
    aff = _workers.get(_get_ident())
    if aff is not None and aff.cpu is not None:
        aff._apply(0, aff.allowed)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_restore_in_child)

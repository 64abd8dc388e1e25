"""Metadata types of the bug zoo (kept apart from ``zoo/__init__`` to avoid import cycles)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from zoo.points import Points

#: The kinds of blocking bug in the zoo.  ``queue-cycle`` (two bounded queues, each side blocked
#: putting into the queue the other side should drain) is an addition for the Go/C seed.
KINDS: tuple[str, ...] = (
    "lock-order",
    "lock-queue",
    "queue-cycle",
    "condition-no-notifier",
    "queue-no-partner",
    "barrier-parties",
    "pool-starvation",
    "rwlock-writer-preference",
    "missing-release",
)

#: ``deadlock``: a closed cycle of ownership and waiting; ``stall``: a waiter that nothing still
#: able to run can ever wake (no notifier, no partner, owner gone, no worker).
VERDICTS: tuple[str, ...] = ("deadlock", "stall")


class Program(Protocol):
    """A zoo ``main()``: starts named threads, runs them and joins them."""

    def __call__(self, points: Points | None = None) -> None: ...


def _freeze(schedule: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    return {k: tuple(v) for k, v in schedule.items()}


@dataclass(frozen=True)
class Meta:
    """What a zoo module says about its bug (everything but the measured rate)."""

    origin: str
    """Project and issue or pull request, as text with the URL."""
    kind: str
    verdict: str
    """The bug in its maintainers' words: ``deadlock`` or ``stall``."""
    threads: tuple[str, ...]
    """Names of the threads the buggy program starts."""
    primitives: tuple[str, ...]
    """The primitives involved, as ``"<kind> <label>"``."""
    interleaving: str
    """The interleaving that blocks, in prose."""
    blocked: tuple[str, ...]
    """Threads left blocked (besides the caller joining them) in the forced interleaving."""
    fix: str
    """What the fixed twin changes."""
    schedule: Mapping[str, Sequence[str]] = field(default_factory=dict, hash=False, compare=False)
    """Pause-point script (see :class:`zoo.points.Schedule`) forcing the blocking interleaving."""
    goker: str = ""
    """What the GoKer kernel records about the Go original (e.g. its flakiness), if any."""
    provable: str = ""
    """The verdict the facts of the blocking run prove, when they show less than ``verdict``
    says ("" when they show it all). A readers-writer lock built in Python on a Condition
    (``zoo.rwlock``) keeps its readers as a count, not as owners: the cycle through it is no
    fact of the run, whose waiters nothing able to run can wake (a stall)."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}")
        if self.verdict not in VERDICTS or self.provable not in ("", *VERDICTS):
            raise ValueError(f"unknown verdict {self.verdict!r} / {self.provable!r}")
        object.__setattr__(self, "schedule", _freeze(self.schedule))


@dataclass(frozen=True)
class ZooBug:
    """One program of the zoo: metadata, buggy and fixed ``main()``, and the measured rate."""

    name: str
    origin: str
    kind: str
    verdict: str
    threads: tuple[str, ...]
    primitives: tuple[str, ...]
    interleaving: str
    blocked: tuple[str, ...]
    fix: str
    buggy: Program = field(hash=False, compare=False, repr=False)
    fixed: Program = field(hash=False, compare=False, repr=False)
    schedule: Mapping[str, tuple[str, ...]] = field(
        default_factory=dict, hash=False, compare=False, repr=False
    )
    goker: str = ""
    provable: str = ""
    plain_hit_rate: str = "not measured"
    """Plain-run hit rate of the buggy program, e.g. ``"3/200 (1.5%)"``."""
    plain_blocked: int | None = None
    plain_runs: int | None = None
    fixed_blocked: int | None = None
    fixed_runs: int | None = None
    module: str = ""

    @property
    def expected_verdict(self) -> str:
        """The verdict ``stuck`` should reach: what the blocking run's facts prove."""
        return self.provable or self.verdict

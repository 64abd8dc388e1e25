"""Shrinking a failing schedule: fewest preemptions that still fail, then the shortest token.

Works on decision lists only, by re-running them with :class:`~stuck.explore.replayer.Replay`
(which continues without preemption once the list is used up or no longer fits). Steps, each
kept only if the execution still fails with the same verdict kind:

1. cut the list to the shortest prefix that still fails (everything after runs unpreempted);
2. remove preemptions one at a time, latest first (the thread that was preempted keeps running);
3. drop trailing decisions that equal what the unpreempted default would choose anyway.

The result never has more preemptions or decisions than its input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from stuck.explore.replayer import Replay
from stuck.explore.strategy import non_preemptive


@dataclass
class Attempt:
    failed: bool
    replay: Replay


Runner = Callable[[list[int]], Attempt]


def _taken(r: Replay) -> list[int]:
    return [ch for _, _, ch in r.log]


def _trim_defaults(r: Replay, choices: list[int]) -> list[int]:
    out = list(choices)
    log = r.log
    while out and len(out) <= len(log):
        runnable, cur, ch = log[len(out) - 1]
        if ch == out[-1] and ch == non_preemptive(runnable, cur):
            out.pop()
        else:
            break
    return out


def shrink(choices: list[int], run: Runner, budget: int = 200) -> tuple[list[int], Replay]:
    """Return a decision list that still fails, with at most as many preemptions."""
    runs = 0
    first = run(choices)
    runs += 1
    if not first.failed:
        return choices, first.replay
    best = _trim_defaults(first.replay, _taken(first.replay))
    best_replay = first.replay

    # 1. shortest failing prefix (binary search, then keep whatever fails).
    lo, hi = 0, len(best)
    while lo < hi and runs < budget // 2:
        mid = (lo + hi) // 2
        a = run(best[:mid])
        runs += 1
        if a.failed:
            hi = mid
            best, best_replay = best[:mid], a.replay
        else:
            lo = mid + 1

    # 2. remove preemptions, latest first, until none can go.
    improved = True
    while improved and runs < budget:
        improved = False
        log = best_replay.log[: len(best)]
        for i in range(len(log) - 1, -1, -1):
            runnable, cur, ch = log[i]
            if cur not in runnable or ch == cur:
                continue
            candidate = [*best[:i], cur, *best[i + 1:]]
            a = run(candidate)
            runs += 1
            if a.failed and a.replay.preemptions() < best_replay.preemptions():
                best = _trim_defaults(a.replay, _taken(a.replay)[: len(candidate)])
                best_replay = a.replay
                improved = True
                break
            if runs >= budget:
                break
    final = run(best)
    if final.failed:
        best_replay = final.replay
        best = _trim_defaults(final.replay, best)
    return best, best_replay

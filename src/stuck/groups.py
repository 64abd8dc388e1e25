"""Stack grouping, in the manner of panicparse: threads in the same state with the same frames
(function, file and line) are shown once, with a count.

A dump of 10,000 threads is usually a few dozen distinct stacks; the one that matters is rarely
in the largest group, so groups keep the order in which they were first seen.
"""

from __future__ import annotations

from stuck.model import Frame, Group, Snapshot, ThreadState

GroupKey = tuple[ThreadState, tuple[tuple[str, str | None, int | None], ...]]


def group_key(state: ThreadState, frames: list[Frame]) -> GroupKey:
    return state, tuple((f.function, f.file, f.line) for f in frames)


def group_threads(snapshot: Snapshot) -> list[Group]:
    """Group every thread of the snapshot and set each thread's ``group`` to its group id."""
    groups: dict[GroupKey, Group] = {}
    for thread in snapshot.threads():
        key = group_key(thread.state, thread.frames)
        group = groups.get(key)
        if group is None:
            group = Group(id=f"g{len(groups) + 1}", threads=[], frames=list(thread.frames),
                          state=thread.state)
            groups[key] = group
        group.threads.append(thread.id)
        thread.group = group.id
    return list(groups.values())

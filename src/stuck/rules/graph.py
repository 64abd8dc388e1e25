"""The wait-for graph of a Snapshot: thread -> the resource it waits for -> that resource's owners.

Everything here is linear in the number of threads plus edges: cycles come from an iterative
Tarjan (no recursion, so 100,000 goroutines cannot overflow the stack), victims from one
breadth-first walk over the reversed edges.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

from stuck.model import Edge, Snapshot, Thread

N = TypeVar("N", bound=Hashable)


def strongly_connected(nodes: Iterable[N], successors: Callable[[N], Iterable[N]]) -> list[list[N]]:
    """Tarjan's algorithm, iterative (no recursion, so 100,000 nodes cannot overflow the stack):
    the strongly connected components reachable from ``nodes``, in discovery order, each edge
    followed once."""
    index: dict[N, int] = {}
    low: dict[N, int] = {}
    on_stack: set[N] = set()
    stack: list[N] = []
    out: list[list[N]] = []
    for root in nodes:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(successors(root)))]
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(successors(child))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                out.append(component)
    return out


class WaitGraph:
    """Who waits for whom, as the snapshot shows it."""

    def __init__(self, snapshot: Snapshot, extra_edges: Iterable[Edge] = ()) -> None:
        self.threads: dict[str, Thread] = snapshot.thread_map()
        self.order: dict[str, int] = {tid: i for i, tid in enumerate(self.threads)}
        resources = snapshot.resource_map()
        self.waits_on: dict[str, str] = {}
        self.waiters: dict[str, list[str]] = {}
        self.owned_by: dict[str, list[str]] = {}  # resource -> owners present in the snapshot
        self.owns: dict[str, list[str]] = {}  # thread -> resources it owns
        for res in resources.values():
            present = [o for o in res.owners if o in self.threads]
            self.owned_by[res.id] = present
            for o in present:
                self.owns.setdefault(o, []).append(res.id)
        for t in self.threads.values():
            for rid in t.holds:
                if rid in resources and t.id not in self.owned_by.get(rid, []):
                    self.owned_by.setdefault(rid, []).append(t.id)
                    self.owns.setdefault(t.id, []).append(rid)
            if t.waits is not None:
                self.waits_on[t.id] = t.waits.resource
                self.waiters.setdefault(t.waits.resource, []).append(t.id)
        # Edges stated by a source without a thread-level wait (jstack's deadlock section).
        for e in extra_edges:
            if e.thread not in self.threads or e.held_by not in self.threads:
                continue
            self.waits_on.setdefault(e.thread, e.waits_for)
            if e.thread not in self.waiters.setdefault(e.waits_for, []):
                self.waiters[e.waits_for].append(e.thread)
            owners = self.owned_by.setdefault(e.waits_for, [])
            if e.held_by not in owners:
                owners.append(e.held_by)
                self.owns.setdefault(e.held_by, []).append(e.waits_for)

    def successors(self, tid: str) -> list[str]:
        rid = self.waits_on.get(tid)
        if rid is None:
            return []
        return self.owned_by.get(rid, [])

    def strongly_connected(self) -> list[list[str]]:
        """Tarjan's algorithm over the threads that wait: components in discovery order."""
        return strongly_connected(self.waits_on, self.successors)

    def cycles(self) -> list[list[Edge]]:
        """One closed cycle per strongly connected component that has one (self-waits too).

        A thread waiting for what no thread of the snapshot owns is on no cycle and leads to
        none, so the walk starts only from the others (most waiters of a large dump); the
        components it meets, and their order, are those of the walk from every waiter."""
        result = []
        owned = self.owned_by
        starts = [tid for tid, rid in self.waits_on.items() if owned.get(rid)]
        for comp in strongly_connected(starts, self.successors):
            members = set(comp)
            if len(comp) == 1 and comp[0] not in self.successors(comp[0]):
                continue
            start = min(comp, key=lambda t: self.order.get(t, 0))
            result.append(self._cycle_from(start, members))
        return result

    def _cycle_from(self, start: str, members: set[str]) -> list[Edge]:
        """Walk from ``start`` inside its component until a thread repeats; cut the loop."""
        path: list[str] = []
        pos: dict[str, int] = {}
        node = start
        while node not in pos:
            pos[node] = len(path)
            path.append(node)
            nxt = [s for s in self.successors(node) if s in members]
            node = nxt[0]
        loop = path[pos[node]:]
        edges = []
        for i, tid in enumerate(loop):
            held_by = loop[(i + 1) % len(loop)]
            edges.append(Edge(thread=tid, waits_for=self.waits_on[tid], held_by=held_by))
        return edges

    def behind(self, threads: Iterable[str], resources: Iterable[str] = ()) -> list[str]:
        """Threads whose wait chain leads into ``threads`` or ``resources`` (not those themselves).

        A victim waits for a resource owned by a thread of the finding (or by another victim),
        or for one of the finding's resources.
        """
        core = set(threads)
        seen = set(core)
        out: list[str] = []
        queue: deque[str] = deque()
        for rid in resources:
            queue.append("r:" + rid)
        for tid in core:
            queue.append("t:" + tid)
        seen_res: set[str] = set()
        while queue:
            item = queue.popleft()
            if item.startswith("r:"):
                rid = item[2:]
                if rid in seen_res:
                    continue
                seen_res.add(rid)
                for w in self.waiters.get(rid, []):
                    if w not in seen:
                        seen.add(w)
                        out.append(w)
                        queue.append("t:" + w)
            else:
                for rid in self.owns.get(item[2:], []):
                    queue.append("r:" + rid)
        return out

    def roots(self) -> dict[str, str]:
        """For every waiting thread, the last thread of its wait chain (linear overall)."""
        root: dict[str, str] = {}
        for start in self.waits_on:
            if start in root:
                continue
            path: list[str] = []
            on_path: set[str] = set()
            node = start
            end: str
            while True:
                if node in root:
                    end = root[node]
                    break
                if node in on_path:  # a cycle: its first thread stands for it
                    end = node
                    break
                path.append(node)
                on_path.add(node)
                succ = self.successors(node)
                if not succ:
                    end = node
                    break
                node = succ[0]
            for n in path:
                root[n] = end
        return root

    def chain(self, tid: str, limit: int = 1000) -> list[str]:
        """Threads met following ``tid``'s wait: tid, an owner of what it waits for, and so on."""
        out = [tid]
        seen = {tid}
        node = tid
        while len(out) < limit:
            succ = self.successors(node)
            if not succ or succ[0] in seen:
                break
            node = succ[0]
            seen.add(node)
            out.append(node)
        return out

"""The part of the wait-for graph that explains one finding: what a picture of it shows.

Threads and resources are nodes; a thread *waits for* a resource, a resource is *held by* a
thread (or, for a queue, a future or a condition that nobody owns, *could be ended by* one).
The edges of a finding's cycle are marked, and the threads blocked behind the finding
(victims) are kept apart from the threads that cause it. Only the finding's own neighbourhood
is drawn, however large the snapshot: a dump of 100,000 goroutines still gives a graph of a
handful of nodes per finding. Reads only ``Snapshot`` and ``Finding``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from stuck.model import Finding, Resource, Thread

NodeRole = Literal["cause", "victim", "other"]
EdgeKind = Literal["waits", "holds", "wakes"]

# Resources nobody owns: the thread at the other end of an edge is one that could end the wait.
UNOWNED_KINDS = frozenset({"queue", "future", "channel", "thread", "condition", "event",
                           "waitgroup", "barrier", "task"})
MAX_THREADS = 8  # threads of a finding drawn (10,000 waiters on one mutex: 8 and a count)
MAX_VICTIMS = 12  # victims drawn per finding; the rest are counted in one node
MAX_NODES = 60  # a graph larger than this is no longer something people look at


@dataclass(slots=True)
class Node:
    key: str  # a Thread.id or Resource.id, prefixed "t:" / "r:" (ids of the two may clash)
    is_thread: bool
    ref: str  # the Thread.id or Resource.id
    role: NodeRole = "other"
    in_cycle: bool = False
    more: int = 0  # for the "… N more" node that stands for victims not drawn


@dataclass(slots=True)
class GraphEdge:
    tail: str  # Node.key
    head: str
    kind: EdgeKind
    in_cycle: bool = False


@dataclass(slots=True)
class WaitGraph:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[GraphEdge] = field(default_factory=list)
    truncated: bool = False  # nodes were left out (MAX_NODES)

    def add_node(self, node: Node) -> Node:
        existing = self.nodes.get(node.key)
        if existing is not None:
            return existing
        if len(self.nodes) >= MAX_NODES:
            self.truncated = True
            return node
        self.nodes[node.key] = node
        return node

    def add_edge(self, edge: GraphEdge) -> None:
        if edge.tail not in self.nodes or edge.head not in self.nodes:
            return
        for e in self.edges:
            if (e.tail, e.head, e.kind) == (edge.tail, edge.head, edge.kind):
                e.in_cycle = e.in_cycle or edge.in_cycle
                return
        self.edges.append(edge)


def thread_key(thread_id: str) -> str:
    return "t:" + thread_id


def resource_key(resource_id: str) -> str:
    return "r:" + resource_id


def _owner_edge(res: Resource) -> EdgeKind:
    """A lock is held by its owner; a thread, a future, a queue is ended by its "owner"."""
    return "wakes" if res.kind in UNOWNED_KINDS else "holds"


def for_finding(f: Finding, threads: dict[str, Thread],
                resources: dict[str, Resource]) -> WaitGraph:
    """The nodes and edges that show why ``f`` holds: its cycle, the waits and holds of its
    threads among themselves, and its victims set apart."""
    g = WaitGraph()

    def thread_node(tid: str, role: NodeRole) -> str:
        node = g.add_node(Node(thread_key(tid), True, tid, role))
        if role == "cause" and node.role != "cause":
            node.role = "cause"
        return node.key

    def resource_node(rid: str) -> str:
        return g.add_node(Node(resource_key(rid), False, rid)).key

    for e in f.cycle:
        a, b = thread_node(e.thread, "cause"), thread_node(e.held_by, "cause")
        r = resource_node(e.waits_for)
        res = resources.get(e.waits_for)
        back: EdgeKind = "holds" if res is None else _owner_edge(res)
        g.add_edge(GraphEdge(a, r, "waits", in_cycle=True))
        g.add_edge(GraphEdge(r, b, back, in_cycle=True))
        for key in (a, b, r):
            if key in g.nodes:
                g.nodes[key].in_cycle = True
    for tid in f.threads[:MAX_THREADS]:
        thread_node(tid, "cause")
    if len(f.threads) > MAX_THREADS:
        shown = sum(1 for t in f.threads[:MAX_THREADS] if thread_key(t) in g.nodes)
        g.add_node(Node("more:threads", True, "", "cause", more=len(f.threads) - shown))
    for rid in f.resources:
        resource_node(rid)
    causes = [n.ref for n in list(g.nodes.values()) if n.is_thread and not n.more]
    # What each cause waits for, and who holds that (or who could end the wait).
    for tid in causes:
        t = threads.get(tid)
        if t is None or t.waits is None:
            continue
        r = resource_node(t.waits.resource)
        g.add_edge(GraphEdge(thread_key(tid), r, "waits"))
        res = resources.get(t.waits.resource)
        if res is not None:
            for owner in res.owners:
                g.add_edge(GraphEdge(r, thread_node(owner, "cause"), _owner_edge(res)))
    # Holds among the drawn resources (a thread that holds a lock others in the picture want).
    for tid in causes:
        t = threads.get(tid)
        if t is None:
            continue
        for rid in t.holds:
            if resource_key(rid) in g.nodes:
                g.add_edge(GraphEdge(resource_key(rid), thread_key(tid), "holds"))
    victims = f.blocked_behind[:MAX_VICTIMS]
    for tid in victims:
        key = thread_node(tid, "victim")
        t = threads.get(tid)
        if t is not None and t.waits is not None:
            r = resource_node(t.waits.resource)
            g.add_edge(GraphEdge(key, r, "waits"))
            res = resources.get(t.waits.resource)
            if res is not None:
                for owner in res.owners:
                    if thread_key(owner) in g.nodes:
                        g.add_edge(GraphEdge(r, thread_key(owner), _owner_edge(res)))
    if len(f.blocked_behind) > MAX_VICTIMS:
        g.add_node(Node("more:victims", True, "", "victim",
                        more=len(f.blocked_behind) - MAX_VICTIMS))
    return g

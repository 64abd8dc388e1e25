"""Go/C seed (002): a gateway and a single-threaded engine joined by two bounded queues.

Origin: "Deadlock in the wild" (blog post, January 2018; seed 002), re-expressed in
one process.  A gRPC gateway forwards client requests into the engine's request buffer and
reads the engine's responses from a bounded response buffer.  The engine is single-threaded
and blocks when the response buffer is full.  In the buggy gateway one thread does both jobs:
it only drains responses between requests (``select`` with ``default``, i.e. ``get_nowait``).
A request with a big answer fills the response buffer and parks the engine; the gateway then
blocks putting the next request into the full request buffer, which only the parked engine
empties.  The fixed twin gives the responses their own reader thread, as the post concludes.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass

from zoo.golike import run_threads
from zoo.meta import Meta
from zoo.points import Points, or_none


@dataclass(frozen=True)
class _Request:
    rid: int
    answers: int


_REQUESTS = (_Request(0, 6), _Request(1, 1), _Request(2, 1))
_TOTAL = sum(r.answers for r in _REQUESTS)


class _Engine:
    """The single-threaded C engine."""

    def __init__(self, points: Points) -> None:
        self.requests: queue.Queue[_Request | None] = queue.Queue(maxsize=1)
        self.responses: queue.Queue[tuple[int, int]] = queue.Queue(maxsize=2)
        self.points = points

    def run(self) -> None:
        while True:
            req = self.requests.get()
            if req is None:
                return
            for i in range(req.answers):
                self.points.at(f"put{req.rid}_{i}")
                if self.responses.full():
                    self.points.at("full")
                self.responses.put((req.rid, i))


def _gateway_buggy(engine: _Engine, points: Points) -> None:
    got: list[tuple[int, int]] = []
    for n, req in enumerate(_REQUESTS):
        points.at(f"put{n}")
        engine.requests.put(req)  # blocks while the engine's buffer is full
        while True:  # select { case r := <-responses: ...; default: }
            try:
                got.append(engine.responses.get_nowait())
            except queue.Empty:
                break
        points.at(f"drained{n}")
    while len(got) < _TOTAL:
        got.append(engine.responses.get())
    engine.requests.put(None)


def _gateway_fixed(engine: _Engine, points: Points) -> None:
    def receive() -> None:
        for _ in range(_TOTAL):
            engine.responses.get()

    receiver = threading.Thread(target=receive, name="gateway-recv")
    receiver.start()
    for n, req in enumerate(_REQUESTS):
        points.at(f"put{n}")
        engine.requests.put(req)
        points.at(f"drained{n}")  # nothing to drain here: gateway-recv does it
    receiver.join()
    engine.requests.put(None)


def _main(points: Points | None, fixed: bool) -> None:
    p = or_none(points)
    engine = _Engine(p)
    gateway = _gateway_fixed if fixed else _gateway_buggy
    run_threads(
        threading.Thread(target=engine.run, name="engine"),
        threading.Thread(target=gateway, args=(engine, p), name="gateway"),
    )


def buggy(points: Points | None = None) -> None:
    _main(points, fixed=False)


def fixed(points: Points | None = None) -> None:
    _main(points, fixed=True)


META = Meta(
    origin="Go/C gateway seed 002 ('Deadlock in the wild', blog post, 2018-01-06)",
    kind="queue-cycle",
    verdict="deadlock",
    threads=("gateway", "engine"),
    primitives=("queue engine.requests (maxsize 1)", "queue engine.responses (maxsize 2)"),
    interleaving=(
        "the engine takes request 0 (6 answers); the gateway puts request 1 and drains the "
        "response queue once; the engine refills it and blocks on the next answer; the gateway "
        "blocks putting request 2 into the request queue still holding request 1"
    ),
    blocked=("gateway", "engine"),
    fix="drain responses on a separate gateway-recv thread",
    schedule={"engine:put0_2": ["gateway:drained1"], "gateway:put2": ["engine:full"]},
)

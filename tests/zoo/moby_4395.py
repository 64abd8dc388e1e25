"""moby #4395: a result sent on an unbuffered channel that nobody receives any more.

Origin: https://github.com/moby/moby/pull/4395, GoKer kernel ``goker/blocking/moby/4395``
(fix d3a6ee1e).  ``utils.Go(f)`` runs ``f`` in a goroutine and returns an unbuffered channel
for its error.  The attach code selects between that channel and the container exiting; when
the exit wins, the caller returns and the goroutine blocks forever on ``ch <- f()``.  The
fixed twin makes the channel buffered (capacity 1), so the send never waits for a partner.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from zoo.golike import Empty, Rendezvous, run_threads
from zoo.meta import Meta
from zoo.points import Points, or_none


class _Chan:
    """The error channel: a rendezvous (buggy) or a one-slot queue (fixed)."""

    def __init__(self, buffered: bool) -> None:
        self.buffered = buffered
        self.q: queue.Queue[str] = queue.Queue(maxsize=1)
        self.r: Rendezvous[str] = Rendezvous()

    def send(self, item: str) -> None:
        if self.buffered:
            self.q.put(item)
        else:
            self.r.send(item)

    def try_recv(self) -> str | None:
        try:
            return self.q.get_nowait() if self.buffered else self.r.try_recv()
        except (queue.Empty, Empty):
            return None


def _go(f: Callable[[], str], points: Points, buffered: bool) -> tuple[_Chan, threading.Thread]:
    ch = _Chan(buffered)

    def run() -> None:
        points.at("start")
        ch.send(f())

    t = threading.Thread(target=run, name="stream-copier")
    t.start()
    return ch, t


def _main(points: Points | None, fixed: bool) -> None:
    p = or_none(points)
    exited = threading.Event()
    copiers: list[threading.Thread] = []

    def attach() -> None:
        errs, copier = _go(lambda: "EOF", p, buffered=fixed)
        copiers.append(copier)
        exited.wait()  # select { case err := <-errs: ...; case <-exited: }
        errs.try_recv()
        p.at("returned")

    run_threads(
        threading.Thread(target=attach, name="attach"),
        threading.Thread(target=exited.set, name="container"),
    )
    for t in copiers:
        t.join()


def buggy(points: Points | None = None) -> None:
    _main(points, fixed=False)


def fixed(points: Points | None = None) -> None:
    _main(points, fixed=True)


META = Meta(
    origin="moby #4395 (https://github.com/moby/moby/pull/4395)",
    kind="queue-no-partner",
    verdict="stall",
    threads=("attach", "stream-copier", "container"),
    primitives=("channel errCh (unbuffered)", "event container exited"),
    interleaving=(
        "container exits before stream-copier offers its result; attach sees the exit, finds "
        "no value on errCh and returns; stream-copier then blocks sending on errCh forever"
    ),
    blocked=("stream-copier",),
    fix="make errCh buffered (capacity 1) so the send completes without a receiver",
    schedule={"stream-copier:start": ["attach:returned"]},
    goker="Flaky: 100/100",
)

"""moby #29733: a plugin deactivated behind a waiter's back, nobody left to signal.

Origin: https://github.com/moby/moby/pull/29733, GoKer kernel ``goker/blocking/moby/29733``.
``Plugin.waitActive`` waits on ``activateWait`` until ``activated``; ``Handle`` (a new extension
point handler) resets ``activated = false`` on every plugin so it gets activated again -- but
nothing activates it again, so a later ``waitActive`` waits on a condition that no thread will
ever notify.  The kernel runs the steps in order; here activation, the handler and the waiter
are threads, and the bug needs the handler to run after the activation and before the waiter
checks.  The fixed twin re-activates the plugin in ``Handle`` and broadcasts.
"""

from __future__ import annotations

import threading

from zoo.golike import run_threads
from zoo.meta import Meta
from zoo.points import Points, or_none


class _Plugin:
    def __init__(self, points: Points) -> None:
        self.activate_wait = threading.Condition(threading.Lock())
        self.activated = False
        self.handlers_lock = threading.Lock()
        self.handlers: list[str] = []
        self.points = points

    def activate(self) -> None:
        with self.activate_wait:
            self.activated = True
            self.activate_wait.notify_all()
        self.points.at("activated")

    def handle(self, fixed: bool) -> None:
        self.points.at("start")
        with self.handlers_lock:
            self.handlers.append("VolumeDriver")
            with self.activate_wait:
                self.activated = False  # re-activate with the new handler ...
                if fixed:
                    self.activated = True  # ... and do it, waking the waiters
                    self.activate_wait.notify_all()
        self.points.at("deactivated")

    def wait_active(self) -> None:
        self.points.at("start")
        with self.activate_wait:
            while not self.activated:
                self.activate_wait.wait()


def _main(points: Points | None, fixed: bool) -> None:
    p = _Plugin(or_none(points))
    run_threads(
        threading.Thread(target=p.wait_active, name="plugin-waiter"),
        threading.Thread(target=p.activate, name="plugin-activator"),
        threading.Thread(target=p.handle, args=(fixed,), name="plugin-handler"),
    )


def buggy(points: Points | None = None) -> None:
    _main(points, fixed=False)


def fixed(points: Points | None = None) -> None:
    _main(points, fixed=True)


META = Meta(
    origin="moby #29733 (https://github.com/moby/moby/pull/29733)",
    kind="condition-no-notifier",
    verdict="stall",
    threads=("plugin-waiter", "plugin-activator", "plugin-handler"),
    primitives=("condition Plugin.activateWait", "mutex handlers lock"),
    interleaving=(
        "plugin-activator sets activated and broadcasts; plugin-handler resets activated "
        "before plugin-waiter checks it; plugin-waiter waits on activateWait and both other "
        "threads have exited, so no notify can come"
    ),
    blocked=("plugin-waiter",),
    fix="Handle activates the plugin again and broadcasts activateWait",
    schedule={
        "plugin-handler:start": ["plugin-activator:activated"],
        "plugin-waiter:start": ["plugin-handler:deactivated"],
    },
)

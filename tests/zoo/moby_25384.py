"""moby #25384: ``WaitGroup.Wait`` inside the loop that starts the parties (party count).

Origin: https://github.com/moby/moby/pull/25384, GoKer kernel ``goker/blocking/moby/25384``
(fix 42360d16).  The plugin manager adds ``len(plugins)`` to a WaitGroup, then in the loop
starts one loader and immediately waits for *all* of them; only one party exists when it waits,
and the next is started only after the wait returns.  With two plugins it always blocks.  The
fixed twin waits once, after the loop.
"""

from __future__ import annotations

import threading

from zoo.golike import WaitGroup, run_threads
from zoo.meta import Meta
from zoo.points import Points, or_none


def _manager(plugins: list[str], points: Points, fixed: bool) -> None:
    group = WaitGroup()
    group.add(len(plugins))
    loaded: list[str] = []
    loaders: list[threading.Thread] = []

    def load(plugin: str) -> None:
        try:
            loaded.append(plugin)
        finally:
            group.done()

    for i, plugin in enumerate(plugins):
        t = threading.Thread(target=load, args=(plugin,), name=f"plugin-load-{i}")
        loaders.append(t)
        t.start()
        if not fixed:
            points.at(f"wait{i}")
            group.wait()  # BUG: waits for every plugin, but only i + 1 were started
    if fixed:
        points.at("wait")
        group.wait()
    for t in loaders:
        t.join()


def _main(points: Points | None, fixed: bool) -> None:
    p = or_none(points)
    run_threads(
        threading.Thread(target=_manager, args=(["p1", "p2"], p, fixed), name="plugin-manager")
    )


def buggy(points: Points | None = None) -> None:
    _main(points, fixed=False)


def fixed(points: Points | None = None) -> None:
    _main(points, fixed=True)


META = Meta(
    origin="moby #25384 (https://github.com/moby/moby/pull/25384)",
    kind="barrier-parties",
    verdict="stall",
    threads=("plugin-manager", "plugin-load-0"),
    primitives=("waitgroup Manager.init group (counter + condition)",),
    interleaving=(
        "any: plugin-manager adds 2 to the group, starts plugin-load-0 and waits for the "
        "counter to reach 0; plugin-load-0 finishes (counter 1) and plugin-load-1 is never "
        "started, so nobody can bring the counter to 0"
    ),
    blocked=("plugin-manager",),
    fix="call group.wait() once, after starting every loader",
    schedule={},
    goker="Flaky: 100/100",
)

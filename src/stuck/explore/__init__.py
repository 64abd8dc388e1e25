"""``stuck explore``: run a test under a controlled scheduler and find the interleaving that hangs.

The public API is :func:`explore` (returns an :class:`ExploreResult`), :func:`explores` (a
decorator for tests) and :func:`replay`. The module itself is callable too:
``stuck.explore(func, ...)`` is ``stuck.explore.explore(func, ...)``. Everything else is loaded on
first use, so importing ``stuck.explore`` patches nothing and starts no thread.
"""

from __future__ import annotations

import functools
import sys
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from stuck.errors import StuckError

if TYPE_CHECKING:
    from stuck.explore.engine import ExploreResult

__all__ = ["ExploreFailure", "ExploreResult", "explore", "explores", "render", "replay"]

F = TypeVar("F", bound=Callable[..., Any])


def explore(func: Callable[[], object], **options: Any) -> ExploreResult:
    """Explore interleavings of ``func`` (which starts its own threads).

    Options: ``executions`` (1000), ``strategy`` ("portfolio", "random", "pct[:d]", "pos",
    "dfs[:bound]"), ``seed`` (0), ``time_budget`` (seconds, None), ``max_steps`` (20000),
    ``shrink_failures`` (True), ``replay`` (a token), ``progress`` (callback ``(done, total)``),
    ``jobs`` (1: worker processes sharing the executions, like ``stuck explore --jobs``; the
    function must then be importable by name, i.e. defined at module level).
    """
    jobs = int(options.pop("jobs", 1))
    if jobs != 1:
        from stuck.explore.engine import explore_parallel

        return explore_parallel(func, jobs=jobs, **options)
    from stuck.explore.engine import explore as _explore

    return _explore(func, **options)


def replay(func: Callable[[], object], token: str, **options: Any) -> ExploreResult:
    """Re-run the schedule recorded in ``token``."""
    return explore(func, replay=token, **options)


def render(result: ExploreResult) -> str:
    from stuck.explore.show import render as _render

    return _render(result)


def __getattr__(name: str) -> Any:
    if name == "ExploreResult":
        from stuck.explore.engine import ExploreResult

        return ExploreResult
    raise AttributeError(f"module 'stuck.explore' has no attribute {name!r}")


class ExploreFailure(StuckError, AssertionError):
    """Raised by :func:`explores` when an interleaving deadlocks, stalls, hangs or raises."""

    def __init__(self, message: str, result: ExploreResult) -> None:
        super().__init__(message)
        self.result = result


# Set by the pytest plugin while a test runs with --stuck-replay=TOKEN.
_replay_token: list[str | None] = [None]
_replay_used: list[bool] = [False]  # whether a test ran it (the plugin says so if none did)
_last_failure: list[ExploreResult | None] = [None]


def explores(executions: int = 1000, **options: Any) -> Callable[[F], F]:
    """Decorate a test: its body runs under the controlled scheduler, many times.

    The test fails with :class:`ExploreFailure` (the shown schedule and a replay token) when one
    interleaving fails. Under pytest, ``--stuck-replay=TOKEN`` re-runs just that interleaving.
    """

    def wrap(test: F) -> F:
        @functools.wraps(test)
        def run(*args: Any, **kwargs: Any) -> None:
            def body() -> None:
                test(*args, **kwargs)

            opts = dict(options)
            token = _replay_token[0]
            if token is not None:
                opts["replay"] = token
                _replay_used[0] = True
            result = explore(body, executions=executions, **opts)
            if result.found:
                _last_failure[0] = result
                from stuck.explore.replaying import current_nodeid, replay_command
                from stuck.explore.show import render as _render

                nodeid = current_nodeid()
                command = (replay_command(nodeid, result.token)
                           if nodeid and result.token else None)
                raise ExploreFailure(_render(result, command), result)

        return run  # type: ignore[return-value]

    return wrap


class _CallableModule(types.ModuleType):
    """``stuck.explore`` is a package and, called, the :func:`explore` function."""

    def __call__(self, func: Callable[[], object], **options: Any) -> ExploreResult:
        return explore(func, **options)


sys.modules[__name__].__class__ = _CallableModule

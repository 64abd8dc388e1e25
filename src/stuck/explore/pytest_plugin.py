"""pytest integration of ``stuck explore``.

* ``@pytest.mark.stuck_explore(executions=..., strategy=..., seed=...)`` runs the test body under
  the controlled scheduler, many times (or use the :func:`stuck.explore.explores` decorator);
* ``--stuck-replay=TOKEN`` re-runs exactly the failing interleaving of such a test.

On failure the report ends with the command that reproduces it:
``pytest path::test --stuck-replay=TOKEN``.
"""

from __future__ import annotations

from typing import Any

import pytest

from stuck.explore.replaying import replay_command
from stuck.tracebacks import hide_in_pytest

# pytest leaves these frames out of the tracebacks it shows (STUCK_DEBUG=1 keeps them).
__tracebackhide__ = hide_in_pytest()


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("stuck-explore", "stuck explore (controlled scheduler)")
    group.addoption("--stuck-replay", action="store", default=None, metavar="TOKEN",
                    help="Re-run the interleaving of a stuck explore replay token.")


def pytest_configure(config: Any) -> None:
    config.addinivalue_line(
        "markers",
        "stuck_explore(executions=1000, strategy='portfolio', seed=0, time_budget=None): run "
        "the test under stuck's controlled scheduler and fail on a deadlock, stall, hang or "
        "exception in any interleaving",
    )
    token = config.getoption("--stuck-replay", default=None)
    if token:
        from stuck import explore as explore_pkg

        explore_pkg._replay_token[0] = token
        explore_pkg._replay_used[0] = False


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    """A replay token that no test ran: the tests selected ran as plain tests, so their result
    says nothing about the interleaving the token names. Said, and the session fails as a
    usage error, rather than reporting a pass."""
    if not session.config.getoption("--stuck-replay", default=None):
        return
    from stuck import explore as explore_pkg

    if explore_pkg._replay_used[0] or exitstatus not in (pytest.ExitCode.OK,
                                                         pytest.ExitCode.TESTS_FAILED):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    message = ("stuck: --stuck-replay was given, but no selected test runs under stuck's "
               "scheduler, so the token was not replayed: select the test it came from (it is "
               "marked @pytest.mark.stuck_explore or decorated with @explores)")
    if reporter is not None:
        reporter.write_line(message, red=True)
    session.exitstatus = pytest.ExitCode.USAGE_ERROR


def pytest_unconfigure(config: Any) -> None:
    if config.getoption("--stuck-replay", default=None):
        from stuck import explore as explore_pkg

        explore_pkg._replay_token[0] = None


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: Any) -> bool | None:
    marker = pyfuncitem.get_closest_marker("stuck_explore")
    if marker is None:
        return None
    from stuck import explore as explore_pkg
    from stuck.explore.show import render

    options = dict(marker.kwargs)
    if marker.args:
        options.setdefault("executions", marker.args[0])
    token = explore_pkg._replay_token[0]
    if token is not None:
        options["replay"] = token
        explore_pkg._replay_used[0] = True
    func = pyfuncitem.obj
    argnames = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in argnames}

    def body() -> None:
        func(**kwargs)

    result = explore_pkg.explore(body, **options)
    if result.found:
        command = replay_command(pyfuncitem.nodeid, result.token) if result.token else None
        raise explore_pkg.ExploreFailure(render(result, command), result)
    return True

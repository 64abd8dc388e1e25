"""pytest plugin: ``pytest --stuck`` checks lock order and catches deadlocks in tests.

With ``--stuck`` (or ``stuck = true`` in the ini file / ``[tool.pytest.ini_options]``):

- the live instrumentation is installed for the session with policy ``raise``: a test whose
  threads deadlock fails with the deadlock report instead of hanging the run. The thread whose
  wait would close the cycle gets ``stuck.DeadlockError`` and unwinds, releasing its locks, so
  the other threads proceed; the test fails even when that thread is not the test's own.
  That happens at once for a cycle ownership proves (locks, joins); one through a semaphore,
  queue, condition or future is raised once the watchdog proves that nothing able to run can
  end it (in the main thread, when it is blocked in or behind it), or at once with
  ``--stuck-act-on probable``. A stall a Python signal handler installed by the test could
  end is probable (the signal may still come), so it is reported, not raised; pytest-timeout's
  handler only fails the test and does not count, so with it a stalled test still fails at once.
- the lock-order checker runs for the whole session. Orders seen in different tests combine
  (one test takes A then B, another B then A): the cycles found fail the run at the end, with
  a summary (``--stuck-fail-at=test`` fails the test that closed each cycle instead).
- under pytest-xdist each worker checks its own tests and sends its findings to the
  controller, which removes duplicates and writes one summary.

Registered through the ``pytest11`` entry point, so it is loaded in every pytest session; it
imports nothing of stuck's runtime until ``--stuck`` asks for it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Generator

    from stuck.model import Finding, Report

_WORKER_KEY = "stuck_lockorder"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("stuck", "stuck: lock-order checking and deadlock detection")
    group.addoption("--stuck", action="store_true", default=None,
                    help="instrument locks for the session: fail on lock-order cycles and "
                         "turn deadlocks into test failures")
    group.addoption("--stuck-fail-at", choices=("session", "test"), default=None,
                    help="where lock-order findings fail: at the end of the session with a "
                         "summary (default), or in the test that closed the cycle")
    group.addoption("--stuck-strict", action="store_true", default=None,
                    help="report lock-order cycles through timed acquires as deadlock risks")
    group.addoption("--stuck-act-on", choices=("certain", "probable"), default=None,
                    help="the least confidence on which stuck raises in a test's threads: "
                         "certain (default: proven findings only) or probable (also cycles "
                         "that rest on who used a semaphore, queue, condition or future so "
                         "far, at once)")
    parser.addini("stuck_act_on", default="certain",
                  help="certain or probable: the least confidence stuck raises on (like "
                       "--stuck-act-on)")
    parser.addini("stuck", type="bool", default=False,
                  help="turn on stuck's instrumentation for every run (like --stuck)")
    parser.addini("stuck_fail_at", default="session",
                  help="session or test: where lock-order findings fail (like --stuck-fail-at)")
    parser.addini("stuck_strict", type="bool", default=False,
                  help="cycles through timed acquires count as deadlock risks")


def _setting(config: pytest.Config, option: str, ini: str) -> Any:
    value = config.getoption(option)
    return config.getini(ini) if value is None else value


def pytest_configure(config: pytest.Config) -> None:
    if not _setting(config, "stuck", "stuck"):
        return
    fail_at = str(_setting(config, "stuck_fail_at", "stuck_fail_at")).strip()
    if fail_at not in ("session", "test"):
        raise pytest.UsageError(f"stuck_fail_at must be 'session' or 'test', not {fail_at!r}")
    act_on = str(_setting(config, "stuck_act_on", "stuck_act_on")).strip()
    if act_on not in ("certain", "probable"):
        raise pytest.UsageError(f"stuck_act_on must be 'certain' or 'probable', not {act_on!r}")
    session = StuckSession(config, fail_at, bool(_setting(config, "stuck_strict", "stuck_strict")),
                           act_on)
    config.pluginmanager.register(session, "stuck-session")
    if session.controller and config.pluginmanager.hasplugin("xdist"):
        # pytest_testnodedown is xdist's hook: pluggy refuses a plugin implementing a hook
        # nobody declared, so it is registered only when xdist is there to declare it.
        config.pluginmanager.register(_XdistMerge(session), "stuck-xdist-merge")


def _is_xdist_controller(config: pytest.Config) -> bool:
    if hasattr(config, "workerinput"):
        return False
    return getattr(config.option, "dist", "no") != "no" and bool(
        getattr(config.option, "numprocesses", None) or getattr(config.option, "tx", None))


def _signature(f: Finding) -> str:
    sig = f.details.get("signature")
    return str(sig) if sig is not None else f.summary


class StuckSession:
    """The plugin's state for one session in which ``--stuck`` is on."""

    def __init__(self, config: pytest.Config, fail_at: str, strict: bool,
                 act_on: str = "certain") -> None:
        self.config = config
        self.fail_at = fail_at
        self.strict = strict
        self.controller = _is_xdist_controller(config)
        self.installed_here = False
        self.merged: Any = None  # controller: a LockOrderChecker merging the workers' graphs
        self.notes: list[str] = []
        self._deadlocks_before = 0
        self._signatures_before: set[str] = set()
        self._failed_at_test: set[str] = set()
        from stuck.runtime import lockorder

        self.escaped: list[str] = []  # names bound before install to classes: not tracked
        self.rebound: list[str] = []  # names bound before install to factories: rebound
        if self.controller:  # the workers run the tests; the controller merges their graphs
            self.merged = lockorder.LockOrderChecker(strict=strict)
            return
        import stuck.runtime

        if not stuck.runtime.installed():
            stuck.runtime.install(policy="raise", signal=None,
                                  act_on="probable" if act_on == "probable" else "certain")
            self.installed_here = True
        else:
            self.notes.append("stuck was already installed: its policy is kept as it was")
        green = stuck.runtime.green_threads()
        if green is not None:
            self.notes.append(f"{green} has monkey-patched threading: nothing was tracked or "
                              "checked (stuck tracks OS threads; greenlets share one)")
        from stuck.runtime import prebound

        self.escaped = list(prebound.escaped)
        self.rebound = list(prebound.rebound)
        lockorder.enable(strict=strict)

    # -- per test ------------------------------------------------------------------------

    def _deadlock_reports(self) -> list[Report]:
        from stuck.runtime import policy

        return list(policy.findings_seen)

    def _lockorder_findings(self) -> list[Finding]:
        from stuck.runtime import lockorder

        return lockorder.findings()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if self.controller:
            return
        self._deadlocks_before = len(self._deadlock_reports())
        if self.fail_at == "test":
            self._signatures_before = {_signature(f) for f in self._lockorder_findings()}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item,
                                  call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
        outcome = yield
        if self.controller:
            return
        report: pytest.TestReport = outcome.get_result()
        problems: list[str] = []
        if call.when == "call":
            from stuck.report import text as text_report

            reports = self._deadlock_reports()
            new = reports[self._deadlocks_before:]
            self._deadlocks_before = len(reports)
            for r in new:
                waited = any("policy_waits_for_proof" in f.details for f in r.findings)
                raised = any(f.details.get("policy") == "raise" for f in r.findings)
                problems.append(
                    ("stuck: this test formed a probable deadlock cycle; no error was raised "
                     "for it when it formed (raise acts on proven cycles: it is raised once "
                     "the watchdog proves it, or at once with --stuck-act-on probable)"
                     if waited else "stuck: this test deadlocked; the thread closing the "
                     "cycle got stuck.DeadlockError" if raised else
                     "stuck: this test formed a deadlock cycle; it was reported, and nothing "
                     "was raised (a wait in it has a timeout, or the policy only reports)")
                    + "\n\n" + text_report.render(r))
        if self.fail_at == "test":
            from stuck.report import lockorder as lockorder_report

            fresh = [f for f in self._lockorder_findings()
                     if _signature(f) not in self._signatures_before]
            self._signatures_before.update(_signature(f) for f in fresh)
            if fresh:
                self._failed_at_test.update(_signature(f) for f in fresh)
                problems.append("stuck: this test closed a lock-order cycle\n\n"
                                + lockorder_report.render(fresh))
        if not problems:
            return
        text = "\n".join(problems)
        if report.failed and report.longrepr is not None:
            text = str(report.longrepr) + "\n\n" + text
        report.outcome = "failed"
        report.longrepr = text

    # -- end of session ------------------------------------------------------------------

    def merge_worker(self, node: Any) -> None:
        """xdist controller: merge the lock-order graph a worker sends."""
        output = getattr(node, "workeroutput", None) or {}
        text = output.get(_WORKER_KEY)
        if not text or self.merged is None:
            return
        state = json.loads(text)
        worker = str(output.get("workerid") or (getattr(node, "gateway", None) and
                     node.gateway.id) or "worker")
        self.merged.merge_state(state, worker)
        self._failed_at_test.update(state.get("failed_at_test", []))
        for name in state.get("escaped", []):
            if name not in self.escaped:
                self.escaped.append(name)

    def session_findings(self) -> list[Finding]:
        if self.merged is not None:
            return list(self.merged.findings())
        from stuck.runtime import lockorder

        return lockorder.findings()

    def _all_notes(self) -> list[str]:
        notes = list(self.notes)
        from stuck.runtime import lockorder

        c = self.merged if self.merged is not None else lockorder.checker()
        if c is not None:
            notes += [n for n in c.notes() if n not in notes]
        if self.escaped:
            notes.append("not tracked, so not checked: what is made through "
                         + ", ".join(self.escaped[:10])
                         + ("" if len(self.escaped) <= 10 else f", … {len(self.escaped) - 10} more")
                         + ". These classes were derived from a primitive (or bound to one "
                           "that cannot be derived from) in modules loaded before stuck (a "
                           "conftest importing the code under test); install stuck before "
                           "they are imported (stuck run -m pytest) to have them checked")
        return notes

    def coverage(self) -> str:
        """How much was checked, so that "no problem found" can be weighed."""
        from stuck.runtime import lockorder, registry

        c = self.merged if self.merged is not None else lockorder.checker()
        classes = c.stats().get("classes", 0) if c is not None else 0
        text = f"{classes} lock class{'es' if classes != 1 else ''} checked"
        if self.merged is None:
            made = dict(registry.made)
            total = sum(made.values())
            kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(made.items()))
            text += f", {total} primitive{'s' if total != 1 else ''} tracked"
            if kinds:
                text += f" ({kinds})"
        if self.rebound:
            text += f"; {len(self.rebound)} name(s) bound before install tracked too"
        return text

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        workeroutput = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:
            from stuck.runtime import lockorder

            c = lockorder.checker()
            state: dict[str, Any] = c.export_state() if c is not None else {}
            state["failed_at_test"] = sorted(self._failed_at_test)
            state["escaped"] = list(self.escaped)
            workeroutput[_WORKER_KEY] = json.dumps(state)
            return  # the controller merges the graphs and decides the exit status
        findings = self.session_findings()
        unreported = [f for f in findings if _signature(f) not in self._failed_at_test]
        if unreported and self.fail_at == "session" and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int,
                                config: pytest.Config) -> None:
        if hasattr(config, "workerinput"):
            return
        from stuck.report import lockorder as lockorder_report

        findings = self.session_findings()
        notes = self._all_notes()
        coverage = self.coverage()
        if not findings and not notes:
            terminalreporter.write_sep("-", f"stuck: no lock-order problem found ({coverage})")
            return
        if self.fail_at == "test":
            title = f"stuck: {len(findings)} lock-order finding(s), each failed its test"
        else:
            title = f"stuck: {len(findings)} lock-order finding(s) fail this run"
        if not findings:
            title = f"stuck: no lock-order problem found ({coverage}); notes"
        else:
            title += f" ({coverage})"
        terminalreporter.write_sep("=", title, red=bool(findings))
        terminalreporter.write(lockorder_report.render(findings, notes))

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.controller:
            return
        from stuck.runtime import lockorder

        lockorder.disable()
        if self.installed_here:
            import stuck.runtime

            if stuck.runtime.installed():
                stuck.runtime.uninstall()


class _XdistMerge:
    """The xdist controller's hook, apart from ``StuckSession`` so that a session without
    pytest-xdist (not installed, or ``-p no:xdist``) never sees a hook it does not know."""

    def __init__(self, session: StuckSession) -> None:
        self.session = session

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        self.session.merge_worker(node)

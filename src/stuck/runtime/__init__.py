"""Live instrumentation: ``stuck.install()`` swaps the standard primitives for tracked ones.

After ``install()``, new ``threading`` locks, conditions, semaphores, events and barriers, the
``queue`` classes, ``Thread.join`` and ``concurrent.futures`` waits are tracked, and so are
``asyncio``'s locks, events, conditions, semaphores and queues, with tasks in the wait-for graph
(see ``stuck.runtime.aio``): the registry knows who holds and who waits for what, and a
thread (or task) about to block first checks whether its wait closes a deadlock cycle (see
``stuck.runtime.detect``). What happens then is the policy:
``report`` (default), ``raise`` or ``abort`` (see ``stuck.runtime.policy``).

Objects created before ``install()`` stay untracked. Names bound before it (``from threading
import RLock, Event`` at import time) are rebound, so what they make from then on is tracked;
classes derived from a primitive before it keep their original base and are listed as escaped
(``stuck.runtime.prebound``): install first, which ``stuck run`` does.
"""

from __future__ import annotations

import contextlib
import os
import signal as _signal
import sys
import threading
from typing import Any, TextIO

from stuck.model import Report
from stuck.runtime import patch, policy
from stuck.runtime.policy import ACT_ON, POLICIES, ActOn, Policy

BACKEND = "live"
_state: dict[str, Any] = {"signal": None, "previous_handler": None}


def _replacements() -> list[tuple[object, str, object]]:
    from stuck.runtime import futures, primitives, queues, threads, tracing

    return [*primitives.REPLACEMENTS, *threads.REPLACEMENTS, *queues.REPLACEMENTS,
            *futures.REPLACEMENTS, *tracing.REPLACEMENTS]


def _track_asyncio() -> None:
    """Replace asyncio's primitives too (``stuck.runtime.aio`` imports asyncio).

    When the program imports ``stuck.runtime.aio`` itself before asyncio, asyncio is imported
    from inside that import, and ``aio`` is not complete yet: it is tracked when ``aio`` is
    (``registry.after_aio_import``)."""
    if not installed():
        return
    partial = sys.modules.get("stuck.runtime.aio")
    if partial is not None and not hasattr(partial, "REPLACEMENTS_READY"):
        from stuck.runtime import registry

        if _track_asyncio not in registry.after_aio_import:
            registry.after_aio_import.append(_track_asyncio)
        return
    from stuck.runtime import aio

    patch.extend(BACKEND, aio.REPLACEMENTS)


class _AsyncioImportHook:
    """Tracks asyncio's primitives as soon as the program imports asyncio, and not before:
    importing asyncio costs tens of milliseconds, which a program that never uses it should
    not pay for being watched. A one-shot finder at the front of ``sys.meta_path``: it finds
    asyncio's spec with the finders after it, and has the loader replace the primitives right
    after the module has run (before the import returns to the program)."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "asyncio":
            return None
        _remove_asyncio_hook()
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        run = getattr(loader, "exec_module", None)
        if run is None or isinstance(loader, type):  # not a plain loader object: leave it
            return spec

        def exec_module(module: Any) -> None:
            with contextlib.suppress(AttributeError):
                del loader.exec_module  # back to the loader's own method
            run(module)
            _track_asyncio()

        loader.exec_module = exec_module
        return spec


_asyncio_hook = _AsyncioImportHook()


def _remove_asyncio_hook() -> None:
    with contextlib.suppress(ValueError):
        sys.meta_path.remove(_asyncio_hook)


def installed() -> bool:
    return patch.active() == BACKEND


def install(policy: Policy = "report", json_path: str | None = None,
            report_stream: TextIO | None = None,
            signal: int | None = getattr(_signal, "SIGUSR1", None),
            hang_after: float | None = None, hang_policy: Policy = "report",
            stalls: bool = True, html_path: str | None = None,
            act_on: ActOn = "certain") -> None:
    """Track every primitive made from now on and watch for deadlocks.

    ``policy``: what to do when a thread's wait would close a deadlock cycle: ``"report"``
    (write the report and keep waiting), ``"raise"`` (raise ``stuck.DeadlockError`` in that
    thread) or ``"abort"`` (write the report and exit with code 86). ``json_path``: also write
    each report as JSON (schema ``stuck.report/1``) to this file; ``html_path``, as the HTML
    report. ``report_stream``: where the
    text report goes (default: ``sys.stderr``). ``signal``: a signal number that makes the
    program write its current snapshot report without stopping (default SIGUSR1; None: none;
    only set up when called from the main thread, and only when the signal has its default
    action: a handler the program set, or an ignored signal, stays the program's).
    ``stalls``: run the watchdog thread that applies the stall rules (waits nothing able to
    run can end; see ``stuck.runtime.stall``). ``hang_after``: seconds without progress after
    which a thread is reported as a hang (None: no hang reports). ``hang_policy``: what the
    watchdog does about a hang or a proven stall: ``report``, ``raise`` (``HangError`` in the
    stuck thread) or ``abort`` (exit 86 at once). ``policy`` applies to the proven stalls and
    deadlocks the watchdog finds too (``raise``: ``stuck.StallError`` in the main thread when
    it is blocked behind one).

    ``act_on``: the least confidence ``raise`` and ``abort`` act on. ``"certain"`` (default):
    only on proven findings; a cycle found when a thread blocks that rests on who used a
    semaphore, queue, condition or future so far is reported, and the watchdog acts once it
    proves it (so under ``raise`` or ``abort`` the watchdog runs even with ``stalls=False``).
    ``"probable"``: on probable findings too, at once.
    """
    if policy not in POLICIES:
        raise ValueError(f"stuck: unknown policy {policy!r}; use one of {', '.join(POLICIES)}")
    if act_on not in ACT_ON:
        raise ValueError(f"stuck: unknown act_on {act_on!r}; use one of {', '.join(ACT_ON)}")
    # Import everything a report needs now, not while the program is deadlocked.
    import stuck.groups
    import stuck.report.json
    import stuck.report.text
    import stuck.runtime.livereport
    if sys.platform.startswith("linux"):
        import stuck.capture.handover
    if html_path is not None:
        import stuck.report.html

    green = green_threads()
    _state["green"] = green
    if green is not None:
        # Installed, so that uninstall() and installed() behave as always, but with nothing
        # replaced: see green_threads().
        patch.install(BACKEND, [])
        with contextlib.suppress(Exception):
            sys.stderr.write(
                f"stuck: {green} has monkey-patched threading: its locks, queues and "
                "greenlets are left as they are, and nothing is tracked or checked (stuck "
                "tracks OS threads, and every greenlet shares one)\n")
        return
    replacements = _replacements()
    patch.install(BACKEND, replacements)
    if "asyncio" in sys.modules:
        _track_asyncio()
        from stuck.runtime import aio

        replacements = [*replacements, *aio.REPLACEMENTS]
    elif _asyncio_hook not in sys.meta_path:
        sys.meta_path.insert(0, _asyncio_hook)
    _track_prebound(replacements)
    from stuck import tracebacks
    from stuck.runtime import endings
    endings.install()
    tracebacks.install()
    policy_settings = stuck.runtime.policy.settings
    policy_settings.policy = policy
    policy_settings.act_on = act_on
    policy_settings.json_path = json_path
    policy_settings.html_path = html_path
    policy_settings.stream = report_stream
    if signal is not None and threading.current_thread() is threading.main_thread():
        _take_signal(signal)
    if policy == "raise":
        stuck.runtime.policy.arm_main_raise()
    # Under raise/abort the watchdog is what proves a cycle a thread closed without proof.
    if stalls or hang_after is not None or (policy != "report" and act_on == "certain"):
        _start_watchdog(hang_after, hang_policy, json_path, report_stream, html_path)


def green_threads() -> str | None:
    """"gevent" or "eventlet" when that library has monkey-patched ``threading``, else None.

    Its primitives then stand where the originals were, and its "threads" are greenlets that
    share one OS thread: stuck's tracking, which knows a thread by its OS identity, would call
    every greenlet the same thread, and wrapping the library's classes breaks them. So under
    either one stuck replaces nothing, runs no watchdog and takes no signal."""
    gevent_monkey = sys.modules.get("gevent.monkey")
    with contextlib.suppress(Exception):
        if gevent_monkey is not None and gevent_monkey.is_module_patched("threading"):
            return "gevent"
    eventlet_patcher = sys.modules.get("eventlet.patcher")
    with contextlib.suppress(Exception):
        if eventlet_patcher is not None and eventlet_patcher.is_monkey_patched("thread"):
            return "eventlet"
    return None


def _track_prebound(replacements: list[tuple[object, str, object]]) -> None:
    """Rebind the names modules loaded earlier bound to an original factory (``from threading
    import RLock``), and list the ones that stay untracked (see ``stuck.runtime.prebound``)."""
    from stuck.runtime import prebound

    try:
        found = prebound.scan(prebound.originals_of(replacements, patch.original))
    except Exception as exc:  # the search is a courtesy: never a reason to fail install()
        prebound.forget()
        with contextlib.suppress(Exception):
            sys.stderr.write(f"stuck: could not search for names bound before install: "
                             f"{exc!r}\n")
        return
    patch.extend(BACKEND, found)


def _take_signal(signum: int) -> None:
    """Set the snapshot handler on ``signum`` only when the signal has its default action:
    a signal the program handles (or ignores) stays the program's."""
    _state["signal"] = None
    try:
        if _signal.getsignal(signum) is not _signal.SIG_DFL:
            return
        _state["previous_handler"] = _signal.signal(signum, _on_signal)
        _state["signal"] = signum
    except (ValueError, OSError):
        _state["signal"] = None


def _start_watchdog(hang_after: float | None, hang_policy: Policy, json_path: str | None,
                    report_stream: TextIO | None, html_path: str | None = None) -> None:
    from stuck.runtime.stall import LiveChecker
    from stuck.runtime.watchdog import Watchdog, WatchdogConfig

    dog = Watchdog(WatchdogConfig(hang_after=hang_after, policy=hang_policy,
                                  stream=report_stream, json_path=json_path,
                                  html_path=html_path),
                   live=LiveChecker())
    _state["watchdog"] = dog
    dog.start()
    if not _state.get("fork_hook") and hasattr(os, "register_at_fork"):
        _state["fork_hook"] = True
        os.register_at_fork(after_in_child=_watchdog_in_child)


def _watchdog_in_child() -> None:
    """A forked child has only the thread that forked: the parent's watchdog is not in it. A
    child that then waits for a lock another thread of the parent held when it forked (the
    classic fork-while-locked hang) would wait silently. It gets a watchdog of its own for
    deadlocks and stalls, with the parent's policy and stream; not the hang limit (a worker
    idle in a pipe read is what forked pool children do) and not the report files (the
    parent's)."""
    from stuck.runtime import registry

    # The parent's watchdog is not in the child, and a thread the child starts may get its
    # ident: none of the program's threads may be left out of the child's reports for it.
    registry.own_idents.clear()
    dog = _state.get("watchdog")
    if dog is None:
        return
    with contextlib.suppress(Exception):
        _start_watchdog(None, "report", None, dog.config.stream, None)


def uninstall() -> None:
    """Restore the original primitives (tracked objects already made keep working)."""
    sig = _state.get("signal")
    if sig is not None:
        try:
            if _signal.getsignal(sig) is _on_signal:  # not if the program set its own since
                previous = _state.get("previous_handler")
                _signal.signal(sig, previous if previous is not None else _signal.SIG_DFL)
        except (ValueError, OSError):
            pass
        _state["signal"] = None
    dog = _state.pop("watchdog", None)
    if dog is not None:
        dog.stop()
    # After the watchdog has stopped: a signal it sent once the default action is back
    # would end the program.
    policy.disarm_main_raise()
    _remove_asyncio_hook()
    from stuck.runtime import registry

    with contextlib.suppress(ValueError):  # asyncio imported by stuck.runtime.aio, not done
        registry.after_aio_import.remove(_track_asyncio)
    patch.uninstall(BACKEND)
    from stuck.runtime import prebound

    prebound.forget()
    from stuck import tracebacks
    from stuck.runtime import endings
    endings.uninstall()
    tracebacks.uninstall()
    policy.settings.policy = "report"
    policy.settings.act_on = "certain"
    policy.settings.json_path = None
    policy.settings.stream = None
    policy.reset()
    tasks = registry.tasks_module()
    if tasks is not None:
        tasks.reset()


def snapshot() -> Report:
    """A report of this moment: every thread, what it holds and waits for, any cycle now."""
    from stuck.runtime.reporting import report_for

    return report_for(None, policy.settings.policy)


def _on_signal(signum: int, frame: Any) -> None:
    """Write the snapshot report without stopping the program (runs on the main thread)."""
    try:
        report = snapshot()
        policy.write_report(report)
    except Exception as exc:  # a report must never take the program down
        with contextlib.suppress(Exception):
            sys.stderr.write(f"stuck: could not write the snapshot report: {exc!r}\n")


__all__ = ["install", "installed", "snapshot", "uninstall"]

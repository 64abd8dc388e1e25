"""``stuck run``: run a Python program with deadlock detection on, like ``coverage run``.

The program sees what it would see under ``python``: ``sys.argv`` is the script (or module)
and its arguments, it runs as ``__main__``, ``sys.path[0]`` is the script's directory (the
current directory for ``-m``), and its exit code is stuck's exit code. The instrumentation is
installed before the program is compiled or imported, so every primitive it makes is tracked.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import io
import os
import runpy
import signal as _signal
import sys
import traceback
import types
from typing import TYPE_CHECKING, Any

import click

from stuck.errors import EXIT_USAGE
from stuck.interrupt import hand_sigint_to_program
from stuck.runtime.policy import ACT_ON, POLICIES

if TYPE_CHECKING:
    from stuck.model import Finding


def _signal_number(name: str) -> int | None:
    if name.lower() in ("none", "off", "0"):
        return None
    upper = name.upper()
    if upper.isdigit():
        return int(upper)
    if not upper.startswith("SIG"):
        upper = "SIG" + upper
    number = getattr(_signal, upper, None)
    if not isinstance(number, int):
        raise click.UsageError(f"unknown signal {name!r}; use a name such as USR1 or USR2, "
                               f"or 'none'")
    return number


def _run_script(path: str, args: list[str]) -> None:
    try:
        with open(path, "rb") as f:
            source = f.read()
    except OSError as exc:
        click.echo(f"stuck: cannot read {path}: {exc.strerror or exc}", err=True)
        sys.exit(EXIT_USAGE)
    # As python 3.9+ does for `python path`: __file__ and the code's file name are the path
    # joined to the working directory (not normalized, symlinks kept), sys.argv[0] is the path
    # as given, and sys.path[0] is the directory of the script with its symlinks resolved.
    full = path if os.path.isabs(path) else os.path.join(os.getcwd(), path)
    try:
        code = compile(source, full, "exec", dont_inherit=True)
    except SyntaxError:
        traceback.print_exc(limit=0)
        sys.exit(1)
    main = types.ModuleType("__main__")
    main.__file__ = full
    main.__builtins__ = __builtins__  # type: ignore[attr-defined]
    main.__loader__ = importlib.machinery.SourceFileLoader("__main__", full)
    main.__spec__ = None
    main.__cached__ = None  # type: ignore[attr-defined]
    sys.modules["__main__"] = main
    sys.argv = [path, *args]
    sys.path[0] = os.path.dirname(os.path.realpath(path))
    hand_sigint_to_program()
    exec(code, main.__dict__)


def _run_module(module: str, args: list[str]) -> None:
    sys.argv = [module, *args]
    sys.path[0] = os.getcwd()
    hand_sigint_to_program()
    try:
        runpy._run_module_as_main(module, alter_argv=True)  # type: ignore[attr-defined]
    except ImportError as exc:
        if getattr(exc, "name", None) and module.startswith(str(exc.name)):
            click.echo(f"stuck: no module named {module!r}", err=True)
            sys.exit(EXIT_USAGE)
        raise


@click.command(
    "run",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False,
                      "help_option_names": ["-h", "--help"]},
)
@click.option("-m", "module", metavar="MODULE", default=None,
              help="Run a library module as a script, like python -m.")
@click.option("--policy", type=click.Choice(POLICIES), default="report", show_default=True,
              help="On a deadlock or a stall: report and keep waiting, raise "
                   "stuck.DeadlockError in the thread that closes the cycle (StallError in a "
                   "main thread blocked behind a stall), or abort (exit code 86). raise and "
                   "abort act on certain findings only (see --act-on).")
@click.option("--act-on", "act_on", type=click.Choice(ACT_ON), default="certain",
              show_default=True,
              help="The least confidence --policy raise/abort act on. certain: only on what "
                   "is proven; a cycle through a semaphore, queue, condition or future is "
                   "acted on once the watchdog proves that nothing able to run can end it. "
                   "probable: also on findings that rest on who used a primitive so far, at "
                   "once (a thread that never used it could still end the wait).")
@click.option("--json", "json_path", metavar="FILE", default=None,
              help="Also write each report as JSON (schema stuck.report/1) to FILE.")
@click.option("--debug", is_flag=True, default=False,
              help="Show stuck's own frames in the tracebacks of the errors it raises "
                   "(they are left out otherwise; same as STUCK_DEBUG=1).")
@click.option("--html", "html_path", metavar="FILE", default=None,
              help="Also write each report as a self-contained HTML page (with the wait-for "
                   "graph drawn when Graphviz is installed) to FILE.")
@click.option("--signal", "signal_name", default="USR1", show_default=True,
              help="Signal that makes the program write its current report "
                   "without stopping ('none' to disable).")
@click.argument("program_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--hang-after", "hang_after_text", metavar="DURATION", default=None,
              help="Report a thread that makes no progress for this long as a hang "
                   "(30s, 500ms, 2m).")
@click.option("--hang-policy", type=click.Choice(POLICIES), default="report",
              show_default=True,
              help="On a hang or a proven stall: report, raise HangError (from stuck import "
                   "HangError) in the stuck thread, or abort (exit code 86) at once.")
@click.option("--lock-order", is_flag=True, default=False,
              help="Also check lock order: at exit, report every set of lock classes taken in "
                   "conflicting orders (a deadlock waiting to happen), even if this run never "
                   "deadlocked. Exit code 1 if there is any and the program exited 0.")
@click.option("--lock-order-strict", is_flag=True, default=False,
              help="Like --lock-order, and a cycle through a timed acquire counts as a "
                   "deadlock risk rather than a latency risk.")
@click.option("--lock-order-children", is_flag=True, default=False,
              help="With --lock-order, a child the program forks that ends by returning or "
                   "sys.exit() also writes its lock-order report (with its pid) and exits 1 "
                   "on findings. Without it only the process stuck run started reports.")
def run_command(module: str | None, policy: str, json_path: str | None, signal_name: str,
                program_args: tuple[str, ...], hang_after_text: str | None = None,
                hang_policy: str = "report", lock_order: bool = False,
                lock_order_strict: bool = False, html_path: str | None = None,
                lock_order_children: bool = False, debug: bool = False,
                act_on: str = "certain") -> None:
    """Run a Python program with deadlock detection on.

    \b
      stuck run [options] script.py [args...]
      stuck run [options] -m module [args...]

    With --lock-order the lock-order findings are written to stderr when the program ends
    (after its non-daemon threads finish, as the interpreter waits for them anyway) and added
    to the --json report. The exit code is the program's, except that a program exiting 0
    with lock-order findings exits 1. A program that ends with os._exit() or is aborted by
    --policy abort gets no lock-order report.
    """
    args = list(program_args)
    if module is None and not args:
        raise click.UsageError("nothing to run: give a script (stuck run app.py) "
                               "or a module (stuck run -m package.module)")
    if module is None and not os.path.isfile(args[0]):
        raise click.UsageError(f"no such file: {args[0]}")
    signal_number = _signal_number(signal_name)
    hang_after: float | None = None
    if hang_after_text is not None:
        from stuck.runtime.watchdog import parse_duration
        try:
            hang_after = parse_duration(hang_after_text)
        except ValueError as exc:
            raise click.UsageError(f"--hang-after: {exc}") from None
    if json_path is not None:
        json_path = os.path.abspath(json_path)
    if html_path is not None:
        html_path = os.path.abspath(html_path)
    if debug:
        from stuck.tracebacks import DEBUG_VARIABLE
        os.environ[DEBUG_VARIABLE] = "1"

    import stuck.runtime
    from stuck.runtime import registry

    callback = getattr(run_command, "callback", None)
    code = getattr(getattr(callback, "__wrapped__", callback), "__code__", None)
    if code is not None:
        registry.boundary_codes.add(code)
    registry.boundary_codes.update((_run.__code__, _run_script.__code__, _run_module.__code__))
    stuck.runtime.install(policy=policy, json_path=json_path,  # type: ignore[arg-type]
                          signal=signal_number, hang_after=hang_after,
                          hang_policy=hang_policy,  # type: ignore[arg-type]
                          html_path=html_path, act_on=act_on)  # type: ignore[arg-type]
    if not (lock_order or lock_order_strict):
        _run(module, args)
    from stuck.runtime import lockorder

    lockorder.enable(strict=lock_order_strict)
    started = os.getpid()
    try:
        _run(module, args)
    except SystemExit as exc:
        status = exc.code
    else:
        status = 0
    code = status if isinstance(status, int) else (0 if status is None else 1)
    if isinstance(status, str):
        click.echo(status, err=True)  # what SystemExit("message") would print
    _join_non_daemon_threads()
    if os.getpid() != started:
        # A child the program forked, ending through sys.exit(): its exit status is the
        # program's own unless asked (the parent would otherwise see 1 where it saw 0).
        if not lock_order_children:
            sys.exit(code)
        sys.stderr.write(f"\nstuck: lock-order report of forked child {os.getpid()}")
        found = write_lock_order_report(json_path=None)
        sys.exit(1 if found and code == 0 else code)
    found = write_lock_order_report(json_path=json_path)
    sys.exit(1 if found and code == 0 else code)


def _join_non_daemon_threads() -> None:
    """Wait for the program's non-daemon threads, as the interpreter does before exiting, so
    the orders they take are in the report."""
    import threading

    main = threading.main_thread()
    for t in threading.enumerate():
        if t is not main and not t.daemon and t is not threading.current_thread():
            t.join()


def _run(module: str | None, args: list[str]) -> None:
    try:
        if module is not None:
            _run_module(module, args)
        else:
            _run_script(args[0], args[1:])
    except SystemExit:
        raise
    except KeyboardInterrupt:
        _print_program_traceback()
        _die_by_sigint()
    except BaseException:
        # As python does: the traceback (without stuck's own frames) and exit code 1.
        _print_program_traceback()
        sys.exit(1)
    sys.exit(0)


def _print_program_traceback() -> None:
    etype, value, tb = sys.exc_info()
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    if etype is None or value is None:
        return
    # The interpreter prints an exception's own __traceback__ whatever traceback is passed
    # to the hook, so the shortened one goes on the exception too.
    value.with_traceback(tb)
    # Through sys.excepthook, as python does: the program's own hook, or stuck's, which leaves
    # stuck's frames out of the tracebacks of its errors.
    try:
        sys.excepthook(etype, value, tb)
    except Exception:
        traceback.print_exception(etype, value, tb)


def _die_by_sigint() -> None:
    """End as python ends on an uncaught KeyboardInterrupt: after the non-daemon threads and
    the atexit handlers, killed by SIGINT, so a shell or a parent process sees the signal
    (returncode -2), not an exit status."""
    import atexit

    _join_non_daemon_threads()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed or broken stream: nothing to say there
            stream.flush()
    sigint = getattr(_signal, "SIGINT", None)
    if sigint is not None and hasattr(os, "kill"):
        _signal.signal(sigint, _signal.SIG_DFL)
        os.kill(os.getpid(), sigint)
    os._exit(130)  # where a signal cannot end the process: the shell's convention


# --- the lock-order run's report, and its entry point -----------------------------------------

def write_lock_order_report(stream: Any = None, json_path: str | None = None
                            ) -> list[Finding]:
    """Write the findings of this run: text to ``stream`` (default stderr) and, with
    ``json_path``, JSON (``stuck.report/1``) to that file. When a deadlock report of this run is
    the JSON file's content, the lock-order findings are added to that report rather than
    replacing it. Returns the findings; never raises."""
    from stuck.model import Report, Snapshot, Source
    from stuck.report import lockorder as lockorder_report
    from stuck.runtime import lockorder

    found = lockorder.findings()
    out = stream or sys.stderr
    with contextlib.suppress(Exception):
        out.write("\n" + lockorder_report.render(found, lockorder.summary_notes()))
        out.flush()
    if json_path and found:
        from stuck.runtime import policy

        seen = policy.findings_seen
        base = seen[-1] if seen else Report(Snapshot(Source("live")))
        policy.write_report(Report(base.snapshot, findings=[*base.findings, *found]),
                            stream=io.StringIO(), json_path=json_path)  # text: above
    return found


# python -m stuck.runtime.lockorder [--strict] [--json FILE] (-m MODULE | SCRIPT) [ARGS...]:
# the same as ``stuck run --lock-order [--lock-order-strict] [--json FILE]``.

_USAGE = ("usage: python -m stuck.runtime.lockorder [--strict] [--json FILE] "
          "(-m MODULE | SCRIPT) [ARGS...]\n"
          "The same as: stuck run --lock-order [--lock-order-strict] [--json FILE] "
          "(-m MODULE | SCRIPT) [ARGS...]\n")


def lock_order_main(argv: list[str]) -> int:
    options: list[str] = ["--lock-order"]
    while argv and argv[0].startswith("-") and argv[0] != "-m":
        opt = argv.pop(0)
        if opt == "--strict":
            options.append("--lock-order-strict")
        elif opt == "--json" and argv:
            options += ["--json", argv.pop(0)]
        else:
            sys.stderr.write(f"stuck: unknown option {opt!r}\n{_USAGE}")
            return 2
    if not argv or (argv[0] == "-m" and len(argv) < 2):
        sys.stderr.write(_USAGE)
        return 2
    code: object = 0
    try:
        run_command.main([*options, *argv], prog_name="stuck run", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
    return code if isinstance(code, int) else (0 if code is None else 1)

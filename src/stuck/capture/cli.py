"""``stuck capture PID… [--tree] [--json FILE] [--html FILE] [--save DIR] [--source DIR]``.

Exit 0: nothing found; 1: findings; 2: bad usage, or no process could be read, or nothing
about what any thread waits on, or only Go programs whose goroutines could not be read (a
one-line message). A partial capture (a process that exited, a tool missing, no privileges) still
reports what it read, and says what is missing.
"""

from __future__ import annotations

import sys

import click

from stuck.capture.evidence import ProcessEvidence
from stuck.errors import EXIT_USAGE


def _only_unread_go(processes: list[ProcessEvidence]) -> bool:
    """True when every process read is a Go program whose goroutines gdb could not read."""
    from stuck.capture import goroutines

    def unread(pe: ProcessEvidence) -> bool:
        if pe.runtime != "go":
            return False
        view = goroutines.read(pe.tools.get("gdb", ""))
        return (view is None or not view.complete) and any(
            "goroutines were not read" in m for m in pe.missing)

    return bool(processes) and all(unread(pe) for pe in processes)


def _fail(message: str) -> None:
    click.echo(f"stuck capture: {message}", err=True)
    sys.exit(EXIT_USAGE)


@click.command("capture", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("pids", nargs=-1, required=True)
@click.option("--tree", is_flag=True, help="Also capture every descendant of each PID.")
@click.option("--json", "json_out", is_flag=False, flag_value="-", default=None,
              metavar="[FILE]", help="Write the stuck.report/1 JSON (to FILE, or stdout).")
@click.option("--html", "html_out", default=None, metavar="FILE",
              help="Write an HTML report to FILE.")
@click.option("--save", "save_dir", default=None, metavar="DIR",
              help="Keep the raw evidence in DIR (re-read later with `stuck analyze DIR`).")
@click.option("--timeout", default=20.0, show_default=True, metavar="SECONDS",
              type=click.FloatRange(min=0.1),
              help="Longest time each outside tool (gdb, py-spy, jcmd) may take.")
@click.option("--source", "sources", multiple=True, metavar="DIR",
              help="Where the programs' source files can be read, when not at the paths "
                   "their stacks print (repeatable), as for stuck analyze --source.")
@click.option("--attach-anyway", is_flag=True,
              help="Attach gdb, pystack or py-spy even to a process with a thread blocked "
                   "writing to a pipe or socket (left alone by default: stopping it would "
                   "end that write short and change what the program does).")
def capture_command(pids: tuple[str, ...], tree: bool, json_out: str | None,
                    html_out: str | None, save_dir: str | None, timeout: float,
                    sources: tuple[str, ...] = (), attach_anyway: bool = False) -> None:
    """Read live processes from the outside (/proc, pipes and sockets between them, gdb,
    py-spy, jcmd) and name why they are stuck. Never stops or kills them."""
    import os

    from stuck.analyze import _emit
    from stuck.capture import collect, report

    numbers = []
    for p in pids:
        if not (p.isascii() and p.isdigit()) or int(p) <= 0:
            _fail(f"{p!r} is not a process id (give numbers, e.g. stuck capture 4242)")
        numbers.append(int(p))
    for path in (json_out, html_out):
        if path is not None and path != "-":
            where = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(where) or not os.access(where, os.W_OK):
                # Said before capturing (which may take a while), not after.
                _fail(f"cannot write {path}: {where} is not a writable directory")
    if not os.path.isdir("/proc/self/task"):
        _fail("capture needs Linux /proc; on other systems, take a dump and use stuck analyze")
    ev = collect(numbers, tree=tree, timeout=timeout, attach_anyway=attach_anyway)
    readable = [pe for pe in ev.processes if pe.threads or pe.state in ("Z", "X")]
    if not readable:
        gaps = [m for pe in ev.processes for m in pe.missing]
        _fail(gaps[0] if gaps else "nothing could be read")
    rep = report(ev, sources)
    if save_dir is not None:
        from stuck.capture.save import save
        try:
            save(ev, rep, save_dir)
        except OSError as exc:
            _fail(f"cannot write {save_dir}: {exc.strerror or exc}")
    threads = [t for proc in rep.snapshot.processes for t in proc.threads]
    if threads and all(t.state == "unknown" and not t.frames for t in threads):
        # Threads listed but nothing about what any of them does (no syscall, kernel stack or
        # user stack: no privileges): "nothing found" would read as "not stuck".
        gaps = [m for pe in ev.processes for m in pe.missing]
        pids_read = ", ".join(str(pe.pid) for pe in readable)
        _fail(f"could not read what the threads of pid {pids_read} wait on: "
              + (gaps[0] if gaps else "run it as root, or as the process's own user"))
    if not rep.findings and _only_unread_go(readable):
        # A Go program's OS threads are the runtime's (parked Ms, the netpoller): with its
        # goroutines unread, "nothing found" would read as "not stuck".
        gaps = [m for pe in readable for m in pe.missing if "goroutines were not read" in m]
        _fail(gaps[0].replace("; only its OS threads are shown", ""))
    _emit(rep, json_out, html_out)

"""``stuck explore TARGET``: search a function's interleavings for one that hangs.

Exit codes: 0 no failure (or an exhausted bounded search), 1 a failure was found (or replayed),
2 bad usage (unknown target, bad token), with a one-line message.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from stuck.errors import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE


def _fail(message: str) -> None:
    click.echo(f"stuck explore: {message}", err=True)
    sys.exit(EXIT_USAGE)


@click.command("explore")
@click.argument("target")
@click.option("--strategy", default="portfolio", show_default=True,
              help="portfolio, random, pct[:DEPTH], pos or dfs[:BOUND].")
@click.option("--executions", "-n", default=1000, show_default=True, type=click.IntRange(1))
@click.option("--time-budget", type=click.FloatRange(0, min_open=True), default=None,
              help="Stop after this many seconds.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--jobs", "-j", default=1, show_default=True, type=click.IntRange(1),
              help="Worker processes, each with its own share of executions.")
@click.option("--replay", "token", default=None, help="Re-run the schedule of a replay token.")
@click.option("--max-steps", default=20_000, show_default=True, type=click.IntRange(10),
              help="Synchronization steps before an execution counts as a hang.")
@click.option("--json", "json_out", is_flag=False, flag_value="-", default=None,
              help="Write the stuck.report/1 JSON report (to FILE, or - for stdout).")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr (default: when stderr is a terminal).")
def explore_command(target: str, strategy: str, executions: int, time_budget: float | None,
                    seed: int, jobs: int, token: str | None, max_steps: int,
                    json_out: str | None, progress: bool | None) -> None:
    """Run TARGET (path.py::function or module:function) under a controlled scheduler."""
    from stuck.explore.engine import ExploreResult, explore
    from stuck.explore.portfolio import make
    from stuck.explore.replayer import TokenError, decode
    from stuck.explore.show import render
    from stuck.explore.target import TargetError, resolve

    try:
        func = resolve(target)
        make(strategy, seed)
        if token is not None:
            decode(token)
    except (TargetError, TokenError, ValueError) as exc:
        _fail(str(exc))
        return
    options: dict[str, Any] = {"strategy": strategy, "seed": seed, "time_budget": time_budget,
                               "max_steps": max_steps}
    result: ExploreResult
    if token is not None:
        result = explore(func, replay=token, **options)
    elif jobs > 1:
        result = _parallel(target, executions, jobs, options)
    else:
        show = progress if progress is not None else sys.stderr.isatty()
        if show:
            from rich.progress import Progress

            with Progress(transient=True, console=_stderr_console()) as bar:
                task = bar.add_task("exploring", total=executions)
                result = explore(func, executions=executions,
                                 progress=lambda done, total: bar.update(task, completed=done),
                                 **options)
        else:
            result = explore(func, executions=executions, **options)
    command = f"stuck explore {target} --replay {result.token}" if result.token else None
    if json_out is not None:
        _write_json(result, json_out)
    if json_out != "-":
        click.echo(render(result, command))
    sys.exit(EXIT_FINDINGS if result.found else EXIT_OK)


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _parallel(target: str, executions: int, jobs: int, options: dict[str, Any]) -> Any:
    from stuck.explore.engine import explore_parallel

    return explore_parallel(target, jobs=jobs, executions=executions, **options)


def _write_json(result: Any, where: str) -> None:
    from stuck.explore.verdict import Verdict
    from stuck.model import Report, Snapshot, Source
    from stuck.report import json as report_json

    v: Verdict | None = result.verdict
    report = v.report if v is not None and v.report is not None else Report(
        snapshot=Snapshot(source=Source(kind="explore", format="python")))
    if result.token:
        for f in report.findings:
            f.details["replay_token"] = result.token
            f.details["found_at_execution"] = result.found_at
            f.details["strategy"] = result.strategy
    text = report_json.dumps(report)
    if where == "-":
        click.echo(text)
    else:
        with open(where, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")

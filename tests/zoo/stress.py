"""Plain stress runs of zoo programs: how often does a program block without any help?

Each run is a fresh child process (``sys.executable``) that imports ``zoo.<name>`` and calls
``buggy()`` or ``fixed()`` with plain threads and no pause points.  A run that has not exited
within ``timeout`` seconds is counted as blocked and its child -- only that child -- is killed.

    python tests/zoo/stress.py NAME [--runs N] [--timeout S] [--fixed] [--jobs J]
    python tests/zoo/stress.py --table [--runs N] [--fixed-runs N] [--write]

``--table`` measures every program (buggy and fixed) and prints the README table;
``--write`` also stores the counts in ``measured.json`` (read by ``zoo.BUGS``) and replaces the
table in ``README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
if __package__ in (None, ""):  # run as a script: make ``import zoo`` work
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != str(HERE)]
    sys.path.insert(0, str(HERE.parent))

TABLE_BEGIN = "<!-- zoo-table:begin -->"
TABLE_END = "<!-- zoo-table:end -->"


@dataclass(frozen=True)
class StressResult:
    """Counts of one stress campaign."""

    name: str
    variant: str
    runs: int
    blocked: int
    errors: int
    timeout: float
    seconds: float

    @property
    def completed(self) -> int:
        return self.runs - self.blocked - self.errors

    def __str__(self) -> str:
        extra = f", {self.errors} errors" if self.errors else ""
        return (
            f"{self.name} {self.variant}: {self.blocked}/{self.runs} blocked{extra} "
            f"(timeout {self.timeout:g}s, {self.seconds:.1f}s)"
        )


def _child_cmd(name: str, variant: str) -> list[str]:
    return [sys.executable, str(HERE / "stress.py"), "--child", name, variant]


def run_once(name: str, variant: str = "buggy", timeout: float = 2.0) -> str:
    """One plain run in a fresh child: ``"completed"``, ``"blocked"`` or ``"error"``."""
    proc = subprocess.Popen(
        _child_cmd(name, variant), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()  # only our own child
        proc.communicate()
        return "blocked"
    if proc.returncode != 0:
        sys.stderr.write(err.decode(errors="replace"))
        return "error"
    return "completed"


def stress(
    name: str,
    *,
    runs: int = 20,
    timeout: float = 2.0,
    fixed: bool = False,
    jobs: int | None = None,
) -> StressResult:
    """Run ``zoo.<name>`` ``runs`` times, each in a fresh child bounded by ``timeout``."""
    variant = "fixed" if fixed else "buggy"
    jobs = jobs or max(2, 2 * (os.cpu_count() or 1))
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        outcomes = list(pool.map(lambda _: run_once(name, variant, timeout), range(runs)))
    return StressResult(
        name=name,
        variant=variant,
        runs=runs,
        blocked=outcomes.count("blocked"),
        errors=outcomes.count("error"),
        timeout=timeout,
        seconds=time.monotonic() - start,
    )


def _child(name: str, variant: str) -> int:
    import importlib

    module = importlib.import_module(f"zoo.{name}")
    getattr(module, variant)()
    return 0


def table_rows(measured: dict[str, dict[str, int | float]]) -> list[str]:
    """Markdown table of every zoo program from ``measured`` (see ``measured.json``)."""
    from zoo import BUGS, rate_text

    rows = [
        "| program | origin | kind | verdict | plain-run hit rate (buggy) | fixed twin blocked | GoKer note |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, bug in BUGS.items():
        m = measured.get(name, {})
        buggy = rate_text(int(m["buggy_blocked"]), int(m["buggy_runs"])) if m else "not measured"
        fixed = f"{int(m['fixed_blocked'])}/{int(m['fixed_runs'])}" if m else "not measured"
        rows.append(
            f"| `{name}` | {bug.origin} | {bug.kind} | {bug.verdict} | {buggy} | {fixed} "
            f"| {bug.goker or '-'} |"
        )
    return rows


def measure_all(
    runs: int, fixed_runs: int, timeout: float, jobs: int | None
) -> dict[str, dict[str, int | float]]:
    from zoo import NAMES

    out: dict[str, dict[str, int | float]] = {}
    for name in NAMES:
        b = stress(name, runs=runs, timeout=timeout, jobs=jobs)
        print(b, flush=True)
        f = stress(name, runs=fixed_runs, timeout=timeout, fixed=True, jobs=jobs)
        print(f, flush=True)
        out[name] = {
            "buggy_blocked": b.blocked,
            "buggy_runs": b.runs,
            "buggy_errors": b.errors,
            "fixed_blocked": f.blocked,
            "fixed_runs": f.runs,
            "fixed_errors": f.errors,
            "timeout": timeout,
        }
    return out


def write_measured(measured: dict[str, dict[str, int | float]]) -> None:
    from zoo import MEASURED_PATH

    doc = {
        "about": "plain stress runs by `python tests/zoo/stress.py --table --write`",
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
        "bugs": measured,
    }
    MEASURED_PATH.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def write_readme_table(rows: list[str]) -> None:
    readme = HERE / "README.md"
    text = readme.read_text(encoding="utf-8")
    head, _, rest = text.partition(TABLE_BEGIN)
    _, _, tail = rest.partition(TABLE_END)
    readme.write_text(
        head + TABLE_BEGIN + "\n" + "\n".join(rows) + "\n" + TABLE_END + tail, encoding="utf-8"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Plain stress runs of zoo programs.")
    ap.add_argument("name", nargs="?", help="zoo program, e.g. cockroach_10214")
    ap.add_argument("--runs", type=int, default=None, help="runs (default 20; 200 for --table)")
    ap.add_argument("--fixed-runs", type=int, default=200, help="fixed-twin runs for --table")
    ap.add_argument("--timeout", type=float, default=2.0, help="per-run bound in seconds")
    ap.add_argument("--fixed", action="store_true", help="run the fixed twin")
    ap.add_argument("--jobs", type=int, default=None, help="children at once")
    ap.add_argument("--table", action="store_true", help="measure every program")
    ap.add_argument("--write", action="store_true", help="with --table: update the files")
    ap.add_argument("--child", nargs=2, metavar=("NAME", "VARIANT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return _child(*args.child)
    if args.table:
        measured = measure_all(args.runs or 200, args.fixed_runs, args.timeout, args.jobs)
        rows = table_rows(measured)
        print("\n".join(rows))
        if args.write:
            write_measured(measured)
            write_readme_table(rows)
        return 0
    if not args.name:
        ap.error("give a program name or --table")
    result = stress(
        args.name, runs=args.runs or 20, timeout=args.timeout, fixed=args.fixed, jobs=args.jobs
    )
    print(result)
    print(f"{result.blocked}/{result.runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Real projects' test suites as a standing benchmark: does stuck break, slow down or cry wolf
on thread-heavy code it did not write?

    python benchmarks/realworld.py [--cache DIR] [--only NAME[,NAME]] [--timeout S]
                                   [--skip NAME[,NAME]] [--keep-logs]

For each project, a pinned release is downloaded from PyPI as an sdist (``pip download
--no-binary :all: --no-deps``: the test suite ships in it), unpacked under the cache directory
(default ``~/.cache/stuck-realworld``) and installed into its own venv with its test
dependencies and this checkout of stuck (editable). Its suite then runs three ways:

- ``plain``:  ``python -m pytest``
- ``plugin``: ``python -m pytest --stuck`` (lock order for the session, deadlocks fail a test)
- ``run``:    ``python -m stuck run --policy raise --lock-order -m pytest``

Each run is bounded (``--timeout`` seconds for the whole suite, and pytest-timeout per test);
a run that does not end is killed and counted as a hang. Per-test outcomes come from
pytest's JUnit XML, so "passes plain, fails under stuck" is counted test by test. Findings are
counted from stuck's own report headers in the output (lock-order and live findings), distinct
by their summary line. Logs are kept under the cache directory for reading both stacks of
every finding; benchmarks/README.md keeps the table and the judgement of each finding.

Acceptance (issue "Daily tools on real code"): 0 false findings, 0 tests that pass plain and
fail or hang under stuck, median time ratio of ``plugin`` over ``plain`` at most 1.3x.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # this checkout of stuck


@dataclass(frozen=True)
class Project:
    name: str  # the PyPI name
    version: str
    deps: tuple[str, ...]  # test dependencies, pinned where it matters
    args: tuple[str, ...] = ()  # test paths and pytest options, relative to the sdist
    note: str = ""
    # pytest-timeout's bound for one test, in seconds (SIGALRM), or None where the project's
    # tests use SIGALRM themselves. It must be longer than any test lasts by the project's own
    # design, or the benchmark fails (and, under load, hangs) tests that are correct.
    per_test_timeout: float | None = 120
    # The bound for the whole suite in one mode, when it needs more than ``--timeout``.
    suite_timeout: float | None = None


PROJECTS: tuple[Project, ...] = (
    Project("APScheduler", "3.11.3", ("pytest", "pytz", "anyio", "pytest-timeout", "tornado"),
            ("tests",)),
    Project("cachetools", "5.5.2", ("pytest", "pytest-timeout"), ("tests",)),
    Project("diskcache", "5.6.3", ("pytest", "pytest-timeout"),
            ("tests", "--ignore=tests/test_djangocache.py", "--ignore=tests/test_doctest.py"),
            "Django cache tests and the doctests (they import the Django cache) left out"),
    Project("fasteners", "0.20", ("pytest", "pytest-timeout", "diskcache", "more-itertools"),
            ("tests", "--ignore=tests/test_eventlet.py"),
            "eventlet test left out (monkey-patching is covered by the equivalence tests)"),
    Project("filelock", "3.20.0", ("pytest", "pytest-asyncio", "pytest-mock", "pytest-timeout",
                                   "virtualenv"), ("tests",)),
    Project("janus", "2.0.0", ("pytest", "pytest-asyncio", "pytest-timeout", "pytest-cov"),
            ("tests",)),
    Project("pebble", "5.2.3", ("pytest", "pytest-timeout"), ("test",),
            "no per-test timeout: its signal-handler tests use SIGALRM themselves",
            per_test_timeout=None),
    # Its two throughput tests each run six 30 s windows of 250 workers by design (180 s, then
    # the wait for the workers to finish; about 200 s plain on an idle machine): a 120 s bound
    # ended them in every mode, and an alarm raised into a running event loop can leave it
    # waiting for good. 600 s leaves room for a loaded machine; the suite's bound grows with it.
    Project("readerwriterlock", "1.0.10", ("pytest", "pytest-timeout"), ("tests",),
            "throughput tests of six 30 s windows each: 600 s per test, 2400 s per suite",
            per_test_timeout=600, suite_timeout=2400),
)

MODES = ("plain", "plugin", "run")
# Report headers stuck writes: live findings ("DEADLOCK (certain): ...") and lock-order ones.
_FINDING = re.compile(
    r"^\s*((?:DEADLOCK|STALL|HANG) \((?:certain|probable|possible)\): .*"
    r"|LOCK-ORDER \((?:certain|probable|possible)\): .*\n\s+.*)",  # its summary is the next line
    re.MULTILINE)


@dataclass
class Outcome:
    mode: str
    seconds: float
    cpu: float  # user + system seconds of the run's whole process tree (reaped children)
    hung: bool
    returncode: int | None
    tests: dict[str, str] = field(default_factory=dict)  # test id -> passed/failed/skipped
    findings: list[str] = field(default_factory=list)
    log: Path | None = None

    def count(self, what: str) -> int:
        return sum(1 for v in self.tests.values() if v == what)


def say(text: str) -> None:
    print(text, flush=True)


def sh(cmd: list[str], cwd: Path | None = None, timeout: float = 900) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")


def _sources(home: Path, p: Project) -> list[Path]:
    """The unpacked sdist: its directory is named after the release (``name-version``)."""
    version = p.version
    if not home.is_dir():  # a cache directory not made yet
        return []
    return [d for d in home.iterdir() if d.is_dir() and d.name.endswith("-" + version)]


def prepare(p: Project, cache: Path) -> tuple[Path, Path]:
    """The project's venv python and its unpacked sdist (made once, then reused)."""
    home = cache / f"{p.name.lower()}-{p.version}"
    venv = home / "venv"
    py = venv / "bin" / "python"
    ready = home / ".ready"
    src_dirs = _sources(home, p)
    if ready.exists() and src_dirs:
        _use_this_checkout(p, py)
        return py, src_dirs[0]
    home.mkdir(parents=True, exist_ok=True)
    dist = home / "dist"
    say(f"  [{p.name}] downloading {p.name}=={p.version} (sdist)")
    sh([sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:", "--no-deps",
        f"{p.name}=={p.version}", "-d", str(dist)])
    [archive] = list(dist.glob("*.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(home, filter="data")
    src_dirs = _sources(home, p)
    say(f"  [{p.name}] venv and test dependencies")
    if not py.exists():
        sh([sys.executable, "-m", "venv", str(venv)])
    sh([str(py), "-m", "pip", "install", "-q", str(archive), *p.deps])
    sh([str(py), "-m", "pip", "install", "-q", "-e", str(ROOT)])
    ready.write_text("ok\n")
    return py, src_dirs[0]


def _use_this_checkout(p: Project, py: Path) -> None:
    """A cached venv may hold stuck from another checkout: measure this one's code."""
    found = subprocess.run([str(py), "-c", "import stuck; print(stuck.__file__)"],
                           capture_output=True, text=True)
    here = ROOT / "src"
    if found.returncode == 0 and Path(found.stdout.strip()).is_relative_to(here):
        return
    say(f"  [{p.name}] stuck in the venv is {found.stdout.strip() or 'missing'}: "
        f"installing this checkout ({ROOT})")
    sh([str(py), "-m", "pip", "install", "-q", "--no-deps", "-e", str(ROOT)])


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def command(mode: str, py: Path, p: Project, junit: Path) -> list[str]:
    pytest_args = ["-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
                   *([f"--timeout={p.per_test_timeout:g}"] if p.per_test_timeout is not None
                     else ["-p", "no:timeout"]), *p.args]
    if mode == "plain":
        return [str(py), "-m", "pytest", *pytest_args]
    if mode == "plugin":
        return [str(py), "-m", "pytest", "--stuck", *pytest_args]
    return [str(py), "-m", "stuck", "run", "--policy", "raise", "--lock-order", "-m", "pytest",
            *pytest_args]


def read_junit(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    if not path.exists():
        return out
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return out
    for case in root.iter("testcase"):
        key = f"{case.get('classname')}::{case.get('name')}"
        tags = {child.tag for child in case}
        if tags & {"failure", "error"}:
            out[key] = "failed"
        elif "skipped" in tags:
            out[key] = "skipped"
        else:
            out[key] = "passed"
    return out


def run_suite(mode: str, py: Path, src: Path, p: Project, logs: Path,
              timeout: float) -> Outcome:
    logs.mkdir(parents=True, exist_ok=True)
    junit = logs / f"{mode}.xml"
    log = logs / f"{mode}.log"
    junit.unlink(missing_ok=True)
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTEST_ADDOPTS", None)
    start = time.monotonic()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    hung = False
    with log.open("w") as out:
        proc = subprocess.Popen(command(mode, py, p, junit), cwd=src, stdout=out,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            hung = True
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    seconds = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    text = log.read_text(errors="replace")
    findings = sorted({" ".join(m.group(1).split()) for m in _FINDING.finditer(text)})
    return Outcome(mode, seconds, cpu, hung, None if hung else proc.returncode, read_junit(junit),
                   findings, log)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "stuck-realworld")
    ap.add_argument("--only", default="", help="comma-separated project names")
    ap.add_argument("--skip", default="", help="comma-separated project names")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per suite run")
    ap.add_argument("--prepare-only", action="store_true",
                    help="download and install every project, run nothing")
    args = ap.parse_args()
    only = {n.lower() for n in args.only.split(",") if n}
    skip = {n.lower() for n in args.skip.split(",") if n}
    chosen = [p for p in PROJECTS if (not only or p.name.lower() in only)
              and p.name.lower() not in skip]
    rows: list[tuple[Project, dict[str, Outcome]]] = []
    say(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, Python "
        f"{sys.version.split()[0]}, {os.cpu_count()} CPUs, {_load()}")
    for i, p in enumerate(chosen, 1):
        say(f"[{i}/{len(chosen)}] {p.name} {p.version}  ({_load()})")
        try:
            py, src = prepare(p, args.cache)
        except Exception as exc:  # a project that cannot be installed is said, not hidden
            say(f"  [{p.name}] could not be prepared: {exc}")
            continue
        if args.prepare_only:
            continue
        logs = args.cache / f"{p.name.lower()}-{p.version}" / "logs"
        results: dict[str, Outcome] = {}
        for mode in MODES:
            say(f"  [{p.name}] {mode} ...")
            o = run_suite(mode, py, src, p, logs, max(args.timeout, p.suite_timeout or 0))
            results[mode] = o
            say(f"  [{p.name}] {mode}: {len(o.tests)} tests, {o.count('failed')} failed, "
                f"{len(o.findings)} findings, {o.seconds:.1f} s ({o.cpu:.1f} s CPU), then {_load()}"
                + (" (HUNG: killed)" if o.hung else "") + f"  log: {o.log}")
        rows.append((p, results))
    say(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, end, {_load()}")
    print_table(rows)
    return 0


def print_table(rows: list[tuple[Project, dict[str, Outcome]]]) -> None:
    say("")
    say("| project | tests (plain) | failed plain / plugin / run | pass plain, fail under stuck "
        "(plugin / run) | hung (plugin / run) | findings (plugin / run) | time plugin / plain "
        "| time run / plain | CPU plugin / plain | CPU run / plain |")
    say("|---|---|---|---|---|---|---|---|---|---|")
    ratios: list[float] = []
    cpu_ratios: list[float] = []
    regressions: dict[str, list[str]] = {}
    all_findings: dict[str, set[str]] = {}
    for p, r in rows:
        plain = r["plain"]
        passed_plain = {k for k, v in plain.tests.items() if v == "passed"}
        broken = {}
        for mode in ("plugin", "run"):
            o = r[mode]
            broken[mode] = sorted(k for k in passed_plain if o.tests.get(k, "missing") not in
                                  ("passed", "skipped") or (o.hung and k not in o.tests))
            regressions.setdefault(p.name, []).extend(f"{mode}: {k}" for k in broken[mode])
            for f in o.findings:
                all_findings.setdefault(p.name, set()).add(f"{mode}: {f}")
        ratio = r["plugin"].seconds / plain.seconds if plain.seconds else float("nan")
        ratio_run = r["run"].seconds / plain.seconds if plain.seconds else float("nan")
        ratios.append(ratio)
        # CPU seconds: what stuck adds to the work, less at the mercy of the machine's load
        # than the wall clock (a suite that sleeps or waits on a pool shows it in the wall).
        cpu = r["plugin"].cpu / plain.cpu if plain.cpu else float("nan")
        cpu_run = r["run"].cpu / plain.cpu if plain.cpu else float("nan")
        cpu_ratios.append(cpu)
        say(f"| {p.name} {p.version} | {len(plain.tests)} | {plain.count('failed')} / "
            f"{r['plugin'].count('failed')} / {r['run'].count('failed')} | "
            f"{len(broken['plugin'])} / {len(broken['run'])} | "
            f"{'yes' if r['plugin'].hung else 'no'} / {'yes' if r['run'].hung else 'no'} | "
            f"{len(r['plugin'].findings)} / {len(r['run'].findings)} | {ratio:.2f}x | "
            f"{ratio_run:.2f}x | {cpu:.2f}x | {cpu_run:.2f}x |")
    if ratios:
        say(f"\nmedian time ratio pytest --stuck / plain: {statistics.median(ratios):.2f}x "
            f"(target <= 1.3x) over {len(ratios)} projects; CPU time: "
            f"{statistics.median(cpu_ratios):.2f}x")
    for name, items in regressions.items():
        for item in items[:10]:
            say(f"REGRESSION {name}: {item}")
        if len(items) > 10:
            say(f"REGRESSION {name}: ... {len(items) - 10} more")
    for p, r in rows:
        for mode in MODES:
            o = r[mode]
            if not o.hung and not o.tests and r["plain"].tests:
                say(f"CRASHED {p.name}: {mode}: no test result written (exit status "
                    f"{o.returncode}); see {o.log}")
    for name, fs in all_findings.items():
        for f in sorted(fs):
            say(f"FINDING {name}: {f}")


if __name__ == "__main__":
    sys.exit(main())

"""Real processes for capture tests: C programs built once per session, started in their own
process group, and always killed (with their children) when a test ends."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

PROGRAMS = Path(__file__).parent / "programs"

if not sys.platform.startswith("linux"):
    pytest.skip("stuck capture reads Linux /proc", allow_module_level=True)


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("capture-programs")


@pytest.fixture(scope="session")
def c_program(build_dir: Path):  # type: ignore[no-untyped-def]
    """``c_program("pipe_pair")``: the path of tests/capture/programs/pipe_pair.c, built once."""
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if shutil.which("gcc") is None:
            pytest.skip("gcc is not installed (CI: .ci/packages)")
        if name not in built:
            out = build_dir / name
            subprocess.run(["gcc", "-g", "-O0", "-pthread", "-o", str(out),
                            str(PROGRAMS / f"{name}.c")], check=True, capture_output=True)
            built[name] = out
        return built[name]

    return get


class Started:
    """A process group started by a test; ``pids()`` lists the group's live processes."""

    def __init__(self, argv: list[str], **kwargs: object) -> None:
        self.proc = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, **kwargs)  # type: ignore[call-overload]

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    def pids(self) -> list[int]:
        out = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == self.pid and fields[0] != "Z":
                out.append(int(name))
        return sorted(out)

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.communicate(timeout=10)


@pytest.fixture
def start() -> Iterator:  # type: ignore[type-arg]
    started: list[Started] = []

    def run(argv: list[str], **kwargs: object) -> Started:
        s = Started(argv, **kwargs)
        started.append(s)
        return s

    yield run
    for s in started:
        s.kill()


def _sleeping_in_call(pid: int) -> bool:
    """Every thread of ``pid`` asleep in a system call."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            with open(f"/proc/{pid}/task/{tid}/syscall") as f:
                call = f.read()
        except OSError:
            return False
        if state not in ("S", "D") or call.startswith("running"):
            return False
    return True


def settle(started: Started, count: int, timeout: float = 20.0) -> list[int]:
    """Wait until the group has ``count`` processes, every thread asleep; their pids."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = started.pids()
        if len(pids) >= count and all(_sleeping_in_call(p) for p in pids):
            time.sleep(0.3)  # the last writes settle into the pipes
            if all(_sleeping_in_call(p) for p in pids):
                return pids
        time.sleep(0.05)
    raise AssertionError(f"processes {started.pids()} did not settle within {timeout} s")

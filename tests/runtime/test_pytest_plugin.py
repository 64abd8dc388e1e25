"""``pytest --stuck`` as a project uses it: in a subprocess (bounded, so a hang fails the test
instead of the suite), on small test files written here."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

LIMIT = 60


def run_pytest(where: Path, *args: str, timeout: float = LIMIT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=where, env=env, capture_output=True, text=True, timeout=timeout)


def write(where: Path, name: str, text: str) -> Path:
    path = where / name
    path.write_text(textwrap.dedent(text))
    return path


def test_plugin_works_without_xdist(tmp_path: Path) -> None:
    # After a plain install pytest-xdist is not there; -p no:xdist is the same for pytest.
    write(tmp_path, "test_plain.py", """
        import threading

        def test_takes_a_lock():
            with threading.Lock():
                pass
        """)
    done = run_pytest(tmp_path, "-p", "no:xdist", "--stuck", "test_plain.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "INTERNALERROR" not in done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert "stuck:" in done.stdout  # the plugin ran and wrote its summary

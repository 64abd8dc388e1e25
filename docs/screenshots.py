"""Make the HTML report screenshots kept in docs/: a deadlock, a stall and several files at
once, each analysed by ``stuck analyze --html`` and rendered by headless Chromium.

Run from the repository root: ``python docs/screenshots.py`` (needs chromium and graphviz).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = {
    "report-deadlock": ["tests/fixtures/dumps/generated/gdb-c-cycle3-victim.txt"],
    "report-stall": ["examples/dumps/c-write-stall-gdb.txt"],
    "report-multi-file": ["tests/fixtures/dumps/generated/jstack-deadlock.txt",
                          "examples/dumps/go-all-goroutines-asleep.txt",
                          "examples/dumps/c-write-stall-gdb.txt"],
}


def main() -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("screenshots: needs Chromium (the chromium package)")
    with tempfile.TemporaryDirectory() as tmp:
        for name, files in CASES.items():
            page = Path(tmp) / f"{name}.html"
            subprocess.run([sys.executable, "-m", "stuck", "analyze", "--html", str(page),
                            *files], cwd=ROOT, stdout=subprocess.DEVNULL, check=False)
            shot = ROOT / "docs" / f"{name}.png"
            subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                            "--hide-scrollbars", "--window-size=1100,1500",
                            f"--user-data-dir={tmp}/profile", f"--screenshot={shot}",
                            page.as_uri()], check=True, capture_output=True, timeout=120)
            print(f"wrote {shot.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

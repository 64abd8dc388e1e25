"""Run a zoo program under its pause-point schedule on the main thread, as its own ``main()``.

``python tests/zoo/held.py NAME`` is the program the way a user would run it: the main thread
starts the threads and joins them without a timeout, so a buggy program that blocks leaves no
thread able to run (unlike :mod:`zoo.force`, whose main thread waits with a timeout to report
on the program). ``stuck run tests/zoo/held.py NAME`` is then the live view of the hang that
``stuck explore`` finds in the same program.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``import zoo`` work
    _here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zoo.points import Schedule


def main(name: str, variant: str = "buggy") -> None:
    module = importlib.import_module(f"zoo.{name}")
    getattr(module, variant)(Schedule(module.META.schedule))


if __name__ == "__main__":
    main(*sys.argv[1:3])

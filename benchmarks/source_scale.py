"""How `stuck analyze --source` scales with the threads of a Python dump.

    python benchmarks/source_scale.py [--small N] [--large N] [--repeat R]

Builds py-spy dumps of the unseen program `python/join_then_put` with N copies of its consumer
(each blocked in `jobs.get()` on one module-level queue), N = --small and --large, and times
`stuck analyze` on each, without the source and with `--source` (the program's file). The
source reading looks for the thread that would end each wait in the code after every blocked
thread's line: it must grow with the threads as the plain analysis does, not with their
square. Prints, per mode, the best time of each size and the large/small ratio against the
ratio of the sizes, measured in the same run.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

from click.testing import CliRunner

from stuck.analyze import analyze_command

UNSEEN = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "unseen"
CASE = UNSEEN / "cases" / "python" / "join_then_put" / "pyspy.txt"
SOURCE = UNSEEN / "programs" / "python"


def dump(n: int) -> str:
    """The captured dump with its consumer thread repeated ``n`` times."""
    blocks = re.split(r"(?m)^(?=Thread \d+ )", CASE.read_text())
    head, threads = blocks[0], blocks[1:]
    consumer = next(b for b in threads if '"consumer"' in b)
    tid = re.match(r"Thread (\d+)", consumer)
    assert tid is not None
    copies = [consumer.replace(tid.group(1), str(100_000 + i), 1).replace(
        '"consumer"', f'"consumer-{i}"') for i in range(n)]
    return head + "".join(threads) + "".join(copies)


def best(path: Path, source: bool, repeat: int) -> float:
    args = ["--json", "-", *(["--source", str(SOURCE)] if source else []), str(path)]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = CliRunner().invoke(analyze_command, args)
        times.append(time.perf_counter() - start)
        assert result.exit_code in (0, 1), result.output[:400]
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=int, default=300)
    ap.add_argument("--large", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for n in (args.small, args.large):
            paths[n] = Path(tmp) / f"pyspy-{n}.txt"
            paths[n].write_text(dump(n))
        best(paths[args.small], True, 1)  # imports and caches warm, outside the timing
        print(f"py-spy dump of python/join_then_put, {args.small} and {args.large} consumers "
              f"blocked in jobs.get(); best of {args.repeat}")
        for source in (False, True):
            small = best(paths[args.small], source, args.repeat)
            large = best(paths[args.large], source, args.repeat)
            mode = "with --source" if source else "without the source"
            print(f"{mode:20s} {small:7.2f} s  {large:7.2f} s  ratio {large / small:5.1f}x "
                  f"(threads {args.large / args.small:.0f}x)")


if __name__ == "__main__":
    main()

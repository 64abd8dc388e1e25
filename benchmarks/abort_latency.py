"""How soon ``--policy abort`` ends a program after its deadlock or stall forms.

    python benchmarks/abort_latency.py [--runs N]

Each program prints the time just before its last thread starts the wait that completes the
finding, then waits forever; it runs under ``stuck run --policy abort`` N times (default 10).
Printed per program: the exit codes seen and the median and longest time from that moment to
the program's end (the process's exit seen by this script), against the goal of 2 s. The
programs cover each path to the abort: a cycle ownership proves when it forms (locks, a join),
one through a semaphore or asyncio queues left to the watchdog until it proves it, and a stall
the watchdog finds by itself. Exits 1 when any run did not exit 86.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

GOAL = 2.0

PROGRAMS = {
    "rlock cycle (proven when it forms)": """
        import threading, time
        a, b = threading.RLock(), threading.RLock()
        held = threading.Barrier(2)
        def other():
            with b:
                held.wait()
                a.acquire()
        t = threading.Thread(target=other)
        with a:
            t.start()
            held.wait()
            time.sleep(0.05)
            print(time.time(), flush=True)
            b.acquire()
    """,
    "semaphore cycle (proven by the watchdog)": """
        import threading, time
        from stuck.runtime import registry
        rlock, sem, holding = threading.RLock(), threading.Semaphore(1), threading.Event()
        def holder():
            sem.acquire()
            holding.set()
            rlock.acquire()
        with rlock:
            t = threading.Thread(target=holder)
            t.start()
            holding.wait()
            while registry.waits.get(t.ident) is None:
                time.sleep(0.001)
            print(time.time(), flush=True)
            sem.acquire()
    """,
    "asyncio queue cycle (proven by the watchdog)": """
        import asyncio, time
        async def main():
            to_a, to_b = asyncio.Queue(), asyncio.Queue()
            async def a():
                await to_a.get()
                await to_b.put(1)
                await to_a.get()
            async def b():
                await to_a.put(1)
                await to_b.get()
                print(time.time(), flush=True)
                await to_b.get()
            await asyncio.gather(a(), b())
        asyncio.run(main())
    """,
    "event nobody sets (a stall)": """
        import threading, time
        never = threading.Event()
        t = threading.Thread(target=never.wait)
        t.start()
        print(time.time(), flush=True)
        t.join()
    """,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for name, source in PROGRAMS.items():
            path = os.path.join(tmp, "program.py")
            with open(path, "w", encoding="utf-8") as f:
                f.write(textwrap.dedent(source))
            delays: list[float] = []
            codes: set[int] = set()
            for _ in range(args.runs):
                proc = subprocess.run([sys.executable, "-m", "stuck", "run", "--policy",
                                       "abort", "--signal", "none", path],
                                      capture_output=True, text=True, timeout=60)
                ended = time.time()
                codes.add(proc.returncode)
                lines = proc.stdout.split()
                if lines:
                    delays.append(ended - float(lines[-1]))
            failed = failed or codes != {86}
            verdict = "ok" if delays and max(delays) <= GOAL else "over the goal"
            print(f"{name}: exit codes {sorted(codes)}; median "
                  f"{statistics.median(delays):.2f} s, longest {max(delays):.2f} s "
                  f"(goal {GOAL:.0f} s: {verdict})" if delays else f"{name}: no timings")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark and acceptance run of ``stuck explore`` on the bug zoo.

    python benchmarks/explore.py                 # executions/s on every zoo program
    python benchmarks/explore.py --acceptance    # 10 seeds: executions to first bug, replay
                                                 # 10/10, shrinking, fixed twins' false alarms
    frontrun python benchmarks/explore.py --compare
                                                 # the same AB/BA program under frontrun
                                                 # (frontrun needs its own launcher)

Throughput: executions per second of the default strategy on each buggy program and its fixed
twin, wall clock and CPU time, over the same number of executions (failing executions count:
the loop runs on past them, without shrinking). Next to them, per execution: ``switches``, the
scheduler's hand-overs between OS threads, and ``os cs``, the context switches the OS counted
for the whole process (``getrusage``; a hand-over costs one when the GIL is dropped before the
next thread wakes, two or three otherwise). Both depend on the program and the strategy, not
on the machine's load, unlike the rates: compare those within one session.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from stuck.explore import explore, replay


def _context_switches() -> int:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of the process, ended or not
    return usage.ru_nvcsw + usage.ru_nivcsw


def _rate(program: object, executions: int) -> tuple[float, float, int, float, float]:
    """Executions per second (wall, CPU) of the default strategy, running on past failures.

    ``explore`` stops at the first failure and then shrinks it; to time a buggy program over
    as many executions as a fixed one, this drives the engine's loop directly (same strategy,
    same worker pool, one History shared by the executions as in ``explore``, no shrinking). CPU time counts every thread of this process: it is what
    the exploration itself costs, less sensitive to other load on the machine than wall time.
    Also returns the mean numbers of hand-overs between OS threads and of OS context switches
    per execution: each costs some microseconds of wake-up, and unlike time they do not depend
    on the machine's load.
    """
    from stuck.explore import engine, primitives, workers
    from stuck.explore.portfolio import make
    from stuck.explore.scheduler import History

    strategy = make("portfolio", 0)
    history = History()  # one per exploration, shared by its executions (as engine.explore does)
    primitives.install()
    pool = workers.WorkerPool() if workers.available() else None
    engine._pool[0] = pool
    failed = 0
    switches = 0
    try:
        wall0, cpu0, cs0 = time.perf_counter(), time.process_time(), _context_switches()
        for i in range(executions):
            strategy.begin(i)
            ex = engine.run_once(program, strategy, stall_seconds=5.0,  # type: ignore[arg-type]
                                 history=history)
            strategy.end(ex.verdict.failed)
            failed += ex.verdict.failed
            switches += ex.switches
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        cs = _context_switches() - cs0
    finally:
        engine._pool[0] = None
        if pool is not None:
            pool.close()
        primitives.uninstall()
    return executions / wall, executions / cpu, failed, switches / executions, cs / executions


def throughput(executions: int, only: list[str] | None = None) -> None:
    import zoo

    print(f"{'program':18} {'buggy exec/s':>13} {'(cpu)':>7} {'failed':>7} {'switches':>8} "
          f"{'os cs':>6} {'fixed exec/s':>13} {'(cpu)':>7} {'switches':>8} {'os cs':>6}")
    rates = []
    for name, bug in zoo.BUGS.items():
        if only and name not in only:
            continue
        bw, bc, bf, bs, bo = _rate(bug.buggy, executions)
        fw, fc, ff, fs, fo = _rate(bug.fixed, executions)
        rates.append(fw)
        flag = f"  FALSE ALARM in {ff} executions" if ff else ""
        print(f"{name:18} {bw:13.0f} {bc:7.0f} {bf:7d} {bs:8.1f} {bo:6.1f} "
              f"{fw:13.0f} {fc:7.0f} {fs:8.1f} {fo:6.1f}{flag}", flush=True)
    print(f"{'median (fixed)':18} {'':>13} {'':>7} {'':>7} {'':>8} {'':>6} "
          f"{statistics.median(rates):13.0f}")


def acceptance(seeds: int, executions: int, fixed_executions: int,
               only: list[str] | None = None) -> int:
    import zoo

    bad = 0
    print(f"{'program':18} {'expect':8} {'found':>6} {'median':>6} {'max':>5} {'verdict ok':>10} "
          f"{'replay':>7} {'preempt (shrunk/raw)':>21} {'fixed twin':>22}")
    for name, bug in zoo.BUGS.items():
        if only and name not in only:
            continue
        firsts: list[int] = []
        kinds_ok = 0
        replays_ok = 0
        replays = 0
        shrunk_ok = True
        pre = []
        for seed in range(seeds):
            r = explore(bug.buggy, executions=executions, seed=seed, stall_seconds=5.0)
            if not r.found or r.found_at is None:
                continue
            firsts.append(r.found_at)
            kinds_ok += r.verdict is not None and r.verdict.kind == bug.expected_verdict
            shrunk_ok &= r.preemptions <= r.unshrunk_preemptions
            shrunk_ok &= r.decisions <= r.unshrunk_decisions
            pre.append((r.preemptions, r.unshrunk_preemptions))
            if seed == 0:
                for _ in range(10):
                    again = replay(bug.buggy, r.token or "")
                    replays += 1
                    replays_ok += (again.verdict is not None and r.verdict is not None
                                   and again.verdict.kind == r.verdict.kind)
        fixed = explore(bug.fixed, executions=fixed_executions, seed=0, stall_seconds=5.0)
        fixed_text = (f"{fixed.executions} ok" if not fixed.found else
                      f"ALARM at {fixed.found_at}")
        med = statistics.median(firsts) if firsts else float("nan")
        mx = max(firsts) if firsts else 0
        p = f"{statistics.median(a for a, _ in pre):.0f}/{statistics.median(b for _, b in pre):.0f}" if pre else "-"
        print(f"{name:18} {bug.expected_verdict:8} {len(firsts):>3}/{seeds:<2} {med:6.0f} {mx:5d} "
              f"{kinds_ok:>7}/{len(firsts):<2} {replays_ok:>3}/{replays:<3} "
              f"{p + (' ok' if shrunk_ok else ' WORSE'):>21} {fixed_text:>22}", flush=True)
        if len(firsts) < seeds or fixed.found or replays_ok < replays or not shrunk_ok:
            bad += 1
    print("acceptance:", "PASS" if bad == 0 else f"{bad} program(s) short of the bar")
    return 1 if bad else 0


# -- comparison -------------------------------------------------------------------------------


def _abba_threads(ordered: bool) -> tuple[object, list[object]]:
    def setup() -> tuple[threading.Lock, threading.Lock]:
        return threading.Lock(), threading.Lock()

    def forward(s: tuple[threading.Lock, threading.Lock]) -> None:
        with s[0], s[1]:
            pass

    def backward(s: tuple[threading.Lock, threading.Lock]) -> None:
        if ordered:
            forward(s)
            return
        with s[1], s[0]:
            pass

    return setup, [forward, backward]


def _as_program(setup: object, threads: list[object]) -> object:
    def program() -> None:
        state = setup()  # type: ignore[operator]
        ts = [threading.Thread(target=t, args=(state,)) for t in threads]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    return program


def compare(attempts: int) -> None:
    try:
        import frontrun
    except ImportError:
        print("frontrun is not installed (pip install frontrun); skipping the comparison")
        return
    print(f"{'program':14} {'stuck exec/s':>13} {'frontrun exec/s':>16} {'ratio':>7}")
    for label, ordered in (("abba-fixed", True),):
        setup, threads = _abba_threads(ordered)
        r = explore(_as_program(setup, threads), executions=attempts, strategy="random")  # type: ignore[arg-type]
        t0 = time.perf_counter()
        try:
            frontrun.explore_random(setup, threads, invariant=lambda s: True,  # type: ignore[arg-type]
                                    max_attempts=attempts, seed=0, reproduce_on_failure=0)
        except RuntimeError as exc:
            print(f"frontrun refused to run: {exc}")
            return
        fr = attempts / (time.perf_counter() - t0)
        print(f"{label:14} {r.executions_per_second:13.0f} {fr:16.0f} "
              f"{r.executions_per_second / fr:7.1f}")
    print("interleave-test: no distribution installable for this Python from the package index")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--executions", type=int, default=1000)
    ap.add_argument("--acceptance", action="store_true")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--fixed-executions", type=int, default=10_000)
    ap.add_argument("--compare", action="store_true")
    ap.add_argument("--only", nargs="*", help="zoo program names (default: all)")
    args = ap.parse_args()
    if args.acceptance:
        return acceptance(args.seeds, args.executions, args.fixed_executions, args.only)
    if args.compare:
        compare(200)
        return 0
    throughput(args.executions, args.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())

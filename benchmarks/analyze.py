"""Throughput and memory of ``stuck analyze`` on large synthetic dumps.

Generates a Go dump of 100,000 goroutines (a server's worth: HTTP handlers blocked on a
mutex, workers idle on channels, a few in I/O wait) and a gdb dump of 10,000 threads, then
reports parse and parse+analysis speed in MB/s and peak Python memory (tracemalloc) relative to
the input size, then the time and peak memory of writing the text, JSON and HTML reports of the
Go dump (``--reports-only`` for just those; ``--save-go-dump FILE`` writes the dump itself for
``stuck analyze``). Run: ``python benchmarks/analyze.py [--goroutines N] [--threads N] [--repeat N]``.
Each row is the best of N timed runs with the slowest beside it, and the load average is
printed before and after: on a shared machine the spread says how far to trust a figure. Beside
them, ``cpu`` is the input size over the best run's CPU time in this process, which other work
on the machine disturbs far less than the wall clock (the rows' goals are wall-clock figures
measured on a quiet machine; the CPU figure says what to expect there).
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
import tracemalloc
from collections.abc import Callable

from stuck.analysis import analyze
from stuck.dumps import load_dump

GO_SHAPES = [
    ("semacquire, {m} minutes",
     "sync.runtime_SemacquireMutex(0xc000{a:06x}, 0x0, 0x1)\n\t/usr/lib/go/src/runtime/sema.go:77 +0x25\n"
     "sync.(*Mutex).lockSlow(0xc000100000)\n\t/usr/lib/go/src/sync/mutex.go:171 +0x165\n"
     "sync.(*Mutex).Lock(...)\n\t/usr/lib/go/src/sync/mutex.go:90\n"
     "main.(*cache).get(0xc000200000, {{0xc000{a:06x}, 0x10}})\n\t/app/cache.go:41 +0x5a\n"
     "main.handler({{0x7f1a20, 0xc000{a:06x}}}, 0xc000{a:06x})\n\t/app/server.go:88 +0x9c\n"
     "net/http.HandlerFunc.ServeHTTP(0x0?, {{0x7f1a20?, 0xc000{a:06x}?}}, 0x0?)\n"
     "\t/usr/lib/go/src/net/http/server.go:2136 +0x2f\n"),
    ("chan receive, {m} minutes",
     "main.worker(0xc000300000, 0x{i:x})\n\t/app/pool.go:23 +0x85\n"),
    ("IO wait",
     "internal/poll.runtime_pollWait(0x7f00{a:08x}, 0x72)\n\t/usr/lib/go/src/runtime/netpoll.go:306 +0x89\n"
     "internal/poll.(*pollDesc).wait(0xc000{a:06x}?, 0xc000{a:06x}?, 0x0)\n"
     "\t/usr/lib/go/src/internal/poll/fd_poll_runtime.go:84 +0x32\n"
     "net.(*conn).Read(0xc000{a:06x}, {{0xc000{a:06x}?, 0x1000?, 0x1000?}})\n"
     "\t/usr/lib/go/src/net/net.go:183 +0x45\n"),
]


def go_dump(n: int) -> str:
    parts = ["SIGQUIT: quit\nPC=0x46b1c1 m=0 sigcode=0\n\n"]
    for i in range(1, n + 1):
        reason, frames = GO_SHAPES[i % 10 % 3 if i % 10 < 3 else 1]
        parts.append(f"goroutine {i} [{reason.format(m=i % 7 + 1)}]:\n")
        parts.append(frames.format(a=i & 0xFFFFFF, i=i))
        parts.append("created by main.main\n\t/app/main.go:30 +0x1d2\n\n")
    return "".join(parts)


def gdb_dump(n: int) -> str:
    parts = []
    for i in range(1, n + 1):
        lwp = 1000 + i
        parts.append(f'Thread {i} (Thread 0x7f00{i:08x} (LWP {lwp}) "worker-{i % 64}"):\n')
        if i % 5 == 0:
            parts.append(
                f"#0  futex_wait (private=0, expected=2, futex_word=0x5600{i % 97:08x} <lock_{i % 97}>) "
                "at ../sysdeps/nptl/futex-internal.h:146\n"
                f"#1  __GI___lll_lock_wait (futex=futex@entry=0x5600{i % 97:08x} <lock_{i % 97}>, "
                "private=0) at ./nptl/lowlevellock.c:49\n"
                f"#2  ___pthread_mutex_lock (mutex=0x5600{i % 97:08x} <lock_{i % 97}>) "
                "at ./nptl/pthread_mutex_lock.c:93\n"
                "#3  0x000055555555a2a6 in Store::Put (this=0x55555556b2c0, key=...) at store.cc:210\n")
        else:
            parts.append(
                "#0  __futex_abstimed_wait_common64 (private=0, cancel=true, abstime=0x0, op=393, "
                "expected=0, futex_word=0x55555556a108 <work_cv+40>) at ./nptl/futex-internal.c:57\n"
                "#1  __pthread_cond_wait_common (abstime=0x0, clockid=0, mutex=0x55555556a0a0 "
                "<pool_mu>, cond=0x55555556a0e0 <work_cv>) at ./nptl/pthread_cond_wait.c:503\n"
                "#2  ___pthread_cond_wait (cond=0x55555556a0e0 <work_cv>, mutex=0x55555556a0a0 "
                "<pool_mu>) at ./nptl/pthread_cond_wait.c:618\n"
                "#3  0x000055555555a21c in ThreadPool::WaitForJob (this=0x55555556b000) at pool.cc:97\n"
                "#4  0x000055555555a21c in ThreadPool::Run (this=0x55555556b000) at pool.cc:120\n")
        parts.append(
            "#5  0x00007ffff7d4f1f5 in start_thread (arg=<optimized out>) at ./nptl/pthread_create.c:442\n"
            "#6  0x00007ffff7dcf8ec in clone3 () at ../sysdeps/unix/sysv/linux/x86_64/clone3.S:81\n\n")
    return "".join(parts)


def measure(label: str, text: str, fmt: str, step: Callable[[str, str], object],
            repeat: int) -> dict[str, float]:
    """Best of ``repeat`` timed runs (the least disturbed by other work on the machine), with
    the slowest beside it as the spread; then one run under tracemalloc for peak memory."""
    size_mb = len(text.encode()) / 1e6
    times = []
    cpu_times = []
    for _ in range(repeat):
        gc.collect()
        start, cpu_start = time.perf_counter(), time.process_time()
        step(text, fmt)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    best, worst = min(times), max(times)
    gc.collect()
    tracemalloc.start()
    step(text, fmt)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    row = {"MB": size_mb, "s": best, "MB/s": size_mb / best, "worst MB/s": size_mb / worst,
           "cpu MB/s": size_mb / min(cpu_times),
           "peak MB": peak / 1e6, "peak/input": peak / 1e6 / size_mb}
    print(f"{label:<30} {size_mb:5.1f} MB  best {best:5.2f} s {row['MB/s']:6.1f} MB/s "
          f"(worst {row['worst MB/s']:5.1f}, cpu {row['cpu MB/s']:5.1f})  peak "
          f"{row['peak MB']:6.1f} MB ({row['peak/input']:.1f}x input)")
    return row


def load() -> str:
    """The machine's load average: other work running beside the benchmark skews it."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def parse_only(text: str, fmt: str) -> object:
    return load_dump(text, fmt)


def parse_and_analyze(text: str, fmt: str) -> object:
    loaded = load_dump(text, fmt)
    return analyze(loaded.snapshot, loaded.stated, loaded.inferred)


def report_step(kind: str, out_dir: str) -> Callable[[str, str], object]:
    """Parse, analyse and write one report format to a file, as ``stuck analyze`` does."""
    from stuck.report import html as html_report
    from stuck.report import json as json_report
    from stuck.report import text as text_report

    def step(text: str, fmt: str) -> object:
        report = parse_and_analyze(text, fmt)
        with open(os.path.join(out_dir, f"report.{kind}"), "w", encoding="utf-8") as out:
            if kind == "txt":
                out.write(text_report.render(report))  # type: ignore[arg-type]
            elif kind == "json":
                json_report.write(report, out)  # type: ignore[arg-type]
            else:
                html_report.write(report, out)  # type: ignore[arg-type]
        return None
    return step


def reports(go: str, repeat: int) -> None:
    """Text, JSON and HTML reports of the Go dump, each from the text of the dump to a file:
    time and peak memory, with the goal (JSON and HTML within 1.5x of the text report's time,
    peak memory at most 3x the input) checked against the text report measured in this run."""
    with tempfile.TemporaryDirectory() as out_dir:
        rows = {kind: measure(f"go: report {kind}", go, "go", report_step(kind, out_dir), repeat)
                for kind in ("txt", "json", "html")}
        sizes = {k: os.path.getsize(os.path.join(out_dir, f"report.{k}")) / 1e6 for k in rows}
    base = rows["txt"]["s"]
    for kind in ("json", "html"):
        r = rows[kind]
        ok = r["s"] <= 1.5 * base and r["peak/input"] <= 3.0
        print(f"  {kind:<4} {r['s'] / base:4.2f}x the text report's time, peak "
              f"{r['peak/input']:.1f}x input, {sizes[kind]:.1f} MB written: "
              f"{'meets' if ok else 'MISSES'} the goal (<= 1.5x time, <= 3x input)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--goroutines", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per row; the best counts")
    ap.add_argument("--reports-only", action="store_true",
                    help="only the text/JSON/HTML report rows on the Go dump")
    ap.add_argument("--save-go-dump", metavar="FILE",
                    help="write the generated Go dump to FILE (for stuck analyze) and stop")
    args = ap.parse_args()
    go = go_dump(args.goroutines)
    if args.save_go_dump:
        with open(args.save_go_dump, "w", encoding="utf-8") as f:
            f.write(go)
        print(f"wrote {args.save_go_dump}: {args.goroutines} goroutines, {len(go) / 1e6:.1f} MB")
        return
    if args.reports_only:
        print(f"Go dump: {args.goroutines} goroutines; best of {args.repeat} runs; {load()}")
        reports(go, args.repeat)
        print(f"after: {load()}")
        return
    gdb = gdb_dump(args.threads)
    print(f"Go dump: {args.goroutines} goroutines; gdb dump: {args.threads} threads; "
          f"best of {args.repeat} runs; {load()}")
    n = args.repeat
    measure("go: parse (--format go)", go, "go", parse_only, n)
    measure("go: parse, auto-detect", go, "auto", parse_only, n)
    measure("go: parse + analyze", go, "go", parse_and_analyze, n)
    measure("go: auto-detect + analyze", go, "auto", parse_and_analyze, n)
    measure("gdb: parse (--format gdb)", gdb, "gdb", parse_only, n)
    measure("gdb: parse + analyze", gdb, "gdb", parse_and_analyze, n)
    reports(go, n)
    print(f"after: {load()}")


if __name__ == "__main__":
    main()

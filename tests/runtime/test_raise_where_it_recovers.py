"""``--policy raise`` raises where the program can recover: in the thread or task whose wait
is part of the finding, and the program then ends as it would on that error. Each program
runs in a subprocess with a time bound: a regression hangs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

LIMIT = 60


def run_raise(tmp_path: Path, name: str, source: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / name
    script.write_text(textwrap.dedent(source))
    return subprocess.run([sys.executable, "-m", "stuck", "run", "--policy", "raise",
                           str(script)], capture_output=True, text=True, timeout=LIMIT,
                          cwd=tmp_path)


def test_a_pool_worker_waiting_on_its_own_pool_gets_the_error_and_the_program_ends(
        tmp_path: Path) -> None:
    # One worker, which waits on a job queued behind itself: the worker's wait is the cycle,
    # the main thread only waits behind it. The error goes to the worker; the future it runs
    # fails with it, and the main thread's result() raises it, as a pool propagates any error.
    proc = run_raise(tmp_path, "own_pool.py", """
        from concurrent.futures import ThreadPoolExecutor
        pool = ThreadPoolExecutor(max_workers=1)
        def inner(): return 1
        def outer():
            return pool.submit(inner).result() + 1
        print(pool.submit(outer).result())
        """)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    traceback = proc.stderr[proc.stderr.index("Traceback"):]
    assert ", in outer\n" in traceback  # raised in the worker, at its wait
    assert traceback.rstrip().splitlines()[-1].startswith("stuck.errors.DeadlockError: ")


def test_a_worker_waiting_with_futures_wait_gets_the_error(tmp_path: Path) -> None:
    proc = run_raise(tmp_path, "own_pool_wait.py", """
        import concurrent.futures as cf
        pool = cf.ThreadPoolExecutor(max_workers=1)
        def inner(): return 1
        def outer():
            done, _ = cf.wait([pool.submit(inner)])
            return len(done)
        try:
            pool.submit(outer).result()
        except Exception as exc:
            import traceback
            where = [f.name for f in traceback.extract_tb(exc.__traceback__)]
            print("recovered from", type(exc).__name__, "outer" in where)
        """)
    assert proc.returncode == 0, proc.stderr
    # Raised in the worker, in outer's wait (the watchdog proves it as a stall of the pool).
    assert proc.stdout in ("recovered from StallError True\n",
                           "recovered from DeadlockError True\n"), proc.stderr


def test_an_asyncio_task_awaiting_a_future_nothing_completes_gets_the_error(
        tmp_path: Path) -> None:
    proc = run_raise(tmp_path, "afut.py", """
        import asyncio
        async def waiter(fut):
            return await fut
        async def main():
            fut = asyncio.get_running_loop().create_future()
            t = asyncio.create_task(waiter(fut), name="waiter")
            try:
                print(await t)
            except Exception as exc:
                print("recovered from", type(exc).__name__)
        asyncio.run(main())
        """)
    assert "STALL (certain)" in proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "recovered from StallError\n"

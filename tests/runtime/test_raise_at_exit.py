"""``--policy raise`` on a program that ends while a non-daemon thread stays stuck for good.

The error goes where the program can recover (the main thread); the program then ends, by
its traceback or by returning, and the interpreter would wait at exit for the thread left
stuck, forever. stuck ends such a program as ``abort`` would (exit 86, one line saying why)
once every thread the interpreter waits for is proven stuck, and never while one of them
can still run. Each program runs in a subprocess with a time bound whose expiry fails the
test: a regression hangs.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stuck.errors import EXIT_ABORT

LIMIT = 60  # seconds; each program ends within a few seconds of its stall

AT_EXIT = ("stuck: the program has ended, but the interpreter waits at exit for {names}, "
           "proven stuck for good above; policy raise raised where the program could "
           "recover, and now ends it as abort would")


def run(tmp_path: Path, name: str, source: str, *options: str,
        under_stuck: bool = True) -> subprocess.CompletedProcess[str]:
    script = tmp_path / name
    script.write_text(textwrap.dedent(source))
    command = [sys.executable, "-m", "stuck", "run", *options, str(script)] if under_stuck \
        else [sys.executable, str(script)]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=LIMIT,
                              cwd=tmp_path)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{name} still ran after {LIMIT} s (it hangs); stderr so far:\n"
                    f"{exc.stderr!r}")


def run_raise(tmp_path: Path, name: str, source: str) -> subprocess.CompletedProcess[str]:
    return run(tmp_path, name, source, "--policy", "raise")


def last_line(proc: subprocess.CompletedProcess[str]) -> str:
    return proc.stderr.rstrip("\n").splitlines()[-1]


def test_main_dies_of_the_error_while_the_worker_it_waited_for_stays_stuck(
        tmp_path: Path) -> None:
    # The main thread waits for a result the worker would give once an Event nobody sets is
    # set: StallError in the main thread, its traceback, then the interpreter's join of the
    # worker at exit, which stuck ends.
    proc = run_raise(tmp_path, "left_behind.py", """
        import threading
        never = threading.Event()
        done = threading.Event()
        def worker():
            never.wait()
            done.set()
        threading.Thread(target=worker, name="worker").start()
        done.wait()
        print("unreachable")
        """)
    assert proc.returncode == EXIT_ABORT, proc.stderr
    assert proc.stdout == ""
    traceback = proc.stderr[proc.stderr.index("Traceback (most recent call last):"):]
    assert "\nstuck.errors.StallError: " in traceback
    assert last_line(proc) == AT_EXIT.format(names="worker")


def test_main_joining_the_stuck_worker_gets_the_error_and_exits_as_python_does(
        tmp_path: Path) -> None:
    # The error interrupts Thread.join(). Python 3.10 to 3.12 then mark the joined thread
    # stopped (threading's bpo-45274 handling releases its lock) and no longer wait for it at
    # exit: the program exits 1 by its traceback. From 3.13 the interpreter still waits for it.
    proc = run_raise(tmp_path, "join_stuck.py", """
        import threading
        never = threading.Event()
        t = threading.Thread(target=never.wait, name="worker")
        t.start()
        t.join()
        """)
    assert "\nstuck.errors.StallError: " in proc.stderr
    if sys.version_info < (3, 13):
        assert proc.returncode == 1, proc.stderr
        assert "the interpreter waits at exit" not in proc.stderr
    else:
        assert proc.returncode == EXIT_ABORT, proc.stderr
        assert last_line(proc) == AT_EXIT.format(names="worker")


def test_a_pool_whose_caller_catches_the_error_and_returns(tmp_path: Path) -> None:
    proc = run_raise(tmp_path, "pool_catch.py", """
        import queue, threading
        from stuck import StallError
        jobs, results = queue.Queue(), queue.Queue()
        never = threading.Event()
        def worker():
            while True:
                job = jobs.get()
                if job is None:
                    return
                never.wait()
                results.put(job)
        for i in range(2):
            threading.Thread(target=worker, name=f"w{i}").start()
        jobs.put(1)
        jobs.put(2)
        try:
            print(results.get())
        except StallError as exc:
            print("caught", type(exc).__name__)
        print("main returns")
        """)
    assert proc.returncode == EXIT_ABORT, proc.stderr
    assert proc.stdout == "caught StallError\nmain returns\n"
    assert "Traceback" not in proc.stderr
    assert last_line(proc) == AT_EXIT.format(names="w0, w1")


def test_two_stuck_threads_the_second_one_stalling_after_the_first_was_proven(
        tmp_path: Path) -> None:
    # b blocks a moment after a: a is proven (and the error raised in the main thread, which
    # joins it) before b's wait has lasted long enough, so b is proven only once the program
    # has ended. This one hung: nothing behind the interpreter's join at exit was ever proven.
    proc = run_raise(tmp_path, "two_stuck.py", """
        import threading, time
        a_go, b_go = threading.Event(), threading.Event()
        def b():
            time.sleep(0.45)
            b_go.wait()
        ta = threading.Thread(target=a_go.wait, name="a")
        tb = threading.Thread(target=b, name="b")
        ta.start(); tb.start()
        ta.join(); tb.join()
        """)
    assert proc.returncode == EXIT_ABORT, proc.stderr
    assert last_line(proc) == AT_EXIT.format(names="a, b")
    # a still waits: it did not end, whatever the interrupted join() told threading.
    assert "a (returned)" not in proc.stderr


def test_an_executor_whose_caller_catches_the_error_and_returns(tmp_path: Path) -> None:
    # At exit, the executor's atexit callable joins its worker, under threading._shutdown:
    # no error is raised there (it was printed as 'Exception ignored', and the program then
    # exited 0 with its worker stuck), and the program is ended as abort would.
    proc = run_raise(tmp_path, "executor_catch.py", """
        import threading
        from concurrent.futures import ThreadPoolExecutor
        from stuck import StallError
        never = threading.Event()
        pool = ThreadPoolExecutor(2)
        future = pool.submit(never.wait)
        try:
            future.result()
        except StallError as exc:
            print("caught", type(exc).__name__)
        print("main returns")
        """)
    assert proc.returncode == EXIT_ABORT, proc.stderr
    assert proc.stdout == "caught StallError\nmain returns\n"
    assert "Exception ignored" not in proc.stderr
    assert last_line(proc) == AT_EXIT.format(names="ThreadPoolExecutor-0_0")


WORKER = """\
import threading, time
def worker():
    end = time.monotonic() + 3
    while time.monotonic() < end:
        time.sleep(0.1)
    print("worker done", flush=True)
"""


def with_worker(body: str) -> str:
    """The program ``body`` after a ``worker`` that sleeps in a loop for 3 s and says so."""
    return WORKER + textwrap.dedent(body)


def test_a_thread_still_working_at_exit_is_waited_for_before_the_program_is_ended(
        tmp_path: Path) -> None:
    # One thread stuck for good, one working for 3 s: the program ends with 86 only after
    # the working one has finished (its output is there), as the interpreter waits for both.
    proc = run_raise(tmp_path, "working_and_stuck.py", with_worker("""
        never = threading.Event()
        threading.Thread(target=never.wait, name="stuck").start()
        threading.Thread(target=worker, name="worker").start()
        print("main returns", flush=True)
        """))
    assert proc.returncode == EXIT_ABORT, proc.stderr
    assert proc.stdout == "main returns\nworker done\n"
    assert last_line(proc) == AT_EXIT.format(names="stuck")


@pytest.mark.parametrize("name, body", [
    ("working_at_exit.py", """
        threading.Thread(target=worker, name="worker").start()
        print("main returns", flush=True)
        """),
    ("released_by_the_worker.py", """
        never = threading.Event()
        def waiter():
            never.wait()
        w = threading.Thread(target=waiter, name="waiter")
        w.start()
        def releaser():
            worker()
            never.set()
        threading.Thread(target=releaser, name="worker").start()
        w.join()
        print("main done", flush=True)
        """),
])
def test_a_program_whose_threads_all_end_runs_as_plain(tmp_path: Path, name: str,
                                                         body: str) -> None:
    source = with_worker(body)
    plain = run(tmp_path, name, source, under_stuck=False)
    proc = run_raise(tmp_path, name, source)
    assert (proc.returncode, proc.stdout, proc.stderr) == (plain.returncode, plain.stdout, "")


def test_a_stall_formed_after_the_program_ended_is_acted_on_by_abort(tmp_path: Path) -> None:
    # The main thread returns at once; the thread it leaves waits on an Event nobody sets.
    # Its stall forms behind the interpreter's join at exit, and is proven there as anywhere.
    proc = run(tmp_path, "main_returns.py", """
        import threading
        never = threading.Event()
        threading.Thread(target=never.wait, name="left").start()
        print("main returns", flush=True)
        """, "--policy", "abort")
    assert proc.returncode == EXIT_ABORT, proc.stderr
    assert proc.stdout == "main returns\n"
    assert "STALL (certain): left waits on event never" in proc.stderr
    assert last_line(proc) == "stuck: aborting (policy abort, a proven stall)"


DRAIN_AT_EXIT = """
    import atexit, queue, threading
    q = queue.Queue()
    results = []
    def worker():
        while True:
            job = q.get()
            results.append(10 // job)  # dies of ZeroDivisionError on 0
            q.task_done()
    threading.Thread(target=worker, name="worker", daemon=True).start()
    @atexit.register
    def drain():
        print("draining", flush=True)
        {join}
    for j in [5, 0, 1]:
        q.put(j)
    print("main done", flush=True)
    """


def test_a_stall_in_an_atexit_callable_under_raise_ends_as_abort(tmp_path: Path) -> None:
    # The interpreter runs atexit callables after it has joined the other threads, and it
    # prints and ignores an error raised in one: the program would exit 0 after a proven
    # stall. Under raise, stuck ends it as abort would instead.
    proc = run_raise(tmp_path, "drain_at_exit.py", DRAIN_AT_EXIT.format(join="q.join()"))
    assert proc.returncode == EXIT_ABORT, proc.stderr
    assert "STALL (certain): MainThread waits for the items of queue q" in proc.stderr
    assert "worker died of ZeroDivisionError" in proc.stderr
    assert "Exception ignored in atexit callback" not in proc.stderr
    assert last_line(proc) == ("stuck: aborting (policy raise, a proven stall in an exit "
                               "callback (atexit), where the interpreter ignores errors; "
                               "ended as abort would)")


def test_an_atexit_callable_that_waits_with_a_timeout_runs_as_plain(tmp_path: Path) -> None:
    # The same program, whose callable gives up after a moment: not a stall, and the output
    # and exit code are the plain run's.
    source = DRAIN_AT_EXIT.format(
        join="import time; end = time.monotonic() + 1.5\n"
             "        while q.unfinished_tasks and time.monotonic() < end: time.sleep(0.05)\n"
             "        print('gave up', flush=True)")
    plain = run(tmp_path, "drain_gives_up.py", source, under_stuck=False)
    proc = run_raise(tmp_path, "drain_gives_up.py", source)
    assert "gave up" in plain.stdout
    assert (proc.returncode, proc.stdout) == (plain.returncode, plain.stdout)
    assert "STALL" not in proc.stderr and "stuck:" not in proc.stderr

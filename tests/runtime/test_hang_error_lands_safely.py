"""Where ``--hang-policy raise`` lets a HangError arrive.

The watchdog asks the interpreter to raise it in the hung thread; it arrives where that thread
stands when it next runs Python code. Inside stuck's tracked ``Lock.__enter__``, just after
the real lock was taken, it would leave the lock held with no ``with`` block to release it:
the program then hangs on its next ``with lock:``. So the look at the thread's frame and the
asking are one pass, and stuck's own steps are never interrupted, waiting or not. The waits
of threading and queue themselves are interrupted: they clean up as they must for Ctrl-C.
"""

from __future__ import annotations

import contextlib
import io
import queue
import threading
import time
from collections.abc import Callable

import pytest

from stuck.errors import HangError
from stuck.model import Finding
from stuck.runtime import framewalk
from stuck.runtime.watchdog import _unsafe_to_interrupt, raise_in_thread

FINDING = Finding(kind="hang", confidence="possible", summary="test hang", threads=["t"])


def ask(thread: threading.Thread) -> bool:
    assert thread.ident is not None
    return raise_in_thread(thread.ident, HangError, FINDING, unless=_unsafe_to_interrupt)


def test_a_thread_looping_on_with_lock_never_gets_it_inside_the_lock(
        live: io.StringIO) -> None:
    # Half of such a thread's time is in stuck's __enter__/__exit__. Raised 200 times, each
    # error must leave the lock free (before: held after 264 of 500 errors).
    lock = threading.Lock()
    received = 0
    leaked = 0
    done = threading.Event()

    def spin() -> None:
        nonlocal received, leaked
        n = 0
        while not done.is_set():
            try:
                while not done.is_set():
                    with lock:
                        n += 1
            except HangError:
                if lock.locked():
                    leaked += 1
                    lock.release()
                received += 1

    t = threading.Thread(target=spin, name="spinner")
    t.start()
    asked = 0
    try:
        deadline = time.monotonic() + 60
        while asked < 200 and time.monotonic() < deadline:
            if ask(t):
                asked += 1
                while received < asked and time.monotonic() < deadline:
                    time.sleep(0.0005)
    finally:
        done.set()
        t.join(10)
    assert asked == 200 and received == 200
    assert leaked == 0


def _event(ev: threading.Event) -> Callable[[], object]:
    return lambda: ev.wait(0.05)


def _queue(q: queue.Queue[int]) -> Callable[[], object]:
    def get() -> None:
        with contextlib.suppress(queue.Empty):
            q.get(timeout=0.05)
    return get


def _condition(cv: threading.Condition) -> Callable[[], object]:
    def wait() -> None:
        with cv:
            cv.wait(0.05)
    return wait


@pytest.mark.parametrize("kind", ["event", "queue", "condition", "semaphore", "sleep"])
def test_a_poll_loop_on_the_plumbing_gets_it_in_its_wait(live: io.StringIO, kind: str) -> None:
    waits: dict[str, Callable[[], Callable[[], object]]] = {
        "event": lambda: _event(threading.Event()),
        "queue": lambda: _queue(queue.Queue()),
        "condition": lambda: _condition(threading.Condition()),
        "semaphore": lambda: (lambda s: lambda: s.acquire(timeout=0.05))(threading.Semaphore(0)),
        "sleep": lambda: lambda: time.sleep(0.05),
    }
    wait = waits[kind]()
    got: list[BaseException] = []

    def poll() -> None:
        try:
            while True:
                wait()
        except HangError as exc:
            got.append(exc)

    t = threading.Thread(target=poll, daemon=True)
    t.start()
    time.sleep(0.2)
    assert ask(t)
    t.join(10)
    assert not t.is_alive() and len(got) == 1


def test_a_thread_waiting_in_a_tracked_locks_acquire_is_left_alone(live: io.StringIO) -> None:
    # The error would arrive just after the wait returns, with the lock taken if it was.
    # The thread is in that wait at (almost) every look; the rare look that finds it between
    # two waits, in its own loop, may raise there, which is safe: either way nothing leaks.
    lock = threading.Lock()
    lock.acquire()
    stop = threading.Event()
    got: list[BaseException] = []

    def poll() -> None:
        try:
            while not stop.is_set():
                if lock.acquire(timeout=0.05):
                    lock.release()
        except HangError as exc:
            got.append(exc)

    t = threading.Thread(target=poll, daemon=True)
    t.start()
    time.sleep(0.2)
    assert t.ident is not None
    unsafe = sum(framewalk.read_one(t.ident, _unsafe_to_interrupt) for _ in range(20))
    try:
        asked = ask(t)
    finally:
        stop.set()
        lock.release()
        t.join(10)
    assert unsafe >= 15
    assert asked == bool(got)
    assert not lock.locked()


def test_an_idle_pool_worker_is_left_alone_and_the_pool_shuts_down(live: io.StringIO) -> None:
    # An idle worker blocks in the C SimpleQueue.get of concurrent.futures: an error arriving
    # as that get returns loses what it returned. Interrupted as it got the shutdown sentinel,
    # the worker died with it, and the pool's shutdown waited for ever for the others.
    import concurrent.futures

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=3, thread_name_prefix="idle")
    list(pool.map(abs, range(-30, 0)))
    time.sleep(0.2)
    workers = [t for t in threading.enumerate() if t.name.startswith("idle")]
    assert workers
    assert not any(ask(t) for t in workers)
    done = threading.Event()

    def shut() -> None:
        pool.shutdown(wait=True)
        done.set()

    threading.Thread(target=shut, daemon=True).start()
    assert done.wait(30)
    assert not any(t.is_alive() for t in workers)

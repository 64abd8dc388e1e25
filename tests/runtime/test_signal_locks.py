"""Waits the live detector must not call deadlocks: a Lock used as a signal (a readers-writer
lock's first reader takes it, its last reader releases it), and a timed queue get closing a
"cycle" inferred from who used the queue before (APScheduler's test_add_live_job shape)."""

from __future__ import annotations

import queue
import threading
import time

import pytest

from stuck.runtime import policy

from .helpers import join_all, start, wait_until_blocked

pytestmark = pytest.mark.usefixtures("live")


class RWLockFair:
    """readerwriterlock's fair lock, as written there: ``c_lock_write`` is taken by the first
    reader and released by the last one, whichever thread that is."""

    def __init__(self) -> None:
        self.v_read_count = 0
        self.c_lock_read_count = threading.Lock()
        self.c_lock_read = threading.Lock()
        self.c_lock_write = threading.Lock()

    def r_acquire(self) -> None:
        with self.c_lock_read, self.c_lock_read_count:
            self.v_read_count += 1
            if self.v_read_count == 1:
                self.c_lock_write.acquire()

    def r_release(self) -> None:
        with self.c_lock_read_count:
            self.v_read_count -= 1
            if self.v_read_count == 0:
                self.c_lock_write.release()

    def w_acquire(self) -> None:
        self.c_lock_read.acquire()
        self.c_lock_write.acquire()

    def w_release(self) -> None:
        self.c_lock_write.release()
        self.c_lock_read.release()


def test_lock_released_by_the_last_reader_is_not_a_deadlock() -> None:
    # Earlier in the program, readers overlapped: the last one out was not the first one in.
    warm = RWLockFair()
    first_in = start(warm.r_acquire, "reader-a")
    join_all(first_in)
    second_in = start(lambda: (warm.r_acquire(), warm.r_release()), "reader-b")
    join_all(second_in)
    warm.r_release()  # the main thread is the last reader out

    rw = RWLockFair()
    r2_done = threading.Event()
    r2_reading = threading.Event()
    r1_reading = threading.Event()
    errors: list[BaseException] = []

    def r1() -> None:
        try:
            rw.r_acquire()  # first reader: takes c_lock_write
            r1_reading.set()
            r2_reading.wait(5)
            rw.r_release()  # not the last reader out: c_lock_write stays taken
            writer_waiting.wait(5)
            rw.r_acquire()  # behind the writer, who waits for the last reader's release
            rw.r_release()
        except BaseException as exc:  # a DeadlockError here is the false finding
            errors.append(exc)

    def r2() -> None:
        r1_reading.wait(5)
        rw.r_acquire()
        r2_reading.set()
        r2_done.wait(5)
        rw.r_release()

    writer_waiting = threading.Event()

    def writer() -> None:
        r2_reading.wait(5)
        rw.c_lock_read.acquire()
        writer_waiting.set()
        rw.c_lock_write.acquire()  # released by whichever reader is last out
        rw.w_release()

    t1, t2 = start(r1, "reader-1"), start(r2, "reader-2")
    w = start(writer, "writer")
    wait_until_blocked(w)
    wait_until_blocked(t1)
    time.sleep(0.05)
    r2_done.set()  # the last reader leaves and releases c_lock_write: everyone proceeds
    join_all(t1, t2, w)
    assert errors == []
    assert policy.findings_seen == []


def test_timed_get_on_a_queue_another_thread_will_fill_is_not_a_deadlock() -> None:
    events: queue.Queue[str] = queue.Queue()
    events.put("started")
    events.get()  # so far only this thread used the queue

    def listener() -> None:
        time.sleep(0.2)
        events.put("job executed")

    t = start(listener, "scheduler")
    assert events.get(True, 2) == "job executed"
    join_all(t)
    assert policy.findings_seen == []

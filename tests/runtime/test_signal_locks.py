"""Waits the live detector must not call deadlocks: a Lock used as a signal (a readers-writer
lock's first reader takes it, its last reader releases it), and a timed queue get closing a
"cycle" inferred from who used the queue before (APScheduler's test_add_live_job shape)."""

from __future__ import annotations

import queue
import threading
import time

import pytest

from stuck.runtime import policy

from .helpers import join_all, start

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


def _writer_waits_for_the_last_reader(rw: RWLockFair, r2_reads: object) -> list[BaseException]:
    """reader-1 takes c_lock_write as first reader and leaves; reader-2 is still reading; the
    writer takes c_lock_read and waits for c_lock_write; reader-1 comes back and waits for
    c_lock_read: a cycle (reader-1 -> writer -> reader-1, the holder of c_lock_write) that the
    last reader's release ends."""
    errors: list[BaseException] = []
    r1_reading, r2_reading, writer_waiting = (threading.Event() for _ in range(3))

    def r1() -> None:
        try:
            rw.r_acquire()  # first reader: takes c_lock_write
            r1_reading.set()
            r2_reading.wait(30)
            rw.r_release()  # not the last reader out: c_lock_write stays taken
            writer_waiting.wait(30)
            rw.r_acquire()  # behind the writer, who waits for the last reader's release
            rw.r_release()
        except BaseException as exc:  # a DeadlockError here is the false finding
            errors.append(exc)

    def r2() -> None:
        r1_reading.wait(30)
        rw.r_acquire()
        r2_reading.set()
        r2_reads()  # type: ignore[operator]
        rw.r_release()  # the last reader out releases c_lock_write

    def writer() -> None:
        r2_reading.wait(30)
        rw.c_lock_read.acquire()
        writer_waiting.set()
        rw.c_lock_write.acquire()
        rw.w_release()

    threads = [start(r1, "reader-1"), start(r2, "reader-2"), start(writer, "writer")]
    join_all(*threads)
    return errors


def test_lock_released_by_the_last_reader_while_it_reads_is_not_a_deadlock() -> None:
    """The first time: nothing showed yet that c_lock_write is used as a signal, but the last
    reader is running (reading) and will release it."""
    errors = _writer_waits_for_the_last_reader(RWLockFair(), lambda: time.sleep(0.15))
    assert errors == []
    assert policy.findings_seen == []


def test_lock_of_a_class_used_as_a_signal_is_not_a_deadlock() -> None:
    """Once a lock of the class was released by a thread that had not taken it, any thread
    may release its locks, even when every other thread waits (here the last reader waits
    for a timer's event)."""
    warm = RWLockFair()
    join_all(start(warm.r_acquire, "reader-a"))
    join_all(start(lambda: (warm.r_acquire(), warm.r_release()), "reader-b"))
    warm.r_release()  # the main thread is the last reader out
    done = threading.Event()

    def r2_reads() -> None:
        threading.Timer(0.3, done.set).start()
        done.wait(5)

    errors = _writer_waits_for_the_last_reader(RWLockFair(), r2_reads)
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

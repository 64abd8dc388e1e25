"""Every tracked primitive behaves like the original: each scenario runs once with the standard
primitives and once instrumented, and the observable results (return values, exceptions and
their messages, ordering) must be equal."""

from __future__ import annotations

import _thread
import concurrent.futures
import copy
import io
import pickle
import queue
import re
import threading
import time
import weakref
from typing import Any

import pytest

import stuck.runtime
from stuck.runtime import patch, primitives


def _outcome(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return ("ok", fn(*args, **kwargs))
    except Exception as exc:
        return ("raised", type(exc).__name__, str(exc))


def _in_thread(fn: Any) -> Any:
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(_outcome(fn)), daemon=True)
    t.start()
    t.join(5)
    assert not t.is_alive()
    return out[0]


def scenario_lock() -> Any:
    lock = threading.Lock()
    seen = [lock.acquire(), lock.locked(), lock.acquire(False), lock.acquire(timeout=0.01),
            _in_thread(lambda: lock.acquire(blocking=False))]
    seen.append(_in_thread(lock.release))  # released by another thread: allowed for Lock
    seen += [lock.locked(), _outcome(lock.release), _outcome(lock.acquire, False, 1),
             _outcome(lock.acquire, True, -5), _outcome(lock.acquire, True, "x")]
    with lock:
        seen.append(lock.locked())
    seen.append(lock.locked())
    start = time.monotonic()
    lock.acquire()
    seen.append(lock.acquire(True, 0.05))
    seen.append(time.monotonic() - start >= 0.04)
    lock.release()
    return seen


def scenario_rlock() -> Any:
    lock = threading.RLock()
    seen = [lock.acquire(), lock.acquire(), lock.acquire(False),
            _in_thread(lambda: lock.acquire(timeout=0.01)), _in_thread(lock.release)]
    lock.release()
    lock.release()
    seen.append(_in_thread(lambda: lock.acquire(False)))  # still held once
    lock.release()
    seen.append(_outcome(lock.release))
    seen.append(_in_thread(lambda: (lock.acquire(False), lock.release())))  # now free
    with lock, lock:
        seen.append("nested")
    return seen


def scenario_condition() -> Any:
    cond = threading.Condition()
    items: list[int] = []
    got: list[int] = []

    def consumer() -> None:
        with cond:
            while len(got) < 3:
                if not cond.wait_for(lambda: bool(items), timeout=2):
                    return
                got.append(items.pop(0))

    t = threading.Thread(target=consumer)
    t.start()
    for i in range(3):
        with cond:
            items.append(i)
            cond.notify()
        time.sleep(0.01)
    t.join(5)
    seen: list[Any] = [got, _outcome(cond.notify), _outcome(cond.wait, 0.01)]
    with cond:
        seen.append(cond.wait(0.01))  # timeout: False, and the lock is held again
        seen.append(_outcome(cond.notify_all))
    lock_cond = threading.Condition(threading.Lock())
    with lock_cond:
        seen.append(lock_cond.wait(0.01))
    seen.append(lock_cond._lock.locked())  # type: ignore[attr-defined]
    return seen


def scenario_semaphores(kind: str) -> Any:
    sem = getattr(threading, kind)(2)
    seen: list[Any] = [sem.acquire(), sem.acquire(), sem.acquire(False),
                       sem.acquire(timeout=0.01), _outcome(sem.acquire, False, 1)]
    sem.release()
    sem.release()
    seen.append(_outcome(sem.release))  # Bounded: too many releases
    with sem:
        seen.append(_in_thread(lambda: sem.acquire(False)))
    seen.append(_outcome(getattr(threading, kind), -1))
    signal = threading.Semaphore(0)
    threading.Timer(0.02, signal.release).start()
    seen.append(signal.acquire(timeout=2))
    return (kind, seen)


def scenario_event_and_barrier() -> Any:
    ev = threading.Event()
    seen: list[Any] = [ev.is_set(), ev.wait(0.01)]
    threading.Timer(0.02, ev.set).start()
    # Timeouts far past what the waits take, so a loaded machine does not change the outcome
    seen += [ev.wait(30), ev.is_set()]
    ev.clear()
    seen.append(ev.wait(0))
    barrier = threading.Barrier(3)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(barrier.wait(30)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    seen.append(sorted(results))
    lonely = threading.Barrier(2)
    seen.append(_outcome(lonely.wait, 0.02))
    seen.append(lonely.broken)
    return seen


def scenario_thread_join() -> Any:
    t = threading.Thread(target=time.sleep, args=(0.05,))
    seen: list[Any] = [_outcome(t.join)]  # not started
    t.start()
    t.join(0.001)
    seen.append(t.is_alive())
    t.join()
    seen += [t.is_alive(), _outcome(threading.current_thread().join)]
    return seen


def scenario_queues(kind: str) -> Any:
    q = getattr(queue, kind)(2) if kind != "SimpleQueue" else queue.SimpleQueue()
    seen: list[Any] = []
    for item in (3, 1):
        q.put(item)
    if kind != "SimpleQueue":
        seen += [q.full(), _outcome(q.put, 9, timeout=0.01), _outcome(q.put_nowait, 9)]
    seen += [q.qsize(), q.get(), q.get(), q.empty(), _outcome(q.get, timeout=0.01),
             _outcome(q.get_nowait), _outcome(q.get, True, -1)]
    threading.Timer(0.02, q.put, args=(7,)).start()
    seen.append(q.get(timeout=2))
    if kind != "SimpleQueue":
        q.put(5)
        q.get()
        for _ in range(4):  # 3, 1, 7 and 5 were taken
            q.task_done()
        q.join()
        seen.append(_outcome(q.task_done))
    return (kind, seen)


def scenario_futures() -> Any:
    def slow(x: int) -> int:
        time.sleep(0.02)
        return x * 2

    def fail() -> None:
        raise KeyError("boom")

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(slow, i) for i in range(4)]
        seen: list[Any] = [[f.result(timeout=5) for f in futures]]
        bad = pool.submit(fail)
        seen.append(_outcome(bad.result))
        seen.append(repr(bad.exception()))
        sleeper = pool.submit(time.sleep, 0.2)
        seen.append(_outcome(sleeper.result, timeout=0.01))
        done, not_done = concurrent.futures.wait([*futures, sleeper], timeout=5,
                                                 return_when=concurrent.futures.FIRST_COMPLETED)
        seen.append(len(done) >= 4)
        done, not_done = concurrent.futures.wait([sleeper], timeout=5)
        seen.append((len(done), len(not_done)))
        seen.append(sorted(pool.map(slow, range(3))))
    return seen


def _made(kind: str) -> Any:
    return getattr(threading, kind)(*((2,) if kind == "Barrier" else ()))


def _shares_lock(copied: Any, made: Any) -> Any:
    """What a copy that succeeded is: its type's name, and whether it shares the original's
    inner lock (a shallow copy of a Condition does, as the original's does)."""
    inner = getattr(made, "_lock", None) or getattr(getattr(made, "_cond", None), "_lock", None)
    copied_inner = getattr(copied, "_lock", None) or getattr(
        getattr(copied, "_cond", None), "_lock", None)
    return type(copied).__name__, inner is not None and inner is copied_inner


def scenario_copy_and_pickle() -> Any:
    # None of them can be copied or pickled (the copy of a tracked RLock used to share the
    # original's mutex); the errors are the originals', word for word.
    seen = []
    for kind in ("Lock", "RLock", "Condition", "Semaphore", "BoundedSemaphore", "Event",
                 "Barrier"):
        # Every protocol: 0 and 1 reduce through copyreg and fail on the lock's class (a
        # PicklingError), 2 and later fail in the lock's own reduction (a TypeError).
        for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
            seen.append((kind, protocol, _outcome(pickle.dumps, _made(kind), protocol)))
        for copier in (copy.copy, copy.deepcopy):
            made = _made(kind)
            seen.append((kind, copier.__name__,
                         _outcome(lambda c=copier, m=made: _shares_lock(c(m), m))))
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        seen.append(("Condition(Lock)", protocol,
                     _outcome(pickle.dumps, threading.Condition(threading.Lock()), protocol)))

    class Picklable(threading.Event):  # a subclass that says how to pickle itself
        def __getstate__(self) -> Any:
            return {"_flag": self._flag}

        def __setstate__(self, state: Any) -> None:
            self.__init__()  # type: ignore[misc]
            if state["_flag"]:
                self.set()

    event = Picklable()
    event.set()
    Picklable.__qualname__ = "Picklable"
    globals()["Picklable"] = Picklable
    try:
        seen.append(("subclass", pickle.loads(pickle.dumps(event)).is_set()))
    finally:
        del globals()["Picklable"]
    return seen


def scenario_introspection() -> Any:
    lock, rlock = threading.Lock(), threading.RLock()
    seen: list[Any] = [
        isinstance(lock, _thread.LockType), isinstance(rlock, type(_thread.RLock())),
        threading.Lock.__name__, repr(type(lock)),
        _outcome(lambda: type("Sub", (type(threading.Lock()),), {})),
    ]
    # multiprocessing.managers pickles threading.Lock by reference (spawn, forkserver)
    seen.append(_outcome(lambda: pickle.loads(pickle.dumps(threading.Lock)) is threading.Lock))
    for kind in ("Lock", "RLock", "Condition", "Semaphore", "BoundedSemaphore", "Event",
                 "Barrier"):
        seen.append((kind, _outcome(lambda k=kind: weakref.ref(_made(k))() is not None)))
    return seen


def scenario_replaced_get_ident() -> Any:
    # pebble's waitforthreads: threading.get_ident becomes a function that signals a waiter
    # (here an Event and a Condition) whenever anything asks who the current thread is.
    # Whatever stuck does on set/notify/release must not ask it: that recursed without end.
    original_get_ident = threading.get_ident
    woken = threading.Event()
    cond = threading.Condition()
    calls: list[int] = []

    def get_ident() -> int:
        calls.append(1)
        woken.set()
        with cond:
            cond.notify_all()
        return original_get_ident()

    seen: list[Any] = []
    threading.get_ident = get_ident
    try:
        worker = threading.Thread(target=lambda: seen.append(woken.wait(5)), daemon=True)
        worker.start()
        worker.join(5)
        seen.append(worker.is_alive())
        sem = threading.Semaphore(0)
        sem.release()
        seen.append(sem.acquire(timeout=1))
        with cond:
            cond.notify()
        seen.append(threading.current_thread().name)
    finally:
        threading.get_ident = original_get_ident
    seen.append(len(calls))  # as many calls as threading itself makes, none from stuck
    return seen


SCENARIOS: list[tuple[str, Any, tuple[Any, ...]]] = [
    ("lock", scenario_lock, ()),
    ("rlock", scenario_rlock, ()),
    ("condition", scenario_condition, ()),
    ("semaphore", scenario_semaphores, ("Semaphore",)),
    ("bounded-semaphore", scenario_semaphores, ("BoundedSemaphore",)),
    ("event-barrier", scenario_event_and_barrier, ()),
    ("thread-join", scenario_thread_join, ()),
    ("queue", scenario_queues, ("Queue",)),
    ("lifo-queue", scenario_queues, ("LifoQueue",)),
    ("priority-queue", scenario_queues, ("PriorityQueue",)),
    ("simple-queue", scenario_queues, ("SimpleQueue",)),
    ("futures", scenario_futures, ()),
    ("copy-pickle", scenario_copy_and_pickle, ()),
    ("introspection", scenario_introspection, ()),
    ("replaced-get-ident", scenario_replaced_get_ident, ()),
]


@pytest.mark.parametrize("name,scenario,args", SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_same_behaviour_as_original(name: str, scenario: Any, args: tuple[Any, ...]) -> None:
    if patch.active() is not None:
        pytest.skip(f"another instrumentation is installed: {patch.active()}")
    original = scenario(*args)
    stuck.runtime.install(policy="raise", report_stream=io.StringIO(), signal=None)
    try:
        assert type(threading.Lock()) is primitives.Lock  # tracked (named like threading's)
        assert type(queue.Queue()).__module__ == "stuck.runtime.queues"
        instrumented = scenario(*args)
    finally:
        stuck.runtime.uninstall()
    assert instrumented == original


def _masked(text: str) -> str:
    return re.sub(r"0x[0-9a-f]+", "0x?", text)


def test_reprs_match_the_originals() -> None:
    if patch.active() is not None:
        pytest.skip(f"another instrumentation is installed: {patch.active()}")

    def reprs() -> list[str]:
        lock, rlock = threading.Lock(), threading.RLock()
        sem, bsem = threading.Semaphore(3), threading.BoundedSemaphore(3)
        event, barrier = threading.Event(), threading.Barrier(3)
        cond = threading.Condition()
        out = [repr(lock), repr(rlock), repr(cond), repr(sem), repr(bsem), repr(event),
               repr(barrier)]
        lock.acquire()
        rlock.acquire()
        rlock.acquire()
        sem.acquire()
        bsem.acquire()
        event.set()
        with cond:
            out += [repr(lock), repr(rlock), repr(cond), repr(sem), repr(bsem), repr(event)]
        lock.release()
        rlock.release()
        rlock.release()
        return [_masked(r) for r in out]

    original = reprs()
    stuck.runtime.install(policy="raise", report_stream=io.StringIO(), signal=None)
    try:
        assert type(threading.Lock()) is primitives.Lock
        instrumented = reprs()
    finally:
        stuck.runtime.uninstall()
    assert instrumented == original
    assert "<locked _thread.lock object at 0x?>" in original


def test_lock_type_is_as_instantiable_as_the_original() -> None:
    if patch.active() is not None:
        pytest.skip(f"another instrumentation is installed: {patch.active()}")

    def outcome() -> str:
        try:
            type(threading.Lock())()
        except TypeError as exc:
            return str(exc).replace("_thread.lock", "threading.Lock")
        return "made"

    original = outcome()
    stuck.runtime.install(policy="raise", report_stream=io.StringIO(), signal=None)
    try:
        assert type(threading.Lock(name="named")) is primitives.Lock
        instrumented = outcome()
    finally:
        stuck.runtime.uninstall()
    assert instrumented == original


def _traced_work() -> None:
    lock, rlock, event, jobs = threading.Lock(), threading.RLock(), threading.Event(), \
        queue.Queue()
    for _ in range(50):
        with lock, rlock:
            pass
    event.set()
    event.wait()
    jobs.put(1)
    jobs.get()


def _trace_events() -> tuple[Any, Any, Any]:
    """What a program's own tracer and profiler see of a small threaded workload: the events
    per (file, event) for settrace (main thread and, through threading.settrace, a thread
    started after) and for setprofile."""
    import collections
    import os
    import sys

    traced: collections.Counter[tuple[str, str]] = collections.Counter()
    profiled: collections.Counter[tuple[str, str]] = collections.Counter()

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        traced[(frame.f_code.co_filename, event)] += 1
        return tracer

    def profiler(frame: Any, event: str, arg: Any) -> None:
        profiled[(frame.f_code.co_filename, event)] += 1

    threading.settrace(tracer)
    sys.settrace(tracer)
    try:
        _traced_work()
        worker = threading.Thread(target=_traced_work)
        worker.start()
        worker.join()
    finally:
        sys.settrace(None)
        threading.settrace(None)  # type: ignore[arg-type]
    gets = (sys.gettrace(), threading.gettrace())
    sys.setprofile(profiler)
    try:
        seen_profile = sys.getprofile() is profiler
        _traced_work()
    finally:
        sys.setprofile(None)
    here = os.path.abspath(__file__)
    own = {k: v for k, v in traced.items() if os.path.abspath(k[0]) == here}
    return (traced, profiled, (own, gets, seen_profile))


def test_a_programs_own_tracer_does_not_see_stucks_frames() -> None:
    import os

    if patch.active() is not None:
        pytest.skip(f"another instrumentation is installed: {patch.active()}")
    plain_traced, plain_profiled, plain_same = _trace_events()
    stuck.runtime.install(policy="raise", report_stream=io.StringIO(), signal=None)
    try:
        traced, profiled, same = _trace_events()
    finally:
        stuck.runtime.uninstall()
    runtime_dir = os.path.dirname(os.path.abspath(stuck.runtime.__file__))
    for events in (traced, profiled):
        assert not [k for k in events if os.path.abspath(k[0]).startswith(runtime_dir)]
    # the program's own lines, calls and returns are seen exactly as without stuck, in the
    # main thread and in the thread started after threading.settrace; get* return its function
    assert same == plain_same
    # and no flood of events from what stuck's code calls (it used to be tens of thousands)
    assert sum(traced.values()) <= 1.5 * sum(plain_traced.values())
    assert sum(profiled.values()) <= 1.5 * sum(plain_profiled.values())


GREEN_PROGRAM = """
import sys
if sys.argv[1] == "gevent":
    from gevent import monkey
    monkey.patch_all()
    import gevent
    spawn, joinall = gevent.spawn, gevent.joinall
else:
    import eventlet
    eventlet.monkey_patch()
    spawn = eventlet.spawn
    def joinall(greenlets):
        for g in greenlets:
            g.wait()
import os
if os.environ.get("WITH_STUCK"):
    import stuck
    stuck.install(signal=None)
import queue
import threading

jobs = queue.Queue()
lock, ready = threading.Lock(), threading.Event()

def producer():
    with lock:
        jobs.put("job")
    ready.set()

def consumer():
    ready.wait()
    print("got", jobs.get())

joinall([spawn(consumer), spawn(producer)])
worker = threading.Thread(target=lambda: jobs.put("from a thread"))
worker.start()
worker.join()
print(jobs.get(), type(jobs).__module__, type(lock).__module__)
if os.environ.get("WITH_STUCK"):
    stuck.uninstall()
print("done")
"""


@pytest.mark.parametrize("library", ["gevent", "eventlet"])
def test_green_monkey_patching_then_install_works_as_without(tmp_path: Any,
                                                            library: str) -> None:
    import importlib.util
    import os
    import subprocess
    import sys

    if importlib.util.find_spec(library) is None:  # not imported here: it patches on import
        pytest.skip(f"{library} is not installed")
    script = tmp_path / "green.py"
    script.write_text(GREEN_PROGRAM)
    env = {k: v for k, v in os.environ.items() if k != "WITH_STUCK"}
    plain = subprocess.run([sys.executable, str(script), library], capture_output=True,
                           text=True, timeout=60, env=env)
    under = subprocess.run([sys.executable, str(script), library], capture_output=True,
                           text=True, timeout=60, env={**env, "WITH_STUCK": "1"})
    assert plain.returncode == 0, plain.stderr
    assert under.returncode == 0, under.stderr
    assert under.stdout == plain.stdout  # its own queue, lock and event, working as before
    assert f"stuck: {library} has monkey-patched threading" in under.stderr
    assert "nothing is tracked or checked" in under.stderr

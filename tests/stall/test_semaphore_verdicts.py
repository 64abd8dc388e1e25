"""A semaphore has no owner: any thread may release it. A limiter whose permits the main
thread takes and its workers give back is a correct program (no finding, same exit code under
``--policy abort``), and permits taken by threads that ended are a stall naming those threads,
not a thread that "already holds" what it waits for (idents of ended threads are reused)."""

from __future__ import annotations

from pathlib import Path

from .test_live import has_stall, program, stuck_run

LIMITER = """
    import threading, time
    limit = threading.BoundedSemaphore(3)
    done = []
    def job(i):
        try:
            time.sleep(0.01)
            done.append(i)
        finally:
            limit.release()
    threads = []
    for i in range(120):
        limit.acquire()  # the main thread takes a slot, the worker gives it back
        t = threading.Thread(target=job, args=(i,))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    print("finished", len(done))
"""


def test_a_limiter_released_by_its_workers_is_no_finding_under_abort(tmp_path: Path) -> None:
    for _ in range(3):  # the acquire that finds no free permit comes before any release
        text, data, _ = stuck_run(program(tmp_path, LIMITER), extra=("--policy", "abort"))
        assert "finished 120" in text, text
        assert data is None or not data["findings"], text


ENDED_HOLDER = """
    import threading, time
    slots = threading.Semaphore(1)
    def leak():
        slots.acquire()  # ends without releasing
    def want():
        slots.acquire()
    a = threading.Thread(target=leak, name="leaker"); a.start(); a.join()
    b = threading.Thread(target=want, name="wanter", daemon=True); b.start()
    b.join(GIVE_UP)
"""


def test_permits_of_an_ended_thread_are_a_stall_naming_it(tmp_path: Path) -> None:
    text, data, _ = stuck_run(program(tmp_path, ENDED_HOLDER), until=has_stall())
    assert data is not None, text
    kinds = [f["kind"] for f in data["findings"]]  # type: ignore[index]
    assert "deadlock" not in kinds, text
    stall = data["findings"][0]  # type: ignore[index]
    assert stall["details"]["rule"] == "semaphore-holder-ended", text
    assert "acquired by leaker, which ended without releasing it" in stall["summary"], text
    # The main thread is in a timed join: it can still run, so it could release the permit.
    assert stall["confidence"] == "probable", text


def test_permits_of_ended_threads_with_nothing_left_to_run_are_certain(
        tmp_path: Path) -> None:
    code = ENDED_HOLDER.replace("b.join(GIVE_UP)", "b.join()").replace(", daemon=True", "")
    code = code.replace("slots = threading.Semaphore(1)", "slots = threading.Semaphore(2)")
    code = code.replace("a = threading.Thread(target=leak, name=\"leaker\"); a.start(); a.join()",
                        "ts = [threading.Thread(target=leak, name=f\"leaker{i}\") for i in "
                        "range(2)]\n    for t in ts: t.start()\n    for t in ts: t.join()")
    text, data, _ = stuck_run(program(tmp_path, code), extra=("--policy", "abort"))
    assert data is not None, text
    stall = data["findings"][0]  # type: ignore[index]
    assert stall["kind"] == "stall", text
    assert "which ended without releasing their permits" in stall["summary"], text
    assert "leaker0" in stall["summary"] and "leaker1" in stall["summary"], text
    assert stall["confidence"] == "certain", text

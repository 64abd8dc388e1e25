"""Names people can follow: a thread's name instead of its ident, and a thread that is gone
shown by its name and how it ended."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from stuck.model import Thread
from stuck.report.json import loads
from stuck.runtime import endings


@pytest.fixture()
def recorder() -> Iterator[list[object]]:
    """The recorder in front of a program hook that keeps what it is given."""
    seen: list[object] = []
    saved = threading.excepthook
    threading.excepthook = seen.append
    endings.install()
    try:
        yield seen
    finally:
        endings.uninstall()
        threading.excepthook = saved


def others_with_ident(t: threading.Thread) -> bool:
    """Other ended threads stuck knows of, still referenced, that had ``t``'s ident (the
    system reuses idents; a long test session leaves many)."""
    return any(o is not t and o.ident == t.ident for o in endings.known_threads())


def fail() -> None:
    raise ValueError("bad record")  # the line the ending names


def started(t: threading.Thread) -> threading.Thread:
    """``t`` started as under ``stuck.install()``, whose ``Thread.start`` notes the thread."""
    endings.note_thread(t)
    t.start()
    return t


def test_a_thread_that_died_is_named_with_its_exception(recorder: list[object]) -> None:
    t = started(threading.Thread(target=fail, name="producer"))
    t.join()
    assert t.ident is not None
    if others_with_ident(t):
        pytest.skip("another ended thread of this process had the same ident")
    end = endings.ending(t.ident, alive=set())
    assert end is not None
    line = fail.__code__.co_firstlineno + 1
    assert end.words() == f"ended (ValueError at test_naming.py:{line})"
    assert end.name == "producer"
    assert len(recorder) == 1  # the program's own hook still ran
    dead = Thread(id=f"0x{t.ident:x}", name=end.name, state="dead",
                  ended=f"died of {end.error} at {end.where}")
    assert dead.label() == f"producer ended (ValueError at test_naming.py:{line})"


def test_a_thread_that_returned_is_found_by_its_object(recorder: list[object]) -> None:
    t = started(threading.Thread(target=lambda: None, name="loader"))
    t.join()
    assert t.ident is not None
    if others_with_ident(t):
        assert endings.ending(t.ident, alive=set()) is None  # not guessed
        return
    end = endings.ending(t.ident, alive=set())
    assert end is not None and end.words() == "ended" and end.name == "loader"
    assert recorder == []


def test_a_live_thread_has_no_ending(recorder: list[object]) -> None:
    me = threading.get_ident()
    assert endings.ending(me, alive={me}) is None


def test_uninstall_gives_the_program_its_hook_back() -> None:
    saved = threading.excepthook
    endings.install()
    assert threading.excepthook is not saved
    endings.uninstall()
    assert threading.excepthook is saved


def test_two_ended_threads_with_one_ident_are_not_guessed(recorder: list[object]) -> None:
    first = started(threading.Thread(target=fail, name="first"))
    first.join()
    second = started(threading.Thread(target=lambda: None, name="second"))
    second.join()
    if first.ident != second.ident:
        pytest.skip("the system did not reuse the ident this time")
    assert first.ident is not None
    assert endings.ending(first.ident, alive=set()) is None


HERE = Path(__file__).resolve().parent


def deadlock_labels(program: str, tmp_path: Path) -> dict[str, str]:
    """Resource labels of the deadlock ``stuck run --policy abort`` finds in ``program``."""
    doc = tmp_path / "r.json"
    done = subprocess.run([sys.executable, "-m", "stuck", "run", "--policy", "abort",
                           "--json", str(doc), str(HERE / program)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 86, done.stderr
    report = loads(doc.read_text())
    resources = report.snapshot.resource_map()
    f = report.findings[0]
    return {e.thread: resources[e.waits_for].label for e in f.cycle}


def test_two_objects_locks_get_their_owners_class_and_name(tmp_path: Path) -> None:
    # Each account has a short name of its own: the report uses it (an owner without one
    # gets a tag, Account#1.lock, as the asyncio example's Store#1.inventory_lock).
    by_thread = deadlock_labels("prog_accounts.py", tmp_path)
    labels = sorted(by_thread.values())
    assert labels == ["Account('x').lock", "Account('y').lock"]


def test_owners_are_tagged_in_the_order_they_were_made(tmp_path: Path) -> None:
    # The thread closing the cycle waits for the lock of the account made second: the
    # report meets that one first, and still tags it #2.
    by_thread = deadlock_labels("prog_tags_in_creation_order.py", tmp_path)
    labels = sorted(by_thread.values())
    assert labels == ["Account#1.lock", "Account#2.lock"]
    doc = loads((tmp_path / "r.json").read_text())
    names = {t.id: t.name for t in doc.snapshot.threads()}
    assert {names[t]: label for t, label in by_thread.items()} == {
        "early": "Account#1.lock", "late": "Account#2.lock"}


def test_two_locks_made_on_one_line_are_a_and_b(tmp_path: Path) -> None:
    by_thread = deadlock_labels("prog_one_line.py", tmp_path)
    assert sorted(by_thread.values()) == ["a", "b"]


def test_a_producer_is_not_the_waker_of_its_own_put(tmp_path: Path) -> None:
    doc = tmp_path / "r.json"
    done = subprocess.run([sys.executable, "-m", "stuck", "run", "--json", str(doc),
                           str(HERE / "prog_full_queue.py")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = loads(doc.read_text())
    threads = report.snapshot.thread_map()
    producer = next(t for t in threads.values() if t.name == "producer")
    assert producer.waits is not None
    queue = report.snapshot.resource_map()[producer.waits.resource]
    assert queue.wakers is not None and len(queue.wakers) == 1
    consumer = threads[queue.wakers[0]]
    assert consumer.name == "consumer"
    assert consumer.state == "dead" and consumer.label() == "consumer ended"
    assert "could be woken by consumer ended" in done.stderr


def test_an_owner_that_is_gone_gives_up_its_tag() -> None:
    from stuck.runtime import naming

    class Owner:
        pass

    first, second = Owner(), Owner()
    naming.note_owner(first, "Owner-tag-test")
    naming.note_owner(second, "Owner-tag-test")
    assert naming.instance_tag(second, "Owner-tag-test") == 2
    assert naming.instance_tag(first, "Owner-tag-test") == 1
    gone = id(first)
    del first
    assert ("Owner-tag-test", gone) not in naming._tags  # its id may now be another's
    third = Owner()
    assert naming.instance_tag(third, "Owner-tag-test") == 3


def test_owners_made_past_the_bound_are_still_told_apart_when_named(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from stuck.runtime import naming

    class Owner:
        pass

    monkeypatch.setattr(naming, "MAX_TAGGED", len(naming._tags) + 1)
    made = [Owner(), Owner(), Owner()]
    for owner in made:
        naming.note_owner(owner, "Owner-bound-test", naming.MAX_TAGGED)
    assert [("Owner-bound-test", id(o)) in naming._tags for o in made] == [True, False, False]
    tags = [naming.instance_tag(o, "Owner-bound-test") for o in made]
    assert tags == [1, 2, 3]

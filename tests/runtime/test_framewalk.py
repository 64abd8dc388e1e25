"""``stuck.runtime.framewalk``: a pass over other threads' stacks raises the switch interval
for its length and puts the program's own value back, nested or not; frames are taken only
inside a pass."""

from __future__ import annotations

import sys
import threading

import pytest

from stuck.runtime import framewalk


def test_a_pass_holds_the_switch_interval_up_and_puts_the_programs_value_back() -> None:
    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.002)
        with framewalk.still():
            assert sys.getswitchinterval() == framewalk.HOLD
            with framewalk.still():
                assert sys.getswitchinterval() == framewalk.HOLD
            assert sys.getswitchinterval() == framewalk.HOLD
        assert sys.getswitchinterval() == 0.002
    finally:
        sys.setswitchinterval(before)


def test_a_value_the_program_sets_during_a_pass_is_kept() -> None:
    before = sys.getswitchinterval()
    try:
        with framewalk.still():
            sys.setswitchinterval(0.003)
        assert sys.getswitchinterval() == 0.003
    finally:
        sys.setswitchinterval(before)


def test_frames_are_taken_only_inside_a_pass() -> None:
    with pytest.raises(RuntimeError, match="outside"):
        framewalk.current()
    with framewalk.still():
        assert threading.get_ident() in framewalk.current()


def test_read_gives_every_threads_converted_stack() -> None:
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, name="sleeper")
    t.start()
    try:
        stacks = framewalk.read(framewalk.chain)
        assert t.ident in stacks
        names = [f.f_code.co_name for f in stacks[t.ident]]
        assert "wait" in names and "run" in names  # innermost first, down to Thread.run
        assert names.index("wait") < names.index("run")
    finally:
        stop.set()
        t.join()
    assert framewalk.read_one(None, lambda frame: frame) is None

"""The patching layer: one backend at a time, all-or-nothing, everything restored."""

from __future__ import annotations

import threading

import pytest

from stuck.runtime import patch


class Base:
    def method(self) -> str:
        return "base"


class Child(Base):
    pass


def test_install_replaces_and_uninstall_restores() -> None:
    real_lock = threading.Lock
    sentinel = object()
    patch.install("test", [(threading, "Lock", sentinel), (Child, "method", lambda self: "x")])
    try:
        assert threading.Lock is sentinel
        assert patch.original(threading, "Lock") is real_lock
        assert Child().method() == "x"
        assert patch.active() == "test"
    finally:
        patch.uninstall("test")
    assert threading.Lock is real_lock
    # an inherited method is un-shadowed, not pinned onto the subclass
    assert "method" not in Child.__dict__
    assert Child().method() == "base"
    assert patch.active() is None


def test_a_second_backend_is_refused_with_a_clear_message() -> None:
    patch.install("first", [])
    try:
        with pytest.raises(patch.PatchError, match="already installed"):
            patch.install("second", [])
    finally:
        patch.uninstall("first")
    with pytest.raises(patch.PatchError):
        patch.uninstall("first")

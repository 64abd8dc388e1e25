"""The public surface of ``import stuck``: lazy names, and nothing heavy on the path that runs
inside a user's program."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import stuck


def test_lazy_names_resolve_to_their_implementations() -> None:
    from stuck.runtime import install, snapshot, uninstall
    from stuck.runtime.lockorder import order_by

    assert stuck.install is install
    assert stuck.uninstall is uninstall
    assert stuck.snapshot is snapshot
    assert stuck.order_by is order_by
    import stuck.explore as explore_pkg

    assert stuck.explore is explore_pkg
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        stuck.nonsense  # type: ignore[attr-defined]  # noqa: B018


def test_install_imports_no_cli_report_or_dump_code() -> None:
    # A fresh interpreter, so this test sees what a user's program would import.
    code = textwrap.dedent("""
        import sys, threading
        import stuck
        stuck.install(policy="raise")
        lock = threading.Lock()
        with lock:
            pass
        stuck.uninstall()
        heavy = sorted(m for m in sys.modules
                       if m.split(".")[0] in {"click", "rich", "jinja2", "jsonschema"}
                       or m.startswith(("stuck.dumps", "stuck.explore", "stuck.analysis",
                                        "stuck.cli", "stuck.report.html")))
        print(",".join(heavy))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == ""

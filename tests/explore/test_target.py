"""Resolving ``path.py::function`` and ``module:function`` the way pytest and ``python -m`` do."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from stuck.explore.target import TargetError, resolve


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    pkg = tmp_path / "stuck_target_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "helper.py").write_text("def value() -> int:\n    return 42\n")
    (pkg / "prog.py").write_text(
        "from stuck_target_pkg.helper import value\n\ndef main() -> int:\n    return value()\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in [m for m in sys.modules if m.startswith("stuck_target_pkg")]:
        monkeypatch.delitem(sys.modules, name)
    return pkg


def test_a_file_inside_a_package_imports_as_part_of_it(package: Path) -> None:
    func = resolve(f"{package / 'prog.py'}::main")
    assert func() == 42  # its own absolute import of a sibling worked
    assert func.__module__ == "stuck_target_pkg.prog"


def test_a_module_target_is_found_from_the_current_directory(
        package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(package.parent)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(package.parent))])
    assert resolve("stuck_target_pkg.prog:main")() == 42


def test_a_missing_function_says_what_is_missing(package: Path) -> None:
    with pytest.raises(TargetError, match="no function 'nope'"):
        resolve(f"{package / 'prog.py'}::nope")

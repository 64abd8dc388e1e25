"""Where things go (README, "Where things go"): each kind of addition has one place, and these
tests fail when a step is missed. They enumerate the real registries and the real source tree,
so a new module, class or strategy is checked without anyone listing it here.

- no import circle inside ``src/stuck`` (module-level and function-level imports both count);
- every primitive the runtime installs declares the tracked-primitive contract
  (``stuck.runtime.tracked``), its waker declaration included;
- every dump format module is registered for auto-detection and has a fixture it detects;
- every exploration strategy can be made by name and is reached by the portfolio's names, and
  its failing schedules replay;
- every rule in ``stuck.rules`` is reachable from ``stuck.rules.evaluate``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import sys
from pathlib import Path

import pytest

from stuck.rules.graph import strongly_connected

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "stuck"
FIXTURES = ROOT / "tests" / "fixtures" / "dumps"


# --- import circles ------------------------------------------------------------------------------


def _modules() -> dict[str, tuple[Path, bool]]:
    out: dict[str, tuple[Path, bool]] = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_package)
    return out


class _Imports(ast.NodeVisitor):
    """The stuck modules one module imports, and whether at module level or inside a function.

    Not counted: imports under ``if TYPE_CHECKING:`` (never run) and under
    ``if __name__ == "__main__":`` (run only when the module is the program, as ``__main__``,
    a different module object from the one the package imports)."""

    def __init__(self, name: str, package: str, known: dict[str, tuple[Path, bool]]) -> None:
        self.name, self.package, self.known = name, package, known
        self.depth = 0
        self.found: dict[str, str] = {}

    def _resolve(self, target: str) -> str | None:
        while target and target not in self.known:
            target = target.rpartition(".")[0]
        return target or None

    def _add(self, target: str) -> None:
        resolved = self._resolve(target)
        if resolved is not None and resolved != self.name:
            where = "module level" if self.depth == 0 else "inside a function"
            self.found.setdefault(resolved, where)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_If(self, node: ast.If) -> None:
        test = ast.unparse(node.test)
        if "TYPE_CHECKING" in test or test in ("__name__ == '__main__'",
                                               "__name__ == \"__main__\""):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name == "stuck" or alias.name.startswith("stuck."):
                self._add(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")
            base = base[:len(base) - (node.level - 1)]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        if module != "stuck" and not module.startswith("stuck."):
            return
        for alias in node.names:
            full = f"{module}.{alias.name}"
            self._add(full if full in self.known else module)


def import_graph() -> dict[str, dict[str, str]]:
    """module -> {imported module: "module level" | "inside a function"}. Importing a submodule
    imports its packages too; a package's own submodules do not count that edge back."""
    known = _modules()
    graph: dict[str, dict[str, str]] = {}
    for name, (path, is_package) in known.items():
        visitor = _Imports(name, name if is_package else name.rpartition(".")[0], known)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        graph[name] = visitor.found
    for name, edges in graph.items():
        for target, where in list(edges.items()):
            parts = target.split(".")
            for i in range(1, len(parts)):
                parent = ".".join(parts[:i])
                if parent in known and parent != name and not name.startswith(parent + "."):
                    edges.setdefault(parent, where)
    return graph


def import_circles(graph: dict[str, dict[str, str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (the wait-for graph's Tarjan)."""
    components = strongly_connected(graph, lambda module: graph.get(module, {}))
    return [sorted(c) for c in components if len(c) > 1]


def test_no_import_circle_inside_stuck() -> None:
    graph = import_graph()
    assert len(graph) > 50  # the walk found stuck's modules
    circles = import_circles(graph)
    described = ["; ".join(f"{a} -> {b} ({graph[a][b]})" for a in circle for b in graph[a]
                           if b in circle) for circle in circles]
    assert described == []


def test_the_circle_check_sees_a_circle_through_a_function_level_import() -> None:
    graph = {"a": {"b": "module level"}, "b": {"c": "inside a function"},
             "c": {"a": "module level"}, "d": {"a": "module level"}}
    assert import_circles(graph) == [["a", "b", "c"]]
    known = {"stuck.x": (Path("x.py"), False), "stuck.y": (Path("y.py"), False)}
    visitor = _Imports("stuck.x", "stuck", known)
    visitor.visit(ast.parse("import typing\nif typing.TYPE_CHECKING:\n    import stuck.y\n"
                            "def f():\n    from stuck import y\n"))
    assert visitor.found == {"stuck.y": "inside a function"}


# --- tracked primitives --------------------------------------------------------------------------


def _installed_classes() -> list[type]:
    """Every class the runtime puts in place of a standard one, and the class of the lock the
    ``threading.Lock`` factory makes where that factory is a function (before 3.13)."""
    import stuck.runtime
    from stuck.runtime import aio, primitives

    out: list[type] = []
    for _owner, _name, replacement in [*stuck.runtime._replacements(), *aio.REPLACEMENTS]:
        if isinstance(replacement, type) and replacement not in out:
            out.append(replacement)
    made = type(primitives.make_lock())
    if made not in out:
        out.append(made)
    return out


def test_every_installed_primitive_is_a_tracked_class() -> None:
    from stuck.runtime import tracked

    classes = _installed_classes()
    assert len(classes) >= 15  # threading, queue and asyncio primitives
    missing = [f"{c.__module__}.{c.__qualname__}" for c in classes
               if not tracked.is_tracked_type(c)]
    assert missing == []


def test_every_tracked_class_declares_the_contract() -> None:
    from stuck.runtime import tracked

    for cls in tracked.classes():
        undeclared = [m for m in tracked.CLASS_MEMBERS if not hasattr(cls, m)]
        assert undeclared == [], cls
        assert isinstance(cls._stuck_kind, str)  # type: ignore[attr-defined]


def _instances() -> list[object]:
    import asyncio
    import queue
    import threading

    from stuck.runtime import aio, futures, primitives, queues

    return [primitives.make_lock(), primitives.RLock(), primitives.Condition(),
            primitives.Semaphore(), primitives.BoundedSemaphore(), primitives.Event(),
            primitives.Barrier(1), queues.Queue(), queues.LifoQueue(), queues.PriorityQueue(),
            queues.SimpleQueue(), futures._FutureSet([]), aio.Lock(), aio.Event(),
            aio.Condition(), aio.Semaphore(), aio.BoundedSemaphore(), aio.Queue(),
            aio.LifoQueue(), aio.PriorityQueue(),
            threading, queue, asyncio]  # three modules: not tracked


def test_tracked_instances_answer_every_member() -> None:
    from stuck.runtime import tracked

    objects = _instances()
    kinds = {type(o) for o in objects if tracked.as_tracked(o) is not None}
    # Every class the runtime installs is among the instances checked here.
    assert {c for c in _installed_classes()} <= kinds
    for obj in objects:
        t = tracked.as_tracked(obj)
        if t is None:
            assert isinstance(obj, type(sys))
            continue
        assert isinstance(t._stuck_id, str) and t._stuck_id
        assert isinstance(t._stuck_epoch, int)
        assert t._stuck_class is None or t._stuck_class.kind == t._stuck_kind
        assert t._stuck_owners() == []  # nothing is held yet
        assert isinstance(t._stuck_facts(), tracked.PrimitiveFacts)
        for op in ("acquire", "wait", "get", "put", "result"):
            wakers = t._stuck_wakers_of(op)
            assert wakers is None or isinstance(wakers, list)


def test_a_primitive_without_a_waker_declaration_is_refused() -> None:
    from stuck.runtime import tracked

    class NoWakers:
        _stuck_kind = "mutex"

        def _stuck_owners(self) -> list[tuple[int, object, int]]:
            return []

        def _stuck_facts(self) -> tracked.PrimitiveFacts:
            return tracked.PrimitiveFacts()

    with pytest.raises(TypeError, match="_stuck_wakers_of"):
        tracked.tracked_class(NoWakers)
    assert tracked.as_tracked(NoWakers()) is None


def test_epochs_move_when_a_wait_could_end() -> None:
    from stuck.runtime import aio, primitives, queues

    lock = primitives.make_lock()
    before = lock._stuck_epoch
    lock.acquire()
    lock.release()
    assert lock._stuck_epoch != before
    q = queues.Queue()
    before = q._stuck_epoch
    q.put(1)
    assert q._stuck_epoch != before

    import asyncio

    async def main() -> list[int]:
        alock, event, aq = aio.Lock(), aio.Event(), aio.Queue()
        seen = [alock._stuck_epoch, event._stuck_epoch, aq._stuck_epoch]
        async with alock:
            pass
        event.set()
        await aq.put(1)
        return [alock._stuck_epoch - seen[0], event._stuck_epoch - seen[1],
                aq._stuck_epoch - seen[2]]

    assert all(moved > 0 for moved in asyncio.run(main()))


# --- dump formats --------------------------------------------------------------------------------


def _format_modules() -> list[str]:
    """Every module under stuck.dumps that is a format (it has NAME, detect and parse)."""
    import stuck.dumps

    out = []
    for info in pkgutil.iter_modules(stuck.dumps.__path__):
        module = importlib.import_module(f"stuck.dumps.{info.name}")
        if all(hasattr(module, a) for a in ("NAME", "detect", "parse")):
            out.append(info.name)
    return out


def test_every_dump_format_is_registered_for_auto_detection() -> None:
    from stuck import dumps

    formats = _format_modules()
    assert len(formats) >= 8
    assert sorted(formats) == sorted(dumps.FORMATS)


def test_every_dump_format_has_a_fixture_it_detects() -> None:
    from stuck import dumps

    detected: dict[str, list[Path]] = {}
    for path in sorted(FIXTURES.rglob("*")):
        if path.suffix not in (".txt", ".json") or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for name in dumps.detect_formats(text):
            detected.setdefault(name, []).append(path)
    without = [name for name in dumps.FORMATS if not detected.get(name)]
    assert without == []
    for name in dumps.FORMATS:  # and the first fixture of each parses to some thread
        first = detected[name][0]
        snapshot = dumps.load(first.read_text(encoding="utf-8", errors="replace"), format=name)
        assert any(proc.threads for proc in snapshot.processes), (name, first)


# --- exploration strategies ----------------------------------------------------------------------


def _strategy_classes() -> list[type]:
    import stuck.explore
    from stuck.explore.strategy import BaseStrategy

    for info in pkgutil.iter_modules(stuck.explore.__path__):
        if info.name not in ("pytest_plugin",):  # imports pytest's plugin machinery only
            importlib.import_module(f"stuck.explore.{info.name}")
    found: list[type] = []
    todo = list(BaseStrategy.__subclasses__())
    while todo:
        cls = todo.pop()
        if cls.__module__.startswith("stuck.explore") and cls not in found:
            found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def _searching(cls: type) -> bool:
    """A strategy that searches schedules (not the replayer, which follows a token)."""
    return getattr(cls, "name", "") not in ("replay",)


def test_every_strategy_is_made_by_its_name_and_named_by_the_portfolio() -> None:
    from stuck.explore import portfolio

    classes = [c for c in _strategy_classes() if _searching(c)]
    assert len(classes) >= 5
    for cls in classes:
        assert cls.name in portfolio.NAMES, cls  # type: ignore[attr-defined]
        assert type(portfolio.make(cls.name)) is cls  # type: ignore[attr-defined]
    made = {type(portfolio.make(name)) for name in portfolio.NAMES}
    assert made == set(classes)


def test_every_strategy_finds_a_schedule_that_replays() -> None:
    from tests.explore import explore_targets as targets

    from stuck.explore import explore, portfolio, replay

    for name in portfolio.NAMES:
        result = explore(targets.abba, strategy=name, executions=300, seed=1)
        assert result.token is not None, name
        again = replay(targets.abba, result.token)
        assert again.verdict is not None and again.verdict.kind == "deadlock", name
        assert again.divergence is None, name


# --- rules ---------------------------------------------------------------------------------------

# Rules applied outside ``evaluate``, each with why; a stale entry fails below.
APPLIED_ELSEWHERE = {
    "stuck.rules.hang.hang_finding": "needs progress samples over time, which only the "
                                     "watchdog takes (a snapshot has none)",
}


def _rule_functions() -> tuple[dict[str, ast.FunctionDef], set[str]]:
    """Every top-level function of the stuck.rules modules by qualified name, and those that
    make a Finding (a rule)."""
    import stuck.rules

    functions: dict[str, ast.FunctionDef] = {}
    rules: set[str] = set()
    for info in pkgutil.iter_modules(stuck.rules.__path__):
        module = importlib.import_module(f"stuck.rules.{info.name}")
        tree = ast.parse(inspect.getsource(module))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                qualified = f"stuck.rules.{info.name}.{node.name}"
                functions[qualified] = node
                if any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                       and n.func.id == "Finding" for n in ast.walk(node)):
                    rules.add(qualified)
    init = ast.parse(inspect.getsource(stuck.rules))
    for node in init.body:
        if isinstance(node, ast.FunctionDef):
            functions[f"stuck.rules.{node.name}"] = node
    return functions, rules


def _reachable_from(start: str, functions: dict[str, ast.FunctionDef]) -> set[str]:
    by_name: dict[str, list[str]] = {}
    for qualified in functions:
        by_name.setdefault(qualified.rpartition(".")[2], []).append(qualified)
    seen = {start}
    todo = [start]
    while todo:
        for node in ast.walk(functions[todo.pop()]):
            name = node.id if isinstance(node, ast.Name) else \
                node.attr if isinstance(node, ast.Attribute) else None
            for target in by_name.get(name or "", ()):
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
    return seen


def test_every_rule_is_reachable_from_evaluate() -> None:
    functions, rules = _rule_functions()
    assert len(rules) >= 3  # deadlock, stall, hang
    reached = _reachable_from("stuck.rules.evaluate", functions)
    unreached = sorted(rules - reached - set(APPLIED_ELSEWHERE))
    assert unreached == []
    for name, why in APPLIED_ELSEWHERE.items():
        assert name in rules and name not in reached, f"stale entry {name}: {why}"


def test_other_threads_frames_are_read_only_through_framewalk() -> None:
    """Every read of other threads' stacks in the runtime goes through
    ``stuck.runtime.framewalk``, which takes and walks them in one pass (a frame walked after
    its thread moved on can crash CPython 3.11). ``stuck.explore`` is left out: the threads it
    reads are parked by its scheduler, none moves while it looks."""
    offenders = []
    for path in sorted((SRC / "runtime").rglob("*.py")):
        if path.name == "framewalk.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "_current_frames":
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert offenders == []


def _snapshot_rules() -> set[str]:
    """The names of the functions that judge a whole snapshot (or the facts or reading made
    from one): the engine's, and each rule applied to a snapshot's every thread, task or loop.
    ``evaluate`` is the one entry to them."""
    import stuck.rules

    out: set[str] = set()
    for info in pkgutil.iter_modules(stuck.rules.__path__):
        module = importlib.import_module(f"stuck.rules.{info.name}")
        for node in ast.parse(inspect.getsource(module)).body:
            if not isinstance(node, ast.FunctionDef) or not node.args.args:
                continue
            first = node.args.args[0].annotation
            kind = ast.unparse(first) if first is not None else ""
            returns = ast.unparse(node.returns) if node.returns is not None else ""
            if info.name == "engine" or kind == "Reading" or (
                    kind in ("Snapshot", "Facts") and returns.startswith("list[")
                    and ("Finding" in returns or "Edge" in returns)):
                out.add(node.name)
    return out


def test_every_source_judges_a_snapshot_through_evaluate_only() -> None:
    # One verdict for every command: a source (the watchdog, the report asked for on demand,
    # a dump, a capture, explore) hands its snapshot to stuck.rules.evaluate, never to the
    # engine or to one rule of it, so none of them can skip a rule the others apply (the
    # asyncio rules once were applied by the watchdog alone).
    forbidden = _snapshot_rules()
    assert {"judge_recorded", "with_loops", "loop_cycles", "loop_stalls",
            "executor_deadlocks"} <= forbidden
    used: list[str] = []
    for path in SRC.rglob("*.py"):
        if (SRC / "rules") in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("stuck.rules"):
                names = {a.name for a in node.names}
                if node.module == "stuck.rules.engine" or names & forbidden:
                    used.append(f"{path.relative_to(SRC)}: {node.module} {sorted(names)}")
            elif isinstance(node, ast.Import) and any(
                    a.name == "stuck.rules.engine" for a in node.names):
                used.append(f"{path.relative_to(SRC)}: import stuck.rules.engine")
    assert used == []

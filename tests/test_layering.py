"""The import graph under src/dynacure: no circle between the modules and packages the layering names, and
no import against the layers (io <- signals <- selectors <- loop <- pipeline; experiments and report on
top; the CLI only as the face). Every import counts, also those inside functions: a lazy import is still a
dependency. Parsed with ``ast``, nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

import dynacure

ROOT = Path(dynacure.__file__).parent

# Layer rank per top-level package: a module may import its own rank or lower, never higher.
# learners and evaluation sit beside the loop (the loop trains and probes learners); engines beside signals.
RANK = {
    "config": 0, "runinfo": 0, "stats": 0, "progress": 0, "io": 0,
    "signals": 1, "engines": 1, "audit": 1,  # audit: group terms and removal ratios, text rules only
    "learners": 2, "selectors": 2,
    "evaluation": 3, "loop": 3,
    "pipeline": 4,
    "experiments": 5,
    "report": 6,
    "cli": 7,
}
# Known upward edges, each a decision: the selectors' model-aware strategies (CoLoR, ICA) score with a
# learner and train it (learners is rank 2 like selectors, so no entry is needed there); the pre-training
# of the base measures its perplexity curve with the evaluation suite's windowed scoring.
ALLOWED_UP = {("learners", "evaluation")}
# Module pairs that once imported each other; they must not again.
WATCHED = [
    ("dynacure.selectors", "dynacure.loop"), ("dynacure.experiments", "dynacure.report"),
    ("dynacure.loop.bandit", "dynacure.loop.policy"), ("dynacure.loop.ray_apply", "dynacure.loop.selectors"),
    ("dynacure.report.html", "dynacure.report.sections"), ("dynacure.selectors", "dynacure.pipeline"),
]


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports_by_name(node: ast.AST) -> bool:
    if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)):
        return False
    name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
    return name == "import_module" and str(node.args[0].value).startswith("dynacure.")


def import_graph() -> dict[str, set[str]]:
    """module -> the dynacure modules it imports (``from a.b import c`` counts as a.b and a.b.c)."""
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("dynacure."))
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith(
                    "dynacure."):
                deps.add(str(node.module))
                deps.update(f"{node.module}.{a.name}" for a in node.names)
            elif _imports_by_name(node):  # importlib.import_module("dynacure.x"): a dependency all the same
                deps.add(node.args[0].value)  # type: ignore[attr-defined]
        graph[_module(path)] = deps
    return {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}


def _reaches(graph: dict[str, set[str]], src: str, dst: str) -> bool:
    """Whether a module at or under ``src`` imports (through any chain) one at or under ``dst``."""
    def under(m: str, p: str) -> bool:
        return m == p or m.startswith(p + ".")

    todo = [m for m in graph if under(m, src)]
    seen = set(todo)
    while todo:
        for d in graph[todo.pop()]:
            if under(d, dst):
                return True
            # follow only the modules outside ``src`` (inside it, the package's own structure is free)
            if d not in seen and not under(d, src):
                seen.add(d)
                todo.append(d)
    return False


def _pkg(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def test_no_import_against_the_layers() -> None:
    graph = import_graph()
    assert set(map(_pkg, graph)) - {""} <= set(RANK), "a new package needs its place in RANK"
    upward = sorted(f"{m} -> {d}" for m, deps in graph.items() for d in deps
                    if _pkg(m) and _pkg(d) and RANK[_pkg(d)] > RANK[_pkg(m)]
                    and (_pkg(m), _pkg(d)) not in ALLOWED_UP)
    assert upward == []


def test_no_circle_between_the_watched_modules() -> None:
    graph = import_graph()
    circles = [f"{a} <-> {b}" for a, b in WATCHED if _reaches(graph, a, b) and _reaches(graph, b, a)]
    assert circles == []


def test_the_checker_sees_a_circle() -> None:
    graph = {"dynacure.a.x": {"dynacure.b.y"}, "dynacure.b.y": {"dynacure.c"}, "dynacure.c": {"dynacure.a"},
             "dynacure.a": set()}
    assert _reaches(graph, "dynacure.a", "dynacure.c") and _reaches(graph, "dynacure.c", "dynacure.a")
    assert _reaches(graph, "dynacure.b", "dynacure.a")
    assert not _reaches(graph, "dynacure.c", "dynacure.b")

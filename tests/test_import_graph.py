"""The package import graph: imports only go down the floors, no cycles, no script imports another script.

Run ``python tests/test_import_graph.py`` to print the graph (package -> packages it imports, with the files).
Every import counts, the function-local ones too: they are read from the syntax tree, nothing is imported.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# The floors, bottom first. A package may import its own modules and those of any LOWER floor, never a package on
# its own floor or above. utils/ is the ground floor: motion math, skeleton tables, checkpoints, metrics, devices.
FLOORS: dict[str, int] = {
    "utils": 0,
    "data": 1,
    "options": 1,
    "models": 2,
    "evaluation": 3,
    "visualization": 3,
    "training": 4,
    "prepare": 5,
    "benchmarks": 5,
}


def scripts() -> set[str]:
    """The thin top-level scripts (gen_t2m, train_vq, app, ...)."""
    return {p.stem for p in REPO.glob("*.py")}


def imported_tops(path: Path) -> set[str]:
    """First components of every absolute import in ``path`` (module level and inside functions)."""
    tops = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            tops.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            tops.add(node.module.split(".")[0])
    return tops


def import_graph() -> dict[tuple[str, str], list[str]]:
    """(importer, imported) -> files, over the project's packages, its scripts (``<script>``) and tests/."""
    project = set(FLOORS) | scripts() | {"tests"}
    sources = [(pkg, f) for pkg in FLOORS for f in sorted((REPO / pkg).rglob("*.py"))]
    sources += [(f"<{p.stem}>", p) for p in sorted(REPO.glob("*.py"))]
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for owner, path in sources:
        for top in imported_tops(path) & project:
            if top != owner:
                edges[(owner, top)].append(str(path.relative_to(REPO)))
    return dict(edges)


def find_cycle(edges: dict[tuple[str, str], list[str]]) -> list[str] | None:
    """One cycle of the package graph as [a, b, ..., a], or None."""
    succ = defaultdict(set)
    for a, b in edges:
        succ[a].add(b)
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done

    def visit(node: str, stack: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(succ[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [node, nxt] if nxt in stack else [node, nxt]
            if nxt not in state and (found := visit(nxt, stack + [node])):
                return found
        state[node] = 2
        return None

    for start in sorted(succ):
        if start not in state and (found := visit(start, [])):
            return found
    return None


def violations(edges: dict[tuple[str, str], list[str]]) -> list[str]:
    """Every import that goes sideways or up a floor, reaches a script, or reaches tests/ from shipped code."""
    bad = []
    names = scripts()
    for (a, b), files in sorted(edges.items()):
        where = ", ".join(sorted(set(files)))
        if b in names:
            bad.append(f"{a} imports the script {b}.py ({where}): move what both need into a package")
        elif b == "tests":
            bad.append(f"{a} imports tests/ ({where}): shipped code must not depend on the test suite")
        elif a in FLOORS and b in FLOORS and FLOORS[b] >= FLOORS[a]:
            bad.append(f"{a} (floor {FLOORS[a]}) imports {b} (floor {FLOORS[b]}) in {where}")
    return bad


def test_every_package_is_on_a_floor() -> None:
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests"}
    assert packages <= set(FLOORS), f"packages without a floor in FLOORS: {sorted(packages - set(FLOORS))}"


def test_imports_only_go_down() -> None:
    bad = violations(import_graph())
    assert not bad, "\n".join(bad)


def test_no_package_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_checker_sees_upward_and_local_imports(tmp_path: Path) -> None:
    """The checker itself: a function-local upward import and a cycle are both caught."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from training.vq import train_vq\n    import models.pipeline\n")
    assert imported_tops(module) == {"training", "models"}
    edges = {("utils", "training"): ["utils/x.py"], ("training", "utils"): ["training/y.py"]}
    assert violations(edges) == ["utils (floor 0) imports training (floor 4) in utils/x.py"]
    assert find_cycle(edges) in (["utils", "training", "utils"], ["training", "utils", "training"])


if __name__ == "__main__":
    graph = import_graph()
    for (a, b), files in sorted(graph.items()):
        print(f"{a:>22} -> {b:<14} {len(set(files))} file(s): {', '.join(sorted(set(files))[:3])}")
    problems = violations(graph)
    cycle = find_cycle(graph)
    print("\n".join(problems) or "no upward or sideways import")
    print("cycle: " + " -> ".join(cycle) if cycle else "no cycle")
    sys.exit(1 if problems or cycle else 0)

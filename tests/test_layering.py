"""The import graph of ``lottogpt``: one direction, imports at the top, and dvc.yaml deps that match it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "lottogpt"
# Files a stage reads as files rather than imports (the register stage logs mlflow_model.py as the model's code).
FILE_DEPS = {"register": {"src/lottogpt/mlflow_model.py"}}
LAZY_REASON = "# lazy:"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_path(name: str) -> Path:
    base = PACKAGE.parent.joinpath(*name.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(path: Path, known: dict[str, Path]) -> list[tuple[str, ast.stmt, bool]]:
    """The lottogpt modules that ``path`` imports (``from lottogpt import x`` -> x): the statement, and whether
    it stands at module top."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node) for alias in node.names if alias.name.startswith("lottogpt")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lottogpt"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.append((candidate if candidate in known else node.module, node))
    return [(name, node, id(node) in top) for name, node in found if name in known and name != "lottogpt"]


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {dep for dep, _, _ in imported(path, known)} - {name} for name, path in known.items()}


def closure(start: Path) -> set[str]:
    known, edges = modules(), graph()
    todo = [dep for dep, _, _ in imported(start, known)]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += edges[name]
    return seen


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(edges[node]):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep):], dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_sees_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_layers_point_one_way() -> None:
    """The bottom modules import nothing above them; nothing below the CLI and server imports them."""
    edges = graph()
    assert edges["lottogpt.kata"] == set()
    assert edges["lottogpt.common"] == set()
    top = {"lottogpt.cli", "lottogpt.mlflow_model"} | {m for m in edges if m.startswith("lottogpt.serving")}
    for name, deps in edges.items():
        if name not in top:
            assert not deps & top, f"{name} imports {deps & top}"
    below_registry = {"lottogpt.train", "lottogpt.evaluate", "lottogpt.inference", "lottogpt.decode"}
    for name in below_registry:
        assert "lottogpt.registry" not in edges[name], f"{name} imports the registry"


def test_lottogpt_imports_at_module_top() -> None:
    """A lottogpt import inside a function must say why on its line (``# lazy: ...``)."""
    known = modules()
    offenders = []
    for name, path in known.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        for dep, node, at_top in imported(path, known):
            if not at_top and LAZY_REASON not in lines[node.lineno - 1]:
                offenders.append(f"{name}:{node.lineno} imports {dep}")
    assert not offenders, offenders


def stages() -> dict[str, dict]:
    return YAML(typ="safe").load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


@pytest.mark.parametrize("stage", sorted(stages()))
def test_stage_deps_are_the_import_closure(stage: str) -> None:
    """Each stage lists exactly the lottogpt files its script imports (transitively), so no dep can drift."""
    script = ROOT / "pipeline" / f"{stage}.py"
    declared = {d for d in stages()[stage]["deps"] if d.startswith("src/")}
    needed = {str(module_path(m).relative_to(ROOT)) for m in closure(script)} | FILE_DEPS.get(stage, set())
    assert f"pipeline/{stage}.py" in stages()[stage]["deps"]
    assert declared == needed, f"missing {sorted(needed - declared)}, extra {sorted(declared - needed)}"

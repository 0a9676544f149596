"""The package's shape, checked from its source: no import cycles, and planes that depend downwards.

Every import counts, lazy ones inside functions included (a lazy import hides a cycle, it does not
remove it); only imports under `if TYPE_CHECKING:` are left out, since they never run.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "shared"

PLANES = ("shared.proxy", "shared.manage", "shared.mcp", "shared.agents", "shared.console")
"""Request planes: each may use the layers below, never another plane."""
TOP = ("shared.routes", "shared.server", "shared.__main__", "function_app")
"""Composition: may use everything."""


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(name: str, path: Path) -> set[str]:
    """Modules of the package that `name` imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                out.add(candidate if candidate in MODULES else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in out if m in MODULES and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            connect(v)
    return found


def test_the_graph_sees_the_imports() -> None:
    assert "shared.callers" in GRAPH["shared.proxy.handlers"]
    assert "shared.proxy" in GRAPH["shared.routes"] and "shared.manage.routes" in GRAPH["shared.routes"]


def test_no_import_cycles() -> None:
    assert _cycles() == []


def _owner(module: str) -> str | None:
    return next((p for p in (*PLANES, *TOP) if module == p or module.startswith(p + ".")), None)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_planes_depend_downwards(module: str) -> None:
    mine = _owner(module)
    if mine in TOP:
        return
    for used in GRAPH[module]:
        theirs = _owner(used)
        if theirs is None or theirs == mine:
            continue
        assert theirs not in TOP, f"{module} imports {used}: only the composition root may"
        assert mine is None or theirs == mine, f"plane {mine} imports plane {theirs} ({module} -> {used})"
        assert mine is not None, f"{module} is below the planes but imports {used}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_logger_names_follow_the_package(module: str) -> None:
    """So an operator can tune one subsystem: shared/auth/jwks.py logs as gateway.auth.jwks."""
    source = MODULES[module].read_text(encoding="utf-8")
    names = re.findall(r'^\w+ = logging\.getLogger\("([^"]*)"\)', source, flags=re.M)
    expected = "gateway" + module.removeprefix("shared").removesuffix(".__init__")
    assert all(name == expected for name in names), (module, names)

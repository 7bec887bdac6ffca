"""The shape of the package (issue #10): no import cycles, no module much over 400 lines,
and each provider in the same three files."""

from __future__ import annotations

import ast
from pathlib import Path

from reconciler.providers import CATALOG

PACKAGE = Path(__file__).resolve().parents[1] / "reconciler"
MAX_LINES = 440  # "roughly 100–400 lines" (STYLE.md), with a little slack


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's own modules ``name`` imports, anywhere but under ``TYPE_CHECKING``."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for n in ast.walk(block)
    }
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            subs = {f"{target}.{a.name}" for a in node.names} & set(modules)
            found |= subs if len(subs) == len(node.names) else {target, *subs} & set(modules)
    return found - {name}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_no_module_imports_another_that_imports_it_back() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert _cycle(graph) is None, " → ".join(_cycle(graph) or [])


def test_the_cycle_check_can_fail() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_module_is_much_over_400_lines() -> None:
    long = {
        str(path.relative_to(PACKAGE.parent)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_every_provider_has_the_same_three_modules() -> None:
    for name, info in CATALOG.items():
        package = name.replace("-", "_")  # azure-openai lives in providers/azure_openai
        folder = PACKAGE / "providers" / package
        # the same three modules (a pure mapping may be split in more pure modules)
        assert {"__init__.py", "client.py", "entry.py", "mapping.py"} <= {
            p.name for p in folder.glob("*.py")
        }
        assert info.driver == f"reconciler.providers.{package}.client:{info.driver.split(':')[1]}"


def test_the_exception_tree_in_the_docstring_is_true() -> None:
    """errors.py draws its tree; every class in it exists with the parent drawn, and every
    ReconcilerError the module defines is drawn."""
    import re

    from reconciler import errors

    drawn: dict[str, str | None] = {}
    parents: list[str] = []
    for line in (errors.__doc__ or "").splitlines():
        match = re.match(r"^\s{4}([│ ]*)(?:[├└]── )?([A-Z]\w+Error[s]?)\s", line)
        if not match:
            continue
        depth = len(match.group(1)) // 4 + (1 if "──" in line else 0)
        parents[depth:] = [match.group(2)]
        drawn[match.group(2)] = parents[depth - 1] if depth else None
    defined = {
        name: cls
        for name, cls in vars(errors).items()
        if isinstance(cls, type) and issubclass(cls, errors.ReconcilerError)
    }
    assert set(drawn) == set(defined)
    for name, parent in drawn.items():
        base = defined[name].__mro__[1].__name__
        assert parent is None or base == parent, f"{name} is drawn under {parent}, not {base}"

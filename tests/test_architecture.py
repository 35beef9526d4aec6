"""The package's structure, as a specification: what may import what, and how large a module or a class may grow.

- No import cycles between the package's modules: imports inside functions count, ``if TYPE_CHECKING:`` ones do
  not (nor do ``importlib`` calls, such as the package's lazy exports).
- ``django_stomp_push.stomp``, the sans-IO protocol, needs nothing but the standard library.
- Importing ``django_stomp_push`` is cheap: neither Django nor Channels until a public name is used.
- No module over 350 lines, no class over 250.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "django_stomp_push"
PROTOCOL = f"{PACKAGE}.stomp"
MAX_MODULE_LINES = 350
MAX_CLASS_LINES = 250


# -- imports -------------------------------------------------------------------------------------------------


def test_the_package_has_no_import_cycles() -> None:
    cycles = [describe(cycle) for cycle in import_cycles()]
    assert not cycles, "import cycles (module (file:line of its import of the next)):\n" + "\n".join(cycles)


def test_the_cycle_finder_sees_imports_in_functions_and_skips_type_checking_imports(tmp_path: Path) -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from . import hub\n"
        "def later():\n"
        "    from .push import push\n"
    )
    path = tmp_path / "probe.py"
    path.write_text(source)
    imports = imports_of(Module(f"{PACKAGE}.probe", path))
    assert Import(f"{PACKAGE}.push", 5) in imports
    assert not [edge for edge in imports if edge.target.endswith(".hub")]


def test_the_protocol_imports_only_the_standard_library_and_itself() -> None:
    outside = [
        f"{module.where}:{line} imports {target}"
        for name, module in package_modules().items()
        if name == PROTOCOL or name.startswith(PROTOCOL + ".")
        for target, line in ((edge.target, edge.line) for edge in imports_of(module))
        if target.partition(".")[0] not in sys.stdlib_module_names
        and target != PROTOCOL
        and not target.startswith(PROTOCOL + ".")
    ]
    assert not outside, "the sans-IO protocol imports outside the standard library:\n" + "\n".join(outside)


def test_the_protocol_imports_in_an_interpreter_without_site_packages() -> None:
    # -S: no site-packages (no Django, Channels or asgiref to find); -I: no PYTHONPATH, no current directory.
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); import {PROTOCOL}"
    result = run_python(code, "-S", "-I")
    assert result.returncode == 0, f"import {PROTOCOL} needs more than the standard library:\n{result.stderr}"


def test_importing_the_package_imports_neither_django_nor_channels() -> None:
    code = (
        f"import sys, {PACKAGE}\n"
        "heavy = sorted(m for m in sys.modules if m.partition('.')[0] in ('django', 'channels', 'asgiref'))\n"
        "print(' '.join(heavy))"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"import {PACKAGE} imported: {result.stdout.strip()}"


def test_each_public_name_is_what_it_names_whatever_was_imported_first() -> None:
    # Importing the submodule push.py first must not make the name ``push`` mean the module.
    code = (
        f"import {PACKAGE}.push, {PACKAGE}.handlers, inspect\n"
        f"from {PACKAGE} import *\n"
        f"import {PACKAGE} as package\n"
        "assert inspect.isfunction(push), push\n"
        "missing = [name for name in package.__all__ if name not in dir(package)]\n"
        "assert not missing, missing\n"
        "assert all(getattr(package, name).__name__ == name for name in package.__all__)\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr


# -- size ----------------------------------------------------------------------------------------------------


def test_no_module_is_longer_than_350_lines() -> None:
    too_long = [
        f"{module.where} has {lines} lines"
        for module in package_modules().values()
        if (lines := len(module.path.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines:\n" + "\n".join(too_long)


def test_no_class_is_longer_than_250_lines() -> None:
    too_long = [
        f"{module.where}: class {node.name} has {lines} lines ({node.lineno}-{node.end_lineno})"
        for module in package_modules().values()
        for node in ast.walk(module.tree)
        if isinstance(node, ast.ClassDef) and (lines := class_lines(node)) > MAX_CLASS_LINES
    ]
    assert not too_long, f"classes over {MAX_CLASS_LINES} lines:\n" + "\n".join(too_long)


# -- how the structure is read --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    """One import statement of a package module, resolved to the module it names."""

    target: str
    line: int


@dataclass(frozen=True)
class Module:
    name: str
    path: Path

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"

    @property
    def where(self) -> str:
        return str(self.path.relative_to(ROOT))

    @property
    def tree(self) -> ast.Module:
        return ast.parse(self.path.read_text(), str(self.path))


@cache
def package_modules() -> dict[str, Module]:
    modules = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = Module(name, path)
    return modules


def runtime_nodes(node: ast.AST) -> list[ast.AST]:
    """Every node under ``node`` that runs at some point, i.e. all but the body of ``if TYPE_CHECKING:``."""
    found: list[ast.AST] = []
    for child in ast.iter_child_nodes(node):
        found.append(child)
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for orelse in child.orelse:
                found += [orelse, *runtime_nodes(orelse)]
        else:
            found += runtime_nodes(child)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(module: Module) -> list[Import]:
    """Every import in ``module`` that runs, relative ones resolved to absolute module names."""
    found: list[Import] = []
    for node in runtime_nodes(module.tree):
        if isinstance(node, ast.Import):
            found += [Import(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _from_base(module, node)
            # ``from package import submodule`` imports the submodule; ``from module import name``, the module.
            submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in package_modules()]
            found += [Import(target, node.lineno) for target in submodules or [base]]
    return found


def _from_base(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.name if module.is_package else module.name.rpartition(".")[0]
    for _ in range(node.level - 1):
        base = base.rpartition(".")[0]
    return f"{base}.{node.module}" if node.module else base


def package_imports(module: Module) -> list[Import]:
    modules = package_modules()
    return [edge for edge in imports_of(module) if edge.target in modules and edge.target != module.name]


def import_cycles() -> list[list[tuple[str, int]]]:
    """The shortest cycle through each module not in a cycle found before, as (module, line of its import of the
    next) pairs."""
    graph = {name: package_imports(module) for name, module in package_modules().items()}
    cycles, seen = [], set()
    for start in graph:
        if start in seen:
            continue
        cycle = _shortest_cycle(graph, start)
        if cycle:
            cycles.append(cycle)
            seen.update(name for name, _ in cycle)
    return cycles


def _shortest_cycle(graph: dict[str, list[Import]], start: str) -> list[tuple[str, int]]:
    """The shortest import path from ``start`` back to itself (breadth first), or []."""
    paths: dict[str, list[tuple[str, int]]] = {start: []}
    frontier = [start]
    while frontier:
        following = []
        for name in frontier:
            for edge in graph[name]:
                path = [*paths[name], (name, edge.line)]
                if edge.target == start:
                    return path
                if edge.target not in paths:
                    paths[edge.target] = path
                    following.append(edge.target)
        frontier = following
    return []


def describe(cycle: list[tuple[str, int]]) -> str:
    modules = package_modules()
    steps = " -> ".join(f"{name} ({modules[name].where}:{line})" for name, line in cycle)
    return f"{steps} -> {cycle[0][0]}"


def class_lines(node: ast.ClassDef) -> int:
    return (node.end_lineno or node.lineno) - node.lineno + 1


def run_python(code: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *flags, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60, check=False
    )

"""The package's shape, checked so that it stays that way.

Imports go one way: the package's import graph has no cycle, counted the
strict way (every import statement anywhere in a module, including those
inside functions and under ``if TYPE_CHECKING:``; ``from . import x`` names
the package, so it is an edge to ``__init__``). A cycle dodged with a
function-level import is still a cycle to whoever reads the code.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import flask_autotask_ilert

PACKAGE_DIR = Path(flask_autotask_ilert.__file__).parent
PACKAGE = "flask_autotask_ilert"


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package under ``root``: dotted name -> file (``__init__`` is the package)."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join([package, *parts])] = path
    return found


def import_edges(root: Path, package: str) -> dict[str, set[str]]:
    """module -> the package's modules it imports, from every import statement in its file."""
    modules = module_files(root, package)
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    here = name.split(".") if is_package else name.split(".")[:-1]
                    here = here[: len(here) - node.level + 1]
                    base = ".".join([*here, node.module] if node.module else here)
                else:
                    base = node.module or ""
                targets = [base]
                # ``from pkg import mod`` also imports the submodule ``pkg.mod``.
                targets += [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
            for target in targets:
                # ``import pkg.sub.mod`` names pkg.sub.mod: the nearest module of the package it names.
                while target and target not in modules and target.startswith(f"{package}."):
                    target = target.rpartition(".")[0]
                if target in modules and target != name:
                    edges[name].add(target)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that ends where it starts, or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node):], node]
        if node in done:
            return None
        for target in sorted(edges[node]):
            cycle = visit(target, [*path, node])
            if cycle is not None:
                return cycle
        done.add(node)
        return None

    for start in sorted(edges):
        cycle = visit(start, [])
        if cycle is not None:
            return cycle
    return None


def test_the_package_imports_have_no_cycle() -> None:
    cycle = find_cycle(import_edges(PACKAGE_DIR, PACKAGE))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")


@pytest.mark.parametrize(
    ("files", "cycle"),
    [
        # An import inside a function still counts.
        ({"a.py": "from .b import x\n", "b.py": "def f():\n    from .a import y\n"},
         ["pkg.a", "pkg.b", "pkg.a"]),
        # So does one only for the type checker.
        ({"a.py": "from .b import x\n",
          "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import y\n"},
         ["pkg.a", "pkg.b", "pkg.a"]),
        # ``from . import x`` goes through the package's __init__.
        ({"__init__.py": "from .a import x\n", "a.py": "from . import b\n", "b.py": ""},
         ["pkg", "pkg.a", "pkg"]),
        # Absolute imports, and a subpackage.
        ({"__init__.py": "", "a.py": "import pkg.sub.c\n", "sub/__init__.py": "",
          "sub/c.py": "from pkg.a import x\n"},
         ["pkg.a", "pkg.sub.c", "pkg.a"]),
    ],
)
def test_the_walker_counts_every_kind_of_import(
    tmp_path: Path, files: dict[str, str], cycle: list[str]
) -> None:
    _write(tmp_path, {"__init__.py": "", **files})
    assert find_cycle(import_edges(tmp_path, "pkg")) == cycle


def test_the_walker_passes_a_package_without_cycles(tmp_path: Path) -> None:
    _write(tmp_path, {"__init__.py": "from .a import x\n", "a.py": "from .b import y\nimport os\n",
                      "b.py": "def f():\n    from .c import z\n", "c.py": "import pkg.d\n", "d.py": ""})
    edges = import_edges(tmp_path, "pkg")
    assert edges == {"pkg": {"pkg.a"}, "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.c"}, "pkg.c": {"pkg.d"},
                     "pkg.d": set()}
    assert find_cycle(edges) is None

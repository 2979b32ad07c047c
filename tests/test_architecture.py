"""The package's shape, checked so that it stays that way.

Imports go one way: the package's import graph has no cycle, counted the
strict way (every import statement anywhere in a module, including those
inside functions and under ``if TYPE_CHECKING:``; ``from . import x`` names
the package, so it is an edge to ``__init__``). A cycle dodged with a
function-level import is still a cycle to whoever reads the code.

docs/design.md is where a newcomer starts: its tables of modules, Lua
scripts, queued-event keys and Store outcome methods must name exactly what
the code has, so a module added without a line there fails here.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

import flask_autotask_ilert
from flask_autotask_ilert.events import QueuedEvent
from flask_autotask_ilert.store import Store

PACKAGE_DIR = Path(flask_autotask_ilert.__file__).parent
PACKAGE = "flask_autotask_ilert"
DESIGN = Path(__file__).resolve().parents[1] / "docs" / "design.md"


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


# -- docs/design.md against the code ----------------------------------------------------------


def table_names(text: str, header: str) -> set[str]:
    """The backquoted names in the first column of the markdown table whose header row is ``header``."""
    lines = text.splitlines()
    try:
        start = lines.index(header)
    except ValueError:
        raise AssertionError(f"docs/design.md has no table headed {header!r}") from None
    names: set[str] = set()
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        match = re.match(r"\|\s*`([^`]+)`\s*\|", line)
        assert match, f"a row of {header!r} does not start with a `name`: {line!r}"
        names.add(match.group(1))
    return names


def _only_marks_a_folder(path: Path) -> bool:
    """A subpackage's __init__.py with nothing but a docstring is no module to describe."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body)


def package_modules() -> set[str]:
    """Every module of the package as design.md names it: its path under the package folder."""
    return {
        path.relative_to(PACKAGE_DIR).as_posix()
        for path in module_files(PACKAGE_DIR, PACKAGE).values()
        if not (path.name == "__init__.py" and path.parent != PACKAGE_DIR and _only_marks_a_folder(path))
    }


def outcome_methods() -> set[str]:
    """The Store methods that settle a claimed head: those that call the finish script."""
    return {
        name for name, member in vars(Store).items()
        if inspect.isfunction(member) and not name.startswith("_")
        and "self._finish(" in inspect.getsource(member)
    }


def test_design_md_describes_every_module_and_no_other() -> None:
    documented = table_names(DESIGN.read_text(encoding="utf-8"), "| module | job |")
    actual = package_modules()
    assert actual - documented == set(), "modules missing from the module table of docs/design.md"
    assert documented - actual == set(), "docs/design.md describes modules that do not exist"


def test_design_md_describes_every_lua_script_and_no_other() -> None:
    documented = table_names(DESIGN.read_text(encoding="utf-8"), "| script | what it does |")
    actual = {path.name for path in (PACKAGE_DIR / "lua").glob("*.lua")}
    assert actual - documented == set(), "scripts missing from the Lua table of docs/design.md"
    assert documented - actual == set(), "docs/design.md describes scripts that do not exist"


def test_design_md_describes_every_key_of_the_queued_event() -> None:
    documented = table_names(DESIGN.read_text(encoding="utf-8"), "| key | kind | holds |")
    actual = set(QueuedEvent.__required_keys__ | QueuedEvent.__optional_keys__)
    assert actual - documented == set(), "event keys missing from the event table of docs/design.md"
    assert documented - actual == set(), "docs/design.md describes event keys QueuedEvent does not have"


def test_design_md_names_every_store_outcome_method() -> None:
    documented = table_names(DESIGN.read_text(encoding="utf-8"), "| method | outcome |")
    actual = outcome_methods()
    assert {"delivered", "retry_at", "put_off", "checkpoint", "dead_letter"} <= actual
    assert actual == documented, "the outcome table of docs/design.md differs from Store's methods"


def test_a_module_without_a_row_is_found(tmp_path: Path) -> None:
    doc = "| module | job |\n|---|---|\n| `a.py` | one thing |\n\nprose\n| `b.py` | not in the table |\n"
    assert table_names(doc, "| module | job |") == {"a.py"}
    with pytest.raises(AssertionError, match="no table headed"):
        table_names(doc, "| script | what it does |")

"""The package's shape: the README's module map matches the tree, the core stays
pure of the wings, and no two modules import each other in a circle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "dbcron"
WINGS = ("cli", "daemon", "jobs", "services", "store")


def modules() -> dict[str, Path]:
    """dotted name -> file, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports_of(path: Path) -> set[str]:
    """The dbcron modules a file imports, at the top or inside functions (type-only excluded)."""
    tree = ast.parse(path.read_text())
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only.update(id(child) for child in ast.walk(node))
    found: set[str] = set()
    known = modules()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("dbcron"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dbcron"):
            assert node.module is not None
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
    return found


def _empty(path: Path) -> bool:
    body = ast.parse(path.read_text()).body
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


def test_module_map_in_readme_matches_the_tree() -> None:
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- module-map:", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    listed: set[str] = set()
    folders: list[tuple[int, str]] = []
    for line in block.splitlines()[1:]:
        indent = len(line) - len(line.lstrip())
        name = line.split()[0]
        if not name.endswith((".py", "/")):
            continue  # a description running onto the next line
        folders = [(i, f) for i, f in folders if i < indent]
        prefix = "".join(f for _, f in folders)
        if name.endswith("/"):
            folders.append((indent, name))
        listed.add(prefix + name)
    tree: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        top = rel.parts[0]
        # Sub-packages of a wing (export/, mail/) are listed as folders; their files are not.
        if len(rel.parts) > 2:
            tree.add(f"{top}/{rel.parts[1]}/")
        elif len(rel.parts) == 2:
            tree.add(f"{top}/")
            # cli/ and store/ are listed as a whole; a package marker alone is not a module.
            if top not in ("cli", "store") and not (rel.name == "__init__.py" and _empty(path)):
                tree.add(str(rel))
        elif rel.name != "__init__.py":
            tree.add(str(rel))
    assert sorted(tree - listed) == [], "modules missing from the README's module map"
    assert sorted(listed - tree) == [], "the README's module map names modules that do not exist"


def test_the_core_imports_no_wing() -> None:
    wings = tuple(f"dbcron.{w}" for w in WINGS)
    offenders = {
        name: sorted(i for i in imports_of(path) if i.startswith(wings))
        for name, path in modules().items()
        if name != "dbcron" and name.split(".")[1] not in WINGS
    }
    assert {k: v for k, v in offenders.items() if v} == {}


@pytest.mark.parametrize("wing", ["jobs", "store"])
def test_jobs_and_store_do_not_reach_into_the_daemon_or_the_services(wing: str) -> None:
    banned = ("dbcron.daemon", "dbcron.services", "dbcron.cli")
    offenders = {
        name: sorted(i for i in imports_of(path) if i.startswith(banned))
        for name, path in modules().items()
        if name.startswith(f"dbcron.{wing}")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_import_cycle() -> None:
    known = modules()
    graph = {
        name: {i for i in imports_of(path) if i in known and i != name and not
               name.startswith(i + ".")}  # a module importing its own package's __init__
        for name, path in known.items()
    }
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt):], nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)


def test_vocabulary_is_the_only_list_of_statuses() -> None:
    """Run statuses are written out once, in vocabulary.py."""
    pattern = re.compile(r'"running",\s*"succeeded",\s*"failed"')
    hits = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
            if pattern.search(p.read_text())]
    assert hits == ["vocabulary.py"]

"""The layers of docs/architecture.md, read from the source: which package may import which.

Every `import` and `from ... import` in each package (module level or inside a function, since
a lazy import is still a dependency) is parsed with `ast`; relative imports are resolved to
their package. The rules:
- `common` (typed config, version, loopback helpers) imports no part of chot;
- `verifier` (the pure core) imports only `common`;
- `protocol` (the unit-central contract) imports only `verifier` and `common`;
- `keys` (the ministry side) imports only `verifier` and `common`;
- `scanner` and `dashboard` import `protocol`, `verifier` and `common`, not each other, not `keys`,
  not `chot`;
- `testbed` (launchers of local engines, synthetic scenes, shared rigs) imports the product but
  not `chot` (the demo uses it), nor benches or tests;
- nothing but `chot` itself imports the `chot` command package (tests and benches may);
- benches do not import tests, tests do not import benches (what both need is in `testbed`), and
  no bench edits `sys.path` (benches run as `python -m bench.NAME` from the repository root);
- no import circle between modules anywhere (product, benches, tests), counting imports inside
  functions: module A importing B (at any depth) while B imports A.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("common", "verifier", "protocol", "keys", "scanner", "dashboard", "testbed", "chot", "bench", "tests")

ALLOWED: dict[str, set[str]] = {
    "common": set(),
    "verifier": {"common"},
    "protocol": {"verifier", "common"},
    "keys": {"verifier", "common"},
    "scanner": {"protocol", "verifier", "common"},
    "dashboard": {"protocol", "verifier", "common"},
    "testbed": {"common", "verifier", "protocol", "keys", "scanner", "dashboard"},
    "chot": {"common", "verifier", "protocol", "keys", "scanner", "dashboard", "testbed"},
    "bench": {"common", "verifier", "protocol", "keys", "scanner", "dashboard", "testbed", "chot"},
    "tests": {"common", "verifier", "protocol", "keys", "scanner", "dashboard", "testbed", "chot"},
}


def imported_parts(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, top-level chot part) for each import in the file that names one of PARTS."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top in PARTS:
                    found.append((node.lineno, top))
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: stays inside its own package
                found.append((node.lineno, package))
            elif node.module:
                top = node.module.split(".")[0]
                if top in PARTS:
                    found.append((node.lineno, top))
    return found


def violations(package: str) -> list[str]:
    allowed = ALLOWED[package] | {package}
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, part in imported_parts(path, package):
            if part not in allowed:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {part}")
    return bad


@pytest.mark.parametrize("package", PARTS)
def test_package_imports_only_what_its_layer_allows(package: str) -> None:
    assert violations(package) == []


def test_no_bench_edits_the_import_path() -> None:
    """Benches run as modules from the repository root; a `sys.path` edit would hide a wrong import."""
    edits = []
    for path in sorted((ROOT / "bench").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name) \
                    and node.value.id == "sys":
                edits.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert edits == []


def test_the_rule_reader_sees_imports_of_every_form(tmp_path: Path) -> None:
    """The reader must catch lazy, aliased and dotted imports, or the rules above prove nothing."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os\n"
        "import scanner.qr.decode as d\n"
        "from chot.config import x\n"
        "from . import sibling\n"
        "def f():\n"
        "    from dashboard import store\n"
        "    import keys\n",
        encoding="utf-8",
    )
    assert sorted(imported_parts(sample, "verifier")) == [
        (2, "scanner"), (3, "chot"), (4, "verifier"), (6, "dashboard"), (7, "keys"),
    ]


def test_a_forbidden_import_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plant an edge import in a copy of the core and see the layer check name it."""
    core = tmp_path / "verifier"
    core.mkdir()
    (core / "ok.py").write_text("from verifier.base45 import b45decode\nimport common\n", encoding="utf-8")
    (core / "bad.py").write_text("def read():\n    from scanner.qr.decode import read_image\n", encoding="utf-8")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    assert violations("verifier") == ["verifier/bad.py:2 imports scanner"]


# -- import circles ------------------------------------------------------------------------------
CIRCLE_PARTS = PARTS


def module_files(root: Path, parts: tuple[str, ...] = CIRCLE_PARTS) -> dict[str, Path]:
    """Dotted module name -> file, for every module of `parts` under `root` (a package is its __init__)."""
    found: dict[str, Path] = {}
    for part in parts:
        for path in sorted((root / part).rglob("*.py")):
            names = list(path.relative_to(root).with_suffix("").parts)
            if names[-1] == "__init__":
                names.pop()
            found[".".join(names)] = path
    return found


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of `name` that is one of `modules` (an imported name inside a module is the module)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of `modules` that module `name` imports, anywhere in it (functions included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(m for m in (_known(a.name, modules) for a in node.names) if m)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:  # `from pkg import mod` imports the module mod
                target = f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else _known(source, modules)
                if target:
                    found.add(target)
    found.discard(name)
    return found


def import_circles(root: Path, parts: tuple[str, ...] = CIRCLE_PARTS) -> list[list[str]]:
    """Every set of modules that import each other in a circle (Tarjan's strongly connected components)."""
    modules = module_files(root, parts)
    graph = {name: imported_modules(name, path, modules) for name, path in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(start: str) -> None:
        # Iterative, so a deep chain of imports cannot hit the recursion limit.
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    members = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        members.append(member)
                        if member == node:
                            break
                    if len(members) > 1:
                        circles.append(sorted(members))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return sorted(circles)


def test_no_import_circles() -> None:
    assert import_circles(ROOT) == []


def test_a_circle_through_a_lazy_import_is_reported(tmp_path: Path) -> None:
    """A circle closed by an import inside a function, and one through `from pkg import mod`, are both seen."""
    pkg = tmp_path / "scanner"
    (pkg / "qr").mkdir(parents=True)
    (pkg / "__init__.py").write_text("", encoding="utf-8")
    (pkg / "qr" / "__init__.py").write_text("", encoding="utf-8")
    (pkg / "qr" / "a.py").write_text("from scanner.qr.b import thing\n", encoding="utf-8")
    (pkg / "qr" / "b.py").write_text("def thing():\n    from . import a\n", encoding="utf-8")
    (pkg / "c.py").write_text("from scanner.qr import a\n", encoding="utf-8")
    (pkg / "d.py").write_text("import scanner.c\n", encoding="utf-8")
    assert import_circles(tmp_path, ("scanner",)) == [["scanner.qr.a", "scanner.qr.b"]]

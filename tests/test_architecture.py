"""The house plan, checked on the source (no import is executed).

- Packages import in one direction only (`ALLOWED`), which is itself free of cycles.
- No cycle among modules, type-only imports included.
- No project module is imported inside a function, except the documented lazy ones.
- `api/` and `bench/` import `kb` and `ingest` by their public names only: a package's
  `__init__` and a name in its `__all__`, never a module inside.
- No module over 450 lines (schema tables aside), no function over 60 lines.
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("kb", "ingest", "api", "bench")

# Each package and the packages it may import from. Sub-packages belong to their
# parent here (kb.backends.extractive is part of kb.backends); "kb" is kb's top-level
# modules: the question path (service, router, conversation, ...) and `kb/__init__`.
LOWER = ("kb.core", "kb.store", "kb.search", "kb.backends")
ALLOWED: dict[str, set[str]] = {
    "kb.core": set(),
    "kb.store": {"kb.core"},
    "kb.search": {"kb.core", "kb.store"},
    "kb.backends": {"kb.core", "kb.store", "kb.search"},
    "ingest": set(LOWER),
    "kb": set(LOWER),
    "kb.report": {*LOWER, "kb"},
    "api": {*LOWER, "kb", "kb.report", "ingest"},
    "bench": {*LOWER, "kb", "kb.report", "ingest", "api"},
}
# The packages `api/` and `bench/` may import from, by the names in their `__all__`.
PUBLIC = ("kb", "kb.core", "kb.store", "kb.search", "kb.backends", "kb.backends.extractive")
PUBLIC += ("kb.report", "ingest")

# Project imports that stay inside a function, and why.
LAZY = {
    "api.cli": "the CLI imports only the command it runs: `kb --help` and `kb ask` "
    "against a server stay fast (bench/cli_latency.py)",
    "kb.backends": "each backend module imports its SDK (openai, anthropic, xllamacpp); "
    "only the chosen one is loaded",
    "bench.scale_bench": "each phase runs in a fresh process and loads only what it "
    "measures, so its memory figure is that phase's",
    "bench.scale_phases": "each phase runs in a fresh process and loads only what it "
    "measures, so its memory figure is that phase's",
    "bench.ingest_bench": "each side runs in a fresh process and loads only its own "
    "modules (ours or the llama-index baseline), so neither pays for the other's",
}
MAX_MODULE_LINES = 450
SCHEMA_TABLES = {"api/schemas.py"}  # the API's request and response models, field by field
MAX_FUNCTION_LINES = 60


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module (a package's `__init__` is the package's name)
    names: tuple[str, ...]  # for `from target import names`; () for `import target`
    line: int
    inner: bool  # inside a function
    type_only: bool  # under `if TYPE_CHECKING:`


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for source in SOURCES
        for path in sorted((ROOT / source).rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def package_of(module: str) -> str:
    """The package a module belongs to for the direction rule."""
    parts = module.split(".")
    if parts[0] == "kb" and len(parts) > 1 and f"kb.{parts[1]}" in ALLOWED:
        return f"kb.{parts[1]}"
    return parts[0]


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def _target(name: str, source: str) -> str | None:
    """The project module `name` refers to (a bench importing a sibling by file name,
    as bench scripts once did, still resolves)."""
    known = modules()
    if source.startswith("bench.") and f"bench.{name}" in known:
        return f"bench.{name}"
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


@cache
def imports(module: str) -> tuple[Import, ...]:
    path = modules()[module]
    tree = ast.parse(path.read_text("utf-8"))
    found: list[Import] = []

    def visit(node: ast.AST, inner: bool, type_only: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if target := _target(alias.name, module):
                    found.append(Import(module, target, (), node.lineno, inner, type_only))
        elif isinstance(node, ast.ImportFrom):
            full = _resolve(node, module, path.name == "__init__.py")
            for alias in node.names:
                # `from kb.store import corpus` imports the module kb.store.corpus.
                target = _target(f"{full}.{alias.name}", module)
                if target == f"{full}.{alias.name}":
                    found.append(Import(module, target, (), node.lineno, inner, type_only))
                elif target := _target(full, module):
                    found.append(
                        Import(module, target, (alias.name,), node.lineno, inner, type_only)
                    )
        inner = inner or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        guarded = isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for child in ast.iter_child_nodes(node):
            visit(child, inner, type_only or guarded)

    visit(tree, False, False)
    return tuple(found)


def all_imports() -> list[Import]:
    return [found for module in modules() for found in imports(module)]


def exported(package: str) -> set[str]:
    """The names in a public package's `__all__`."""
    return set(importlib.import_module(package).__all__)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node, and self-loops (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def strong(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                strong(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            part = []
            while True:
                top = stack.pop()
                part.append(top)
                if top == node:
                    break
            if len(part) > 1 or node in graph.get(node, ()):
                found.append(sorted(part))

    for node in sorted(graph):
        if node not in index:
            strong(node)
    return found


def test_the_package_rules_form_no_cycle() -> None:
    assert cycles(ALLOWED) == []


def test_every_module_belongs_to_a_known_package() -> None:
    assert {package_of(m) for m in modules()} <= set(ALLOWED)


def test_packages_import_only_the_packages_below_them() -> None:
    wrong = [
        f"{i.source}:{i.line} imports {i.target}"
        for i in all_imports()
        if package_of(i.target) != package_of(i.source)
        and package_of(i.target) not in ALLOWED[package_of(i.source)]
    ]
    assert wrong == []


def test_no_import_cycle_among_modules() -> None:
    graph: dict[str, set[str]] = {m: set() for m in modules()}
    for found in all_imports():
        graph[found.source].add(found.target)
    assert cycles(graph) == []


def test_no_project_import_inside_a_function_but_the_documented_lazy_ones() -> None:
    hidden = [
        f"{i.source}:{i.line} imports {i.target}"
        for i in all_imports()
        if i.inner and i.source not in LAZY
    ]
    assert hidden == []


def test_api_and_bench_use_public_names_only() -> None:
    deep = []
    for found in all_imports():
        if package_of(found.source) not in ("api", "bench"):
            continue
        if package_of(found.target) in ("api", "bench"):
            continue
        if found.target not in PUBLIC or not found.names:
            deep.append(f"{found.source}:{found.line} imports {found.target} (not public)")
        elif unknown := set(found.names) - exported(found.target):
            deep.append(f"{found.source}:{found.line}: {sorted(unknown)} not in {found.target}")
    assert deep == []


def test_public_names_exist() -> None:
    """Every name in a public `__all__` is there, and where a package loads its names on
    first use (`kb`, `ingest`), its type-checking imports say the same as its table."""
    for package in PUBLIC:
        module = importlib.import_module(package)
        assert [n for n in module.__all__ if not hasattr(module, n)] == [], package
        lazy = getattr(module, "_FROM", None)
        if lazy is not None:
            typed = {(i.target, name) for i in imports(package) if i.type_only for name in i.names}
            assert typed == {(m, n) for m, names in lazy.items() for n in names}, package
            assert set(module.__all__) - {"__version__"} == set(module._MODULE_OF), package


def test_no_module_over_its_line_limit() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in modules().values()
        if (n := len(path.read_text("utf-8").splitlines())) > MAX_MODULE_LINES
        and str(path.relative_to(ROOT)) not in SCHEMA_TABLES
    }
    assert long == {}


def test_no_function_over_its_line_limit() -> None:
    long = {}
    for module, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > MAX_FUNCTION_LINES:
                    long[f"{module}.{node.name}:{node.lineno}"] = size
    assert long == {}


def test_the_checks_see_what_they_check() -> None:
    """The walk finds what is known to be there: a guard against a check that passes
    because it reads nothing."""
    assert len(modules()) > 100
    service = {i.target for i in imports("kb.service")}
    assert {"kb.search.retrieval", "kb.store.corpus", "kb.router"} <= service
    lazy = [i for i in imports("api.cli") if i.inner]
    assert any(i.target == "api.cli_ask" for i in lazy)
    assert cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]

"""Structural checks: the pure core stays pure."""

import ast
from pathlib import Path

import pytest

import retrainer

SRC = Path(retrainer.__file__).parent
CORE_FILES = sorted((SRC / "core").rglob("*.py"))

# Layers above the core (DESIGN.md: imports only go down).
UPPER_LAYERS = (
    "retrainer.adapters",
    "retrainer.engine",
    "retrainer.server",
    "retrainer.cli",
    "retrainer.integrations",
)
# Libraries that exist to do I/O, talk to a database or the web, or render: adapters' business.
IO_LIBRARIES = (
    "pandas",
    "pyarrow",
    "sqlalchemy",
    "alembic",
    "duckdb",
    "fsspec",
    "s3fs",
    "skops",
    "joblib",
    "fastapi",
    "starlette",
    "httpx",
    "requests",
    "typer",
    "rich",
    "yaml",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every module `path` imports, relative imports resolved."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(base_parts)
                prefix = f"{base}.{node.module}" if node.module else base
            else:
                prefix = node.module or ""
            found.add(prefix)
            # `from retrainer import engine` imports the engine package itself
            found.update(f"{prefix}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_core_files_are_found():
    assert SRC / "core" / "__init__.py" in CORE_FILES


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_core_imports_nothing_from_upper_layers(path):
    bad = sorted(
        name for name in imported_modules(path) if any(_within(name, up) for up in UPPER_LAYERS)
    )
    assert not bad, f"{path.relative_to(SRC)} imports from layers above core: {bad}"


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_core_imports_no_io_libraries(path):
    bad = sorted(
        name for name in imported_modules(path) if any(_within(name, lib) for lib in IO_LIBRARIES)
    )
    assert not bad, (
        f"{path.relative_to(SRC)} imports I/O libraries, which belong in adapters: {bad}"
    )


@pytest.mark.parametrize(
    ("source", "filename", "expected"),
    [
        ("from ..adapters import artifacts", "core/x.py", "retrainer.adapters.artifacts"),
        ("from .. import engine", "core/x.py", "retrainer.engine"),
        ("from . import metrics", "core/__init__.py", "retrainer.core.metrics"),
        ("import retrainer.cli as cli", "core/x.py", "retrainer.cli"),
    ],
)
def test_import_resolution(tmp_path, monkeypatch, source, filename, expected):
    fake_src = tmp_path / "retrainer"
    path = fake_src / filename
    path.parent.mkdir(parents=True)
    path.write_text(source + "\n", encoding="utf-8")
    monkeypatch.setattr(f"{__name__}.SRC", fake_src)
    assert expected in imported_modules(path)


def test_public_api_is_sorted_and_complete():
    assert retrainer.__all__ == sorted(retrainer.__all__)
    for name in retrainer.__all__:
        assert getattr(retrainer, name) is not None, name


def test_every_public_error_derives_from_the_root_and_a_builtin():
    import inspect

    from retrainer import errors

    for name, cls in inspect.getmembers(errors, inspect.isclass):
        if cls is errors.RetrainerError or not issubclass(cls, Exception):
            continue
        assert issubclass(cls, errors.RetrainerError), name
        builtin_bases = [
            b
            for b in cls.__mro__
            if b.__module__ == "builtins" and b not in (object, BaseException, Exception)
        ]
        assert builtin_bases, f"{name} should also derive from a builtin error"


ENGINE_FILES = sorted((SRC / "engine").rglob("*.py"))


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    reach, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in reach:
                reach.add(nxt)
                todo.append(nxt)
    return reach


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import one another, directly or not (sorted, each group
    once): ``graph`` maps a module to the modules it imports."""
    reach = {name: _reachable(graph, name) for name in graph}
    groups = {
        tuple(sorted(n for n in reach[name] if name in reach.get(n, ())))
        for name in graph
        if name in reach[name]
    }
    return sorted(list(g) for g in groups)


def engine_import_graph() -> dict[str, set[str]]:
    """Engine module -> the engine modules it imports, at module level or inside a function
    (a deferred import hides a cycle from Python, not from the reader)."""
    modules = {_module_name(p): p for p in ENGINE_FILES}
    return {
        name: {m for m in imported_modules(path) if m in modules and m != name}
        for name, path in modules.items()
    }


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ],
)
def test_import_cycles_finds_cycles(graph, expected):
    assert import_cycles(graph) == expected


def test_engine_modules_have_no_import_cycles():
    graph = engine_import_graph()
    assert "retrainer.engine.runs.run" in graph
    assert not import_cycles(graph), f"engine import cycles: {import_cycles(graph)}"


# The read commands answer at once: they read a few rows and must not pay for the libraries
# that train, test or load data (scikit-learn + scipy alone take 1.5 s to import, numpy 0.1 s).
HEAVY_FOR_READS = (
    "sklearn",
    "scipy",
    "river",
    "pandas",
    "duckdb",
    "matplotlib",
    "plotly",
    "numpy",
)
_READ_COMMANDS = """
import sys
from typer.testing import CliRunner
from retrainer.cli import app

for args in ({commands}):
    result = CliRunner().invoke(app, [*args, "-c", sys.argv[1]] if args != ["--help"] else args)
    assert result.exit_code == 0, (args, result.output)
print(" ".join(sorted({{m.split(".")[0] for m in sys.modules}})))
"""


def test_read_commands_import_no_heavy_library(tmp_path):
    import subprocess
    import sys

    from retrainer.core.clock import SimulatedClock
    from retrainer.engine.project import Project
    from retrainer.engine.runs.run import execute_run
    from tests.conftest import write_project

    proj = write_project(tmp_path / "p", triggers=[{"schedule": "0 0 * * *"}])
    with Project.open(proj) as project:
        from datetime import UTC, datetime

        assert execute_run(project, clock=SimulatedClock(datetime(2024, 1, 20, tzinfo=UTC))).ok
    commands = [["--help"], ["status"], ["models", "list"], ["models", "show", "1"], ["events"]]
    code = _READ_COMMANDS.format(commands=", ".join(map(repr, commands)))
    done = subprocess.run(
        [sys.executable, "-c", code, str(proj)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert "retrainer" in loaded and "sqlalchemy" in loaded  # it did read the store
    assert not loaded & set(HEAVY_FOR_READS), sorted(loaded & set(HEAVY_FOR_READS))

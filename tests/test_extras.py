"""Optional extras: the core install pulls none of them; a missing one is a one-line error
naming the extra, from the command a user runs."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retrainer.cli import app
from retrainer.extras import EXTRAS, MissingExtraError, missing_extra, require
from retrainer.testing import write_project

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
DISTRIBUTIONS = {  # extra -> the distributions that bring EXTRAS[extra]
    "postgres": {"psycopg"},
    "s3": {"s3fs"},
    "dask": {"distributed"},
    "serve": {"fastapi", "uvicorn", "prometheus-client"},
    "airflow": {"apache-airflow"},
    "prefect": {"prefect"},
    "mlflow": {"mlflow"},
}


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower()


def test_the_core_install_pulls_no_extra():
    core = {_name(r) for r in PYPROJECT["dependencies"]}
    for extra, dists in DISTRIBUTIONS.items():
        assert not core & dists, f"{extra}'s {core & dists} are core dependencies"


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_every_extra_is_declared_with_its_packages(extra: str):
    declared = {_name(r) for r in PYPROJECT["optional-dependencies"].get(extra, [])}
    assert DISTRIBUTIONS[extra] <= declared, f"pyproject.toml's [{extra}] lacks some of them"


def test_the_error_is_one_line_naming_the_extra():
    err = missing_extra("mlflow", "mlflow", "The MLflow mirror")
    assert isinstance(err, MissingExtraError) and isinstance(err, ImportError)
    assert "\n" not in str(err) and "pip install 'retrainer[mlflow]'" in str(err)
    with pytest.raises(ValueError, match="unknown extra"):
        missing_extra("gpu", "cuda", "x")


def test_a_broken_install_is_not_reported_as_a_missing_extra(tmp_path, monkeypatch):
    """The package is there but one of its own imports fails: that error, not ours."""
    (tmp_path / "fake_extra_pkg").mkdir()
    (tmp_path / "fake_extra_pkg" / "__init__.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_xyz"):
        require("fake_extra_pkg", extra="dask", needed_for="x")
    monkeypatch.setitem(sys.modules, "absent_pkg", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'retrainer\[dask\]'"):
        require("absent_pkg", extra="dask", needed_for="x")


def _blocked(monkeypatch, *modules: str) -> None:
    for name in list(sys.modules):
        if any(name == m or name.startswith(m + ".") for m in modules):
            monkeypatch.delitem(sys.modules, name)
    for m in modules:
        monkeypatch.setitem(sys.modules, m, None)  # `import m` raises ImportError


def _one_line_error(result, extra: str) -> None:
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if "retrainer[" in line]
    assert lines and f"pip install 'retrainer[{extra}]'" in lines[0], result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("extra", "modules", "storage"),
    [
        ("s3", ("s3fs",), "artifacts_url: s3://bucket/artifacts"),
        ("postgres", ("psycopg", "psycopg2"), "db_url: postgresql://u@127.0.0.1/db"),
    ],
)
def test_a_store_url_without_its_extra(tmp_path, monkeypatch, extra, modules, storage):
    root = write_project(tmp_path / "p")
    config = root / "retrainer.yaml"
    config.write_text(f"storage:\n  {storage}\n" + config.read_text())
    _blocked(monkeypatch, *modules)
    result = CliRunner().invoke(app, ["status", "--config", str(config)])
    _one_line_error(result, extra)


def test_serve_without_its_extra(tmp_path, monkeypatch):
    root = write_project(tmp_path / "p")
    _blocked(monkeypatch, "uvicorn")
    result = CliRunner().invoke(app, ["serve", "--config", str(root / "retrainer.yaml")])
    _one_line_error(result, "serve")

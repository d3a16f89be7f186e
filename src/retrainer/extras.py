"""Optional dependencies: the extras of ``pip install 'retrainer[...]'`` and the one-line error
that names the extra to install when a feature's package is missing.

``pip install retrainer`` is the embedded default (SQLite, local files, Parquet + DuckDB); each
extra adds what one way of scaling out needs, and nothing imports it until that feature is
used, so a missing extra costs nothing until then.

Examples
--------
>>> str(missing_extra("dask", "distributed", "The dask executor"))
"The dask executor needs the 'distributed' package. Install it with: pip install 'retrainer[dask]'"
>>> require("json", extra="dask", needed_for="JSON").__name__
'json'
"""

from __future__ import annotations

import importlib
from types import ModuleType

from retrainer.errors import ConfigError

__all__ = ["EXTRAS", "MissingExtraError", "missing_extra", "require"]

EXTRAS: dict[str, tuple[str, ...]] = {
    "postgres": ("psycopg",),
    "s3": ("s3fs",),
    "dask": ("distributed",),
    "serve": ("fastapi", "uvicorn", "prometheus_client"),
    "airflow": ("airflow",),
    "prefect": ("prefect",),
    "mlflow": ("mlflow",),
}
"""Extra -> the modules it installs that retrainer imports (pyproject.toml lists the
distributions; tests/test_extras.py checks the two agree)."""


class MissingExtraError(ConfigError, ImportError):
    """A feature's optional package is not installed; the message names the extra."""


def missing_extra(extra: str, package: str, needed_for: str) -> MissingExtraError:
    """The error for ``needed_for`` lacking ``package``: one line, naming ``extra``."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; known: {', '.join(EXTRAS)}")
    return MissingExtraError(
        f"{needed_for} needs the {package!r} package. "
        f"Install it with: pip install 'retrainer[{extra}]'"
    )


def require(module: str, *, extra: str, needed_for: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        # a package that is there but fails to import for another reason says so
        missing = getattr(exc, "name", None) or module
        if missing.split(".")[0] != module.split(".")[0] and missing not in EXTRAS[extra]:
            raise
        raise missing_extra(extra, module.split(".")[0], needed_for) from None

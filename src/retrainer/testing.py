"""Factories for tests: retrainer's own and yours.

Small data with a known drift, a valid pipeline mapping, and projects on in-memory stores (or
written to a folder, for the CLI), with the simulated clock and the recording notifier that
tests drive them with.

Examples
--------
>>> from datetime import datetime, timezone
>>> from retrainer import execute_run
>>> from retrainer.testing import SimulatedClock, in_memory_project
>>> project = in_memory_project()
>>> result = execute_run(project, clock=SimulatedClock(datetime(2024, 1, 20, tzinfo=timezone.utc)))
>>> result.promoted, project.store.get_alias("toy", "champion")
(True, 1)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from retrainer.adapters.notifiers import RecordingNotifier
from retrainer.core.clock import Clock, SimulatedClock

if TYPE_CHECKING:
    from retrainer.adapters.sources import Source
    from retrainer.engine.project import Project

__all__ = [
    "RecordingNotifier",
    "SimulatedClock",
    "drifting_frame",
    "in_memory_project",
    "pipeline_spec",
    "postgres_database",
    "write_project",
]


def drifting_frame(
    n: int = 600,
    seed: int = 0,
    start: str = "2024-01-01",
    *,
    shift_after: str | None = None,
    shift: float = 1.5,
    flip_after: str | None = None,
) -> pd.DataFrame:
    """Hourly rows of a binary problem whose label depends on ``x1 + 0.5 * x2`` with noise.

    Columns: ``ts`` (hourly from ``start``), ``x1``, ``x2`` (standard normal), ``segment``
    (``"a"`` every third row, else ``"b"``) and ``y`` (0/1). Two drifts can be added from a
    time on: ``shift_after`` moves ``x1`` by ``shift`` (data drift), ``flip_after`` inverts
    the label (concept drift). The same arguments give the same frame.

    Examples
    --------
    >>> frame = drifting_frame(48, shift_after="2024-01-02")
    >>> list(frame.columns), len(frame)
    (['ts', 'x1', 'x2', 'segment', 'y'], 48)
    >>> bool(frame["x1"][24:].mean() > frame["x1"][:24].mean() + 1)
    True
    """
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    y = ((x1 + 0.5 * x2 + rng.normal(scale=0.5, size=n)) > 0).astype(int)
    frame = pd.DataFrame(
        {
            "ts": pd.date_range(start, periods=n, freq="h"),
            "x1": x1,
            "x2": x2,
            "segment": np.where(np.arange(n) % 3 == 0, "a", "b"),
            "y": y,
        }
    )
    if shift_after is not None:
        late = frame["ts"] >= pd.Timestamp(shift_after)
        frame.loc[late, "x1"] += shift
    if flip_after is not None:
        late = frame["ts"] >= pd.Timestamp(flip_after)
        frame.loc[late, "y"] = 1 - frame.loc[late, "y"]
    return frame


def pipeline_spec(**overrides: Any) -> dict[str, Any]:
    """A valid pipeline of ``retrainer.yaml`` (a mapping) over :func:`drifting_frame`'s
    columns: pipeline ``toy``, a logistic regression, accuracy and ROC AUC, a quarter of the
    window held out, accuracy at least 0.6 and at most 0.05 below the champion's, no sanity
    check. ``overrides`` replace top-level keys.

    Examples
    --------
    >>> from retrainer import parse_config
    >>> parse_config({"pipelines": [pipeline_spec(name="other")]}).pipeline().name
    'other'
    """
    spec: dict[str, Any] = {
        "name": "toy",
        "source": {"kind": "parquet", "url": "data.parquet", "time_column": "ts"},
        "target": "y",
        "features": ["x1", "x2"],
        "model": {
            "estimator": "sklearn.linear_model:LogisticRegression",
            "params": {"max_iter": 200},
        },
        "metrics": ["accuracy", "roc_auc"],
        "blessing": {
            "holdout": 0.25,
            "rules": [
                {"metric": "accuracy", "min": 0.6},
                {"metric": "accuracy", "max_regression": 0.05},
            ],
            "sanity": {"enabled": False},
        },
    }
    spec.update(overrides)
    return spec


def in_memory_project(
    data: pd.DataFrame
    | Callable[[datetime | None, datetime | None], pd.DataFrame]
    | Source
    | None = None,
    *,
    settings: Mapping[str, Any] | None = None,
    root: str | os.PathLike[str] | None = None,
    clock: Clock | None = None,
    **overrides: Any,
) -> Project:
    """A project of one pipeline, :func:`pipeline_spec` ``(**overrides)``, on in-memory
    stores, reading ``data`` instead of the file its spec names.

    Parameters
    ----------
    data
        A DataFrame (default: ``drifting_frame(800)``), a function ``load(start, end)`` or a
        Source.
    settings
        Other top-level keys of ``retrainer.yaml`` (``controller``, ``alerts``,
        ``serialization``).
    root, clock
        As for :meth:`Project.in_memory <retrainer.Project.in_memory>`.
    """
    from retrainer.adapters.sources import CallableSource
    from retrainer.config import parse_config
    from retrainer.engine.project import Project

    spec = pipeline_spec(**overrides)
    config = parse_config({**(settings or {}), "pipelines": [spec]})
    frame = drifting_frame(800) if data is None else data
    source: Source
    if isinstance(frame, pd.DataFrame):
        source = CallableSource(lambda start, end: frame, time_column="ts", name="test")
    elif callable(frame):
        source = CallableSource(frame, time_column="ts", name="test")
    else:
        source = frame
    return Project.in_memory(config, root, sources={spec["name"]: source}, clock=clock)


def write_project(
    root: str | os.PathLike[str], frame: pd.DataFrame | None = None, **overrides: Any
) -> Path:
    """A project folder holding ``data.parquet`` (``frame``, default :func:`drifting_frame`)
    and a ``retrainer.yaml`` of one pipeline, :func:`pipeline_spec` ``(**overrides)``;
    returns the folder (for the CLI and the daemon).

    Examples
    --------
    >>> import tempfile
    >>> from retrainer import Project
    >>> with tempfile.TemporaryDirectory() as tmp, Project.open(write_project(tmp)) as project:
    ...     project.pipeline().name
    'toy'
    """
    import yaml

    folder = Path(root)
    folder.mkdir(parents=True, exist_ok=True)
    (drifting_frame() if frame is None else frame).to_parquet(folder / "data.parquet")
    config = {"pipelines": [pipeline_spec(**overrides)]}
    (folder / "retrainer.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


@contextlib.contextmanager
def postgres_database(base_url: str, prefix: str = "rt") -> Iterator[str]:
    """A fresh database on the PostgreSQL server of ``base_url`` (a SQLAlchemy URL): its URL,
    the database dropped on exit (for the tests, the chaos campaign and the benchmarks that
    need a store of their own on a shared server).

    Examples
    --------
    >>> with postgres_database("postgresql+psycopg://u@db/postgres") as url:  # doctest: +SKIP
    ...     url.startswith("postgresql+psycopg://u@db/rt_")
    True
    """
    import uuid

    import sqlalchemy as sa

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
        yield base_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with contextlib.suppress(Exception), admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()

"""``backtest.yaml``: which pipeline to replay, how, and the policies to compare.

The Pydantic models of the backtest's own file (``retrainer backtest``, docs/backtest.md),
validated like ``retrainer.yaml`` (:mod:`retrainer.config`): one line per problem.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from retrainer.config import CONFIG_FILE, WindowConfig, _Model, _read_yaml, _validate
from retrainer.errors import ConfigError

BACKTEST_FILE = "backtest.yaml"


class CostConfig(_Model):
    """What retraining costs and what a metric point is worth (all zero: use ``tolerance``)."""

    per_retrain: float = Field(default=0.0, ge=0)
    per_cpu_second: float = Field(default=0.0, ge=0)
    per_metric_point: float = Field(default=0.0, ge=0)


class DegradationConfig(_Model):
    """Frozen models trained every ``every`` batches, scored for ``max_age`` batches."""

    enabled: bool = True
    every: int = Field(default=7, ge=1)
    max_age: int = Field(default=90, ge=1)
    window: WindowConfig | None = None


class BacktestExecutorConfig(_Model):
    """Where policies run: a process pool (default), this process, or a Dask cluster."""

    kind: Literal["process", "inline", "dask"] = "process"
    max_workers: int | None = Field(default=None, ge=1)
    address: str | None = None


class BacktestConfig(_Model):
    """``backtest.yaml``: which pipeline to replay, how, and the policies to compare."""

    project: str = CONFIG_FILE
    pipeline: str | None = None
    batch: str = "1d"
    warm_start: float | str = 0.1
    label_delay: int | str = 0
    select_until: float | str = 0.5
    metric: str | None = None
    tolerance: float = Field(default=0.5, ge=0)
    cpu_tolerance: float = Field(default=0.25, ge=0)
    recommend_baselines: bool = False
    cost: CostConfig = Field(default_factory=CostConfig)
    degradation: DegradationConfig = Field(default_factory=DegradationConfig)
    executor: BacktestExecutorConfig = Field(default_factory=BacktestExecutorConfig)
    cache: bool = True
    policies: list[dict[str, Any]] = Field(default_factory=list)
    grid: list[dict[str, list[Any]]] = Field(default_factory=list)

    @field_validator("degradation", mode="before")
    @classmethod
    def _degradation_switch(cls, value: Any) -> Any:
        # ``degradation: false`` (or true) turns the curve off (on) with its defaults
        return {"enabled": value} if isinstance(value, bool) else value

    @field_validator("warm_start", "select_until")
    @classmethod
    def _fraction(cls, value: float | str) -> float | str:
        if isinstance(value, float | int) and not 0 < value < 1:
            raise ValueError("a fraction must be between 0 and 1 (exclusive)")
        return value

    @field_validator("select_until")
    @classmethod
    def _date(cls, value: float | str) -> float | str:
        if isinstance(value, str):
            import pandas as pd  # the replay reads the date with pandas too

            try:
                readable = not pd.isna(pd.Timestamp(value))
            except (ValueError, TypeError):
                readable = False
            if not readable:
                raise ValueError("expected a fraction between 0 and 1 (exclusive) or a date")
        return value

    def with_options(self, origin: str, **updates: Any) -> BacktestConfig:
        """This configuration with command-line ``updates``, validated as the file is."""
        return _validate(BacktestConfig, {**self.model_dump(), **updates}, origin)


def load_backtest_config(path: str | os.PathLike[str]) -> tuple[BacktestConfig, Path]:
    """Read and validate a ``backtest.yaml``; one line per problem, as for retrainer.yaml."""
    file = Path(path)
    if file.is_dir():
        file = file / BACKTEST_FILE
    if not file.is_file():
        raise ConfigError(f"no backtest configuration at {file}")
    data = _read_yaml(file) or {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{file}: expected a mapping at the top level")
    return _validate(BacktestConfig, data, str(file)), file.resolve()

"""The backtest's results, typed: what ``results.json`` holds, the report draws and the CLI shows.

Each class is a frozen value whose fields are named as the keys of ``results.json`` (schema
version 1), in the same order; :meth:`BacktestSummary.to_json` gives that document.

Examples
--------
>>> FailedPolicy(name="daily", error="no labels").to_json()
{'name': 'daily', 'error': 'no labels'}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrainer.core.backtest import CostModel
from retrainer.core.jsonsafe import json_safe

Scores = Mapping[str, float | None]
"""A metric name to its value on a part of the replay (None: undefined there)."""


def _plain(value: Any) -> Any:
    if hasattr(value, "to_json"):
        return value.to_json()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class _Document:
    """``to_json``: the fields, in order, as strict JSON data."""

    __slots__ = ()

    def to_json(self) -> dict[str, Any]:
        fields = dataclasses.fields(self)  # type: ignore[arg-type]
        out = {f.name: _plain(getattr(self, f.name)) for f in fields}
        safe: dict[str, Any] = json_safe(out)
        return safe


@dataclass(frozen=True, slots=True, kw_only=True)
class Dataset(_Document):
    """The replayed data and how it was cut."""

    pipeline: str
    source: str
    rows: int
    start: str
    end: str
    batch: str
    batches: int
    warm_start_end: str
    label_delay: str
    select_until: str
    selection_batches: int
    held_out_batches: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Series(_Document):
    """A policy's metrics per batch: batch ends, rows, and each metric (None: undefined)."""

    end: tuple[str, ...]
    n: tuple[int, ...]
    values: Mapping[str, tuple[float | None, ...]]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = json_safe({"end": self.end, "n": self.n, **self.values})
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyResult(_Document):
    """One replayed policy: its scores on each part, its cost, and its role."""

    name: str
    params: Mapping[str, Any]
    metric: Scores
    """On the whole replay."""
    selection: Scores
    held_out: Scores
    retrains: int
    promotions: int
    train_cpu_s: float
    retrains_held_out: int
    train_cpu_s_held_out: float
    retrains_selection: int
    train_cpu_s_selection: float
    watched_selection: int
    wall_s: float
    failed_runs: tuple[str, ...]
    cost: float | None
    series: Series
    retrained_at: tuple[str, ...]
    promoted_at: tuple[str, ...]
    pareto: bool = False
    excluded: str | None = None
    """Why it may not be recommended: ``"untested"`` (``"baseline"`` in older results), or
    None."""
    folds: tuple[float | None, ...] = ()
    """Its primary metric on each consecutive fold of the selection part."""
    regret: float | None = None
    """Its regret over those folds (points, or % for a loss): what the selection read."""
    cpu_share: float | None = None
    """Its held-out training CPU as a share of the always-retrain reference's."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FailedPolicy(_Document):
    """A policy that could not run on this data, and why."""

    name: str
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison(_Document):
    """``a`` minus ``b`` on a part of the replay, with its bootstrap interval."""

    a: str
    b: str
    part: str
    mean: float
    low: float | None
    high: float | None
    significant: bool
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Degradation(_Document):
    """A frozen model's metric by age, against the always-retrained control."""

    ages: tuple[int, ...]
    mean: tuple[float | None, ...]
    low: tuple[float | None, ...]
    high: tuple[float | None, ...]
    n_models: tuple[int, ...]
    control: float
    age_at_loss: Mapping[str, int | None]
    """Points lost (``"0.5"``, ``"1"``, ...) to the first age that lost them (None: never)."""
    window: Mapping[str, Any]
    every: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RecommendedPolicy(_Document):
    """The recommended policy, why, and its configuration."""

    name: str
    rule: str
    reason: str
    params: Mapping[str, Any]
    selection: Scores
    held_out: Scores
    retrains_held_out: int
    train_cpu_s_held_out: float
    yaml_path: str
    snippet: str
    regret: float | None = None
    """Held-out: how far below the hindsight bound it is (points, or % for a loss)."""
    within_noise: bool | None = None
    """True when, on the selection part, it is not shown to differ from its closest rival:
    the choice rests on differences within noise."""
    noise: str | None = None
    """That comparison in words."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Bound(_Document):
    """A named policy's held-out figures: the always-retrain reference, or the hindsight bound."""

    name: str
    held_out: float | None
    train_cpu_s_held_out: float
    cpu_share: float | None
    """Its held-out training CPU as a share of the reference's."""
    gap: float | None = None
    """Bound only: held-out bound minus reference (points, or % of the reference for a loss;
    positive: better)."""
    max_cpu_share: float | None = None
    """Bound only: the policies it is chosen among cost at most this share of the reference."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestSummary(_Document):
    """The whole result of a backtest: the content of ``results.json``.

    ``seconds``, ``cached_policies`` and ``project`` are known once the backtest ran (None in
    a summary of given runs) and only then written.
    """

    version: int = 1
    title: str
    dataset: Dataset
    metric: str
    greater_is_better: bool
    metrics: tuple[str, ...]
    cost_model: CostModel
    tolerance: float
    cpu_tolerance: float
    policies: tuple[PolicyResult, ...]
    failed_policies: tuple[FailedPolicy, ...]
    comparisons: tuple[Comparison, ...]
    degradation: Degradation | None
    recommended: RecommendedPolicy
    oracle: str
    units: str = "points"
    """How differences of ``metric`` are written: ``"points"`` (0.01 of a rate in [0, 1]) or
    ``"units"`` (a loss, error or R² in its own units; regrets and tolerances in %)."""
    definition: str = "pooled"
    """The statistic of the table, the recommendation and the intervals: ``metric`` pooled
    over all the rows of a part; intervals resample whole batches and recompute it."""
    folds: int = 0
    """Consecutive folds of the selection part the policies were scored on (0: one part)."""
    reference: Bound | None = None
    hindsight: Bound | None = None
    seconds: float | None = None
    cached_policies: int | None = None
    project: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``results.json`` document.

        Examples
        --------
        >>> import dataclasses
        >>> [f.name for f in dataclasses.fields(BacktestSummary)][:4]
        ['version', 'title', 'dataset', 'metric']
        """
        out = _Document.to_json(self)
        for key in ("seconds", "cached_policies", "project"):
            if out[key] is None:
                del out[key]
        return out

    def policy(self, name: str) -> PolicyResult:
        """The policy called ``name``; ``KeyError`` if none is."""
        for p in self.policies:
            if p.name == name:
                return p
        raise KeyError(name)


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestResult:
    """What ``retrainer backtest`` produced: the summary and the files written."""

    results: BacktestSummary
    out_dir: Path
    report: Path
    png: Path
    json_path: Path
    yaml_path: Path
    cached: int


def degradation_points(document: Mapping[str, Any]) -> list[tuple[float, float]]:
    """A ``results.json`` document's time-to-degrade curve as the cost-aware trigger reads it.

    ``(age in days, loss)`` pairs: each age of the curve (in batches, 0 the first batch
    after training) at the middle of its batch, and the metric lost against the always-retrained
    control in the metric's units, positive = worse. Empty without a curve.

    Examples
    --------
    >>> degradation_points({"dataset": {"batch": "1d"}, "greater_is_better": True,
    ...     "degradation": {"ages": [0, 1], "mean": [0.9, 0.88], "control": 0.9}})
    [(0.5, 0.0), (1.5, 0.02)]
    """
    from retrainer.core.windows import parse_duration

    curve = document.get("degradation") or {}
    control = curve.get("control")
    if control is None or not curve.get("ages"):
        return []
    days = parse_duration(str(document["dataset"]["batch"])).total_seconds() / 86400
    sign = 1.0 if document.get("greater_is_better", True) else -1.0
    return [
        ((age + 0.5) * days, round(sign * (float(control) - float(mean)), 12))
        for age, mean in zip(curve["ages"], curve["mean"], strict=True)
        if mean is not None
    ]

"""The backtest's summary: the policies' runs scored, compared and one recommended.

The rules that choose (which policies may be recommended, the selection, the control) are
pure and live in :mod:`retrainer.core.backtest` (:func:`~retrainer.core.backtest.recommend`);
this module measures the runs they read and assembles the :class:`BacktestSummary`.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import Any

import numpy as np
import pandas as pd
import yaml

from retrainer.core.backtest import (
    CostModel,
    Difference,
    PolicyFigures,
    degradation_curve,
    pareto_front,
    recommend,
)
from retrainer.core.jsonsafe import json_safe
from retrainer.core.metrics import get_metric
from retrainer.core.pooled import BatchStatistic, batch_statistic, in_points, pooled_difference
from retrainer.core.selection import regret
from retrainer.engine.backtest.grid import fmt_duration
from retrainer.engine.backtest.replay import POLICY_KEYS, PolicyRun, Replay, pooled_metric
from retrainer.engine.backtest.results import (
    BacktestSummary,
    Bound,
    Comparison,
    Dataset,
    Degradation,
    FailedPolicy,
    PolicyResult,
    RecommendedPolicy,
    Series,
)
from retrainer.errors import DataError


def _part(run: PolicyRun, rows: slice, metrics: Sequence[str]) -> dict[str, float | None]:
    y_score = run.y_score[rows] if run.y_score is not None else None
    out = {}
    for m in metrics:
        v = pooled_metric(m, run.y_true[rows], run.y_pred[rows], y_score)
        out[m] = None if v != v else round(v, 6)
    return out


FOLDS = 3
"""Consecutive folds of the selection part every policy is scored on (robust selection)."""
MAX_CPU_SHARE = 0.2
"""The hindsight bound is the best held-out policy costing at most this share of the
reference's held-out training CPU."""


def _stat(run: PolicyRun, rows: np.ndarray, lo: int, b0: int, b1: int, metric: str) -> Any:
    """``metric`` pooled over batches ``[b0, b1)`` of ``run`` (rows from ``lo``), resamplable."""
    a, z = int(rows[b0] - lo), int(rows[b1] - lo)
    y_score = run.y_score[a:z] if run.y_score is not None else None
    return batch_statistic(metric, run.y_true[a:z], run.y_pred[a:z], y_score, run.n[b0:b1])


def _folds(run: PolicyRun, rows: np.ndarray, k: int, metric: str, n_folds: int) -> list[float]:
    """``metric`` pooled on each of ``n_folds`` consecutive folds of the first ``k`` batches."""
    if k < 2 * n_folds:
        return []
    cuts = [round(k * f / n_folds) for f in range(n_folds + 1)]
    y_score = run.y_score
    out = []
    for b0, b1 in itertools.pairwise(cuts):
        a, z = int(rows[b0] - rows[0]), int(rows[b1] - rows[0])
        ys = y_score[a:z] if y_score is not None else None
        out.append(pooled_metric(metric, run.y_true[a:z], run.y_pred[a:z], ys))
    return out


def _score(scores: Mapping[str, float | None], metric: str) -> float:
    value = scores[metric]
    return float("nan") if value is None else float(value)


def _policy_result(
    run: PolicyRun,
    policy: Mapping[str, Any],
    replay: Replay,
    *,
    metric: str,
    greater: bool,
    cost: CostModel,
    sel_rows: int,
    ends: Sequence[str],
) -> PolicyResult:
    k = replay.selection_batches()
    until = replay.select_until
    whole = _part(run, slice(None), replay.metric_names)
    first = _part(run, slice(0, sel_rows), replay.metric_names)
    rest = _part(run, slice(sel_rows, None), replay.metric_names)
    late = [t >= until for t in run.retrained_at]
    cpu_held = sum(c for c, is_late in zip(run.train_cpu, late, strict=True) if is_late)
    value = rest[metric]
    watched = int(np.count_nonzero(run.watching[:k])) if run.watching is not None else 0
    return PolicyResult(
        name=run.name,
        params={key: v for key, v in policy.items() if key != "name"},
        metric=whole,
        selection=first,
        held_out=rest,
        retrains=len(run.retrained_at),
        promotions=len(run.promoted_at),
        train_cpu_s=round(sum(run.train_cpu), 4),
        retrains_held_out=sum(late),
        train_cpu_s_held_out=round(cpu_held, 4),
        retrains_selection=len(late) - sum(late),
        train_cpu_s_selection=round(sum(run.train_cpu) - cpu_held, 4),
        watched_selection=watched,
        wall_s=round(run.wall_s, 3),
        failed_runs=tuple(run.failed[:20]),
        cost=(
            round(cost.net_value(value, sum(late), cpu_held, greater_is_better=greater), 4)
            if cost.is_set and value is not None
            else None
        ),
        series=Series(
            end=tuple(ends),
            n=tuple(int(x) for x in run.n),
            values={
                m: tuple(json_safe([round(float(v), 6) for v in run.values[m]])) for m in run.values
            },
        ),
        retrained_at=tuple(t.isoformat() for t in run.retrained_at),
        promoted_at=tuple(t.isoformat() for t in run.promoted_at),
    )


def _figures(p: PolicyResult, metric: str) -> PolicyFigures:
    return PolicyFigures(
        folds=tuple(float("nan") if v is None else v for v in p.folds),
        score_held_out=_score(p.held_out, metric),
        retrains_held_out=p.retrains_held_out,
        cpu_s_held_out=p.train_cpu_s_held_out,
        name=p.name,
        has_triggers=bool(p.params.get("triggers")),
        online=(p.params.get("window") or {}).get("kind") == "new",
        score=_score(p.metric, metric),
        score_selection=_score(p.selection, metric),
        retrains=p.retrains,
        retrains_selection=p.retrains_selection,
        cpu_s_selection=p.train_cpu_s_selection,
        watched_selection=p.watched_selection,
    )


def _degradation(
    replay: Replay,
    deg_scores: Mapping[str, Any] | None,
    deg_window: Mapping[str, Any] | None,
    greater: bool,
) -> Degradation | None:
    if deg_scores is None or not deg_scores.get("age"):
        return None
    curve = degradation_curve(
        np.asarray(deg_scores["model"]),
        np.asarray(deg_scores["age"]),
        np.asarray(deg_scores["value"], dtype=float),
        np.asarray(deg_scores["n"], dtype=float),
    )
    return Degradation(
        ages=tuple(curve.ages),
        mean=tuple(json_safe([round(v, 6) for v in curve.mean])),
        low=tuple(json_safe([round(v, 6) for v in curve.low])),
        high=tuple(json_safe([round(v, 6) for v in curve.high])),
        n_models=tuple(curve.n_models),
        control=round(curve.control, 6),
        age_at_loss={
            f"{pts:g}": curve.age_at_loss(pts, greater_is_better=greater)
            for pts in (0.5, 1.0, 2.0, 5.0)
        },
        window=dict(deg_window or replay.pipeline.get("window", {})),
        every=deg_scores.get("every"),
    )


def summarize(
    replay: Replay,
    runs: Sequence[PolicyRun],
    policies: Sequence[Mapping[str, Any]],
    *,
    cost: CostModel,
    tolerance: float,
    deg_scores: Mapping[str, Any] | None,
    cpu_tolerance: float = 0.25,
    deg_window: Mapping[str, Any] | None = None,
    recommend_baselines: bool = False,
) -> BacktestSummary:
    """The backtest's summary (the content of results.json) from the policies' runs."""
    metric = replay.metric or replay.metric_names[0]
    greater = get_metric(metric).greater_is_better
    failed = [FailedPolicy(name=r.name, error=r.error) for r in runs if r.error is not None]
    kept = [(r, p) for r, p in zip(runs, policies, strict=True) if r.error is None]
    if not kept:
        # each error names its policy; the first in full, the others by name
        others = [f.name for f in failed[1:]]
        shown = ", ".join(repr(n) for n in others[:5]) + (", ..." if len(others) > 5 else "")
        raise DataError(
            f"no policy could run on this data: {failed[0].error}"
            + (f" (and {len(others)} other policies failed: {shown})" if others else "")
        )
    runs, policies = [r for r, _ in kept], [p for _, p in kept]
    k = replay.selection_batches()
    rows = replay.batch_rows()
    sel_rows = int(rows[k] - rows[0])
    ends = [t.isoformat() for t in replay.boundaries()[1:]]
    measured = [
        _policy_result(
            run,
            policy,
            replay,
            metric=metric,
            greater=greater,
            cost=cost,
            sel_rows=sel_rows,
            ends=ends,
        )
        for run, policy in zip(runs, policies, strict=True)
    ]
    points = in_points(metric)
    fold_scores = [_folds(r, rows, k, metric, FOLDS) for r in runs]
    measured = [
        _replace(p, folds=tuple(None if v != v else round(v, 6) for v in f))
        for p, f in zip(measured, fold_scores, strict=True)
    ]
    front = pareto_front(
        [p.train_cpu_s_held_out for p in measured],
        [_score(p.held_out, metric) for p in measured],
        greater_is_better=greater,
    )
    chosen = recommend(
        [_figures(p, metric) for p in measured],
        selection_batches=k,
        greater_is_better=greater,
        tolerance=tolerance,
        cost=cost,
        cpu_tolerance=cpu_tolerance,
        recommend_baselines=recommend_baselines,
        points=points,
    )
    ref_i = next(i for i, p in enumerate(measured) if p.name == chosen.oracle)
    ref_cpu = measured[ref_i].train_cpu_s_held_out

    def share(cpu: float) -> float | None:
        return round(cpu / ref_cpu, 4) if ref_cpu > 0 else None

    out_policies = tuple(
        _replace(
            p,
            pareto=i in front,
            excluded=chosen.excluded[i],
            regret=None
            if not chosen.regrets or chosen.regrets[i] is None
            else round(float(chosen.regrets[i]), 4),  # type: ignore[arg-type]
            cpu_share=share(p.train_cpu_s_held_out),
        )
        for i, p in enumerate(measured)
    )
    rec_i = next(i for i, p in enumerate(out_policies) if p.name == chosen.name)
    rec = out_policies[rec_i]
    comparisons = []
    held: dict[int, BatchStatistic] = {}

    def held_stat(i: int) -> BatchStatistic:
        if i not in held:
            held[i] = _stat(runs[i], rows, int(rows[0]), k, replay.n_batches, metric)
        return held[i]

    for i, other in enumerate(out_policies):
        if i == rec_i:
            continue
        diff = _difference(held_stat(rec_i), held_stat(i))
        comparisons.append(
            Comparison(
                a=rec.name,
                b=other.name,
                part="held_out",
                mean=round(diff.mean, 6),
                low=None if diff.low != diff.low else round(diff.low, 6),
                high=None if diff.high != diff.high else round(diff.high, 6),
                significant=diff.significant,
                text=diff.describe(
                    rec.name,
                    other.name,
                    greater_is_better=greater,
                    points=points,
                    relative_to=_score(other.held_out, metric),
                ),
            )
        )
    reference, hindsight = _bounds(out_policies, ref_i, metric, greater, points)
    rec_regret = None
    rec_score = _score(rec.held_out, metric)
    if hindsight is not None and hindsight.held_out is not None and rec_score == rec_score:
        rec_regret = round(
            regret(hindsight.held_out, rec_score, greater_is_better=greater, points=points), 4
        )
    within_noise, noise = _noise(
        chosen.best, chosen.regrets, out_policies, rec_i, runs, rows, k, metric, greater, points
    )
    spec = {key: v for key, v in policies[rec_i].items() if key != "name"}
    snippet = yaml.safe_dump(policy_block(spec), sort_keys=False).rstrip()
    return BacktestSummary(
        title=f"{replay.name} backtest",
        dataset=Dataset(
            pipeline=replay.name,
            source=str(replay.pipeline["source"].get("url", replay.pipeline["source"])),
            rows=len(replay.frame),
            start=_iso(replay.times[0]),
            end=_iso(replay.times[-1]),
            batch=fmt_duration(replay.batch),
            batches=replay.n_batches,
            warm_start_end=replay.start.isoformat(),
            label_delay=fmt_duration(replay.label_delay),
            select_until=replay.select_until.isoformat(),
            selection_batches=k,
            held_out_batches=replay.n_batches - k,
        ),
        metric=metric,
        greater_is_better=greater,
        metrics=tuple(replay.metric_names),
        cost_model=cost,
        tolerance=tolerance,
        cpu_tolerance=cpu_tolerance,
        policies=out_policies,
        failed_policies=tuple(failed),
        comparisons=tuple(comparisons),
        degradation=_degradation(replay, deg_scores, deg_window, greater),
        recommended=RecommendedPolicy(
            name=rec.name,
            rule=chosen.rule,
            reason=chosen.reason,
            params=spec,
            selection=rec.selection,
            held_out=rec.held_out,
            retrains_held_out=rec.retrains_held_out,
            train_cpu_s_held_out=rec.train_cpu_s_held_out,
            yaml_path="recommended.yaml",
            snippet=snippet,
            regret=rec_regret,
            within_noise=within_noise,
            noise=noise,
        ),
        oracle=chosen.oracle,
        units="points" if points else "units",
        folds=FOLDS if any(fold_scores) else 0,
        reference=reference,
        hindsight=hindsight,
    )


def _difference(a: BatchStatistic, b: BatchStatistic) -> Difference:
    d = pooled_difference(a, b)
    return Difference(d.mean, d.low, d.high, 0.95, d.n_batches)


def _bounds(
    policies: Sequence[PolicyResult], ref_i: int, metric: str, greater: bool, points: bool
) -> tuple[Bound, Bound | None]:
    """The always-retrain reference, and the best held-out policy at <= 20% of its CPU."""
    ref = policies[ref_i]
    ref_score = _score(ref.held_out, metric)
    reference = Bound(
        name=ref.name,
        held_out=ref.held_out.get(metric),
        train_cpu_s_held_out=ref.train_cpu_s_held_out,
        cpu_share=1.0 if ref.train_cpu_s_held_out > 0 else None,
    )
    sign = 1.0 if greater else -1.0
    cheap = [
        p
        for p in policies
        if p.train_cpu_s_held_out <= MAX_CPU_SHARE * ref.train_cpu_s_held_out + 1e-9
        and _score(p.held_out, metric) == _score(p.held_out, metric)
    ]
    if not cheap:
        return reference, None
    best = max(cheap, key=lambda p: (sign * _score(p.held_out, metric), -p.train_cpu_s_held_out))
    score = _score(best.held_out, metric)
    gap = None
    if ref_score == ref_score:
        gap = round(-regret(ref_score, score, greater_is_better=greater, points=points), 4)
        if not points and ref_score:  # % of the reference, not of the bound
            gap = round(100.0 * sign * (score - ref_score) / abs(ref_score), 4)
    return reference, Bound(
        name=best.name,
        held_out=best.held_out.get(metric),
        train_cpu_s_held_out=best.train_cpu_s_held_out,
        cpu_share=best.cpu_share,
        gap=gap,
        max_cpu_share=MAX_CPU_SHARE,
    )


def _noise(
    best: str | None,
    regrets: Sequence[float | None],
    policies: Sequence[PolicyResult],
    rec_i: int,
    runs: Sequence[PolicyRun],
    rows: np.ndarray,
    k: int,
    metric: str,
    greater: bool,
    points: bool,
) -> tuple[bool | None, str | None]:
    """Whether the chosen policy differs, on the selection part, from its closest rival: the
    least-regret candidate, or (when it is that one) the runner-up."""
    ranked = sorted((r, i) for i, r in enumerate(regrets) if r is not None and i != rec_i)
    if not ranked or k < 2:
        return None, None
    rival_i = next((i for i, p in enumerate(policies) if p.name == best), ranked[0][1])
    if rival_i == rec_i:
        rival_i = ranked[0][1]
    lo = int(rows[0])
    diff = _difference(
        _stat(runs[rec_i], rows, lo, 0, k, metric), _stat(runs[rival_i], rows, lo, 0, k, metric)
    )
    rival = policies[rival_i]
    text = "on the selection part, " + diff.describe(
        policies[rec_i].name,
        rival.name,
        greater_is_better=greater,
        points=points,
        relative_to=_score(rival.selection, metric),
    )
    if diff.significant:
        return False, text
    return True, text + ": the choice rests on differences within noise"


def _replace(p: PolicyResult, **changes: Any) -> PolicyResult:
    import dataclasses

    return dataclasses.replace(p, **changes)


def _iso(value: np.datetime64) -> str:
    return pd.Timestamp(value).tz_localize(UTC).isoformat()


def policy_block(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The pipeline keys the recommended policy sets, in retrainer.yaml's words."""
    block: dict[str, Any] = {}
    for key in POLICY_KEYS:
        if key in spec:
            block[key] = copy.deepcopy(spec[key])
    block.setdefault("triggers", [])
    return block


def recommended_config(
    raw: Mapping[str, Any], pipeline: str, block: Mapping[str, Any]
) -> dict[str, Any]:
    """The project's retrainer.yaml with the recommended policy in the replayed pipeline."""
    out = copy.deepcopy(dict(raw))
    for p in out.get("pipelines", []):
        if p.get("name") == pipeline:
            for key, value in block.items():
                if key in ("monitor", "blessing") and isinstance(p.get(key), dict):
                    p[key] = _merge(p[key], value)
                else:
                    p[key] = copy.deepcopy(value)
            if "model" in block:
                p.pop("train", None)
            if "train" in block:
                p.pop("model", None)
    return out


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out

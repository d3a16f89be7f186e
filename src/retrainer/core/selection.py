"""Robust selection: choose a retraining policy on several consecutive folds of history.

One split of history cannot tell a seasonal accident from skill: on seasonal data a policy that
happened to retrain before a good month wins the selection part and loses the held-out one.
:func:`select_on_folds` scores every candidate on several consecutive time folds of the
selection part (rolling origin: each fold is later than the one before, every model scored only
on batches it served), measures its *regret* on each fold (how far below that fold's best it
is), and chooses on the mean (or worst) regret across folds. Among the candidates within
``tolerance`` of the smallest regret, differences are noise, so the cheapest wins (CPU seconds
within ``cpu_tolerance`` count as equal, then fewer retrains): never retraining, which costs
nothing, is chosen whenever it is within noise of the best. "Don't retrain" is a valid answer.

Regret is in points (0.01 of a rate in [0, 1], see :func:`~retrainer.core.pooled.in_points`)
for rates, and in % of the fold's best value for losses and errors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from retrainer.errors import ConfigError, DataError

__all__ = ["FoldCandidate", "FoldSelection", "regret", "select_on_folds"]

_EPS = 1e-9


@dataclass(frozen=True, slots=True, kw_only=True)
class FoldCandidate:
    """A policy's pooled metric on each fold of the selection part, and its cost there."""

    name: str
    folds: tuple[float, ...]
    retrains: int
    cpu_s: float
    reacts: bool = True
    """False for a policy that never retrains: it cannot react to a shift to come."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FoldSelection:
    """The chosen policy, why, and every candidate's regret (mean or worst over folds)."""

    name: str
    reason: str
    regrets: dict[str, float]
    best: str
    """The candidate with the smallest regret (the chosen one, or one within noise of it)."""


def regret(best: float, value: float, *, greater_is_better: bool, points: bool) -> float:
    """How far ``value`` is below ``best``: points for rates, % of ``best`` for losses.

    Examples
    --------
    >>> round(regret(0.80, 0.79, greater_is_better=True, points=True), 6)
    1.0
    >>> round(regret(20.0, 21.0, greater_is_better=False, points=False), 6)
    5.0
    """
    gap = (best - value) if greater_is_better else (value - best)
    if points:
        return 100.0 * gap
    return 100.0 * gap / abs(best) if best != 0 else (0.0 if gap == 0 else math.inf)


def _text(value: float, points: bool) -> str:
    return f"{value:.2f} points" if points else f"{value:.2f}%"


def select_on_folds(
    candidates: Sequence[FoldCandidate],
    *,
    greater_is_better: bool = True,
    points: bool = True,
    tolerance: float = 0.5,
    cpu_tolerance: float = 0.25,
    criterion: str = "mean",
) -> FoldSelection:
    """The cheapest candidate whose regret over the folds is within ``tolerance`` of the least.

    Equally cheap (CPU seconds within ``cpu_tolerance``) and as few retrains, a policy that can
    react wins over one that never retrains: a trigger that watched the selection part and
    never fired cost nothing there either, and can still react to a shift to come.

    A fold where a candidate's score is NaN counts as its worst regret on the other folds; a
    candidate with no finite fold score is never chosen.

    Examples
    --------
    >>> cands = [
    ...     FoldCandidate(name="daily", folds=(0.80, 0.78, 0.81), retrains=90, cpu_s=9.0),
    ...     FoldCandidate(name="weekly", folds=(0.79, 0.79, 0.80), retrains=13, cpu_s=1.3),
    ...     FoldCandidate(name="never", folds=(0.80, 0.70, 0.72), retrains=0, cpu_s=0.0),
    ... ]
    >>> sel = select_on_folds(cands)
    >>> sel.name, sel.best, {k: round(v, 2) for k, v in sel.regrets.items()}
    ('weekly', 'daily', {'daily': 0.33, 'weekly': 0.67, 'never': 6.0})
    """
    if criterion not in ("mean", "worst"):
        raise ConfigError(f"criterion must be 'mean' or 'worst'; got {criterion!r}")
    if not math.isfinite(tolerance) or tolerance < 0:
        raise ConfigError(f"tolerance must be a finite number >= 0; got {tolerance}")
    usable = [c for c in candidates if any(math.isfinite(v) for v in c.folds)]
    if not usable:
        raise DataError("no candidate has a finite score on any fold of the selection part")
    n_folds = max(len(c.folds) for c in usable)
    sign = 1.0 if greater_is_better else -1.0
    best_per_fold = []
    for f in range(n_folds):
        values = [c.folds[f] for c in usable if f < len(c.folds) and math.isfinite(c.folds[f])]
        best_per_fold.append(max(values, key=lambda v: sign * v) if values else math.nan)
    regrets: dict[str, float] = {}
    for c in usable:
        per = [
            regret(b, v, greater_is_better=greater_is_better, points=points)
            for b, v in zip(best_per_fold, c.folds, strict=False)
            if math.isfinite(b) and math.isfinite(v)
        ]
        worst = max(per)
        per += [worst] * (sum(math.isfinite(b) for b in best_per_fold) - len(per))
        regrets[c.name] = worst if criterion == "worst" else sum(per) / len(per)
    top = min(usable, key=lambda c: (regrets[c.name], c.cpu_s, c.retrains, c.name))
    eligible = [c for c in usable if regrets[c.name] <= regrets[top.name] + tolerance + _EPS]
    fewest = min(c.cpu_s for c in eligible)
    cheapest = [c for c in eligible if c.cpu_s <= fewest * (1.0 + cpu_tolerance) + _EPS]
    # equally cheap and as few retrains: a trigger that watched and never fired costs what
    # never retraining costs, and can still react to a shift the selection part did not hold
    chosen = min(
        cheapest, key=lambda c: (c.retrains, not c.reacts, regrets[c.name], c.cpu_s, c.name)
    )
    what = f"{criterion} regret over {n_folds} consecutive folds of the selection part"
    this = (
        f"{_text(regrets[chosen.name], points)} with {chosen.cpu_s:.3g} CPU s and "
        f"{chosen.retrains} retrains"
    )
    if chosen is top:
        reason = (
            f"least {what}, and none within {_text(tolerance, points)} of it is cheaper ({this})"
        )
    else:
        reason = (
            f"cheapest policy within {_text(tolerance, points)} of the least {what} (least: "
            f"{top.name} at {_text(regrets[top.name], points)} with {top.cpu_s:.3g} CPU s and "
            f"{top.retrains} retrains; this: {this})"
        )
    return FoldSelection(name=chosen.name, reason=reason, regrets=regrets, best=top.name)

"""Blessing rules that test the candidate against the champion on the same holdout rows.

``{metric: accuracy, better: significant}`` passes when the candidate is significantly better
than the champion; ``{metric: log_loss, not_worse: significant, margin: 0.01}`` when it is
significantly not worse than the champion minus the margin (non-inferiority). Both are one-sided
tests at level ``alpha`` (default 0.05) of the paired improvement on the holdout rows; the test
follows the metric (``test: auto``):

=====================================  =====================================================
metric                                 test (:mod:`retrainer.core.significance`)
=====================================  =====================================================
accuracy                               McNemar's exact test (Tango's score test with a margin)
roc_auc (binary)                       DeLong's test
log_loss, brier, mae, mse              paired t-test on the per-row losses
rmse, any other metric, custom ones    paired bootstrap of the metric (seeded)
=====================================  =====================================================

``test:`` may name one instead (``mcnemar`` on a custom error rate, ``bootstrap`` anywhere).

The evidence row names the test, the p-value, the ``1 - 2 alpha`` interval of the improvement
(positive = better in the metric's direction) and the margin. Like the other rules: without a
champion (or a champion without a usable score) the row passes with a note. When the test cannot
be run (no per-row scores, a holdout with one class for ROC AUC, fewer than two rows, a metric
undefined on the holdout) the row **fails** and says why: a candidate is not blessed on evidence
that could not be computed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import PlainValidator, model_validator
from pydantic_core import PydanticCustomError

from retrainer.core._spec import Count, MetricName, NonNegative, Spec
from retrainer.core.significance import (
    HoldoutRows,
    TestResult,
    delong,
    mcnemar,
    paired_bootstrap,
    paired_t,
)
from retrainer.core.types import EvidenceRow

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from retrainer.core.blessing import ScoreCard
    from retrainer.core.metrics import Metric
else:
    from retrainer.core._lazy_numpy import np

__all__ = ["TESTS", "SignificanceRule"]

TESTS = ("auto", "mcnemar", "delong", "t", "bootstrap")
"""The values of a significance rule's ``test`` key."""

_PER_ROW_LOSS = ("log_loss", "brier", "mae", "mse")


def _fail(message: str) -> PydanticCustomError:
    return PydanticCustomError("retrainer", message)


def _significant(value: Any) -> Any:
    if value is not None and value != "significant":
        raise _fail("must be 'significant'")
    return value


def _alpha(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 0.5:
        raise _fail("must be a number between 0 and 0.5 (exclusive)")
    return value


def _test(value: Any) -> Any:
    if value not in TESTS:
        raise _fail(f"must be one of {', '.join(TESTS)}")
    return value


def _seed(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail("must be an integer >= 0")
    return value


Significant = Annotated[str | None, PlainValidator(_significant, json_schema_input_type=str | None)]
Alpha = Annotated[float, PlainValidator(_alpha, json_schema_input_type=float)]
TestName = Annotated[str, PlainValidator(_test, json_schema_input_type=str)]
Seed = Annotated[int, PlainValidator(_seed, json_schema_input_type=int)]


def _builtin(metric: Metric) -> bool:
    from retrainer.core.metrics import get_metric, metric_names

    return metric.name in metric_names() and get_metric(metric.name).fn is metric.fn


_BUILTIN_TESTS = {"mcnemar": ("accuracy",), "delong": ("roc_auc",), "t": _PER_ROW_LOSS}


def _unfit_test(test: str, metric: str) -> str | None:
    """Why ``test`` does not test ``metric`` (a built-in one), or None: McNemar compares per-row
    correctness (accuracy's improvement), DeLong ROC AUCs, the t-test means of per-row losses;
    on another built-in metric each would answer a question about a different metric. A
    custom metric may name any (``mcnemar`` on a custom error rate); bootstrap fits all."""
    from retrainer.core.metrics import metric_names

    fits = _BUILTIN_TESTS.get(test)
    if fits is None or metric not in metric_names() or metric in fits:
        return None
    return (
        f"test {test!r} tests {' / '.join(fits)}, not {metric}; use test: auto (the test that "
        "fits the metric) or test: bootstrap"
    )


class _CannotTest(Exception):
    """Why the paired test cannot run on these rows (the row fails with this note)."""


class SignificanceRule(Spec):
    """The candidate must be significantly better (or not worse) than the champion.

    Parameters
    ----------
    metric
        The metric to compare; its name chooses the test (see the module docstring).
    better, not_worse
        Exactly one, set to ``"significant"``: test ``improvement > 0`` or, with ``margin``,
        ``improvement > -margin``.
    margin
        Non-inferiority margin, in the metric's units (``0.01``: one point of accuracy);
        only with ``not_worse``; default 0.
    alpha
        One-sided significance level, in (0, 0.5).
    test
        ``auto`` (by the metric), ``mcnemar``, ``delong``, ``t`` or ``bootstrap``.
    resamples, seed
        The paired bootstrap's resamples and seed (the verdict is reproducible).

    Examples
    --------
    >>> from retrainer.core.blessing import ScoreCard
    >>> from retrainer.core.metrics import get_metric
    >>> y = np.array([0, 1] * 100)
    >>> champion_pred = np.where(np.arange(200) % 5 == 0, 1 - y, y)  # wrong on 1 row in 5
    >>> candidate_pred = np.where(np.arange(200) % 20 == 0, 1 - y, y)  # wrong on 1 in 20
    >>> def card(pred):
    ...     rows = HoldoutRows(y_true=y, y_pred=pred)
    ...     return ScoreCard(n=200, metrics={"accuracy": float(np.mean(pred == y))}, rows=rows)
    >>> rule = SignificanceRule("accuracy", better="significant")
    >>> [row] = rule.check(card(candidate_pred), card(champion_pred), get_metric("accuracy"))
    >>> row.passed, row.threshold
    (True, 'better: one-sided p < 0.05')
    >>> print(row.note)
    McNemar exact p=9.31e-10; improvement +0.15, 90% CI [+0.1132, +0.1962]; b=30, c=0 discordant of 200
    >>> rule.to_spec(), rule.describe()
    ({'metric': 'accuracy', 'better': 'significant'}, 'accuracy significantly better (alpha 0.05)')
    """  # noqa: E501

    kind: ClassVar[str] = "significance"
    needs_rows: ClassVar[bool] = True
    """The gate's cards must carry per-row scores (:class:`HoldoutRows`)."""
    example: ClassVar[Mapping[str, Any] | None] = {
        "metric": "log_loss",
        "not_worse": "significant",
        "margin": 0.01,
        "alpha": 0.05,
    }
    metric: MetricName
    better: Significant = None
    not_worse: Significant = None
    margin: NonNegative | None = None
    alpha: Alpha = 0.05
    test: TestName = "auto"
    resamples: Count = 2000
    seed: Seed = 0

    @model_validator(mode="after")
    def _one_question(self) -> SignificanceRule:
        if (self.better is None) == (self.not_worse is None):
            raise ValueError(
                f"SignificanceRule for metric {self.metric!r} needs exactly one of "
                "better: significant or not_worse: significant"
            )
        if self.margin is not None and self.better is not None:
            raise ValueError(
                f"SignificanceRule for metric {self.metric!r}: margin goes with not_worse "
                f"(non-inferiority), not with better; got margin={self.margin!r}"
            )
        unfit = _unfit_test(str(self.test), str(self.metric))
        if unfit:
            raise ValueError(f"SignificanceRule for metric {self.metric!r}: {unfit}")
        return self

    @property
    def _margin(self) -> float:
        return float(self.margin or 0.0)

    def _threshold(self) -> str:
        p = f"one-sided p < {self.alpha:g}"
        if self.better is not None:
            return f"better: {p}"
        return f"not worse by > {self._margin:g}: {p}"

    def describe(self) -> str:
        """``accuracy significantly better (alpha 0.05)``."""
        if self.better is not None:
            return f"{self.metric} significantly better (alpha {self.alpha:g})"
        return (
            f"{self.metric} significantly not worse than the champion - {self._margin:g} "
            f"(alpha {self.alpha:g})"
        )

    # -- the check -----------------------------------------------------------------------
    def check(
        self, candidate: ScoreCard, champion: ScoreCard | None, metric: Metric
    ) -> list[EvidenceRow]:
        """Return one ``"significance"`` row: the test, its p-value and interval."""
        self.check_params()
        cand = _value(candidate.metrics, self.metric)
        champ = _value(champion.metrics, self.metric) if champion is not None else None
        delta = cand - champ if cand is not None and champ is not None else None

        def row(passed: bool, note: str) -> EvidenceRow:
            return EvidenceRow(
                rule="significance",
                metric=self.metric,
                candidate=cand,
                champion=champ,
                delta=None if delta is None or math.isnan(delta) else delta,
                threshold=self._threshold(),
                passed=passed,
                note=note,
            )

        if cand is None or math.isnan(cand):
            return [row(False, f"{self.metric} is {'NaN' if cand is not None else 'missing'} "
                                "on candidate")]  # fmt: skip
        if champion is None:
            return [row(True, "no champion: skipped")]
        if champ is None or math.isnan(champ):
            return [row(True, f"champion's {self.metric} is unusable: skipped")]
        try:
            result = self._run(candidate.rows, champion.rows, metric)
        except _CannotTest as exc:
            return [row(False, f"cannot test {self.metric}: {exc}")]
        return [row(*self._judge(result))]

    def _judge(self, r: TestResult) -> tuple[bool, str]:
        ci = f"{1 - 2 * self.alpha:.0%} CI [{r.low:+.4g}, {r.high:+.4g}]"
        text = f"{r.test} p={r.p_value:.3g}; improvement {r.estimate:+.4g}, {ci}"
        if self.margin:
            text += f", margin {self._margin:g}"
        text += f"; {r.detail}"
        if math.isnan(r.p_value):
            return False, f"cannot test {self.metric}: {r.detail}"
        if r.p_value < self.alpha:
            return True, text
        question = (
            "not significantly better"
            if self.better is not None
            else f"not shown non-inferior (margin {self._margin:g})"
        )
        return False, (
            f"{self.metric} {question}: {r.test} p={r.p_value:.3g} >= alpha "
            f"{self.alpha:g}; improvement {r.estimate:+.4g}, {ci}; {r.detail}"
        )

    def _run(
        self, cand: HoldoutRows | None, champ: HoldoutRows | None, metric: Metric
    ) -> TestResult:
        if cand is None or champ is None:
            raise _CannotTest(
                "the score cards carry no per-row scores (ScoreCard.rows); score both models "
                "on the holdout with Pipeline.score"
            )
        if len(cand) != len(champ) or not np.array_equal(cand.y_true, champ.y_true):
            raise _CannotTest("the candidate and the champion were not scored on the same rows")
        if len(cand) < 2:
            raise _CannotTest(f"{len(cand)} holdout row(s): at least 2 are needed")
        test = self._choose(metric, cand)
        margin, alpha = self._margin, float(self.alpha)
        if test == "mcnemar":
            # per-row correctness; an error rate's improvement is accuracy's, so one test serves
            right = (cand.y_pred == cand.y_true, champ.y_pred == champ.y_true)
            return mcnemar(right[0], right[1], margin=margin, alpha=alpha)
        if test == "delong":
            positive = _binary_positive(cand, metric)
            return delong(positive, cand.y_score, champ.y_score, margin=margin, alpha=alpha)  # type: ignore[arg-type]
        if test == "t":
            loss = _per_row_loss(metric.name, cand), _per_row_loss(metric.name, champ)
            return paired_t(loss[1] - loss[0], margin=margin, alpha=alpha)
        return paired_bootstrap(
            _statistic(metric, cand, champ),
            len(cand),
            margin=margin,
            alpha=alpha,
            resamples=int(self.resamples),
            seed=int(self.seed),
        )

    def _choose(self, metric: Metric, rows: HoldoutRows) -> str:
        name, builtin = metric.name, _builtin(metric)
        test = str(self.test)
        if test == "auto":
            if builtin and name == "accuracy":
                return "mcnemar"
            if builtin and name == "roc_auc" and _one_column(rows):
                return "delong"
            if builtin and name in _PER_ROW_LOSS:
                return "t"
            return "bootstrap"
        unfit = _unfit_test(test, name) if builtin else None
        if unfit:
            raise _CannotTest(unfit)
        if test == "delong" and not (metric.needs_proba and _one_column(rows)):
            raise _CannotTest("DeLong's test needs one positive-class score per row (binary)")
        if test == "t" and not (builtin and name in _PER_ROW_LOSS):
            raise _CannotTest(
                f"the paired t-test needs a mean of per-row losses ({', '.join(_PER_ROW_LOSS)}); "
                "use test: bootstrap"
            )
        return test


def _value(metrics: Mapping[str, float], name: str) -> float | None:
    value = metrics.get(name)
    return None if value is None else float(value)


def _one_column(rows: HoldoutRows) -> bool:
    s = rows.y_score
    return s is not None and (s.ndim == 1 or (s.ndim == 2 and s.shape[1] == 2))


def _binary_positive(rows: HoldoutRows, metric: Metric) -> NDArray[np.bool_]:
    from retrainer.core.metrics import _Scores

    if rows.y_score is None:
        raise _CannotTest(f"{metric.name} needs predicted probabilities; the card has none")
    scores = _Scores(np.asarray(rows.y_true), np.asarray(rows.y_pred), rows.y_score)
    positive = np.asarray(scores.positive, dtype=bool)
    if positive.all() or not positive.any():
        raise _CannotTest("the holdout has a single class: ROC AUC is undefined")
    return positive


def _per_row_loss(name: str, rows: HoldoutRows) -> NDArray[np.float64]:
    from retrainer.core.metrics import _EPS, _Scores

    y_true, y_pred = np.asarray(rows.y_true), np.asarray(rows.y_pred)
    if name in ("mae", "mse"):
        error = y_true.astype(float) - y_pred.astype(float)
        return np.asarray(np.abs(error) if name == "mae" else error * error, dtype=float)
    if rows.y_score is None:
        raise _CannotTest(f"{name} needs predicted probabilities; the card has none")
    try:
        s = _Scores(y_true, y_pred, rows.y_score)
    except ValueError as exc:
        raise _CannotTest(str(exc)) from None
    if name == "log_loss":
        p_true = np.where(s.positive, s.proba, 1.0 - s.proba) if s.binary else s.proba[s.onehot]
        if len(p_true) != len(y_true):
            raise _CannotTest("some labels have no score column")
        return np.asarray(-np.log(np.clip(p_true, _EPS, 1.0)), dtype=float)
    if s.binary:  # brier
        return np.asarray((s.proba - s.positive) ** 2, dtype=float)
    return np.asarray(np.sum((s.proba - s.onehot) ** 2, axis=1), dtype=float)


def _statistic(metric: Metric, cand: HoldoutRows, champ: HoldoutRows) -> Any:
    """The improvement of ``metric`` on each resample (rows of an index matrix)."""
    from retrainer.core.metrics import compute, improvement

    if _builtin(metric) and metric.name == "rmse":  # vectorised: means of squared errors
        y = np.asarray(cand.y_true, dtype=float)
        sq = np.stack([(y - cand.y_pred.astype(float)) ** 2, (y - champ.y_pred.astype(float)) ** 2])

        def rmse(index: NDArray[np.intp]) -> NDArray[np.float64]:
            root = np.sqrt(sq[:, index].mean(axis=2))
            return np.asarray(root[1] - root[0], dtype=float)

        return rmse

    def pick(a: NDArray[Any] | None, index: NDArray[np.intp]) -> NDArray[Any] | None:
        return None if a is None else a[index]

    def generic(index: NDArray[np.intp]) -> NDArray[np.float64]:
        out = np.empty(len(index))
        for i, idx in enumerate(index):
            yt = cand.y_true[idx]
            a = compute(metric, yt, cand.y_pred[idx], pick(cand.y_score, idx))
            b = compute(metric, yt, champ.y_pred[idx], pick(champ.y_score, idx))
            out[i] = improvement(metric, a, b, relative=False)
        return out

    if metric.needs_proba and (cand.y_score is None or champ.y_score is None):
        raise _CannotTest(f"{metric.name} needs predicted probabilities; a card has none")
    if math.isnan(float(generic(np.arange(len(cand))[None, :])[0])):
        raise _CannotTest(f"{metric.name} is undefined on the holdout")
    return generic

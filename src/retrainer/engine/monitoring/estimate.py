"""The champion's performance estimated on the monitor's window, before its labels arrive.

The statistics are :mod:`retrainer.core.estimation`'s; this module fits what they need on the
**reference rows**: the champion's own holdout (the most recent ``blessing.holdout`` share of
the window it was trained on, labelled, never trained on), read back from the source.

- a binary classifier (one with ``predict_proba``): an isotonic calibration of its score on the
  reference (scikit-learn's ``IsotonicRegression``), then CBPE on the window's calibrated
  scores;
- a regressor: two loss models (scikit-learn's ``HistGradientBoostingRegressor``) fitted on the
  reference to predict the absolute and the squared error from the features and the
  prediction, then DLE on the window.

The estimate covers **every row of the window** (labelled or not), so it can be set beside the
realized metric on the rows labelled so far; ``unlabelled`` says how many rows it is the only
figure for.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from retrainer.core.clock import as_utc
from retrainer.core.estimation import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    estimate_classification,
    estimate_regression,
)
from retrainer.core.triggers.base import MetricNeed, MetricValue
from retrainer.core.types import ModelVersion, MonitorRecord
from retrainer.engine.monitoring.results import Estimation
from retrainer.engine.pipeline import Pipeline

__all__ = [
    "Calibrator",
    "LossModel",
    "estimate_window",
    "estimated_metrics",
    "reference_rows",
    "try_estimate",
]

_log = logging.getLogger(__name__)

MIN_REFERENCE = 100
"""Fewest labelled reference rows to fit a calibration or a loss model on."""


@dataclass(frozen=True, slots=True)
class Calibrator:
    """An isotonic map from a model's score to the probability of the positive class.

    Examples
    --------
    >>> cal = Calibrator.fit(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 1, 0, 1]))
    >>> cal(np.array([0.0, 0.5, 1.0])).round(2).tolist()
    [0.0, 0.5, 1.0]
    """

    x: np.ndarray
    y: np.ndarray

    @classmethod
    def fit(cls, score: np.ndarray, y: np.ndarray) -> Calibrator:
        """Fit on reference scores and their 0/1 labels."""
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        iso.fit(np.asarray(score, dtype=float), np.asarray(y, dtype=float))
        return cls(np.asarray(iso.X_thresholds_), np.asarray(iso.y_thresholds_))

    def __call__(self, score: np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(score, dtype=float), self.x, self.y)


def _codes(column: pd.Series, categories: pd.Index) -> np.ndarray:
    """Codes of ``column``'s text among ``categories`` (float; unknown: NaN)."""
    if isinstance(column.dtype, pd.StringDtype):
        import pyarrow as pa
        import pyarrow.compute as pc

        values = pa.array(column)  # zero-copy for pandas' Arrow-backed text
        if values.null_count == 0:  # text without gaps: astype(str) would change nothing
            # Arrow's hash lookup: 0.08 ms on 5,000 rows against 0.53 ms for the Categorical
            found = pc.index_in(values, value_set=pa.array(categories.astype(str)))
            codes: np.ndarray = found.to_numpy(zero_copy_only=False).astype(float)
            return codes
    # an Index lookup, as Categorical(..., categories=...) coded it (without its warning
    # that unknown values will raise)
    coded = categories.get_indexer(pd.Index(column.astype(str)))
    return np.where(coded < 0, np.nan, coded)


def _matrix(X: pd.DataFrame, y_pred: np.ndarray, categories: dict[str, pd.Index]) -> np.ndarray:
    """The loss models' input as one float array: the features (text and category columns as
    codes of the reference's categories, unknown: NaN) and the model's prediction last."""
    out = np.empty((len(X), X.shape[1] + 1))
    for j, c in enumerate(X.columns):
        if c in categories:
            out[:, j] = _codes(X[c], categories[c])
        else:
            out[:, j] = X[c].to_numpy(dtype=float, na_value=np.nan)
    out[:, -1] = np.asarray(y_pred, dtype=float)
    return out


@dataclass(frozen=True, slots=True)
class LossModel:
    """Two regressors predicting a model's absolute and squared error from features and its
    prediction (DLE).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"x": rng.uniform(size=2000)})
    >>> y_pred = np.zeros(2000)
    >>> y = rng.normal(scale=1 + 2 * X["x"].to_numpy())  # noise grows with x
    >>> loss = LossModel.fit(X, y_pred, y, seed=0)
    >>> abs_err, sq_err = loss.predict(pd.DataFrame({"x": [0.0, 1.0]}), np.zeros(2))
    >>> bool(abs_err[1] > 2 * abs_err[0])
    True
    """

    absolute: Any
    squared: Any
    categories: dict[str, pd.Index]
    # threadpoolctl's controller, built once: building one scans the loaded libraries, 2.6 ms,
    # more than the two models' prediction on a chunk
    threads: Any = None

    @classmethod
    def fit(
        cls, X: pd.DataFrame, y_pred: np.ndarray, y: np.ndarray, *, seed: int | None = 0
    ) -> LossModel:
        """Fit both loss models on labelled reference rows."""
        from sklearn.ensemble import HistGradientBoostingRegressor

        categories = {
            c: pd.Index(sorted(X[c].astype(str).unique()))
            for c in X.columns
            if not (pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c]))
        }
        Z = _matrix(X, y_pred, categories)
        err = np.asarray(y, dtype=float) - np.asarray(y_pred, dtype=float)
        models = []
        for target in (np.abs(err), err**2):
            # 10 trees of up to 255 leaves at learning rate 0.4: the prediction costs a tenth
            # of 100 trees of 31 (NannyML's LightGBM defaults) and, on NannyML's car price data,
            # erred less (docs/benchmarks.md); a fixed count (no early stopping on a random
            # split) keeps the fit reproducible
            m = HistGradientBoostingRegressor(
                max_iter=10,
                learning_rate=0.4,
                max_leaf_nodes=255,
                early_stopping=False,
                random_state=seed,
            )
            models.append(m.fit(Z, target))
        from threadpoolctl import ThreadpoolController

        return cls(models[0], models[1], categories, ThreadpoolController())

    def predict(self, X: pd.DataFrame, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted absolute and squared error per row."""
        from threadpoolctl import ThreadpoolController

        Z = _matrix(X, y_pred, self.categories)
        threads = self.threads or ThreadpoolController()
        # one thread: a chunk is small, and OpenMP threads on busy cores cost 30x more
        with threads.limit(limits=1, user_api="openmp"):
            return self.absolute.predict(Z), self.squared.predict(Z)


def trained_rows(pipeline: Pipeline, mv: ModelVersion) -> tuple[pd.DataFrame, Any] | None:
    """The labelled rows of version ``mv``'s window read back from the source, and the mask of
    its holdout among them; None when they cannot be found (the monitor's raw reference, the
    estimate's calibration rows)."""
    from retrainer.core.windows import holdout_mask

    snap = mv.snapshot
    if snap.min_time is None or snap.max_time is None:
        return None
    # the rows the version trained on lie between its oldest and newest row (rows of its
    # window whose label came later, or cut by a window of the last N rows, do not)
    frame = pipeline.source.load(snap.min_time, snap.max_time + timedelta(microseconds=1))
    frame, _ = pipeline.labelled(frame, "of the reference")
    if len(frame) > snap.rows:  # rows added to the source since
        frame = frame.iloc[-snap.rows :].reset_index(drop=True)
    if frame.empty:
        return None
    mask = holdout_mask(frame[pipeline.time_column].to_numpy(), pipeline.config.blessing.holdout)
    return frame, mask


def reference_rows(pipeline: Pipeline, mv: ModelVersion) -> pd.DataFrame:
    """The champion's holdout: the labelled rows of its training window it was scored on."""
    found = trained_rows(pipeline, mv)
    if found is None:
        return pd.DataFrame()
    frame, mask = found
    return frame.loc[mask].reset_index(drop=True)


def _positive(model: Any) -> Any:
    classes = getattr(model, "classes_", None)
    if classes is None or len(classes) != 2:
        return None
    return classes[1]


def _is(values: np.ndarray, label: Any) -> np.ndarray:
    """0/1 of ``values == label`` (labels read back from a log may be text)."""
    out = np.asarray(values == label, dtype=float)
    if not out.any() and len(values):
        out = np.asarray(pd.Series(values).astype(str).to_numpy() == str(label), dtype=float)
    return out


def _metrics(wanted: list[str], known: tuple[str, ...], default: tuple[str, ...]) -> list[str]:
    chosen = [m for m in wanted if m in known]
    return chosen or list(default)


def estimate_window(
    pipeline: Pipeline,
    model: Any,
    mv: ModelVersion,
    frame: pd.DataFrame,
    *,
    metrics: list[str],
    reference: pd.DataFrame | None = None,
    seed: int | None = 0,
) -> Estimation:
    """CBPE or DLE of the champion ``model`` on every row of ``frame``, fitted on ``reference``
    (default: :func:`reference_rows`). ``metrics`` are the monitor's; those CBPE/DLE can
    estimate are (default accuracy and ROC AUC, or MAE and RMSE).

    Raises ValueError when it cannot estimate (too few reference rows, a multi-class model).
    """
    ref = reference_rows(pipeline, mv) if reference is None else reference
    target = pipeline.config.target
    if len(ref) < MIN_REFERENCE:
        raise ValueError(
            f"{len(ref)} labelled reference rows (the champion's holdout); at least "
            f"{MIN_REFERENCE} are needed to estimate performance"
        )
    y_ref = ref[target].to_numpy()
    labelled = frame[target].notna().to_numpy() if target in frame.columns else None
    n_unlabelled = len(frame) if labelled is None else int((~labelled).sum())
    X_ref, X = pipeline.features(ref), pipeline.features(frame)
    task = pipeline.task(ref)
    realized: dict[str, float | None] = {}
    if task == "classification":
        positive = _positive(model)
        if positive is None or not hasattr(model, "predict_proba"):
            raise ValueError("CBPE needs a binary classifier with predict_proba")
        chosen = _metrics(metrics, CLASSIFICATION_METRICS, ("accuracy", "roc_auc"))
        cal = Calibrator.fit(np.asarray(model.predict_proba(X_ref))[:, 1], _is(y_ref, positive))
        score = np.asarray(model.predict_proba(X))[:, 1]
        yhat = _is(np.asarray(model.predict(X)), positive)
        est = estimate_classification(score=score, calibration=cal, y_pred=yhat, metrics=chosen)
        if labelled is not None and labelled.any():
            y = _is(frame[target].to_numpy()[labelled], positive)
            realized = _realized_classification(y, yhat[labelled], score[labelled], chosen)
        method = "cbpe"
    else:
        chosen = _metrics(metrics, REGRESSION_METRICS, REGRESSION_METRICS)
        pred_ref = np.asarray(model.predict(X_ref), dtype=float)
        loss = LossModel.fit(X_ref, pred_ref, y_ref.astype(float), seed=seed)
        pred = np.asarray(model.predict(X), dtype=float)
        abs_err, sq_err = loss.predict(X, pred)
        est = estimate_regression(abs_err, sq_err, metrics=chosen)
        if labelled is not None and labelled.any():
            err = frame[target].to_numpy(dtype=float)[labelled] - pred[labelled]
            realized = {
                "mae": float(np.mean(np.abs(err))),
                "rmse": float(np.sqrt(np.mean(err**2))),
            }
            realized = {m: realized[m] for m in chosen}
        method = "dle"
    return Estimation(
        method=method,
        rows=len(frame),
        unlabelled=n_unlabelled,
        reference_rows=len(ref),
        estimates=tuple(est[m] for m in chosen),
        realized=realized,
    )


def _realized_classification(
    y: np.ndarray, yhat: np.ndarray, score: np.ndarray, metrics: list[str]
) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for m in metrics:
        if m == "accuracy":
            out[m] = float(np.mean(y == yhat))
        elif m == "f1":
            tp = float(y @ yhat)
            denom = float(2 * tp + ((1 - y) @ yhat) + (y @ (1 - yhat)))
            out[m] = 2 * tp / denom if denom else None
        else:
            from sklearn.metrics import roc_auc_score

            out[m] = float(roc_auc_score(y, score)) if 0 < y.sum() < len(y) else None
    return out


def try_estimate(
    pipeline: Pipeline,
    model: Any,
    mv: ModelVersion,
    frame: pd.DataFrame,
    metrics: list[str],
    findings: list[Any],
) -> Estimation | None:
    """:func:`estimate_window` for the monitor: None when the champion cannot be estimated
    (too few reference rows, a multi-class model); an unexpected failure is a finding, not a
    failed monitor run."""
    from retrainer.core.profile import Finding

    try:
        return estimate_window(pipeline, model, mv, frame, metrics=metrics)
    except ValueError as exc:
        _log.debug("%s: performance not estimated: %s", pipeline.name, exc)
    except Exception as exc:
        findings.append(
            Finding(
                kind="estimate_failed",
                column=None,
                message=f"the performance could not be estimated: {type(exc).__name__}: {exc}",
            )
        )
    return None


def estimated_metrics(
    needs: Sequence[MetricNeed], record: MonitorRecord, now: datetime
) -> dict[MetricNeed, MetricValue]:
    """The ``source: estimated`` metrics of ``needs``, read from a monitor result: an estimate
    not made, or a result older than the need's ``over``, is "insufficient_data".

    Examples
    --------
    >>> from datetime import UTC
    >>> from retrainer.core.estimation import Estimate
    >>> from retrainer.engine.monitoring.results import Estimation
    >>> need = MetricNeed(metric="accuracy", over=timedelta(days=1), source="estimated")
    >>> est = Estimation(method="cbpe", rows=500, unlabelled=500, reference_rows=900,
    ...                  estimates=(Estimate(metric="accuracy", value=0.71, low=0.67,
    ...                                      high=0.75, n=500),))
    >>> at = datetime(2024, 3, 4, tzinfo=UTC)
    >>> record = MonitorRecord(pipeline="p", version=1, window_start=at - timedelta(days=7),
    ...                        window_end=at, created_at=at, drifted=False,
    ...                        summary={"estimated": est.to_json()})
    >>> estimated_metrics([need], record, at + timedelta(hours=2))[need]
    MetricValue(value=0.71, n=500, status='ok')
    >>> estimated_metrics([need], record, at + timedelta(days=2))[need].status
    'insufficient_data'
    """
    out: dict[MetricNeed, MetricValue] = {}
    data = record.summary.get("estimated")
    estimation = Estimation.from_json(data) if data else None
    for need in needs:
        if need.source != "estimated":
            continue
        est = estimation.get(need.metric) if estimation is not None else None
        if est is None or as_utc(record.window_end) + need.over < now:
            out[need] = MetricValue(value=None, n=0, status="insufficient_data")
        else:
            if est.status == "ok":
                out[need] = MetricValue(value=est.value, n=est.n, status="ok")
            elif est.status == "undefined":
                out[need] = MetricValue(value=None, n=est.n, status="undefined")
            else:
                out[need] = MetricValue(value=None, n=est.n, status="insufficient_data")
    return out

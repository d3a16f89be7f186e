"""Online performance: model metrics over time windows, from predictions and delayed feedback.

The monitor joins logged predictions with the feedback that has arrived so far and asks, per
window of time, how well the model did: accuracy, log loss, ROC AUC, precision and recall,
MAE and RMSE (any :class:`~retrainer.core.metrics.Metric`), and rate metrics such as the
click-through rate, the mean of an outcome (:func:`make_rate_metric`).

Rows are placed in windows by the time of the *prediction*. A row whose outcome is missing
(its feedback has not arrived) is unlabelled: it counts in ``n_rows`` but in no metric. A window
(or a metric) with fewer than ``min_samples`` usable rows gives ``status="insufficient_data"``
and ``value=None``, never a number computed on too little data; a metric undefined on the
data (ROC AUC on one class) gives ``status="undefined"`` and ``value=None``.

Everything here is pure numpy: no pandas, no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from retrainer.core.clock import utc_datetime64
from retrainer.core.metrics import Metric, compute, get_metric, metric_names
from retrainer.core.windows import parse_duration
from retrainer.errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike, NDArray
else:
    from retrainer.core._lazy_numpy import np

__all__ = [
    "MetricResult",
    "Status",
    "WindowPerformance",
    "evaluate_window",
    "get_online_metric",
    "is_rate_metric",
    "make_rate_metric",
    "performance_over_time",
]

Status = Literal["ok", "insufficient_data", "undefined"]
"""``ok``: a number; ``insufficient_data``: fewer than ``min_samples`` rows; ``undefined``:
the metric has no value on these rows (e.g. ROC AUC with a single class)."""

_MAX_WINDOWS = 100_000


# --- rate metrics ----------------------------------------------------------------------------


def _mean_outcome(
    y_true: NDArray[Any], y_pred: NDArray[Any], y_score: NDArray[Any] | None
) -> float:
    return float(np.mean(y_true.astype(float)))


def make_rate_metric(name: str = "rate", *, greater_is_better: bool = True) -> Metric:
    """A rate metric: the mean of the outcome (``y_true``), whatever was predicted.

    The click-through rate is the mean of 0/1 clicks; the mean of a value outcome (revenue per
    impression) is a rate too. Predictions and scores are not read, so rows count as soon as
    their outcome has arrived.

    Parameters
    ----------
    name
        The metric's name in configuration and evidence (``"ctr"``).
    greater_is_better
        The direction (True for a click-through rate, False for e.g. a complaint rate).

    Examples
    --------
    >>> ctr = make_rate_metric("ctr")
    >>> compute(ctr, [0, 1, 0, 0], [1, 1, 1, 1])
    0.25
    >>> is_rate_metric(ctr), is_rate_metric(get_metric("accuracy"))
    (True, False)
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"a metric name must be a non-empty string; got {name!r}")
    if not isinstance(greater_is_better, bool):
        raise ConfigError(
            f"metric {name!r}: greater_is_better must be True or False; got {greater_is_better!r}"
        )
    return Metric(name=name, greater_is_better=greater_is_better, fn=_mean_outcome)


def is_rate_metric(metric: Metric) -> bool:
    """Whether ``metric`` is a rate (reads only the outcome), as made by :func:`make_rate_metric`.

    Examples
    --------
    >>> is_rate_metric(get_online_metric("ctr"))
    True
    """
    return metric.fn is _mean_outcome


_RATE_NAMES = ("click_through_rate", "ctr", "rate")


def get_online_metric(name: str) -> Metric:
    """A built-in metric by name, including the rate metrics of online monitoring.

    ``"rate"``, ``"ctr"`` and ``"click_through_rate"`` are :func:`make_rate_metric` metrics
    (greater is better); every other name is looked up with
    :func:`~retrainer.core.metrics.get_metric`.

    Raises
    ------
    ConfigError
        For an unknown name; the message lists the known ones.

    Examples
    --------
    >>> get_online_metric("ctr")
    Metric(name='ctr', greater_is_better=True, needs_proba=False)
    >>> get_online_metric("rmse").name
    'rmse'
    >>> get_online_metric("clicks")
    Traceback (most recent call last):
    ...
    retrainer.errors.ConfigError: unknown metric 'clicks'. Known metrics: accuracy, ...
    """
    if name in _RATE_NAMES:
        return make_rate_metric(name)
    if isinstance(name, str) and name not in metric_names():
        from retrainer.core._spec import did_you_mean

        hint = did_you_mean(name, online_metric_names()).removeprefix("; ")
        raise ConfigError(
            f"unknown metric {name!r}{f' ({hint})' if hint else ''}. Known metrics: "
            f"{', '.join(online_metric_names())}; a metric of your own: make_metric() or "
            "make_rate_metric() in Python"
        )
    return get_metric(name)


def online_metric_names() -> list[str]:
    """The names :func:`get_online_metric` knows (the built-in metrics and the rates), sorted."""
    return sorted({*metric_names(), *_RATE_NAMES})


def _resolve(metrics: Sequence[Metric | str]) -> list[Metric]:
    if isinstance(metrics, (str, Metric)):
        metrics = [metrics]
    resolved = [m if isinstance(m, Metric) else get_online_metric(m) for m in metrics]
    if not resolved:
        raise ConfigError("give at least one metric, e.g. ['accuracy'] or ['ctr']")
    names = [m.name for m in resolved]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ConfigError(f"metric(s) listed twice: {', '.join(duplicated)}")
    return resolved


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricResult:
    """One metric over one window.

    Attributes
    ----------
    name
        The metric's name.
    value
        The value, or None unless ``status == "ok"``.
    n
        The rows the metric used: labelled rows with a prediction (and a score, for metrics
        that need one); for a rate metric, the labelled rows.
    status
        ``"ok"``, ``"insufficient_data"`` (``n < min_samples``) or ``"undefined"``.

    Examples
    --------
    >>> MetricResult(name="ctr", value=None, n=12, status="insufficient_data").to_dict()
    {'name': 'ctr', 'value': None, 'n': 12, 'status': 'insufficient_data'}
    """

    name: str
    value: float | None
    n: int
    status: Status

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``value`` is a float or None, never NaN)."""
        return {"name": self.name, "value": self.value, "n": self.n, "status": self.status}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricResult:
        """Inverse of :meth:`to_dict`."""
        return cls(name=data["name"], value=data["value"], n=data["n"], status=data["status"])


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowPerformance:
    """The metrics of one time window ``[start, end)``.

    Attributes
    ----------
    start, end
        The window, as aware UTC datetimes (``end`` excluded).
    n_rows
        Predictions in the window, labelled or not.
    n_labelled
        Those whose outcome has arrived.
    min_samples
        The minimum number of rows a metric needs to give a value.
    status
        ``"ok"``, or ``"insufficient_data"`` when ``n_labelled < min_samples``.
    metrics
        One :class:`MetricResult` per metric, in the order asked for.

    Examples
    --------
    >>> import numpy as np
    >>> times = np.array(["2024-01-01T10", "2024-01-01T11"], dtype="datetime64[us]")
    >>> w = evaluate_window(times, [1, 0], [1, 1], None, ["accuracy"],
    ...                     start=datetime(2024, 1, 1), end=datetime(2024, 1, 2))
    >>> w.value("accuracy"), w.status
    (0.5, 'ok')
    >>> w.to_dict()["metrics"]
    [{'name': 'accuracy', 'value': 0.5, 'n': 2, 'status': 'ok'}]
    """

    start: datetime
    end: datetime
    n_rows: int
    n_labelled: int
    min_samples: int
    status: Status
    metrics: tuple[MetricResult, ...]

    def result(self, name: str) -> MetricResult:
        """The result of the metric called ``name``.

        Raises
        ------
        KeyError
            If no metric of that name was computed.
        """
        for result in self.metrics:
            if result.name == name:
                return result
        raise KeyError(
            f"no metric {name!r} in this window; computed: "
            f"{', '.join(r.name for r in self.metrics)}"
        )

    def value(self, name: str) -> float | None:
        """The value of the metric called ``name`` (None unless its status is ``"ok"``)."""
        return self.result(name).value

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; times are ISO 8601 strings."""
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "n_rows": self.n_rows,
            "n_labelled": self.n_labelled,
            "min_samples": self.min_samples,
            "status": self.status,
            "metrics": [m.to_dict() for m in self.metrics],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WindowPerformance:
        """Inverse of :meth:`to_dict` (e.g. a window of a stored monitor record).

        Examples
        --------
        >>> w = WindowPerformance.from_dict({"start": "2024-01-01T00:00:00+00:00",
        ...     "end": "2024-01-02T00:00:00+00:00", "n_rows": 3, "n_labelled": 2,
        ...     "min_samples": 1, "status": "ok",
        ...     "metrics": [{"name": "accuracy", "value": 0.5, "n": 2, "status": "ok"}]})
        >>> w.value("accuracy"), WindowPerformance.from_dict(w.to_dict()) == w
        (0.5, True)
        """
        return cls(
            start=datetime.fromisoformat(data["start"]),
            end=datetime.fromisoformat(data["end"]),
            n_rows=data["n_rows"],
            n_labelled=data["n_labelled"],
            min_samples=data["min_samples"],
            status=data["status"],
            metrics=tuple(MetricResult.from_dict(m) for m in data["metrics"]),
        )


# --- input checks ----------------------------------------------------------------------------


def _missing(values: NDArray[Any]) -> NDArray[np.bool_]:
    """Rows with a missing value: NaN, None, NaT (any NaN in a row of a 2-D array)."""
    if values.dtype.kind == "f":
        missing = np.isnan(values)
    elif values.dtype.kind in "mM":
        missing = np.isnat(values)
    elif values.dtype.kind == "O":
        flat = values.ravel()
        missing = np.fromiter(
            (v is None or (isinstance(v, float) and math.isnan(v)) for v in flat),
            dtype=bool,
            count=len(flat),
        ).reshape(values.shape)
    else:
        missing = np.zeros(values.shape, dtype=bool)
    if missing.ndim == 2:
        return np.asarray(missing.any(axis=1))
    return np.asarray(missing)


def _check_min_samples(min_samples: int) -> int:
    if (
        not isinstance(min_samples, (int, np.integer))
        or isinstance(min_samples, bool)
        or min_samples < 1
    ):
        raise ConfigError(f"min_samples must be an integer >= 1; got {min_samples!r}")
    return int(min_samples)


def _check_inputs(
    times: ArrayLike,
    y_true: ArrayLike,
    y_pred: ArrayLike,
    y_score: ArrayLike | None,
    metrics: list[Metric],
) -> tuple[NDArray[np.datetime64], NDArray[Any], NDArray[Any], NDArray[Any] | None]:
    t = np.asarray(times)
    if t.ndim != 1 or t.dtype.kind != "M":
        raise DataError(
            f"times must be a 1-D datetime64 array; got shape {t.shape} and dtype {t.dtype}"
        )
    t = t.astype("datetime64[us]")
    if np.isnat(t).any():
        raise DataError(f"times has {int(np.isnat(t).sum())} missing value(s) (NaT)")
    true = np.asarray(y_true)
    pred = np.asarray(y_pred)
    score = None if y_score is None else np.asarray(y_score)
    arrays = {"y_true": true, "y_pred": pred}
    if score is not None:
        arrays["y_score"] = score
    for name, array in arrays.items():
        if array.ndim not in (1, 2) or (array.ndim == 2 and name != "y_score"):
            raise DataError(f"{name} must be a 1-D array; got shape {array.shape}")
        if len(array) != len(t):
            raise DataError(
                f"{name} has {len(array)} rows but times has {len(t)}; they must be the same "
                "length, one row per prediction"
            )
    if score is None:
        needy = [m.name for m in metrics if m.needs_proba]
        if needy:
            raise ConfigError(
                f"metric(s) {', '.join(needy)} need predicted probabilities (y_score) but "
                "none were given; log a score with each prediction or use metrics on labels"
            )
    return t, true, pred, score


def _as_us(value: datetime, name: str) -> np.datetime64:
    if not isinstance(value, datetime):
        raise ConfigError(f"{name} must be a datetime; got {value!r}")
    return utc_datetime64(value, "us")


def _to_datetime(value: np.datetime64) -> datetime:
    naive: datetime = value.astype("datetime64[us]").item()
    return naive.replace(tzinfo=UTC)


def _duration(every: str | timedelta) -> timedelta:
    span = parse_duration(every) if isinstance(every, str) else every
    if not isinstance(span, timedelta) or span <= timedelta(0):
        raise ConfigError(
            f"every must be a positive duration such as '1d' or a timedelta; got {every!r}"
        )
    if span % timedelta(microseconds=1):
        raise ConfigError(f"every must be a whole number of microseconds; got {every!r}")
    return span


# --- evaluation ------------------------------------------------------------------------------


def _evaluate(
    start: np.datetime64,
    end: np.datetime64,
    true: NDArray[Any],
    pred: NDArray[Any],
    score: NDArray[Any] | None,
    metrics: list[Metric],
    min_samples: int,
) -> WindowPerformance:
    """The metrics of the rows given (already restricted to one window)."""
    labelled = ~_missing(true)
    has_pred = labelled & ~_missing(pred)
    has_score = has_pred if score is None else has_pred & ~_missing(score)
    results = []
    for metric in metrics:
        if is_rate_metric(metric):
            use = labelled
        elif metric.needs_proba:
            use = has_score
        else:
            use = has_pred
        n = int(use.sum())
        if n < min_samples:
            results.append(
                MetricResult(name=metric.name, value=None, n=n, status="insufficient_data")
            )
            continue
        value = compute(
            metric,
            true[use],
            pred[use],
            None if score is None or not metric.needs_proba else score[use],
        )
        if math.isfinite(value):
            results.append(MetricResult(name=metric.name, value=value, n=n, status="ok"))
        else:
            results.append(MetricResult(name=metric.name, value=None, n=n, status="undefined"))
    n_labelled = int(labelled.sum())
    return WindowPerformance(
        start=_to_datetime(start),
        end=_to_datetime(end),
        n_rows=len(true),
        n_labelled=n_labelled,
        min_samples=min_samples,
        status="ok" if n_labelled >= min_samples else "insufficient_data",
        metrics=tuple(results),
    )


def evaluate_window(
    times: ArrayLike,
    y_true: ArrayLike,
    y_pred: ArrayLike,
    y_score: ArrayLike | None,
    metrics: Sequence[Metric | str],
    *,
    start: datetime,
    end: datetime,
    min_samples: int = 1,
) -> WindowPerformance:
    """The metrics of the rows whose prediction time is in ``[start, end)``.

    This is the rolling "last duration" evaluation a metric trigger reads: for "CTR below
    1.91% over the last day, at least 1000 samples", call it with ``start=now - 1 day``,
    ``end=now``, ``metrics=["ctr"]``, ``min_samples=1000``.

    Parameters
    ----------
    times
        Prediction times, 1-D ``datetime64`` (naive UTC).
    y_true
        Outcomes (labels, clicks, values); a missing outcome (NaN/None) marks a row whose
        feedback has not arrived.
    y_pred
        Predictions (labels or values); rows with a missing prediction are left out of the
        metrics that read predictions.
    y_score
        Predicted probabilities of the positive class (1-D) or an ``(n, k)`` matrix, or None;
        required by metrics that need probabilities. Rows with a missing score are left out
        of those metrics.
    metrics
        :class:`~retrainer.core.metrics.Metric` objects or names (:func:`get_online_metric`).
    start, end
        The window; naive datetimes are UTC.
    min_samples
        The fewest rows a metric needs to give a value (otherwise ``insufficient_data``).

    Raises
    ------
    ConfigError
        Unknown metric, a probability metric without ``y_score``, ``min_samples < 1``, or
        ``start`` after ``end``.
    DataError
        Arrays of different lengths, ``times`` not datetime64 or with NaT.

    Examples
    --------
    >>> import numpy as np
    >>> times = np.array(["2024-01-01T09", "2024-01-01T10", "2024-01-01T11", "2024-01-02T09"],
    ...                  dtype="datetime64[us]")
    >>> clicks = np.array([0.0, 1.0, np.nan, 1.0])  # the third one has no feedback yet
    >>> w = evaluate_window(times, clicks, np.ones(4), None, ["ctr"],
    ...                     start=datetime(2024, 1, 1), end=datetime(2024, 1, 2))
    >>> w.n_rows, w.n_labelled, w.value("ctr")
    (3, 2, 0.5)
    >>> evaluate_window(times, clicks, np.ones(4), None, ["ctr"], min_samples=1000,
    ...                 start=datetime(2024, 1, 1), end=datetime(2024, 1, 2)).metrics[0]
    MetricResult(name='ctr', value=None, n=2, status='insufficient_data')
    """
    resolved = _resolve(metrics)
    minimum = _check_min_samples(min_samples)
    t, true, pred, score = _check_inputs(times, y_true, y_pred, y_score, resolved)
    lo, hi = _as_us(start, "start"), _as_us(end, "end")
    if lo > hi:
        raise ConfigError(f"start {start.isoformat()} is after end {end.isoformat()}")
    inside = (t >= lo) & (t < hi)
    return _evaluate(
        lo,
        hi,
        true[inside],
        pred[inside],
        None if score is None else score[inside],
        resolved,
        minimum,
    )


def performance_over_time(
    times: ArrayLike,
    y_true: ArrayLike,
    y_pred: ArrayLike,
    y_score: ArrayLike | None,
    metrics: Sequence[Metric | str],
    *,
    start: datetime,
    end: datetime,
    every: str | timedelta,
    origin: datetime | None = None,
    min_samples: int = 1,
) -> tuple[WindowPerformance, ...]:
    """The metrics of each window of length ``every`` between ``start`` and ``end``.

    Windows are aligned to a grid: ``origin + k * every`` for whole ``k``. The default origin
    is 1970-01-01T00:00 UTC, so ``"1d"`` windows run from midnight UTC to midnight UTC and
    ``"1h"`` windows start on the hour (``"7d"`` windows would start on Thursdays: give an
    origin on a Monday for calendar weeks). The grid cells are clipped to ``[start, end)``,
    so the first and last windows may be shorter when ``start`` or ``end`` is off the grid.
    Every window is returned, also the empty ones (``n_rows=0``, ``insufficient_data``), so
    a gap in the data shows as a gap.

    Parameters
    ----------
    times, y_true, y_pred, y_score, metrics, min_samples
        As for :func:`evaluate_window`.
    start, end
        The span to cover; naive datetimes are UTC.
    every
        The window length, as a duration string (``"1d"``, ``"6h"``) or a timedelta.
    origin
        A point of the grid (default: the Unix epoch, midnight UTC).

    Raises
    ------
    ConfigError
        As for :func:`evaluate_window`, and for a non-positive ``every`` or more than
        100,000 windows.

    Examples
    --------
    >>> import numpy as np
    >>> times = np.array(["2024-01-01T06", "2024-01-01T18", "2024-01-02T06"],
    ...                  dtype="datetime64[us]")
    >>> windows = performance_over_time(
    ...     times, [1, 0, 1], [1, 1, 1], None, ["accuracy"],
    ...     start=datetime(2024, 1, 1), end=datetime(2024, 1, 3, 12), every="1d")
    >>> [(w.start.isoformat()[:13], w.n_rows, w.value("accuracy")) for w in windows]
    [('2024-01-01T00', 2, 0.5), ('2024-01-02T00', 1, 1.0), ('2024-01-03T00', 0, None)]
    >>> windows[-1].end.isoformat(), windows[-1].status
    ('2024-01-03T12:00:00+00:00', 'insufficient_data')
    """
    resolved = _resolve(metrics)
    minimum = _check_min_samples(min_samples)
    t, true, pred, score = _check_inputs(times, y_true, y_pred, y_score, resolved)
    lo, hi = _as_us(start, "start"), _as_us(end, "end")
    if lo > hi:
        raise ConfigError(f"start {start.isoformat()} is after end {end.isoformat()}")
    step = np.timedelta64(_duration(every) // timedelta(microseconds=1), "us")
    grid0 = np.datetime64(0, "us") if origin is None else _as_us(origin, "origin")
    first = grid0 + ((lo - grid0) // step) * step  # the grid point at or before start
    count = int(-((first - hi) // step)) if hi > lo else 0  # ceil((hi - first) / step)
    if count > _MAX_WINDOWS:
        raise ConfigError(
            f"{count} windows of {every!r} between {start.isoformat()} and {end.isoformat()} "
            f"are too many (at most {_MAX_WINDOWS}); use a longer window"
        )
    edges = first + step * np.arange(count + 1)
    edges[0] = lo
    if count:
        edges[-1] = hi
    inside = np.flatnonzero((t >= lo) & (t < hi))
    window_of = np.searchsorted(edges, t[inside], side="right") - 1
    order = inside[np.argsort(window_of, kind="stable")]
    bounds = np.searchsorted(np.sort(window_of), np.arange(count + 1), side="left")
    results = []
    for k in range(count):
        rows = order[bounds[k] : bounds[k + 1]]
        results.append(
            _evaluate(
                edges[k],
                edges[k + 1],
                true[rows],
                pred[rows],
                None if score is None else score[rows],
                resolved,
                minimum,
            )
        )
    return tuple(results)

"""The monitor's drift check of a window: its span, the target's pending labels, its wording.

- **Whole periods**: a window of 8 days counts one weekday twice, so a weekday feature (or
  anything with a weekly cycle) drifts against a training profile of whole weeks every day.
  The drift check reads whole weeks (whole days under a day) ending at the window's end,
  unless ``monitor.drift.window`` says otherwise (:func:`drift_start`).
- **Pending labels**: a prediction whose feedback (or a row whose label) has not arrived is
  pending, not missing: the target is compared on its labelled rows only, in its own dtype
  (:func:`check_window`, :func:`logged_target`).
- **Wording**: the share of drifted features counts features; the model's output and the
  target are named apart (:func:`drift_text`).
"""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from retrainer.core.drift import DriftCheck, DriftReport
from retrainer.core.profile import Columns, Profile
from retrainer.core.windows import parse_duration
from retrainer.engine.pipeline import Pipeline
from retrainer.engine.runs.profiles import window_columns

__all__ = ["check_window", "drift_start", "drift_text", "logged_target"]

_DAY = timedelta(days=1)
_WEEK = timedelta(days=7)


def drift_start(start: datetime, end: datetime, setting: str = "auto") -> datetime:
    """Where the drift check of the window ``[start, end)`` starts.

    ``auto``: whole weeks for a window of a day or more, whole days under a day (the window
    rounded up, ending at ``end``); ``same``: ``start``; a duration: ``end`` minus it.

    Examples
    --------
    >>> from datetime import datetime
    >>> end = datetime(2024, 1, 31)
    >>> drift_start(end - timedelta(days=8), end).isoformat()  # 8 days: two whole weeks
    '2024-01-17T00:00:00'
    >>> drift_start(end - timedelta(days=7), end) == end - timedelta(days=7)
    True
    >>> drift_start(end - timedelta(hours=6), end).isoformat()  # under a day: a whole day
    '2024-01-30T00:00:00'
    >>> drift_start(end - timedelta(days=8), end, "same").isoformat()
    '2024-01-23T00:00:00'
    """
    if setting == "same":
        return start
    if setting != "auto":
        return end - parse_duration(setting)
    span = end - start
    period = _WEEK if span >= _DAY else _DAY
    return end - math.ceil(span / period) * period


def logged_target(outcome: pd.Series, profile: Profile | None, target: str) -> pd.Series:
    """Logged outcomes in the target's training dtype: outcomes not arrived make an integer or
    boolean column float, and 0.0/1.0 would be new categories against the profile's 0/1.

    Examples
    --------
    >>> logged_target(pd.Series([1.0, None, 0.0]), None, "y").tolist()
    [1, <NA>, 0]
    >>> logged_target(pd.Series([1.5, None]), None, "y").dtype
    dtype('float64')
    """
    if not pd.api.types.is_float_dtype(outcome):
        return outcome
    known = outcome.dropna().to_numpy()
    if not np.all(np.mod(known, 1) == 0):
        return outcome
    trained = profile.features.get(target) if profile is not None else None
    family = trained.dtype.lower() if trained is not None else "int"
    if "bool" in family and np.isin(known, (0, 1)).all():
        return outcome.astype("boolean")
    if "int" in family:
        return outcome.astype("Int64")
    return outcome


def check_window(
    pipeline: Pipeline,
    check: DriftCheck,
    profile: Profile,
    frame: pd.DataFrame,
    output: pd.Series | None,
    reference: Columns | None = None,
) -> tuple[DriftReport, Columns]:
    """The drift check of ``frame`` against ``profile``, the target on its labelled rows only;
    returns the report and the columns checked (the target's labelled rows not among them).

    The features and the model's output are one family of tests; the target, when some of
    its labels are pending, is checked on its own (its p-value adjusted alone), so pending
    labels give no ``missing_rate`` finding and no shift of its distribution.
    """
    target = pipeline.config.target
    columns = window_columns(pipeline, frame, output)
    if target not in frame.columns or target not in profile.features:
        return check.check(profile, columns, reference=reference), columns
    labelled = frame[target].notna().to_numpy()
    if labelled.all():
        return check.check(profile, columns, reference=reference), columns
    features = {k: v for k, v in profile.features.items() if k != target}
    rest = window_columns(pipeline, frame.drop(columns=[target]), output)
    report = check.check(dataclasses.replace(profile, features=features), rest, reference=reference)
    only = Profile(n_rows=profile.n_rows, features={target: profile.features[target]})
    if labelled.any():
        labels = window_columns(pipeline, frame.loc[labelled, [target]])
        judged = check.check(only, labels, reference=reference)
        rows, findings = judged.rows, judged.findings
    else:  # every label pending: listed, not judged
        judged = check.check(only, window_columns(pipeline, frame[[target]]), reference=reference)
        note = f"not tested: no label has arrived yet ({len(frame)} pending)"
        rows, findings = tuple(dataclasses.replace(r, note=note) for r in judged.rows), ()
    return (
        dataclasses.replace(
            report,
            rows=(*report.rows, *rows),
            findings=(*report.findings, *findings),
            target_drifted=judged.target_drifted,
        ),
        rest,
    )


def drift_text(drift: DriftReport) -> str:
    """``2 of 5 features drifted (AIRLINE, dow), and the model's output``: the count and the
    names are of features; the model's output and the target are named apart.

    Examples
    --------
    >>> from retrainer.core.drift import FeatureDrift
    >>> def row(name, role):
    ...     return FeatureDrift(feature=name, kind="numeric", role=role, method="ks",
    ...         statistic=1.0, p_value=0.0, adjusted_p_value=0.0, distance=0.5,
    ...         threshold=0.01, drifted=True, n_ref=100, n_cur=100)
    >>> report = DriftReport(rows=(row("__prediction__", "prediction"), row("AIRLINE", "feature"),
    ...     row("dow", "feature")), findings=(), drifted=True, share_drifted=1.0,
    ...     drift_share=0.5, n_drifted=2, n_tested=2, prediction_drifted=True,
    ...     target_drifted=None, correction="holm", n_ref=100, n_cur=100)
    >>> drift_text(report)
    "2 of 2 features drifted (AIRLINE, dow), and the model's output"
    """
    names = [r.feature for r in drift.rows if r.drifted and r.role == "feature"]
    text = f"{drift.n_drifted} of {drift.n_tested} features drifted"
    if names:
        text += f" ({', '.join(names)})"
    also = [
        what
        for what, drifted in (
            ("the model's output", drift.prediction_drifted),
            ("the target", drift.target_drifted),
        )
        if drifted
    ]
    if also:
        text += ", and " + " and ".join(also)
    return text


def window_rows(frame: pd.DataFrame, time_column: str, start: datetime) -> Any:
    """The rows of ``frame`` at or after ``start`` (a boolean mask)."""
    from retrainer.core.clock import utc_datetime64

    return frame[time_column].to_numpy() >= utc_datetime64(start)

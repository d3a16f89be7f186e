"""pandas DataFrames into the core's :class:`~retrainer.core.profile.Columns`.

The core's drift statistics read numpy arrays and integer category codes; this is the one place
that knows pandas dtypes. It avoids copies where pandas allows:

- numpy ``float``/``int``/``uint`` columns are passed as views of the frame's own memory;
  nullable ``Int64``/``Float64`` columns become float64 with NaN for ``<NA>`` (one copy);
- ``bool`` columns are **categorical** (labels ``"False"``, ``"True"``) with the boolean array
  itself, viewed as int8, for codes: no copy, and a change in a share of True is a chi-square
  test on two cells, where quantile bins of a 0/1 column would be two degenerate bins;
  nullable ``boolean`` columns get code -1 for ``<NA>``;
- ``category`` columns pass their codes unchanged (Parquet dictionary columns read this way, so
  loading with categories is the fast path); labels are ``str`` of the categories;
- string and object columns are factorized once (``pandas.factorize``, in order of
  appearance); an object column holding only numbers becomes numeric; one mixing types
  (strings and numbers...) becomes categorical on ``str`` of each value, with a
  ``mixed_types`` finding;
- datetime, timedelta, period, interval and complex columns are skipped with a
  ``skipped_column`` finding (drift of a time column is not meaningful; derive features).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from pandas.api import types as ptypes

from retrainer.core.profile import Categorical, Columns, Finding
from retrainer.errors import DataError

__all__ = ["to_columns"]

_NUMBER_KINDS = {"integer", "floating", "mixed-integer-float", "decimal"}
_TIME_KINDS = {"datetime", "datetime64", "date", "time", "timedelta", "timedelta64", "period"}


def _dedupe(codes: NDArray[np.integer[Any]], labels: list[str]) -> Categorical:
    """Merge categories whose ``str`` is equal (``1`` and ``"1"``), remapping their codes."""
    if len(set(labels)) == len(labels):
        return Categorical(codes, labels)
    first: dict[str, int] = {}
    lookup = np.asarray([first.setdefault(label, len(first)) for label in labels], dtype=np.intp)
    remapped = np.where(codes >= 0, lookup[np.maximum(codes, 0)], -1)
    return Categorical(remapped, list(first))


def _factorize(series: pd.Series) -> Categorical:
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    return _dedupe(np.asarray(codes), [str(u) for u in uniques])


def _bool_codes(series: pd.Series) -> Categorical:
    if isinstance(series.dtype, np.dtype):
        return Categorical(series.to_numpy().view(np.int8), ["False", "True"])
    values = series.to_numpy(dtype=np.int8, na_value=-1)  # nullable boolean: <NA> -> -1
    return Categorical(values, ["False", "True"])


def to_columns(
    frame: pd.DataFrame,
    *,
    categorical: Iterable[str] = (),
    exclude: Iterable[str] = (),
) -> Columns:
    """Convert a DataFrame into :class:`~retrainer.core.profile.Columns` (see module docs).

    Parameters
    ----------
    frame
        The window. Column names are taken as ``str``.
    categorical
        Columns to treat as categorical even though they hold numbers (codes, ids...).
    exclude
        Columns to leave out (ids, the time column...).

    Raises
    ------
    DataError
        Two columns have the same name, or a name in ``categorical`` is not in the frame.

    Examples
    --------
    >>> frame = pd.DataFrame({
    ...     "price": [1.5, None, 3.0],
    ...     "city": ["Oslo", "Rome", "Oslo"],
    ...     "member": [True, False, True],
    ...     "at": pd.to_datetime(["2024-01-01"] * 3),
    ... })
    >>> cols = to_columns(frame)
    >>> cols.numeric["price"].tolist(), cols.categorical["city"].labels
    ([1.5, nan, 3.0], ('Oslo', 'Rome'))
    >>> cols.categorical["member"].codes.tolist()
    [1, 0, 1]
    >>> [(f.kind, f.column) for f in cols.findings]
    [('skipped_column', 'at')]
    """
    names = [str(c) for c in frame.columns]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"the frame has duplicate column names {dupes}; rename them first")
    forced = set(categorical)
    unknown = sorted(forced - set(names))
    if unknown:
        raise DataError(f"categorical columns {unknown} are not in the frame (columns: {names})")
    skip = set(exclude)
    numeric: dict[str, NDArray[Any]] = {}
    cats: dict[str, Categorical] = {}
    dtypes: dict[str, str] = {}
    findings: list[Finding] = []
    for label, name in zip(frame.columns, names, strict=True):
        if name in skip:
            continue
        series = frame[label]
        dtype = series.dtype
        dtypes[name] = str(dtype)
        if name in forced:
            cats[name] = _factorize(series)
        elif isinstance(dtype, pd.CategoricalDtype):
            labels = [str(c) for c in dtype.categories]
            cats[name] = _dedupe(np.asarray(series.array.codes), labels)
        elif ptypes.is_bool_dtype(dtype):
            cats[name] = _bool_codes(series)
        elif (
            ptypes.is_datetime64_any_dtype(dtype)
            or ptypes.is_timedelta64_dtype(dtype)
            or isinstance(dtype, pd.PeriodDtype | pd.IntervalDtype)
            or ptypes.is_complex_dtype(dtype)
        ):
            findings.append(_skipped(name, str(dtype)))
        elif ptypes.is_numeric_dtype(dtype):
            if isinstance(dtype, np.dtype):
                numeric[name] = series.to_numpy()
            else:  # nullable Int64/Float64...: <NA> becomes NaN
                numeric[name] = series.to_numpy(dtype=np.float64, na_value=np.nan)
        elif isinstance(dtype, pd.StringDtype):
            cats[name] = _factorize(series)
        elif ptypes.is_object_dtype(dtype):
            inferred = ptypes.infer_dtype(series, skipna=True)
            if inferred in ("string", "empty", "boolean"):
                cats[name] = _factorize(series)
            elif inferred in _NUMBER_KINDS:
                numeric[name] = pd.to_numeric(series).to_numpy(dtype=np.float64, na_value=np.nan)
            elif inferred in _TIME_KINDS:
                findings.append(_skipped(name, f"object holding {inferred} values"))
            else:
                cats[name] = _factorize(series)
                findings.append(
                    Finding(
                        kind="mixed_types",
                        column=name,
                        message=(
                            f"values of several types ({inferred}): compared as text, "
                            "so 1 and '1' are one category"
                        ),
                        value=inferred,
                    )
                )
        else:
            findings.append(_skipped(name, str(dtype)))
    kept = {n: dtypes[n] for n in (*numeric, *cats)}
    return Columns(
        numeric=numeric,
        categorical=cats,
        dtypes=kept,
        findings=tuple(findings),
        n_rows=len(frame),
    )


def _skipped(name: str, what: str) -> Finding:
    return Finding(
        kind="skipped_column",
        column=name,
        message=f"{what} column not profiled (drift is computed on numbers and categories)",
        value=what,
    )

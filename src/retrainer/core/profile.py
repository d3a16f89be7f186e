"""Reference profiles: the compact statistics of a training window that drift checks reuse.

A :class:`Profile` is computed once, when a model is trained, from the columns of its training
window (:func:`compute_profile`) and stored with the model version (:meth:`Profile.to_dict`
gives plain JSON). Every later drift check of a current window
(:func:`retrainer.core.drift.check_drift`) reads only the profile, never the reference data.

The core does not use pandas, so data comes in as :class:`Columns`: float or integer arrays for
numeric columns and :class:`Categorical` (integer codes + string labels) for categorical ones.
``retrainer.engine.frames.to_columns`` builds it from a pandas DataFrame.

What a profile holds per column:

- **numeric**: ``edges``, the interior bin edges at the reference's quantiles ``1/n_bins``,
  ``2/n_bins``, ... (observed values, duplicates and the maximum removed, so discrete columns
  get one bin per value); ``counts`` per bin ``(-inf, e1], (e1, e2], ..., (ek, +inf)`` over the
  non-missing values (infinities fall in the outer bins); missing (NaN) and infinite counts;
  min/max/mean/std of the finite values; the source dtype.
- **categorical**: the labels and a count per label, the missing count, the source dtype.

Bins are closed on the right and counted with one vectorized comparison per edge
(``count_nonzero(x <= e)``): on this project's 2-core benchmark machine, 20 bins of 20 columns
of a million rows count about 9x faster this way than with ``searchsorted`` + ``bincount``.

Merging (:func:`merge`): profiles of partitions (days, shards) of one data set combine into the
profile of the whole. Counts, missing counts, min/max are exact and mean/std are combined
exactly (Chan's parallel formula, up to rounding) when both profiles share their edges: compute
later partitions with ``compute_profile(part, edges_from=first)`` for that. With different
edges, the merged edges are re-estimated from the two piecewise-linear CDFs (values spread
uniformly inside each bin) and the counts are that mixture's mass per new bin, rounded: an
approximation whose error is within one bin of either input.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, TypeAlias

from retrainer.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
else:
    from retrainer.core._lazy_numpy import np

__all__ = [
    "FINDING_KINDS",
    "Categorical",
    "CategoricalProfile",
    "Columns",
    "FeatureProfile",
    "Finding",
    "NumericProfile",
    "Profile",
    "compute_profile",
    "merge",
]

PROFILE_FORMAT = "retrainer.profile"
PROFILE_VERSION = 1
DEFAULT_BINS = 20

FINDING_KINDS: tuple[str, ...] = (
    "column_added",
    "column_removed",
    "constant_column",
    "dtype_changed",
    "empty_window",
    "missing_rate",
    "mixed_types",
    "non_finite",
    "out_of_range",
    "skipped_column",
    "too_few_rows",
    "unseen_category",
)
"""The kinds of :class:`Finding` the profile, the drift check and the frame conversion emit."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One data-quality observation: what was seen, in which column, and its size.

    ``kind`` is one of :data:`FINDING_KINDS`; ``column`` is None for findings about the whole
    window; ``value`` is the figure the message is about (a rate, a count, a dtype...).

    Examples
    --------
    >>> f = Finding(kind="missing_rate", column="price", message="12% missing", value=0.12)
    >>> f.to_dict()
    {'kind': 'missing_rate', 'column': 'price', 'message': '12% missing', 'value': 0.12}
    """

    kind: str
    column: str | None
    message: str
    value: float | int | str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: non-finite values become None."""
        value = self.value
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        return {"kind": self.kind, "column": self.column, "message": self.message, "value": value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """Inverse of :meth:`to_dict`."""
        return cls(
            kind=str(data["kind"]),
            column=data.get("column"),
            message=str(data.get("message", "")),
            value=data.get("value"),
        )


class Categorical(NamedTuple):
    """A categorical column as integer codes into ``labels``; code ``-1`` means missing.

    Examples
    --------
    >>> import numpy as np
    >>> col = Categorical(np.array([0, 1, 1, -1]), ["red", "blue"])
    >>> col.labels[col.codes[1]]
    'blue'
    """

    codes: NDArray[np.integer[Any]]
    labels: Sequence[str]


def _as_numeric(name: str, values: Any) -> NDArray[Any]:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DataError(f"numeric column {name!r} must be 1-D; got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise DataError(
            f"numeric column {name!r} must hold numbers (bool, int or float); got dtype "
            f"{arr.dtype}. Pass strings as a Categorical (codes + labels)."
        )
    return arr


def _as_categorical(name: str, value: Any) -> Categorical:
    try:
        codes, labels = value
    except (TypeError, ValueError):
        raise DataError(
            f"categorical column {name!r} must be a (codes, labels) pair; got {type(value)}"
        ) from None
    codes = np.asarray(codes)
    if codes.ndim != 1 or codes.dtype.kind not in "iu":
        raise DataError(
            f"categorical column {name!r} needs 1-D integer codes; got dtype {codes.dtype}, "
            f"shape {codes.shape}"
        )
    labels = tuple(str(label) for label in labels)
    if len(set(labels)) != len(labels):
        raise DataError(f"categorical column {name!r} has duplicate labels: {list(labels)}")
    return Categorical(codes, labels)


@dataclass(frozen=True, slots=True, kw_only=True)
class Columns:
    """A window of data in the form the core reads: numeric arrays and categorical codes.

    Parameters
    ----------
    numeric
        Column name -> 1-D bool, int or float array (NaN is missing). Arrays are kept as given,
        without copies.
    categorical
        Column name -> :class:`Categorical` (or a ``(codes, labels)`` pair).
    dtypes
        Column name -> the source dtype's name (``"float64"``, ``"string"``, ``"bool"``...);
        used to report dtype changes. Defaults to the array dtype, or ``"category"``.
    findings
        What the conversion into columns noticed (skipped datetime columns, mixed types);
        drift reports repeat them.
    n_rows
        Number of rows; inferred from the arrays (required only when there are no columns).

    Raises
    ------
    DataError
        Columns of different lengths, a name used twice, non-numeric arrays, non-integer codes
        or duplicate labels.

    Examples
    --------
    >>> import numpy as np
    >>> cols = Columns(
    ...     numeric={"price": np.array([1.0, 2.5, np.nan])},
    ...     categorical={"color": Categorical(np.array([0, 1, 0]), ["red", "blue"])},
    ... )
    >>> cols.n_rows, cols.names
    (3, ('price', 'color'))
    """

    numeric: Mapping[str, NDArray[Any]] = field(default_factory=dict)
    categorical: Mapping[str, Categorical] = field(default_factory=dict)
    dtypes: Mapping[str, str] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    n_rows: int | None = None

    def __post_init__(self) -> None:
        numeric = {str(k): _as_numeric(str(k), v) for k, v in self.numeric.items()}
        categorical = {str(k): _as_categorical(str(k), v) for k, v in self.categorical.items()}
        both = sorted(set(numeric) & set(categorical))
        if both:
            raise DataError(f"columns {both} are given both as numeric and as categorical")
        lengths = {k: len(v) for k, v in numeric.items()}
        lengths.update({k: len(v.codes) for k, v in categorical.items()})
        if len(set(lengths.values())) > 1:
            raise DataError(f"all columns must have the same length; got {lengths}")
        n = next(iter(lengths.values()), self.n_rows if self.n_rows is not None else 0)
        if self.n_rows is not None and self.n_rows != n:
            raise DataError(f"n_rows={self.n_rows} but the columns have {n} rows")
        dtypes = {k: str(v.dtype) for k, v in numeric.items()}
        dtypes.update(dict.fromkeys(categorical, "category"))
        dtypes.update({k: str(v) for k, v in self.dtypes.items() if k in dtypes})
        object.__setattr__(self, "numeric", numeric)
        object.__setattr__(self, "categorical", categorical)
        object.__setattr__(self, "dtypes", dtypes)
        object.__setattr__(self, "findings", tuple(self.findings))
        object.__setattr__(self, "n_rows", int(n))

    @property
    def names(self) -> tuple[str, ...]:
        """Numeric column names, then categorical ones."""
        return (*self.numeric, *self.categorical)


@dataclass(frozen=True, slots=True, kw_only=True)
class NumericProfile:
    """Profile of one numeric column (see the module docstring for the bins).

    ``counts[i]`` counts the non-missing values in bin ``i`` of ``(-inf, e1], (e1, e2], ...,
    (ek, +inf)``; ``sum(counts) == n - n_missing``. Infinite values are counted in the outer
    bins and in ``n_neg_inf``/``n_pos_inf``, and left out of min/max/mean/std (None when the
    column has no finite value). ``std`` is the population standard deviation (ddof=0).

    Examples
    --------
    >>> import numpy as np
    >>> p = compute_profile(Columns(numeric={"x": np.arange(10.0)}), n_bins=5)
    >>> f = p.features["x"]
    >>> f.edges, f.counts, f.min, f.max
    ((1.0, 3.0, 5.0, 7.0), (2, 2, 2, 2, 2), 0.0, 9.0)
    """

    kind: ClassVar[str] = "numeric"
    dtype: str
    n: int
    n_missing: int
    edges: tuple[float, ...]
    counts: tuple[int, ...]
    n_neg_inf: int = 0
    n_pos_inf: int = 0
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None

    @property
    def n_finite(self) -> int:
        """Number of finite values (non-missing, non-infinite)."""
        return sum(self.counts) - self.n_neg_inf - self.n_pos_inf

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (see :meth:`Profile.to_dict`)."""
        return {
            "kind": self.kind,
            "dtype": self.dtype,
            "n": self.n,
            "n_missing": self.n_missing,
            "n_neg_inf": self.n_neg_inf,
            "n_pos_inf": self.n_pos_inf,
            "edges": list(self.edges),
            "counts": list(self.counts),
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
            "std": self.std,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CategoricalProfile:
    """Profile of one categorical column: a count per label and the missing count.

    Examples
    --------
    >>> import numpy as np
    >>> cols = Columns(categorical={"c": Categorical(np.array([0, 1, 1, -1]), ["a", "b"])})
    >>> compute_profile(cols).features["c"]
    CategoricalProfile(dtype='category', n=4, n_missing=1, labels=('a', 'b'), counts=(1, 2))
    """

    kind: ClassVar[str] = "categorical"
    dtype: str
    n: int
    n_missing: int
    labels: tuple[str, ...]
    counts: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (see :meth:`Profile.to_dict`)."""
        return {
            "kind": self.kind,
            "dtype": self.dtype,
            "n": self.n,
            "n_missing": self.n_missing,
            "labels": list(self.labels),
            "counts": list(self.counts),
        }


FeatureProfile: TypeAlias = NumericProfile | CategoricalProfile
"""The profile of one column."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """The profile of a reference window: one :data:`FeatureProfile` per column.

    Parameters
    ----------
    n_rows
        Rows in the reference window.
    features
        Column name -> :class:`NumericProfile` or :class:`CategoricalProfile`, in column order.
    n_bins
        The number of quantile bins asked for (a column may have fewer: ties merge bins).
    skipped
        Columns of the reference that were not profiled (datetime columns...) -> why.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> cols = Columns(
    ...     numeric={"x": rng.normal(size=1000)},
    ...     categorical={"c": Categorical(rng.integers(0, 3, 1000), ["a", "b", "c"])},
    ... )
    >>> profile = compute_profile(cols)
    >>> sorted(profile.features), profile.n_rows, len(profile.features["x"].counts)
    (['c', 'x'], 1000, 20)
    >>> Profile.from_dict(profile.to_dict()) == profile
    True
    """

    n_rows: int
    features: Mapping[str, FeatureProfile]
    n_bins: int = DEFAULT_BINS
    skipped: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-safe data (lists, numbers, strings, None), e.g. for ModelVersion.profile."""
        return {
            "format": PROFILE_FORMAT,
            "version": PROFILE_VERSION,
            "n_rows": self.n_rows,
            "n_bins": self.n_bins,
            "features": {name: f.to_dict() for name, f in self.features.items()},
            "skipped": dict(self.skipped),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        """Read back what :meth:`to_dict` wrote.

        Raises
        ------
        DataError
            The data is not a profile of a version this code reads.
        """
        if not isinstance(data, Mapping) or data.get("format") != PROFILE_FORMAT:
            raise DataError(
                f"not a retrainer profile: expected a mapping with format={PROFILE_FORMAT!r}"
            )
        if data.get("version") != PROFILE_VERSION:
            raise DataError(
                f"profile version {data.get('version')!r} is not supported (this retrainer "
                f"reads version {PROFILE_VERSION}); recompute the profile"
            )
        try:
            features: dict[str, FeatureProfile] = {}
            for name, f in data["features"].items():
                if f["kind"] == "numeric":
                    features[name] = NumericProfile(
                        dtype=str(f["dtype"]),
                        n=int(f["n"]),
                        n_missing=int(f["n_missing"]),
                        n_neg_inf=int(f.get("n_neg_inf", 0)),
                        n_pos_inf=int(f.get("n_pos_inf", 0)),
                        edges=tuple(float(e) for e in f["edges"]),
                        counts=tuple(int(c) for c in f["counts"]),
                        min=_opt_float(f.get("min")),
                        max=_opt_float(f.get("max")),
                        mean=_opt_float(f.get("mean")),
                        std=_opt_float(f.get("std")),
                    )
                elif f["kind"] == "categorical":
                    features[name] = CategoricalProfile(
                        dtype=str(f["dtype"]),
                        n=int(f["n"]),
                        n_missing=int(f["n_missing"]),
                        labels=tuple(str(x) for x in f["labels"]),
                        counts=tuple(int(c) for c in f["counts"]),
                    )
                else:
                    raise DataError(f"profile feature {name!r} has unknown kind {f['kind']!r}")
            return cls(
                n_rows=int(data["n_rows"]),
                n_bins=int(data.get("n_bins", DEFAULT_BINS)),
                features=features,
                skipped={str(k): str(v) for k, v in data.get("skipped", {}).items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, DataError):
                raise
            raise DataError(f"profile data is malformed: {exc!r}") from None


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


# --- computing ------------------------------------------------------------------------------


def _cumulative_le(
    x: NDArray[Any], edges: NDArray[np.float64], out: NDArray[np.bool_]
) -> list[int]:
    """``count(x <= e)`` for each edge, one vectorized comparison per edge into ``out``."""
    return [int(np.count_nonzero(np.less_equal(x, e, out=out))) for e in edges]


def _quantile_edges(finite: NDArray[np.float64], n_bins: int) -> tuple[float, ...]:
    if finite.size == 0:
        return ()
    levels = np.arange(1, n_bins) / n_bins
    q = np.unique(np.quantile(finite, levels, method="inverted_cdf"))
    return tuple(float(e) for e in q[q < finite.max()])


def _numeric_profile(
    x: NDArray[Any], dtype: str, n_bins: int, edges: tuple[float, ...] | None
) -> NumericProfile:
    n = len(x)
    xf = x.astype(np.float64, copy=False)
    missing = np.isnan(xf)
    n_missing = int(np.count_nonzero(missing))
    finite_mask = np.isfinite(xf)
    finite = xf[finite_mask]
    n_neg_inf = int(np.count_nonzero(xf == -np.inf))
    n_pos_inf = int(np.count_nonzero(xf == np.inf))
    if edges is None:
        edges = _quantile_edges(finite, n_bins)
    edge_arr = np.asarray(edges, dtype=np.float64)
    out = np.empty(n, dtype=bool)
    cum = _cumulative_le(xf, edge_arr, out)
    counts = np.diff(np.asarray([0, *cum, n - n_missing], dtype=np.int64))
    has_finite = finite.size > 0
    return NumericProfile(
        dtype=dtype,
        n=n,
        n_missing=n_missing,
        n_neg_inf=n_neg_inf,
        n_pos_inf=n_pos_inf,
        edges=tuple(edges),
        counts=tuple(int(c) for c in counts),
        min=float(finite.min()) if has_finite else None,
        max=float(finite.max()) if has_finite else None,
        mean=float(finite.mean()) if has_finite else None,
        std=float(finite.std()) if has_finite else None,
    )


def _category_counts(name: str, col: Categorical) -> tuple[NDArray[np.int64], int]:
    """Counts per label and the missing count, with one ``bincount`` of ``codes + 1``."""
    k = len(col.labels)
    n = len(col.codes)
    if n == 0:
        return np.zeros(k, dtype=np.int64), 0
    try:
        shifted = np.add(col.codes, 1, dtype=np.intp)
        counts = np.bincount(shifted, minlength=k + 1)
    except ValueError:  # a code below -1
        raise DataError(
            f"categorical column {name!r} has codes below -1 (only -1 may mark missing values)"
        ) from None
    if len(counts) > k + 1:
        raise DataError(
            f"categorical column {name!r} has codes up to {len(counts) - 2} but only {k} labels"
        )
    return counts[1:].astype(np.int64), int(counts[0])


def compute_profile(
    columns: Columns, *, n_bins: int = DEFAULT_BINS, edges_from: Profile | None = None
) -> Profile:
    """Profile every column of a reference window.

    Parameters
    ----------
    columns
        The reference window.
    n_bins
        Quantile bins per numeric column (ties can merge bins). 20 keeps the drift check fast
        (one comparison per edge) while the binned KS test still sees the CDF at every 5%.
    edges_from
        Reuse this profile's numeric edges (for columns it has) instead of new quantiles, so
        that :func:`merge` of the two is exact: profile streaming partitions with the edges of
        the first one.

    Raises
    ------
    DataError
        ``n_bins`` is not an integer >= 2, or categorical codes are out of range.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([0.0, 1.0, 1.0, 2.0, np.nan, np.inf])
    >>> p = compute_profile(Columns(numeric={"x": x}), n_bins=4).features["x"]
    >>> p.edges, p.counts, p.n_missing, p.n_pos_inf, p.max
    ((0.0, 1.0), (1, 2, 2), 1, 1, 2.0)
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 2:
        raise DataError(f"n_bins must be an integer >= 2; got {n_bins!r}")
    features: dict[str, FeatureProfile] = {}
    for name, x in columns.numeric.items():
        shared = edges_from.features.get(name) if edges_from is not None else None
        edges = shared.edges if isinstance(shared, NumericProfile) else None
        features[name] = _numeric_profile(x, columns.dtypes[name], n_bins, edges)
    for name, col in columns.categorical.items():
        counts, n_missing = _category_counts(name, col)
        features[name] = CategoricalProfile(
            dtype=columns.dtypes[name],
            n=len(col.codes),
            n_missing=n_missing,
            labels=tuple(col.labels),
            counts=tuple(int(c) for c in counts),
        )
    order = [n for n in columns.names if n in features]
    skipped = {
        f.column: f.message for f in columns.findings if f.kind == "skipped_column" and f.column
    }
    return Profile(
        n_rows=int(columns.n_rows or 0),
        features={n: features[n] for n in order},
        n_bins=n_bins,
        skipped=skipped,
    )


# --- merging --------------------------------------------------------------------------------


def _combine_moments(a: NumericProfile, b: NumericProfile) -> tuple[float | None, float | None]:
    na, nb = a.n_finite, b.n_finite
    if na == 0 or a.mean is None or a.std is None:
        return b.mean, b.std
    if nb == 0 or b.mean is None or b.std is None:
        return a.mean, a.std
    n = na + nb
    delta = b.mean - a.mean
    mean = a.mean + delta * nb / n
    m2 = a.std**2 * na + b.std**2 * nb + delta**2 * na * nb / n
    return mean, math.sqrt(max(m2 / n, 0.0))


def _finite_cdf(p: NumericProfile) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Knots and cumulative finite counts of ``p``'s piecewise-linear CDF over [min, max]."""
    assert p.min is not None and p.max is not None  # callers pass profiles with finite values
    finite_counts = np.asarray(p.counts, dtype=np.float64)
    finite_counts[0] -= p.n_neg_inf
    finite_counts[-1] -= p.n_pos_inf
    knots = np.asarray([p.min, *p.edges, p.max], dtype=np.float64)
    # the first bin's values sit in [min, e1]: the CDF is 0 just below min
    cum = np.concatenate([[0.0], np.cumsum(finite_counts)])
    return knots, cum


def _rebin(
    a: NumericProfile, b: NumericProfile, n_bins: int
) -> tuple[tuple[float, ...], tuple[int, ...]]:
    parts = [p for p in (a, b) if p.n_finite > 0]
    grid = np.unique(np.concatenate([_finite_cdf(p)[0] for p in parts]))
    total = np.zeros_like(grid)
    for p in parts:
        knots, cum = _finite_cdf(p)
        total += np.interp(grid, knots, cum, left=0.0, right=cum[-1])
    n_finite = total[-1]
    levels = np.arange(1, n_bins) / n_bins * n_finite
    # invert the (non-decreasing) mixture CDF; flat pieces map to their left end
    edges = np.unique(np.interp(levels, total, grid))
    edges = edges[edges < grid[-1]]
    cum_at_edges = np.interp(edges, grid, total)
    cum_int = np.round(np.concatenate([[0.0], cum_at_edges, [n_finite]])).astype(np.int64)
    counts = np.diff(np.maximum.accumulate(cum_int))
    counts[0] += a.n_neg_inf + b.n_neg_inf
    counts[-1] += a.n_pos_inf + b.n_pos_inf
    return tuple(float(e) for e in edges), tuple(int(c) for c in counts)


def _merge_numeric(a: NumericProfile, b: NumericProfile, n_bins: int) -> NumericProfile:
    if a.edges == b.edges:
        edges = a.edges
        counts = tuple(x + y for x, y in zip(a.counts, b.counts, strict=True))
    elif sum(a.counts) == 0 or sum(b.counts) == 0:  # one side has only missing values
        edges, counts = (b.edges, b.counts) if sum(a.counts) == 0 else (a.edges, a.counts)
    elif a.n_finite == 0 and b.n_finite == 0:
        edges = ()
        counts = (sum(a.counts) + sum(b.counts),)
    else:
        edges, counts = _rebin(a, b, n_bins)
    mins = [m for m in (a.min, b.min) if m is not None]
    maxs = [m for m in (a.max, b.max) if m is not None]
    mean, std = _combine_moments(a, b)
    return NumericProfile(
        dtype=a.dtype if a.dtype == b.dtype else f"{a.dtype}|{b.dtype}",
        n=a.n + b.n,
        n_missing=a.n_missing + b.n_missing,
        n_neg_inf=a.n_neg_inf + b.n_neg_inf,
        n_pos_inf=a.n_pos_inf + b.n_pos_inf,
        edges=edges,
        counts=counts,
        min=min(mins) if mins else None,
        max=max(maxs) if maxs else None,
        mean=mean,
        std=std,
    )


def _merge_categorical(a: CategoricalProfile, b: CategoricalProfile) -> CategoricalProfile:
    counts = dict(zip(a.labels, a.counts, strict=True))
    for label, count in zip(b.labels, b.counts, strict=True):
        counts[label] = counts.get(label, 0) + count
    return CategoricalProfile(
        dtype=a.dtype if a.dtype == b.dtype else f"{a.dtype}|{b.dtype}",
        n=a.n + b.n,
        n_missing=a.n_missing + b.n_missing,
        labels=tuple(counts),
        counts=tuple(counts.values()),
    )


def _all_missing(f: FeatureProfile, n_rows: int) -> FeatureProfile:
    """``f``'s kind with ``n_rows`` missing values: a partition that lacked the column."""
    if isinstance(f, NumericProfile):
        return NumericProfile(
            dtype=f.dtype, n=n_rows, n_missing=n_rows, edges=f.edges, counts=(0,) * len(f.counts)
        )
    return CategoricalProfile(dtype=f.dtype, n=n_rows, n_missing=n_rows, labels=(), counts=())


def merge(a: Profile, b: Profile) -> Profile:
    """The profile of the union of two windows, from their profiles.

    See the module docstring for how bins merge (exact with shared edges, re-binned
    otherwise). A column present in only one profile counts as missing in the other's rows.

    Raises
    ------
    DataError
        A column is numeric in one profile and categorical in the other.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(100.0)
    >>> whole = compute_profile(Columns(numeric={"x": x}), n_bins=4)
    >>> halves = [compute_profile(Columns(numeric={"x": h}), edges_from=whole)
    ...           for h in (x[:50], x[50:])]
    >>> merge(*halves).features["x"] == whole.features["x"]
    True
    """
    n_bins = max(a.n_bins, b.n_bins)
    features: dict[str, FeatureProfile] = {}
    for name in [*a.features, *(n for n in b.features if n not in a.features)]:
        fa = a.features.get(name)
        fb = b.features.get(name)
        if fa is None:
            assert fb is not None  # the name comes from one of the two profiles
            fa = _all_missing(fb, a.n_rows)
        if fb is None:
            fb = _all_missing(fa, b.n_rows)
        if isinstance(fa, NumericProfile) and isinstance(fb, NumericProfile):
            features[name] = _merge_numeric(fa, fb, n_bins)
        elif isinstance(fa, CategoricalProfile) and isinstance(fb, CategoricalProfile):
            features[name] = _merge_categorical(fa, fb)
        else:
            raise DataError(
                f"cannot merge profiles: column {name!r} is {fa.kind} in the first and "
                f"{fb.kind} in the second; convert it the same way in every partition"
            )
    return Profile(
        n_rows=a.n_rows + b.n_rows,
        features=features,
        n_bins=n_bins,
        skipped={**a.skipped, **b.skipped},
    )

"""The drift check of a current window against a reference profile.

The statistics are in :mod:`retrainer.core.stats`.

The check
---------
:func:`check_drift` (or :meth:`DriftCheck.check`) compares a current window (as
:class:`~retrainer.core.profile.Columns`) with a profile, and returns one :class:`DriftReport`:
a :class:`FeatureDrift` row per profiled column, data-quality
:class:`~retrainer.core.profile.Finding` s, the share of drifted features and the dataset
verdict. Predictions and targets are columns like any other, marked with ``prediction=`` and
``target=`` so that they are reported apart and left out of the share.

Defaults, and why
^^^^^^^^^^^^^^^^^
===========================  ==============================  ===============  ================
column                       retrainer                       Evidently 0.7    NannyML 0.13
===========================  ==============================  ===============  ================
numeric, reference <= 1000   binned KS, Holm at 0.01         KS, p < 0.05     JS distance
numeric, reference > 1000    binned KS, Holm at 0.01         Wasserstein /    JS distance
                                                             std >= 0.1
categorical, <= 1000         chi-square, Holm at 0.01        chi-square       JS distance
                                                             (z-test if 2)
categorical, > 1000          chi-square, Holm at 0.01        JS >= 0.1        JS distance
thresholds                   alpha=0.01 family-wise; PSI     fixed (above),   mean + 3 std of
                             0.2, JS 0.1, W/std 0.1, L-inf   no correction    the reference's
                             0.1 when a distance is chosen                    own 10 chunks
fewer than 30 values         not tested (a finding)          tested           tested
dataset drift                share of drifted features       share >= 0.5     (none; a PCA
                             >= 0.5                                           reconstruction
                                                                              error instead)
===========================  ==============================  ===============  ================

Why tests at every sample size: a distance threshold is blind to small shifts at any size (a
0.05-standard-deviation location shift gives a normalized Wasserstein of 0.05 and a
Jensen-Shannon distance near 0.02, far under Evidently's 0.1), while a test's power grows with
the window: at 100,000 rows per window the binned KS test catches that shift with a p-value
near 1e-14. Evidently switches to distances above 1,000 reference rows because p-values of
large windows flag shifts too small to matter; here every row also carries an effect size
(``distance``: the Jensen-Shannon distance on the bins, one [0, 1] scale for every column) and
``min_distance`` can require one, so that choice stays with the user. Below ``min_samples``
(30) non-missing values in either window a column is not tested (a finding says so); the
chi-square test pools cells whose expected count is under 5, where its approximation fails. KS
and chi-square run on the profile's bins, never on raw reference data: that is what makes the
check one pass over the current window (``method="ks_exact"`` runs the exact test on raw
samples when the raw reference is passed in).

Why ``alpha=0.01``: a monitor checks window after window, so the rate that matters is false
alarms per check. At 0.01 a stable data set raises one about once in 100 checks (once a
quarter for a daily check) instead of once in 20, and it costs little power: the smallest KS
distance that a check of 25 columns detects grows with ``sqrt(log(1 / alpha))``, about 11%
from 0.05 to 0.01. Binning makes the test conservative: in 400 simulated checks without drift
(20 numeric and 5 categorical columns, 2,000 or 20,000 rows), 1-3% raised any alarm at
``alpha=0.05`` and under 1% at 0.01.

Multiple testing
^^^^^^^^^^^^^^^^
One check runs one test per column (25 in the benchmark): at 0.01 each, a window without any
drift would flag at least one column about 22% of the time (72% at 0.05). The p-values of a
check's tested columns are therefore adjusted together, by Holm's step-down method by default:
sort the ``m`` p-values, multiply the ``i``-th smallest by ``m - i + 1``, take the running
maximum, cap at 1. A column drifts when its adjusted p-value is at most its threshold
(``alpha``), which bounds the probability of any false alarm in the check by ``alpha`` whatever
the dependence between columns. Holm rejects everything Bonferroni (multiply every p-value by
``m``, ``correction="bonferroni"``) rejects, and sometimes more; ``correction="none"`` tests
each column at its own level. Columns checked with a distance method are not in the family;
prediction and target columns are. The bound holds as stated when the tested columns share one
threshold; per-column thresholds are compared with the same adjusted p-values.

Dataset verdict
^^^^^^^^^^^^^^^
The window drifts when the share of drifted feature columns is at least ``drift_share`` (0.5,
as in Evidently, so configurations carry over). Each flag is already error-controlled, so the
share measures how broad the change is, not how noisy the test is; a change confined to a few
columns shows up in the rows and in ``prediction_drifted``, which triggers can read directly.

Speed
^^^^^
A numeric column costs one vectorized comparison per profile edge plus three (missing, below
the reference minimum, above its maximum) into one reusable boolean buffer; a categorical one
costs one ``bincount``. Nothing copies the current window: the extra memory is one boolean per
row, plus one 8-byte integer per row while a categorical column is counted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Literal

from retrainer.core._spec import is_number
from retrainer.core.profile import (
    Categorical,
    CategoricalProfile,
    Columns,
    Finding,
    NumericProfile,
    Profile,
)
from retrainer.core.stats import (
    Correction,
    StatResult,
    adjust_p_values,
    chi_square,
    jensen_shannon,
    ks_binned,
    ks_exact,
    l_infinity,
    psi,
    wasserstein,
    wasserstein_binned,
)
from retrainer.errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
else:
    from retrainer.core._lazy_numpy import np

__all__ = [
    "CATEGORICAL_METHODS",
    "DEFAULT_THRESHOLDS",
    "NUMERIC_METHODS",
    "TEST_METHODS",
    "DriftCheck",
    "DriftReport",
    "FeatureDrift",
    "FeatureTest",
    "StatResult",
    "adjust_p_values",
    "check_drift",
    "chi_square",
    "jensen_shannon",
    "ks_binned",
    "ks_exact",
    "l_infinity",
    "psi",
    "wasserstein",
    "wasserstein_binned",
]

NUMERIC_METHODS: tuple[str, ...] = ("ks", "ks_exact", "chi2", "psi", "jensenshannon", "wasserstein")
"""Methods a numeric column may use."""
CATEGORICAL_METHODS: tuple[str, ...] = ("chi2", "psi", "jensenshannon", "linf")
"""Methods a categorical column may use."""
TEST_METHODS: tuple[str, ...] = ("ks", "ks_exact", "chi2")
"""Methods that give a p-value (their threshold is a significance level); the rest are
distances (a column drifts when the distance is at least the threshold)."""
DEFAULT_THRESHOLDS: Mapping[str, float] = {
    "psi": 0.2,
    "jensenshannon": 0.1,
    "wasserstein": 0.1,
    "linf": 0.1,
}
"""Distance thresholds: PSI 0.2 (the credit-scoring rule: above 0.2 is a significant shift),
Jensen-Shannon 0.1 and normalized Wasserstein 0.1 (Evidently's), L-infinity 0.1 (a category's
share moved by 10 points). Test methods use ``DriftCheck.alpha``."""

Role = Literal["feature", "prediction", "target"]

# --- the check ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureTest:
    """The method (and threshold) for one column, overriding the check's defaults.

    ``threshold=None`` takes the method's default: ``DriftCheck.alpha`` for a test,
    :data:`DEFAULT_THRESHOLDS` (or ``DriftCheck.thresholds``) for a distance.

    Examples
    --------
    >>> FeatureTest(method="psi", threshold=0.25)
    FeatureTest(method='psi', threshold=0.25)
    """

    method: str
    threshold: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureDrift:
    """One column's drift result.

    ``statistic`` is the method's own (KS ``D``, chi-square, PSI, ...); ``p_value`` and
    ``adjusted_p_value`` are None for distance methods; ``distance`` is the Jensen-Shannon
    distance (base 2) on the bins whatever the method, an effect size comparable across
    columns. A column that could not be tested (too few rows, type changed) has
    ``statistic=None``, ``drifted=False`` and says why in ``note``. ``n_ref``/``n_cur`` count
    the non-missing values compared.
    """

    feature: str
    kind: str
    role: Role
    method: str
    statistic: float | None
    p_value: float | None
    adjusted_p_value: float | None
    distance: float | None
    threshold: float
    drifted: bool
    n_ref: int
    n_cur: int
    note: str = ""

    @property
    def tested(self) -> bool:
        """Whether a statistic was computed."""
        return self.statistic is not None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON; non-finite numbers become None."""
        return {
            "feature": self.feature,
            "kind": self.kind,
            "role": self.role,
            "method": self.method,
            "statistic": _json_float(self.statistic),
            "p_value": _json_float(self.p_value),
            "adjusted_p_value": _json_float(self.adjusted_p_value),
            "distance": _json_float(self.distance),
            "threshold": self.threshold,
            "drifted": self.drifted,
            "n_ref": self.n_ref,
            "n_cur": self.n_cur,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureDrift:
        """Inverse of :meth:`to_dict` (a non-finite figure comes back as None)."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


def _json_float(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


@dataclass(frozen=True, slots=True, kw_only=True)
class DriftReport:
    """The result of one drift check: per-column rows, findings and the verdict.

    ``share_drifted`` is ``n_drifted / n_tested`` over feature columns (predictions and
    targets are reported in ``prediction_drifted``/``target_drifted``, None when absent or
    untested); ``drifted`` is ``share_drifted >= drift_share`` with at least one tested column.
    """

    rows: tuple[FeatureDrift, ...]
    findings: tuple[Finding, ...]
    drifted: bool
    share_drifted: float
    drift_share: float
    n_drifted: int
    n_tested: int
    prediction_drifted: bool | None
    target_drifted: bool | None
    correction: str
    n_ref: int
    n_cur: int

    @property
    def drifted_columns(self) -> tuple[str, ...]:
        """Every drifted column, predictions and targets included, in row order."""
        return tuple(row.feature for row in self.rows if row.drifted)

    def row(self, feature: str) -> FeatureDrift:
        """The row of one column.

        Raises
        ------
        KeyError
            No row for that column.
        """
        for row in self.rows:
            if row.feature == feature:
                return row
        raise KeyError(f"no drift row for column {feature!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-safe data (rows, findings, summary)."""
        return {
            "drifted": self.drifted,
            "share_drifted": self.share_drifted,
            "drift_share": self.drift_share,
            "n_drifted": self.n_drifted,
            "n_tested": self.n_tested,
            "prediction_drifted": self.prediction_drifted,
            "target_drifted": self.target_drifted,
            "correction": self.correction,
            "n_ref": self.n_ref,
            "n_cur": self.n_cur,
            "drifted_columns": list(self.drifted_columns),
            "rows": [row.to_dict() for row in self.rows],
            "findings": [f.to_dict() for f in self.findings],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftReport:
        """Inverse of :meth:`to_dict` (e.g. the drift of a stored monitor record).

        Examples
        --------
        >>> report = DriftReport(rows=(), findings=(), drifted=False, share_drifted=0.0,
        ...     drift_share=0.5, n_drifted=0, n_tested=0, prediction_drifted=None,
        ...     target_drifted=None, correction="holm", n_ref=10, n_cur=0)
        >>> DriftReport.from_dict(report.to_dict()) == report
        True
        """
        return cls(
            rows=tuple(FeatureDrift.from_dict(r) for r in data["rows"]),
            findings=tuple(Finding.from_dict(f) for f in data["findings"]),
            **{f.name: data[f.name] for f in fields(cls) if f.name not in ("rows", "findings")},
        )


@dataclass(slots=True)
class _Window:
    """One column's bins in both windows, before the statistics."""

    ref: NDArray[np.float64]
    cur: NDArray[np.float64]
    boundaries: NDArray[np.float64] | None = None
    scale: float | None = None
    findings: list[Finding] = field(default_factory=list)


def _pct(x: float) -> str:
    return f"{x:.2%}" if x < 0.01 else f"{x:.1%}"


def _missing_finding(
    name: str, ref_missing: int, ref_n: int, cur_missing: int, cur_n: int, tolerance: float
) -> Finding | None:
    if cur_n == 0 or cur_missing == 0:
        return None
    ref_rate = ref_missing / ref_n if ref_n else 0.0
    cur_rate = cur_missing / cur_n
    if cur_rate == 1.0 and ref_rate < 1.0:
        message = f"all {cur_n} values are missing (reference: {_pct(ref_rate)})"
    elif ref_missing == 0:
        message = f"{_pct(cur_rate)} missing; the reference had no missing values"
    elif cur_rate - ref_rate > tolerance:
        message = f"{_pct(cur_rate)} missing vs {_pct(ref_rate)} in the reference"
    else:
        return None
    return Finding(kind="missing_rate", column=name, message=message, value=cur_rate)


def _numeric_window(
    name: str, x: NDArray[Any], fp: NumericProfile, buf: NDArray[np.bool_], check: DriftCheck
) -> tuple[_Window | None, int]:
    """Bins of a numeric column on the profile's edges, plus its missing count."""
    n = len(x)
    is_float = x.dtype.kind == "f"
    n_missing = int(np.count_nonzero(np.isnan(x, out=buf))) if is_float and n else 0
    if fp.min is None or fp.max is None:  # the reference had no finite value
        return None, n_missing
    lo, hi = np.float64(fp.min), np.float64(fp.max)
    n_valid = n - n_missing
    below = int(np.count_nonzero(np.less(x, lo, out=buf)))
    cum = [int(np.count_nonzero(np.less_equal(x, e, out=buf))) for e in np.asarray(fp.edges)]
    above = int(np.count_nonzero(np.greater(x, hi, out=buf)))
    cur = np.diff(np.asarray([0, below, *cum, n_valid - above, n_valid], dtype=np.float64))
    # the reference's infinities move from its outer bins to the beyond-range bins
    ref = np.asarray([fp.n_neg_inf, *fp.counts, fp.n_pos_inf], dtype=np.float64)
    ref[1] -= fp.n_neg_inf
    ref[-2] -= fp.n_pos_inf
    window = _Window(
        ref=ref,
        cur=cur,
        boundaries=np.asarray([fp.min, *fp.edges, fp.max], dtype=np.float64),
        scale=fp.std,
    )
    findings = window.findings
    n_inf = 0
    if is_float and (below or above):  # infinities are beyond any finite range
        n_inf = int(np.count_nonzero(np.isinf(x, out=buf)))
        if n_inf:
            findings.append(
                Finding(
                    kind="non_finite",
                    column=name,
                    message=f"{n_inf} infinite values (counted beyond the reference range)",
                    value=n_inf,
                )
            )
    n_out = below + above - n_inf
    # a window of the same distribution puts about 2/(n+1) of its values beyond the extremes
    # of an n-value reference: allow five times that on top of the tolerance
    allowed = float(check.range_tolerance) + 10 / (fp.n_finite + 1)
    if n_valid and n_out / n_valid > allowed:
        findings.append(
            Finding(
                kind="out_of_range",
                column=name,
                message=(
                    f"{_pct(n_out / n_valid)} of values ({n_out}) outside the reference range "
                    f"[{fp.min:.6g}, {fp.max:.6g}]"
                ),
                value=n_out / n_valid,
            )
        )
    nonzero = np.flatnonzero(cur)
    if n_valid >= 2 and nonzero.size == 1:
        lo_cur, hi_cur = float(np.nanmin(x)), float(np.nanmax(x))
        if lo_cur == hi_cur:
            same = " (as in the reference)" if fp.min == fp.max else ""
            findings.append(
                Finding(
                    kind="constant_column",
                    column=name,
                    message=f"all {n_valid} non-missing values equal {lo_cur:.6g}{same}",
                    value=lo_cur,
                )
            )
    elif fp.min == fp.max and fp.n_finite >= 2:
        findings.append(
            Finding(
                kind="constant_column",
                column=name,
                message=f"constant in the reference ({fp.min:.6g}) but not in this window",
                value=fp.min,
            )
        )
    return window, n_missing


def _categorical_window(name: str, col: Categorical, fp: CategoricalProfile) -> tuple[_Window, int]:
    """Counts over the union of the profile's and the window's categories."""
    k = len(col.labels)
    n_rows = len(col.codes)
    try:
        counts = np.bincount(np.add(col.codes, 1, dtype=np.intp), minlength=k + 1)
    except ValueError:  # a code below -1
        raise DataError(
            f"categorical column {name!r} has codes below -1 (only -1 may mark missing values)"
        ) from None
    if len(counts) > k + 1:
        raise DataError(
            f"categorical column {name!r} has codes up to {len(counts) - 2} but only {k} labels"
        )
    n_missing = int(counts[0]) if n_rows else 0
    index = {label: i for i, label in enumerate(fp.labels)}
    ref = list(fp.counts)
    cur = [0] * len(ref)
    unseen: dict[str, int] = {}
    for label, count in zip(col.labels, counts[1:].tolist(), strict=True):
        i = index.get(label)
        if i is not None:
            cur[i] += count
        elif count:
            unseen[label] = count
    window = _Window(
        ref=np.asarray([*ref, *([0] * len(unseen))], dtype=np.float64),
        cur=np.asarray([*cur, *unseen.values()], dtype=np.float64),
    )
    n_valid = n_rows - n_missing
    if unseen:
        n_new = sum(unseen.values())
        shown = ", ".join(repr(label) for label in list(unseen)[:5])
        more = f" and {len(unseen) - 5} more" if len(unseen) > 5 else ""
        window.findings.append(
            Finding(
                kind="unseen_category",
                column=name,
                message=(
                    f"{len(unseen)} categories not in the reference ({shown}{more}): "
                    f"{n_new} rows, {_pct(n_new / n_valid)}"
                ),
                value=n_new / n_valid,
            )
        )
    present = np.flatnonzero(window.cur)
    if n_valid >= 2 and present.size == 1:
        label = [*fp.labels, *unseen][int(present[0])]
        window.findings.append(
            Finding(
                kind="constant_column",
                column=name,
                message=f"all {n_valid} non-missing values are {label!r}",
                value=label,
            )
        )
    return window, n_missing


def _statistic(method: str, w: _Window) -> tuple[float, float | None]:
    if method == "ks":
        res = ks_binned(w.ref, w.cur)
        return res.statistic, res.p_value
    if method == "chi2":
        res = chi_square(w.ref, w.cur)
        return res.statistic, res.p_value
    if method == "psi":
        return psi(w.ref, w.cur), None
    if method == "jensenshannon":
        return jensen_shannon(w.ref, w.cur), None
    if method == "linf":
        return l_infinity(w.ref, w.cur), None
    if method == "wasserstein":
        assert w.boundaries is not None  # numeric windows have boundaries
        return wasserstein_binned(w.boundaries, w.ref, w.cur, scale=w.scale), None
    raise ConfigError(f"unknown drift method {method!r}")  # pragma: no cover - validated


def _dtype_family(dtype: str) -> str:
    """float, integer, bool or text: dtype names that differ only in storage (``object``,
    ``str``, ``string``, ``category``; ``int32``, ``Int64``) are one family."""
    name = dtype.lower()
    for family in ("float", "int", "bool"):
        if family in name:
            return family
    return "text"


def _repr(obj: Any) -> str:
    params = ", ".join(f"{k}={v!r}" for k, v in obj.get_params().items())
    return f"{type(obj).__name__}({params})"


class DriftCheck:
    """Checks a current window against a reference profile: per-column drift and quality.

    Parameters
    ----------
    numeric_method
        Default method for numeric columns, one of :data:`NUMERIC_METHODS`. ``"ks"`` (binned
        KS on the profile's quantile bins) by default; ``"ks_exact"`` needs the raw reference.
    categorical_method
        Default method for categorical columns, one of :data:`CATEGORICAL_METHODS`;
        ``"chi2"`` by default.
    alpha
        Family-wise significance level of the tests (default 0.01, see the module docstring).
    correction
        Multiple-testing control across the tested columns of one check: ``"holm"``
        (default), ``"bonferroni"`` or ``"none"`` (see the module docstring).
    thresholds
        Method -> threshold, overriding :data:`DEFAULT_THRESHOLDS` for distance methods.
    features
        Column -> :class:`FeatureTest` (or ``{"method": ..., "threshold": ...}``) for the
        columns that need another method or threshold.
    drift_share
        The window drifts when at least this share of the tested feature columns drift
        (default 0.5).
    prediction, target
        Names of prediction column(s) and of the target column: checked like the others but
        reported apart and left out of the share.
    min_samples
        Fewest non-missing values, in each window, for a column to be tested (default 30).
    min_distance
        For test methods, the Jensen-Shannon distance a column also needs in order to count as
        drifted (default 0: significance alone decides).
    missing_tolerance
        A ``missing_rate`` finding when the current missing rate exceeds the reference's by
        more than this (default 0.05), or when missing values appear in a column that had
        none, or when everything is missing.
    range_tolerance
        An ``out_of_range`` finding when more than this share (default 0.001) plus
        ``10 / (n + 1)`` of a numeric column's values lie outside the [min, max] of its ``n``
        finite reference values (a window of the same distribution puts about ``2 / (n + 1)``
        of its values there).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> def window(shift, n=20_000):
    ...     return Columns(numeric={"a": rng.normal(shift, 1, n), "b": rng.normal(0, 1, n)})
    >>> from retrainer.core.profile import compute_profile
    >>> profile = compute_profile(window(0.0))
    >>> report = DriftCheck().check(profile, window(0.1))
    >>> report.drifted_columns, report.share_drifted, report.drifted
    (('a',), 0.5, True)
    >>> row = report.row("a")
    >>> row.method, round(row.statistic, 3), row.adjusted_p_value < 1e-10
    ('ks', 0.041, True)
    """

    def __init__(
        self,
        *,
        numeric_method: str = "ks",
        categorical_method: str = "chi2",
        alpha: float = 0.01,
        correction: Correction = "holm",
        thresholds: Mapping[str, float] | None = None,
        features: Mapping[str, FeatureTest | Mapping[str, Any]] | None = None,
        drift_share: float = 0.5,
        prediction: str | Sequence[str] | None = None,
        target: str | None = None,
        min_samples: int = 30,
        min_distance: float = 0.0,
        missing_tolerance: float = 0.05,
        range_tolerance: float = 0.001,
    ) -> None:
        self.numeric_method = numeric_method
        self.categorical_method = categorical_method
        self.alpha = alpha
        self.correction = correction
        self.thresholds = thresholds
        self.features = features
        self.drift_share = drift_share
        self.prediction = prediction
        self.target = target
        self.min_samples = min_samples
        self.min_distance = min_distance
        self.missing_tolerance = missing_tolerance
        self.range_tolerance = range_tolerance

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters, as given."""
        return {
            "numeric_method": self.numeric_method,
            "categorical_method": self.categorical_method,
            "alpha": self.alpha,
            "correction": self.correction,
            "thresholds": self.thresholds,
            "features": self.features,
            "drift_share": self.drift_share,
            "prediction": self.prediction,
            "target": self.target,
            "min_samples": self.min_samples,
            "min_distance": self.min_distance,
            "missing_tolerance": self.missing_tolerance,
            "range_tolerance": self.range_tolerance,
        }

    def __repr__(self) -> str:
        return _repr(self)

    # validation ----------------------------------------------------------------------------

    def _fraction(self, name: str, value: object, *, open_low: bool, open_high: bool) -> None:
        ok = is_number(value)
        if ok:
            v = float(value)  # type: ignore[arg-type]
            ok = (v > 0 if open_low else v >= 0) and (v < 1 if open_high else v <= 1)
        if not ok:
            lo, hi = ("(0" if open_low else "[0"), ("1)" if open_high else "1]")
            raise ConfigError(f"DriftCheck.{name} must be a number in {lo}, {hi}; got {value!r}")

    def _feature_tests(self) -> dict[str, FeatureTest]:
        if self.features is None:
            return {}
        if not isinstance(self.features, Mapping):
            raise ConfigError(
                f"DriftCheck.features must map column names to {{method, threshold}}; "
                f"got {self.features!r}"
            )
        tests: dict[str, FeatureTest] = {}
        for name, spec in self.features.items():
            if isinstance(spec, FeatureTest):
                test = spec
            elif isinstance(spec, Mapping) and set(spec) <= {"method", "threshold"}:
                if "method" not in spec:
                    raise ConfigError(f"DriftCheck.features[{name!r}] needs a method")
                test = FeatureTest(method=spec["method"], threshold=spec.get("threshold"))
            else:
                raise ConfigError(
                    f"DriftCheck.features[{name!r}] must be {{'method': ..., 'threshold': ...}}; "
                    f"got {spec!r}"
                )
            if test.method not in (*NUMERIC_METHODS, *CATEGORICAL_METHODS):
                raise ConfigError(
                    f"DriftCheck.features[{name!r}].method must be one of "
                    f"{sorted({*NUMERIC_METHODS, *CATEGORICAL_METHODS})}; got {test.method!r}"
                )
            if test.threshold is not None and not (
                is_number(test.threshold) and test.threshold > 0
            ):
                raise ConfigError(
                    f"DriftCheck.features[{name!r}].threshold must be a number > 0 or None; "
                    f"got {test.threshold!r}"
                )
            tests[str(name)] = test
        return tests

    def validate(self) -> None:
        """Check every parameter now (``check`` does on first use); raise ConfigError.

        Examples
        --------
        >>> DriftCheck(alpha=2.0).validate()
        Traceback (most recent call last):
        ...
        retrainer.errors.ConfigError: DriftCheck.alpha ...
        """
        self._validate()

    def _validate(self) -> tuple[dict[str, FeatureTest], dict[str, float], dict[str, Role]]:
        if self.numeric_method not in NUMERIC_METHODS:
            raise ConfigError(
                f"DriftCheck.numeric_method must be one of {list(NUMERIC_METHODS)}; "
                f"got {self.numeric_method!r}"
            )
        if self.categorical_method not in CATEGORICAL_METHODS:
            raise ConfigError(
                f"DriftCheck.categorical_method must be one of {list(CATEGORICAL_METHODS)}; "
                f"got {self.categorical_method!r}"
            )
        self._fraction("alpha", self.alpha, open_low=True, open_high=True)
        self._fraction("drift_share", self.drift_share, open_low=True, open_high=False)
        self._fraction("missing_tolerance", self.missing_tolerance, open_low=False, open_high=False)
        self._fraction("range_tolerance", self.range_tolerance, open_low=False, open_high=False)
        self._fraction("min_distance", self.min_distance, open_low=False, open_high=False)
        if self.correction not in ("holm", "bonferroni", "none"):
            raise ConfigError(
                f"DriftCheck.correction must be 'holm', 'bonferroni' or 'none'; "
                f"got {self.correction!r}"
            )
        if (
            isinstance(self.min_samples, bool)
            or not isinstance(self.min_samples, int)
            or self.min_samples < 1
        ):
            raise ConfigError(
                f"DriftCheck.min_samples must be an integer >= 1; got {self.min_samples!r}"
            )
        thresholds = dict(DEFAULT_THRESHOLDS)
        for method, value in (self.thresholds or {}).items():
            if method not in DEFAULT_THRESHOLDS:
                raise ConfigError(
                    f"DriftCheck.thresholds keys must be distance methods "
                    f"{sorted(DEFAULT_THRESHOLDS)} (tests use alpha); got {method!r}"
                )
            if not (is_number(value) and value > 0):
                raise ConfigError(
                    f"DriftCheck.thresholds[{method!r}] must be a number > 0; got {value!r}"
                )
            thresholds[method] = float(value)
        roles: dict[str, Role] = {}
        predictions = [self.prediction] if isinstance(self.prediction, str) else self.prediction
        if predictions is not None and not isinstance(predictions, Sequence):
            predictions = [predictions]
        for name in predictions or ():
            if not isinstance(name, str):
                raise ConfigError(
                    f"DriftCheck.prediction must be a column name or a list of them; "
                    f"got {self.prediction!r}"
                )
            roles[name] = "prediction"
        if self.target is not None:
            if not isinstance(self.target, str):
                raise ConfigError(f"DriftCheck.target must be a column name; got {self.target!r}")
            roles[self.target] = "target"
        return self._feature_tests(), thresholds, roles

    # the check -----------------------------------------------------------------------------

    def check(
        self, profile: Profile, current: Columns, *, reference: Columns | None = None
    ) -> DriftReport:
        """Compare ``current`` with ``profile``.

        Parameters
        ----------
        profile
            The reference profile (:func:`~retrainer.core.profile.compute_profile`).
        current
            The window to check.
        reference
            The raw reference window, needed only by columns using ``"ks_exact"``.

        Raises
        ------
        ConfigError
            Invalid parameters, a method that does not fit a column's kind, or
            ``"ks_exact"`` without the raw reference.
        DataError
            Categorical codes out of range for their labels.
        """
        tests, thresholds, roles = self._validate()
        findings: list[Finding] = list(current.findings)
        n_cur = int(current.n_rows or 0)
        if n_cur == 0:
            findings.append(
                Finding(kind="empty_window", column=None, message="the window has no rows", value=0)
            )
        present = set(current.names)
        for name in current.names:
            if name not in profile.features:
                findings.append(
                    Finding(
                        kind="column_added",
                        column=name,
                        message=(
                            f"not in the reference profile ({current.dtypes[name]}): not checked"
                        ),
                        value=current.dtypes[name],
                    )
                )
        buf = np.empty(n_cur, dtype=bool)  # the one scratch array of every comparison
        rows: list[FeatureDrift] = []
        for name, fp in profile.features.items():
            if name not in present:
                findings.append(
                    Finding(
                        kind="column_removed",
                        column=name,
                        message=f"in the reference profile ({fp.dtype}) but not in this window",
                        value=fp.dtype,
                    )
                )
                continue
            method, threshold = self._method(name, fp, tests, thresholds)
            template = FeatureDrift(
                feature=name,
                kind=fp.kind,
                role=roles.get(name, "feature"),
                method=method,
                statistic=None,
                p_value=None,
                adjusted_p_value=None,
                distance=None,
                threshold=threshold,
                drifted=False,
                n_ref=sum(fp.counts),
                n_cur=0,
            )
            row, column_findings = self._compare(template, fp, current, buf, reference)
            rows.append(row)
            findings.extend(column_findings)
        return self._report(self._decide(rows), findings, profile.n_rows, n_cur)

    def _method(
        self,
        name: str,
        fp: NumericProfile | CategoricalProfile,
        tests: Mapping[str, FeatureTest],
        thresholds: Mapping[str, float],
    ) -> tuple[str, float]:
        spec = tests.get(name)
        default = self.numeric_method if fp.kind == "numeric" else self.categorical_method
        method = spec.method if spec else default
        allowed = NUMERIC_METHODS if fp.kind == "numeric" else CATEGORICAL_METHODS
        if method not in allowed:
            raise ConfigError(
                f"method {method!r} does not apply to {fp.kind} column {name!r}; "
                f"use one of {list(allowed)}"
            )
        if spec and spec.threshold is not None:
            return method, float(spec.threshold)
        return method, float(self.alpha) if method in TEST_METHODS else thresholds[method]

    def _compare(
        self,
        template: FeatureDrift,
        fp: NumericProfile | CategoricalProfile,
        current: Columns,
        buf: NDArray[np.bool_],
        reference: Columns | None,
    ) -> tuple[FeatureDrift, list[Finding]]:
        """One column's row (not yet adjusted for multiple testing) and its findings."""
        name = template.feature
        n_cur = int(current.n_rows or 0)
        cur_kind = "numeric" if name in current.numeric else "categorical"
        cur_dtype = current.dtypes[name]
        findings: list[Finding] = []
        if cur_kind != fp.kind:
            message = f"was {fp.kind} ({fp.dtype}), now {cur_kind} ({cur_dtype}): not compared"
            findings.append(
                Finding(kind="dtype_changed", column=name, message=message, value=cur_dtype)
            )
            return replace(template, note="not tested: type changed"), findings
        if _dtype_family(cur_dtype) != _dtype_family(fp.dtype):
            message = f"dtype was {fp.dtype}, now {cur_dtype}"
            findings.append(
                Finding(kind="dtype_changed", column=name, message=message, value=cur_dtype)
            )
        window: _Window | None
        if isinstance(fp, NumericProfile):
            x = current.numeric[name]
            window, n_missing = _numeric_window(name, x, fp, buf, self)
        else:
            window, n_missing = _categorical_window(name, current.categorical[name], fp)
        missing = _missing_finding(
            name, fp.n_missing, fp.n, n_missing, n_cur, float(self.missing_tolerance)
        )
        if missing is not None:
            findings.append(missing)
        if window is not None:
            findings.extend(window.findings)
        n_ref, n_valid = template.n_ref, n_cur - n_missing
        if window is None or n_ref < self.min_samples or n_valid < self.min_samples:
            note = (
                f"not tested: {n_ref} reference and {n_valid} current non-missing values "
                f"(min_samples={self.min_samples})"
            )
            if n_cur > 0:
                findings.append(
                    Finding(
                        kind="too_few_rows", column=name, message=note, value=min(n_ref, n_valid)
                    )
                )
            return replace(template, n_cur=n_valid, note=note), findings
        p: float | None
        if template.method == "ks_exact":
            stat, p = self._exact(name, current.numeric[name], reference)
        else:
            stat, p = _statistic(template.method, window)
        distance = jensen_shannon(window.ref, window.cur)
        row = replace(template, statistic=stat, p_value=p, distance=distance, n_cur=n_valid)
        return row, findings

    def _exact(self, name: str, x: NDArray[Any], reference: Columns | None) -> tuple[float, float]:
        if reference is None or name not in reference.numeric:
            raise ConfigError(
                f"method 'ks_exact' for column {name!r} needs the raw reference: "
                f"pass reference=Columns(numeric={{{name!r}: ...}}) to check()"
            )
        res = ks_exact(reference.numeric[name], x)
        return res.statistic, res.p_value

    def _decide(self, rows: list[FeatureDrift]) -> list[FeatureDrift]:
        family = [i for i, r in enumerate(rows) if r.tested and r.p_value is not None]
        adjusted = adjust_p_values(
            [float(p) for i in family if (p := rows[i].p_value) is not None], self.correction
        )
        out = list(rows)
        for i, adj in zip(family, adjusted.tolist(), strict=True):
            r = rows[i]
            distance = r.distance if r.distance is not None else 0.0
            drifted = adj <= r.threshold and distance >= float(self.min_distance)
            out[i] = replace(r, adjusted_p_value=adj, drifted=drifted)
        for i, r in enumerate(rows):
            if r.tested and r.p_value is None:
                assert r.statistic is not None
                out[i] = replace(r, drifted=r.statistic >= r.threshold)
        return out

    def _report(
        self, rows: list[FeatureDrift], findings: list[Finding], n_ref: int, n_cur: int
    ) -> DriftReport:
        features = [r for r in rows if r.role == "feature" and r.tested]
        n_drifted = sum(r.drifted for r in features)
        share = n_drifted / len(features) if features else 0.0

        def role_drifted(role: Role) -> bool | None:
            tested = [r for r in rows if r.role == role and r.tested]
            return any(r.drifted for r in tested) if tested else None

        return DriftReport(
            rows=tuple(rows),
            findings=tuple(findings),
            drifted=bool(features) and share >= float(self.drift_share),
            share_drifted=share,
            drift_share=float(self.drift_share),
            n_drifted=n_drifted,
            n_tested=len(features),
            prediction_drifted=role_drifted("prediction"),
            target_drifted=role_drifted("target"),
            correction=str(self.correction),
            n_ref=n_ref,
            n_cur=n_cur,
        )


def check_drift(
    profile: Profile,
    current: Columns,
    config: DriftCheck | None = None,
    *,
    reference: Columns | None = None,
) -> DriftReport:
    """Check ``current`` against ``profile`` with ``config`` (default: ``DriftCheck()``).

    Examples
    --------
    >>> import numpy as np
    >>> from retrainer.core.profile import Categorical, compute_profile
    >>> rng = np.random.default_rng(1)
    >>> labels = ["a", "b", "c"]
    >>> ref = Columns(categorical={"c": Categorical(rng.integers(0, 3, 5000), labels)})
    >>> cur = Columns(categorical={"c": Categorical(rng.integers(0, 4, 5000), [*labels, "d"])})
    >>> report = check_drift(compute_profile(ref), cur)
    >>> report.drifted, [f.kind for f in report.findings]
    (True, ['unseen_category'])
    """
    return (config or DriftCheck()).check(profile, current, reference=reference)

"""The blessing gate: may a retrained candidate replace the champion?

The candidate and the champion are scored on the same fresh holdout into :class:`ScoreCard` s;
a :class:`Gate` runs its rules over them and returns a :class:`~retrainer.core.types.Verdict`
whose evidence has one :class:`~retrainer.core.types.EvidenceRow` per check. The verdict passes
only if every row passes. Three rule types cover the configuration file:

- :class:`AbsoluteRule`: bounds on the candidate's score (``accuracy >= 0.6``);
- :class:`ChangeRule`: improvement over the champion, in the metric's direction, absolute or
  relative (``improvement >= +0.000``, ``regression <= 1.0%``);
- :class:`SliceRule`: both of the above on every large-enough slice of one column;
- :class:`~retrainer.core.blessing_significance.SignificanceRule`: a paired test on the holdout
  rows (``better: significant``, ``not_worse: significant``), read from the cards' ``rows``.

Conventions shared by all rules:

- a candidate value that is missing or NaN fails its row (an unscorable candidate is never
  blessed, even when there is no champion to compare with);
- without a champion, or when the champion has no usable value for a metric (missing or NaN),
  comparisons with it pass with a note saying they were skipped; absolute bounds still apply;
- comparisons allow for floating-point rounding (relative 1e-9, absolute 1e-12), so a
  regression of exactly the allowed amount passes even when ``0.65 - 0.6`` rounds above 0.05;
- a relative change from a champion value of exactly 0 is taken as infinite in the direction
  of the raw change (no change is 0%), so it still decides the row.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Protocol, runtime_checkable

from pydantic import BeforeValidator, Discriminator, Field, PlainValidator, Tag, model_validator
from pydantic_core import PydanticCustomError

from retrainer.core._spec import Count, Flag, Name, NonNegative, Number, Registry, Spec
from retrainer.core.blessing_significance import SignificanceRule
from retrainer.core.significance import HoldoutRows
from retrainer.core.types import EvidenceRow, Verdict
from retrainer.errors import ConfigError

if TYPE_CHECKING:  # the metrics (scikit-learn) are imported when a gate runs, not to read config
    from retrainer.core.metrics import Metric

__all__ = [
    "RULES",
    "AbsoluteRule",
    "ChangeRule",
    "Gate",
    "Rule",
    "RuleSpec",
    "ScoreCard",
    "SliceRule",
    "SliceScore",
    "build_rule",
]

_REL_TOL = 1e-9
_ABS_TOL = 1e-12


@dataclass(frozen=True, slots=True, kw_only=True)
class SliceScore:
    """One model's scores on one slice of the holdout (rows where ``column == value``).

    Examples
    --------
    >>> SliceScore(n=120, metrics={"accuracy": 0.8})
    SliceScore(n=120, metrics={'accuracy': 0.8})
    """

    n: int
    metrics: Mapping[str, float]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoreCard:
    """One model's scores on the holdout, overall and per slice.

    Parameters
    ----------
    n
        Number of holdout rows scored.
    metrics
        Metric name -> value (NaN when undefined on the holdout).
    slices
        Column name -> slice value (as a string) -> :class:`SliceScore`.
    rows
        The model's answer on each holdout row, for significance rules (None unless a rule
        needs them: :attr:`Gate.needs_rows`).

    Examples
    --------
    >>> card = ScoreCard(
    ...     n=500,
    ...     metrics={"accuracy": 0.81},
    ...     slices={"region": {"north": SliceScore(n=300, metrics={"accuracy": 0.83})}},
    ... )
    >>> card.slices["region"]["north"].metrics["accuracy"]
    0.83
    """

    n: int
    metrics: Mapping[str, float]
    slices: Mapping[str, Mapping[str, SliceScore]] = field(default_factory=dict)
    rows: HoldoutRows | None = field(default=None, compare=False, repr=False)


@runtime_checkable
class Rule(Protocol):
    """What the :class:`Gate` needs from a blessing rule.

    ``check`` returns at least one evidence row; ``metric`` names the metric it reads, which
    the gate looks up in its metrics to learn the direction.

    Examples
    --------
    >>> isinstance(AbsoluteRule("accuracy", min=0.6), Rule)
    True
    """

    metric: str

    def check(
        self, candidate: ScoreCard, champion: ScoreCard | None, metric: Metric
    ) -> list[EvidenceRow]: ...

    def get_params(self) -> dict[str, Any]: ...


# --- parameter types --------------------------------------------------------------------------


def _metric_name(value: Any) -> Any:
    if not isinstance(value, str) or not value:
        raise PydanticCustomError("retrainer", "must be a metric name (a non-empty string)")
    return value


MetricName = Annotated[str, PlainValidator(_metric_name, json_schema_input_type=str)]


# --- comparisons and text ---------------------------------------------------------------------


def _at_least(value: float, bound: float) -> bool:
    return value >= bound or math.isclose(value, bound, rel_tol=_REL_TOL, abs_tol=_ABS_TOL)


def _fmt_threshold(value: float, *, relative: bool, signed: bool) -> str:
    """Thresholds as written in config: 3 decimals (or a percentage with 1), more if needed."""
    shown = value * 100 if relative else value
    digits = 1 if relative else 3
    text = f"{shown:+.{digits}f}" if signed else f"{shown:.{digits}f}"
    if not math.isclose(float(text), shown, rel_tol=_REL_TOL, abs_tol=_ABS_TOL):
        text = f"{shown:+g}" if signed else f"{shown:g}"
    return text + ("%" if relative else "")


def _fmt_change(value: float, *, relative: bool, signed: bool) -> str:
    if relative:
        return (f"{value * 100:+.3g}" if signed else f"{value * 100:.3g}") + "%"
    return f"{value:+.4g}" if signed else f"{value:.4g}"


def _check_order(owner: str, lo: float | None, hi: float | None) -> None:
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"{owner}.min must not exceed max; got min={lo!r}, max={hi!r}")


def _bounds_text(lo: float | None, hi: float | None) -> str:
    parts = [f">= {lo:g}"] if lo is not None else []
    if hi is not None:
        parts.append(f"<= {hi:g}")
    return " and ".join(parts)


def _lookup(metrics: Mapping[str, float] | None, name: str) -> float | None:
    value = metrics.get(name) if metrics is not None else None
    return None if value is None else float(value)


def _usable(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def _delta(candidate: float | None, champion: float | None) -> float | None:
    if candidate is None or champion is None or not (_usable(candidate) and _usable(champion)):
        return None
    return candidate - champion


def _candidate_problem(label: str, value: float | None) -> str | None:
    if value is None:
        return f"{label} missing on candidate"
    if math.isnan(value):
        return f"{label} is NaN on candidate"
    return None


def _champion_skip_note(
    has_champion: bool, champion_metrics: Mapping[str, float] | None, name: str, where: str
) -> str:
    """Why a comparison with the champion is skipped ('' when it is not)."""
    if not has_champion:
        return "no champion: skipped"
    if champion_metrics is None:
        return f"champion has no score{where}: skipped"
    value = _lookup(champion_metrics, name)
    if value is None:
        return f"champion has no {name} value{where}: skipped"
    if math.isnan(value):
        return f"champion's {name} is NaN{where}: skipped"
    return ""


def _change(metric: Metric, candidate: float, champion: float, relative: bool) -> float:
    from retrainer.core.metrics import improvement

    if relative and champion == 0:
        raw = improvement(metric, candidate, champion, relative=False)
        return 0.0 if raw == 0 else math.copysign(math.inf, raw)
    return improvement(metric, candidate, champion, relative=relative)


def _absolute_row(
    *,
    rule: str,
    metric_name: str,
    label: str,
    candidate: float | None,
    champion: float | None,
    lo: float | None,
    hi: float | None,
    slice: str | None = None,
) -> EvidenceRow:
    problem = _candidate_problem(label, candidate)
    failures = [problem] if problem else []
    if candidate is not None and not problem:
        if lo is not None and not _at_least(candidate, lo):
            failures.append(f"{label} {candidate:.4g} < min {lo:g}")
        if hi is not None and not _at_least(-candidate, -hi):
            failures.append(f"{label} {candidate:.4g} > max {hi:g}")
    return EvidenceRow(
        rule=rule,
        metric=metric_name,
        candidate=candidate,
        champion=champion,
        delta=_delta(candidate, champion),
        threshold=_bounds_text(lo, hi),
        passed=not failures,
        slice=slice,
        note="; ".join(failures),
    )


def _change_rows(
    *,
    rule: str,
    metric: Metric,
    metric_name: str,
    label: str,
    candidate: float | None,
    champion: float | None,
    skip_note: str,
    min_improvement: float | None,
    max_regression: float | None,
    relative: bool,
    slice: str | None = None,
) -> list[EvidenceRow]:
    """One row per bound that is set: improvement >= min_improvement, regression <= max."""
    bounds: list[tuple[str, float]] = []
    if min_improvement is not None:
        bounds.append(("improvement", float(min_improvement)))
    if max_regression is not None:
        bounds.append(("regression", float(max_regression)))
    rows = []
    for kind, bound in bounds:
        if kind == "improvement":
            threshold = f"improvement >= {_fmt_threshold(bound, relative=relative, signed=True)}"
        else:
            threshold = f"regression <= {_fmt_threshold(bound, relative=relative, signed=False)}"
        problem = _candidate_problem(label, candidate)
        if problem:
            passed, note = False, problem
        elif skip_note or candidate is None or champion is None:
            passed, note = True, skip_note
        else:
            change = _change(metric, candidate, champion, relative)
            zero_note = (
                "champion is 0: relative change taken as infinite"
                if relative and champion == 0 and change != 0
                else ""
            )
            if kind == "improvement":
                passed = _at_least(change, bound)
                shown = _fmt_change(change, relative=relative, signed=True)
                required = _fmt_threshold(bound, relative=relative, signed=True)
                failure = f"{label} improvement {shown} < required {required}"
            else:
                passed = _at_least(change, -bound)
                shown = _fmt_change(-change, relative=relative, signed=False)
                allowed = _fmt_threshold(bound, relative=relative, signed=False)
                failure = f"{label} regression {shown} > allowed {allowed}"
            note = "; ".join(n for n in ("" if passed else failure, zero_note) if n)
        rows.append(
            EvidenceRow(
                rule=rule,
                metric=metric_name,
                candidate=candidate,
                champion=champion,
                delta=_delta(candidate, champion),
                threshold=threshold,
                passed=passed,
                slice=slice,
                note=note,
            )
        )
    return rows


def _repr(obj: Any) -> str:
    params = ", ".join(f"{k}={v!r}" for k, v in obj.get_params().items())
    return f"{type(obj).__name__}({params})"


def _change_text(
    min_improvement: float | None, max_regression: float | None, relative: bool
) -> str:
    parts = []
    if min_improvement is not None:
        shown = _fmt_threshold(min_improvement, relative=relative, signed=True)
        parts.append(f"improvement >= {shown}")
    if max_regression is not None:
        shown = _fmt_threshold(max_regression, relative=relative, signed=False)
        parts.append(f"regression <= {shown}")
    return " and ".join(parts)


# --- rules ------------------------------------------------------------------------------------


class AbsoluteRule(Spec):
    """Bounds on the candidate's score: ``min <= value <= max``.

    Parameters
    ----------
    metric
        Name of the metric to check.
    min, max
        Inclusive bounds; at least one is required. They apply whatever the metric's direction
        (use ``max`` for a loss).

    Examples
    --------
    >>> from retrainer.core.metrics import get_metric
    >>> rule = AbsoluteRule("accuracy", min=0.65)
    >>> [row] = rule.check(ScoreCard(n=200, metrics={"accuracy": 0.61}), None,
    ...                    get_metric("accuracy"))
    >>> row.threshold, row.passed, row.note
    ('>= 0.65', False, 'accuracy 0.61 < min 0.65')
    >>> rule.to_spec(), rule.describe()
    ({'metric': 'accuracy', 'min': 0.65}, 'accuracy >= 0.65')
    """

    kind: ClassVar[str] = "absolute"
    example: ClassVar[Mapping[str, Any] | None] = {"metric": "accuracy", "min": 0.6, "max": 1}
    metric: MetricName
    min: Number | None = None
    max: Number | None = None

    @model_validator(mode="after")
    def _bounds(self) -> AbsoluteRule:
        if self.min is None and self.max is None:
            raise ValueError(
                f"AbsoluteRule for metric {self.metric!r} needs min or max; got neither"
            )
        _check_order(type(self).__name__, self.min, self.max)
        return self

    def describe(self) -> str:
        """``accuracy >= 0.6``, ``rmse <= 1.5``."""
        return f"{self.metric} {_bounds_text(self.min, self.max)}"

    def check(
        self, candidate: ScoreCard, champion: ScoreCard | None, metric: Metric
    ) -> list[EvidenceRow]:
        """Return one ``"absolute"`` row for the candidate's overall score."""
        self.check_params()
        return [
            _absolute_row(
                rule="absolute",
                metric_name=self.metric,
                label=self.metric,
                candidate=_lookup(candidate.metrics, self.metric),
                champion=_lookup(champion.metrics, self.metric) if champion else None,
                lo=self.min,
                hi=self.max,
            )
        ]


class ChangeRule(Spec):
    """The candidate must not be worse than the champion by more than allowed.

    Improvement follows the metric's direction: ``candidate - champion`` when greater is
    better, ``champion - candidate`` otherwise; ``relative=True`` divides it by ``|champion|``.
    Regression is minus the improvement.

    Parameters
    ----------
    metric
        Name of the metric to compare.
    min_improvement
        Required improvement (``0.0``: at least as good as the champion); may be negative.
    max_regression
        Largest allowed regression, ``>= 0``. At least one of the two bounds is required; each
        gives its own evidence row.
    relative
        Whether the bounds are fractions of the champion's value (``0.01`` is 1%).

    Examples
    --------
    >>> from retrainer.core.metrics import get_metric
    >>> rule = ChangeRule("rmse", max_regression=0.01, relative=True)
    >>> [row] = rule.check(ScoreCard(n=200, metrics={"rmse": 1.05}),
    ...                    ScoreCard(n=200, metrics={"rmse": 1.0}), get_metric("rmse"))
    >>> row.threshold, row.passed, row.note
    ('regression <= 1.0%', False, 'rmse regression 5% > allowed 1.0%')
    >>> [row] = rule.check(ScoreCard(n=200, metrics={"rmse": 1.05}), None, get_metric("rmse"))
    >>> row.passed, row.note
    (True, 'no champion: skipped')
    >>> rule.describe()
    'rmse: regression <= 1.0% vs the champion'
    """

    kind: ClassVar[str] = "change"
    example: ClassVar[Mapping[str, Any] | None] = {
        "metric": "rmse",
        "max_regression": 0.01,
        "relative": True,
    }
    metric: MetricName
    min_improvement: Number | None = None
    max_regression: NonNegative | None = None
    relative: Flag = False

    @model_validator(mode="after")
    def _a_bound(self) -> ChangeRule:
        if self.min_improvement is None and self.max_regression is None:
            raise ValueError(
                f"ChangeRule for metric {self.metric!r} needs min_improvement or "
                "max_regression; got neither"
            )
        return self

    def describe(self) -> str:
        """``accuracy: improvement >= +0.000 vs the champion``."""
        text = _change_text(self.min_improvement, self.max_regression, self.relative)
        return f"{self.metric}: {text} vs the champion"

    def check(
        self, candidate: ScoreCard, champion: ScoreCard | None, metric: Metric
    ) -> list[EvidenceRow]:
        """Return one ``"change"`` row per bound that is set."""
        self.check_params()
        champion_metrics = champion.metrics if champion is not None else None
        return _change_rows(
            rule="change",
            metric=metric,
            metric_name=self.metric,
            label=self.metric,
            candidate=_lookup(candidate.metrics, self.metric),
            champion=_lookup(champion_metrics, self.metric),
            skip_note=_champion_skip_note(
                champion is not None, champion_metrics, self.metric, where=""
            ),
            min_improvement=self.min_improvement,
            max_regression=self.max_regression,
            relative=self.relative,
        )


class SliceRule(Spec):
    """Per-slice checks: every value of ``column`` with enough rows must hold up.

    For each slice with ``n >= min_size``: ``min``/``max`` bound the candidate's score on it
    and ``max_regression`` bounds its regression against the champion's score on the same
    slice (see :class:`ChangeRule`). Smaller slices give a passing row noting the skip. Slice
    names in evidence read ``column=value``.

    Parameters
    ----------
    metric
        Name of the metric to check.
    column
        The column whose values define the slices (``ScoreCard.slices[column]``).
    min_size
        Slices with fewer rows are skipped.
    min, max
        Inclusive bounds on the candidate's slice score.
    max_regression
        Largest allowed regression vs the champion on the slice, ``>= 0``.
    relative
        Whether ``max_regression`` is a fraction of the champion's slice score.

    Examples
    --------
    >>> from retrainer.core.metrics import get_metric
    >>> candidate = ScoreCard(n=400, metrics={"accuracy": 0.8}, slices={"region": {
    ...     "north": SliceScore(n=300, metrics={"accuracy": 0.82}),
    ...     "south": SliceScore(n=100, metrics={"accuracy": 0.55}),
    ...     "west": SliceScore(n=4, metrics={"accuracy": 0.0}),
    ... }})
    >>> rule = SliceRule("accuracy", "region", min_size=30, min=0.6)
    >>> for row in rule.check(candidate, None, get_metric("accuracy")):
    ...     print(f"{row.slice}: {row.passed} {row.note}".rstrip())
    region=north: True
    region=south: False accuracy[region=south] 0.55 < min 0.6
    region=west: True n=4 < min_size=30: skipped
    >>> rule.to_spec()
    {'metric': 'accuracy', 'slice': 'region', 'min_size': 30, 'min': 0.6}
    >>> rule.describe()
    'accuracy on each region slice of >= 30 rows: >= 0.6'
    """

    kind: ClassVar[str] = "slice"
    example: ClassVar[Mapping[str, Any] | None] = {
        "metric": "accuracy",
        "slice": "region",
        "min_size": 50,
        "min": 0.5,
    }
    metric: MetricName
    column: Name = Field(alias="slice")
    """The configuration key is ``slice``."""
    min_size: Count = 30
    min: Number | None = None
    max: Number | None = None
    max_regression: NonNegative | None = None
    relative: Flag = False

    @model_validator(mode="after")
    def _a_bound(self) -> SliceRule:
        if self.min is None and self.max is None and self.max_regression is None:
            raise ValueError(
                f"SliceRule for metric {self.metric!r} on column {self.column!r} needs min, max "
                "or max_regression; got none"
            )
        _check_order(type(self).__name__, self.min, self.max)
        return self

    def describe(self) -> str:
        """``accuracy on each region slice of >= 30 rows: >= 0.6``."""
        return f"{self.metric} on each {self.column} slice of >= {self.min_size} rows: " + (
            self._thresholds()
        )

    def _thresholds(self) -> str:
        parts = (
            [_bounds_text(self.min, self.max)]
            if self.min is not None or self.max is not None
            else []
        )
        if self.max_regression is not None:
            allowed = _fmt_threshold(self.max_regression, relative=self.relative, signed=False)
            parts.append(f"regression <= {allowed}")
        return "; ".join(parts)

    def check(
        self, candidate: ScoreCard, champion: ScoreCard | None, metric: Metric
    ) -> list[EvidenceRow]:
        """Return ``"slice"`` rows: per slice, one for the bounds and one for the regression."""
        self.check_params()
        slices = candidate.slices.get(self.column)
        if not slices:
            return [
                EvidenceRow(
                    rule="slice",
                    metric=self.metric,
                    candidate=None,
                    champion=None,
                    delta=None,
                    threshold=self._thresholds(),
                    passed=False,
                    note=f"no slices of column {self.column!r} on candidate",
                )
            ]
        champion_slices = champion.slices.get(self.column, {}) if champion is not None else {}
        rows: list[EvidenceRow] = []
        for value, score in slices.items():
            name = f"{self.column}={value}"
            label = f"{self.metric}[{name}]"
            cand = _lookup(score.metrics, self.metric)
            champion_score = champion_slices.get(value)
            champion_metrics = champion_score.metrics if champion_score is not None else None
            champ = _lookup(champion_metrics, self.metric)
            if score.n < self.min_size:
                rows.append(
                    EvidenceRow(
                        rule="slice",
                        metric=self.metric,
                        candidate=cand,
                        champion=champ,
                        delta=_delta(cand, champ),
                        threshold=f"n >= {self.min_size}",
                        passed=True,
                        slice=name,
                        note=f"n={score.n} < min_size={self.min_size}: skipped",
                    )
                )
                continue
            if self.min is not None or self.max is not None:
                rows.append(
                    _absolute_row(
                        rule="slice",
                        metric_name=self.metric,
                        label=label,
                        candidate=cand,
                        champion=champ,
                        lo=self.min,
                        hi=self.max,
                        slice=name,
                    )
                )
            rows.extend(
                _change_rows(
                    rule="slice",
                    metric=metric,
                    metric_name=self.metric,
                    label=label,
                    candidate=cand,
                    champion=champ,
                    skip_note=_champion_skip_note(
                        champion is not None, champion_metrics, self.metric, where=f" on {name}"
                    ),
                    min_improvement=None,
                    max_regression=self.max_regression,
                    relative=self.relative,
                    slice=name,
                )
            )
        return rows


# --- the gate ---------------------------------------------------------------------------------


class Gate:
    """Runs blessing rules over a candidate and the champion and returns a verdict.

    Parameters
    ----------
    rules
        The rules to apply (at least one), e.g. from :func:`build_rule`.
    metrics
        Metric name -> :class:`~retrainer.core.metrics.Metric`; every rule's metric must be
        here (it gives the metric's direction).

    Examples
    --------
    >>> from retrainer.core.metrics import get_metric
    >>> gate = Gate(
    ...     [AbsoluteRule("accuracy", min=0.65), ChangeRule("accuracy", max_regression=0.01)],
    ...     {"accuracy": get_metric("accuracy")},
    ... )
    >>> champion = ScoreCard(n=500, metrics={"accuracy": 0.70})
    >>> verdict = gate.evaluate(ScoreCard(n=500, metrics={"accuracy": 0.61}), champion,
    ...                         champion_version=3)
    >>> verdict.passed
    False
    >>> print(verdict.reason)
    accuracy 0.61 < min 0.65; accuracy regression 0.09 > allowed 0.010
    >>> gate.evaluate(ScoreCard(n=500, metrics={"accuracy": 0.72}), champion).reason
    'all 2 checks passed'
    """

    def __init__(self, rules: Sequence[Rule], metrics: Mapping[str, Metric]) -> None:
        self.rules = rules
        self.metrics = metrics

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters, as given."""
        return {"rules": self.rules, "metrics": self.metrics}

    def __repr__(self) -> str:
        return _repr(self)

    @property
    def needs_rows(self) -> bool:
        """Whether a rule reads per-row scores (``ScoreCard.rows``): a significance rule."""
        return isinstance(self.rules, Sequence) and any(
            getattr(rule, "needs_rows", False) for rule in self.rules
        )

    def _validate(self) -> None:
        if not isinstance(self.metrics, Mapping):
            raise ConfigError(
                f"Gate.metrics must be a mapping of metric name -> Metric; got {self.metrics!r}"
            )
        if isinstance(self.rules, str | bytes) or not isinstance(self.rules, Sequence):
            raise ConfigError(f"Gate.rules must be a list of rules; got {self.rules!r}")
        if not self.rules:
            raise ConfigError(
                "Gate.rules is empty: at least one rule is needed to bless a model, e.g. "
                "{'metric': 'accuracy', 'min_improvement': 0.0}"
            )
        for i, rule in enumerate(self.rules):
            if not isinstance(rule, Rule):
                raise ConfigError(
                    f"rules[{i}] must be a blessing rule (AbsoluteRule, ChangeRule, SliceRule "
                    f"or an object with metric, check and get_params); got {rule!r}"
                )
            if rule.metric not in self.metrics:
                known = ", ".join(sorted(self.metrics)) or "none"
                raise ConfigError(
                    f"rules[{i}] uses metric {rule.metric!r}, which is not one of the gate's "
                    f"metrics ({known}); add it to the metrics or fix the rule"
                )

    def evaluate(
        self,
        candidate: ScoreCard,
        champion: ScoreCard | None = None,
        *,
        champion_version: int | None = None,
        extra: Iterable[EvidenceRow] = (),
    ) -> Verdict:
        """Check ``candidate`` (against ``champion`` when there is one).

        Parameters
        ----------
        candidate, champion
            Scores of both models on the same holdout; ``champion=None`` for a first model.
        champion_version
            Recorded on the verdict.
        extra
            Rows computed outside the core (e.g. the fresh-process sanity check); they count
            like any other row and come after the rules' rows.

        Raises
        ------
        ConfigError
            If there are no rules, a rule is invalid or names a metric the gate does not know.
        """
        self._validate()
        rows: list[EvidenceRow] = []
        for i, rule in enumerate(self.rules):
            try:
                rows.extend(rule.check(candidate, champion, self.metrics[rule.metric]))
            except ConfigError as exc:
                raise ConfigError(f"rules[{i}]: {exc}") from exc
        rows.extend(extra)
        failing = [row for row in rows if not row.passed]
        if failing:
            reason = "; ".join(
                row.note or f"{row.rule} check on {row.metric} failed ({row.threshold})"
                for row in failing
            )
        else:
            reason = f"all {len(rows)} checks passed"
        return Verdict(
            passed=not failing,
            evidence=tuple(rows),
            champion_version=champion_version,
            reason=reason,
        )


# --- configuration ----------------------------------------------------------------------------


def rule_kind(spec: Mapping[str, Any]) -> str | None:
    """Which rule a configuration mapping describes; its keys decide (None: cannot tell).

    - ``slice`` present: a :class:`SliceRule` (``slice`` is the column);
    - ``better`` or ``not_worse``: a significance rule (a paired test);
    - ``min_improvement`` or ``max_regression``: a :class:`ChangeRule`;
    - ``min`` or ``max``: an :class:`AbsoluteRule`.

    Examples
    --------
    >>> rule_kind({"metric": "accuracy", "max_regression": 0.01})
    'change'
    >>> rule_kind({"metric": "accuracy", "better": "significant"})
    'significance'
    """
    if "slice" in spec:
        return "slice"
    if "better" in spec or "not_worse" in spec:
        return "significance"
    if "min_improvement" in spec or "max_regression" in spec:
        return "change"
    if "min" in spec or "max" in spec:
        return "absolute"
    return None


def _tag(value: Any) -> str | None:
    if isinstance(value, Spec):
        return value.spec_kind()
    return rule_kind(value) if isinstance(value, Mapping) else None


RuleSpec = Annotated[
    Annotated[AbsoluteRule, Tag("absolute")]
    | Annotated[ChangeRule, Tag("change")]
    | Annotated[SliceRule, Tag("slice")]
    | Annotated[SignificanceRule, Tag("significance")],
    Discriminator(_tag),
]
"""A blessing rule as ``retrainer.yaml`` writes it; its keys decide the kind (:func:`rule_kind`)."""

RULES: Registry[AbsoluteRule | ChangeRule | SliceRule | SignificanceRule] = Registry(
    "blessing rule", RuleSpec
)
"""The blessing rules by kind: the one list of them."""


def _key_problem(spec: object) -> str | None:
    """What is wrong with a rule mapping's keys, before its values are read (None: nothing)."""
    if not isinstance(spec, Mapping):
        return f"a blessing rule must be a mapping of keys to values; got {spec!r}"
    known = sorted({key for kind in RULES.kinds for key in RULES.config_keys(kind)})
    unknown = [key for key in spec if key not in known]
    if unknown:
        return (
            f"blessing rule has unknown key(s) {', '.join(repr(k) for k in unknown)}; "
            f"known keys are {', '.join(known)}"
        )
    if "metric" not in spec:
        return f"blessing rule needs a 'metric' key; got {dict(spec)!r}"
    kind = rule_kind(spec)
    if kind is None:
        return (
            f"cannot tell which blessing rule {dict(spec)!r} is: give min/max (absolute "
            "bounds), min_improvement/max_regression (change vs champion), slice (per-slice) "
            "or better/not_worse: significant (a paired test)"
        )
    misplaced = [key for key in spec if key not in RULES.config_keys(kind)]
    if misplaced:
        return (
            f"a {kind} blessing rule does not take {', '.join(repr(k) for k in misplaced)}; "
            f"it takes {', '.join(RULES.config_keys(kind))}. Got {dict(spec)!r}"
        )
    return None


def _check_keys(value: Any) -> Any:
    if isinstance(value, Spec):
        return value
    problem = _key_problem(value)
    if problem:
        raise ValueError(problem)
    return value


ConfiguredRule = Annotated[RuleSpec, BeforeValidator(_check_keys)]
"""A :data:`RuleSpec` whose keys are checked first, with the messages of :func:`build_rule`:
the type of ``blessing.rules`` items in ``retrainer.yaml``."""


def build_rule(
    spec: Mapping[str, object],
) -> AbsoluteRule | ChangeRule | SliceRule | SignificanceRule:
    """Build a rule from its configuration mapping; the keys decide the rule type.

    - ``slice`` present: :class:`SliceRule` (``slice`` is the column);
    - ``better`` or ``not_worse``: :class:`~retrainer.core.blessing_significance.SignificanceRule`;
    - ``min_improvement`` or ``max_regression``: :class:`ChangeRule`;
    - ``min`` or ``max``: :class:`AbsoluteRule`.

    The rule's parameters are validated here, so a bad file fails when it is read.

    Raises
    ------
    ConfigError
        For unknown keys, keys that do not fit the rule type, a missing ``metric`` or bad
        values; the message names them.

    Examples
    --------
    >>> build_rule({"metric": "accuracy", "min": 0.6})
    AbsoluteRule(metric='accuracy', min=0.6, max=None)
    >>> build_rule({"metric": "accuracy", "min_improvement": 0.0, "relative": True})
    ChangeRule(metric='accuracy', min_improvement=0.0, max_regression=None, relative=True)
    >>> build_rule({"metric": "accuracy", "slice": "region", "min_size": 50,
    ...             "max_regression": 0.05})  # doctest: +NORMALIZE_WHITESPACE
    SliceRule(metric='accuracy', column='region', min_size=50, min=None, max=None,
              max_regression=0.05, relative=False)
    >>> build_rule({"metric": "accuracy", "minimum": 0.6})
    Traceback (most recent call last):
    ...
    retrainer.errors.ConfigError: blessing rule has unknown key(s) 'minimum'; ...
    """
    problem = _key_problem(spec)
    if problem:
        raise ConfigError(problem)
    kind = rule_kind(spec)
    assert kind is not None  # _key_problem said which it is
    return RULES.build(kind, spec)

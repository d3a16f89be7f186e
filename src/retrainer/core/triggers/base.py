"""The values every trigger and guard shares: context, decision, needs, protocols, run keys.

A trigger reads a :class:`TriggerContext` (plain values gathered by the engine) and returns
a :class:`Decision`; :meth:`Trigger.needs` says which of those values it reads, so the engine
gathers only those. See :mod:`retrainer.core.triggers` for edges, levels, slots and state.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, get_args, runtime_checkable

from pydantic import PrivateAttr, ValidationError

from retrainer.core._spec import Duration, Spec, describe_errors
from retrainer.core.clock import as_utc
from retrainer.core.jsonsafe import json_safe
from retrainer.core.windows import parse_duration
from retrainer.errors import ConfigError, DataError

if TYPE_CHECKING:  # core.performance imports scikit-learn: not needed to read a config
    from retrainer.core.performance import Status

__all__ = [
    "Decision",
    "Guard",
    "MetricNeed",
    "MetricValue",
    "Needs",
    "Trigger",
    "TriggerContext",
    "TriggerSpec",
    "run_key",
]

_KEY_MAX = 200
_REL_TOL = 1e-9
_ABS_TOL = 1e-12
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- values ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricNeed:
    """An online metric a trigger reads: ``metric`` over the last ``over``, with a sample floor.

    The engine computes one :class:`MetricValue` per need (see :meth:`Trigger.needs`) and
    passes them in :attr:`TriggerContext.metrics`, keyed by the need.

    Examples
    --------
    >>> need = MetricNeed(metric="ctr", over=timedelta(days=1), min_samples=1000)
    >>> need == MetricNeed(metric="ctr", over=timedelta(hours=24), min_samples=1000)
    True
    >>> {need: 1}[MetricNeed(metric="ctr", over=timedelta(days=1), min_samples=1000)]
    1
    """

    metric: str
    over: timedelta
    min_samples: int = 1
    source: str = "realized"
    """``"realized"`` (from the labels) or ``"estimated"`` (CBPE/DLE of the latest monitor
    result, before the labels arrive)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricValue:
    """An online metric as measured: ``value`` is None unless ``status == "ok"``.

    ``status`` is ``"ok"``, ``"insufficient_data"`` (fewer usable rows than required) or
    ``"undefined"`` (no value on these rows, e.g. ROC AUC on one class).

    Examples
    --------
    >>> MetricValue(value=0.0173, n=5120, status="ok")
    MetricValue(value=0.0173, n=5120, status='ok')
    """

    value: float | None
    n: int
    status: Status = "ok"


@dataclass(frozen=True, slots=True, kw_only=True)
class TriggerContext:
    """Everything a trigger may look at, gathered by the engine as plain values.

    Parameters
    ----------
    now
        The controller's clock (aware; naive means UTC).
    pipeline
        The pipeline's name.
    state
        This trigger's state from its previous evaluation (``Decision.state``); ``{}`` at first.
    last_training
        Window end of the champion's training data (None: no champion).
    last_promotion
        When the current champion was promoted.
    rows_since_training, training_rows
        Rows that arrived after ``last_training``; rows the champion was trained on.
    metrics
        Online metrics for the triggers' :meth:`~Trigger.needs`.
    metric_at_promotion
        Metric name -> value measured after the last promotion (the baseline of relative
        thresholds).
    drift
        The latest monitor result's drift report: ``drifted``, ``share_drifted``,
        ``drifted_columns`` and ``window_end`` (ISO string).
    concept_drift
        The latest monitor result's concept-drift dict: ``drift_detected`` and ``detections``
        (ISO strings).
    code, champion_code
        ``pipeline_hash`` and ``git_commit`` of the current code and of the champion's (None:
        no champion).
    manual_requests
        Pending manual requests, oldest first, each with an ``id`` and an ``at``.
    recent_runs
        Creation times of the pipeline's recent runs (at least over the guards'
        :meth:`~Guard.lookback`).
    retrain_cpu_s
        Training CPU seconds of the pipeline's latest succeeded runs, newest first
        (:attr:`Needs.costs`).
    degradation
        The time-to-degrade curve: ``(age in days, metric loss)`` pairs in ascending age, the
        loss against the always-retrained control in the metric's units, positive = worse
        (:attr:`Needs.costs`; empty: no curve).

    Examples
    --------
    >>> ctx = TriggerContext(now=datetime(2024, 3, 4, 9, tzinfo=UTC), pipeline="ctr")
    >>> ctx.state, ctx.last_training, ctx.recent_runs
    ({}, None, ())
    """

    now: datetime
    pipeline: str
    state: Mapping[str, Any] = field(default_factory=dict)
    last_training: datetime | None = None
    last_promotion: datetime | None = None
    rows_since_training: int | None = None
    training_rows: int | None = None
    metrics: Mapping[MetricNeed, MetricValue] = field(default_factory=dict)
    metric_at_promotion: Mapping[str, float] = field(default_factory=dict)
    drift: Mapping[str, Any] | None = None
    concept_drift: Mapping[str, Any] | None = None
    code: Mapping[str, str | None] = field(default_factory=dict)
    champion_code: Mapping[str, str | None] | None = None
    manual_requests: Sequence[Mapping[str, Any]] = ()
    recent_runs: Sequence[datetime] = ()
    retrain_cpu_s: Sequence[float] = ()
    degradation: Sequence[tuple[float, float]] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """What one evaluation of a trigger decided, and why.

    Parameters
    ----------
    fire
        Whether to start a run now.
    trigger
        The trigger's name.
    slot
        What this firing acts on (a cron slot, a monitor window end, a request id...); set
        exactly when ``fire`` is True. The run key is ``run_key(pipeline, trigger, slot)``.
    reason
        One human line, e.g. ``"ctr 0.0173 < 0.0191 over 1d (n=5120)"``.
    evidence
        JSON-safe values the trigger (and any guard) saw.
    state
        The trigger's state to store and pass back next time; holds ``status``.
    changed
        The status differs from the previous evaluation's (True at the first one).
    active
        The trigger's condition holds now, whether or not it fires (always True when it
        fires); :class:`AllOf` reads it.
    watching
        The trigger judged a signal about the data or the model: time for a schedule, a
        metric with enough labelled rows, a monitor window that tested a column for a drift
        trigger, a detector that has seen errors for a concept-drift trigger, a row count for
        a new-data trigger. False while it waits for its input (labels not arrived yet, no
        monitor result) and for triggers that judge something else (code versions, manual
        requests). The backtest reads it: a policy that never fired yet watched was tested by
        the data; one that never watched was not.

    Examples
    --------
    >>> d = Decision(fire=False, trigger="schedule", slot=None, reason="next slot ...")
    >>> d.evidence, d.state, d.changed, d.active, d.watching
    ({}, {}, False, False, False)
    """

    fire: bool
    trigger: str
    slot: str | None
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    changed: bool = False
    active: bool = False
    watching: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Needs:
    """What a trigger or guard reads from the context, so the engine gathers only that.

    Parameters
    ----------
    metrics
        Online metrics over a window (computed from the prediction/feedback log).
    rows
        Row counts: ``rows_since_training`` and ``training_rows``.
    monitor
        The monitor's latest result (drift report, concept-drift detections): the
        pipeline's monitor must run.
    profiles
        Reference profiles of the training data (data drift compares against them).
    cadence
        The shortest time between two clock slots of a schedule (None: no schedule); the
        backtest ranks a frequent retrain as a long replay.
    costs
        What a retrain costs and a model loses with age: the latest retrains' CPU seconds
        and the degradation curve (:attr:`TriggerContext.retrain_cpu_s`,
        :attr:`TriggerContext.degradation`).
    curve
        The backtest ``results.json`` (relative to the project folder) the degradation curve
        comes from (None: no curve).

    Examples
    --------
    >>> a = Needs(rows=True)
    >>> b = Needs(monitor=True, cadence=timedelta(days=1))
    >>> (a | b).rows, (a | b).monitor, (a | b).cadence
    (True, True, datetime.timedelta(days=1))
    >>> Needs.union([]) == Needs()
    True
    """

    metrics: tuple[MetricNeed, ...] = ()
    rows: bool = False
    monitor: bool = False
    profiles: bool = False
    cadence: timedelta | None = None
    costs: bool = False
    curve: str | None = None

    def __or__(self, other: Needs) -> Needs:
        cadences = [c for c in (self.cadence, other.cadence) if c is not None]
        return Needs(
            metrics=tuple(dict.fromkeys((*self.metrics, *other.metrics))),
            rows=self.rows or other.rows,
            monitor=self.monitor or other.monitor,
            profiles=self.profiles or other.profiles,
            cadence=min(cadences) if cadences else None,
            costs=self.costs or other.costs,
            curve=self.curve or other.curve,
        )

    @staticmethod
    def union(needs: Sequence[Needs]) -> Needs:
        """Everything any of ``needs`` reads (metrics each once)."""
        out = Needs()
        for need in needs:
            out = out | need
        return out


@runtime_checkable
class Trigger(Protocol):
    """What the controller needs from a trigger.

    ``name`` is unique among a pipeline's triggers: it keys the trigger's state and its run
    keys. ``needs`` says what ``evaluate`` reads from the context (and validates the
    parameters); ``describe`` is one short human line for tables and reports.

    Examples
    --------
    >>> from retrainer.core.triggers import ScheduleTrigger
    >>> isinstance(ScheduleTrigger("0 2 * * *"), Trigger)
    True
    """

    name: str

    def needs(self) -> Needs: ...

    def evaluate(self, ctx: TriggerContext) -> Decision: ...

    def get_params(self) -> dict[str, Any]: ...

    def to_spec(self) -> dict[str, Any]: ...

    def describe(self) -> str: ...


@runtime_checkable
class Guard(Protocol):
    """What the controller needs from a guard.

    ``check`` returns the decision unchanged when it does not fire; a firing it allows gets
    an entry in ``evidence["guards"]``; a firing it holds back becomes a non-firing decision
    with the guard's reason. ``lookback`` is how far back ``TriggerContext.recent_runs`` must
    reach for this guard; ``needs`` what else it reads.

    Examples
    --------
    >>> from retrainer.core.triggers import Cooldown
    >>> isinstance(Cooldown("6h"), Guard)
    True
    """

    kind: ClassVar[str]

    def check(self, ctx: TriggerContext, decision: Decision) -> Decision: ...

    def lookback(self) -> timedelta: ...

    def needs(self) -> Needs: ...

    def get_params(self) -> dict[str, Any]: ...

    def to_spec(self) -> dict[str, Any]: ...

    def describe(self) -> str: ...


# --- small helpers -----------------------------------------------------------------------------


def _iso(value: datetime) -> str:
    return as_utc(value).isoformat()


def _to_time(value: object, what: str) -> datetime:
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, str):
        try:
            return as_utc(datetime.fromisoformat(value))
        except ValueError:
            pass
    raise DataError(f"{what} must be an ISO 8601 time or a datetime; got {value!r}")


def _state_time(state: Mapping[str, Any], key: str) -> datetime | None:
    value = state.get(key)
    return None if value is None else _to_time(value, f"trigger state {key!r}")


def _format_duration(span: timedelta, parts: int | None = None) -> str:
    """``timedelta(days=1, hours=12)`` -> ``"1d12h"`` (whole seconds; ``parts`` largest units)."""
    seconds = span // timedelta(seconds=1)
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    pieces = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            pieces.append(f"{count}{unit}")
    if parts is not None:
        pieces = pieces[:parts]
    return sign + ("".join(pieces) or "0s")


def _at_least(value: float, bound: float) -> bool:
    return value >= bound or math.isclose(value, bound, rel_tol=_REL_TOL, abs_tol=_ABS_TOL)


def _evidence_value(value: Any) -> Any:
    """Times as ISO text and durations as ``2d``: the forms a decision's evidence shows."""
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, timedelta):
        return _format_duration(value)
    return str(value)


def _json_safe(value: Any) -> Any:
    """``value`` as the JSON data a decision's evidence and state hold (:func:`json_safe`)."""
    return json_safe(value, default=_evidence_value)


def _plain(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_plain(v) for v in value)
    return value


def _decision(
    ctx: TriggerContext,
    name: str,
    *,
    fire: bool,
    active: bool,
    slot: str | None,
    reason: str,
    evidence: dict[str, Any],
    state: dict[str, Any],
    status: str,
    watching: bool,
) -> Decision:
    return Decision(
        fire=fire,
        trigger=name,
        slot=slot if fire else None,
        reason=reason,
        evidence=evidence,
        state={**state, "status": status},
        changed=status != ctx.state.get("status"),
        active=active or fire,
        watching=watching,
    )


def _spec_duration(value: str | timedelta) -> str:
    return value if isinstance(value, str) else _format_duration(value)


# --- run keys ----------------------------------------------------------------------------------


def _escape(part: str) -> str:
    return part.replace("%", "%25").replace("/", "%2F").replace("~", "%7E")


def run_key(pipeline: str, trigger: str, slot: str) -> str:
    """The key of the run a firing creates: a pure function of its three parts.

    ``"<pipeline>/<trigger>/<slot>"``, with ``%``, ``/`` and ``~`` percent-escaped in each
    part so that different parts never give the same key. A key longer than 200 characters
    is cut to 183 and ends with ``~`` and 16 hex digits of the SHA-256 of the parts.

    Raises
    ------
    ConfigError
        If a part is not a non-empty string.

    Examples
    --------
    >>> run_key("ads", "schedule", "2024-03-04T01:00:00+00:00")
    'ads/schedule/2024-03-04T01:00:00+00:00'
    >>> run_key("ads", "any(drift,manual)", "manual:r/17")
    'ads/any(drift,manual)/manual:r%2F17'
    >>> len(run_key("ads", "code_change", "f" * 300))
    200
    """
    parts = (pipeline, trigger, slot)
    for label, part in zip(("pipeline", "trigger", "slot"), parts, strict=True):
        if not isinstance(part, str) or not part:
            raise ConfigError(f"run_key: {label} must be a non-empty string; got {part!r}")
    key = "/".join(_escape(p) for p in parts)
    if len(key) <= _KEY_MAX:
        return key
    digest = hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()[:16]
    return key[: _KEY_MAX - len(digest) - 1] + "~" + digest


# --- the parameters of triggers and guards -----------------------------------------------------

Layout = Literal["flat", "nested", "value", "list"]
_DURATION_CHECK = get_args(Duration)[1]


class TriggerSpec(Spec):
    """A trigger's or guard's parameters, declared once as fields (see :class:`Spec`).

    As any :class:`Spec`, the constructor stores the parameters as given; :meth:`checked`
    validates them on first use (again only after one changed) and gives the values to use
    (durations as ``timedelta``, time zones as ``ZoneInfo``...), then runs :meth:`_check`, the
    rules between parameters. A ``name`` left None is the kind's default (:meth:`default_name`).

    Subclasses set ``kind`` (the key that names them in ``retrainer.yaml``) and ``layout``, how
    their mapping is written:

    - ``"flat"``: the first parameter under the kind key, the others beside it
      (``{"schedule": "@daily", "timezone": "UTC"}``);
    - ``"nested"``: the parameters other than ``name`` in a mapping under the kind key
      (``{"drift": {"share": 0.5}}``);
    - ``"value"``: the one parameter under the kind key (``{"cooldown": "6h"}``);
    - ``"list"``: child triggers under the kind key (``{"any": [...]}``).

    ``always`` lists parameters ``to_spec`` writes even at their default; ``example`` is a
    configuration mapping, shown in error messages and in the JSON schema (and every
    registered class's is tested to build and round-trip).

    Examples
    --------
    >>> from retrainer.core.triggers import MetricTrigger
    >>> list(MetricTrigger.model_fields)[:3]
    ['metric', 'below', 'above']
    >>> MetricTrigger("ctr", below="1.91%").needs()
    Traceback (most recent call last):
    ...
    retrainer.errors.ConfigError: MetricTrigger.below must be a finite number or None; got '1.91%'
    """

    kind: ClassVar[str]
    layout: ClassVar[Layout] = "nested"
    always: ClassVar[frozenset[str]] = frozenset()
    parameter_names: ClassVar[tuple[str, ...]] = ()
    duration_fields: ClassVar[frozenset[str]] = frozenset()

    # the parameters last checked and their values: the controller evaluates every tick
    _checked_memo: tuple[dict[str, Any], dict[str, Any]] | None = PrivateAttr(default=None)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        # read once per class: get_params runs at every evaluation
        cls.parameter_names = tuple(cls.model_fields)
        cls.duration_fields = frozenset(
            name
            for name, info in cls.model_fields.items()
            if any(m is _DURATION_CHECK for m in info.metadata)
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "name" in type(self).model_fields and self.__dict__.get("name") is None:
            self.__dict__["name"] = self.default_name()

    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @classmethod
    def spec_kind(cls) -> str:
        """The name of this class in its family's registry (its ``kind``)."""
        return cls.kind

    def default_name(self) -> str:
        """The name when none is given: the kind."""
        return self.kind

    def get_params(self) -> dict[str, Any]:
        """The parameters, as given (``name`` resolved to its default)."""
        values = self.__dict__
        return {name: values[name] for name in self.parameter_names}

    # a private attribute read through BaseModel.__getattr__ costs microseconds: read the dict
    def _private(self, key: str) -> Any:
        return self.__pydantic_private__.get(key)  # type: ignore[union-attr]

    def _remember(self, key: str, value: Any) -> None:
        self.__pydantic_private__[key] = value  # type: ignore[index]

    def checked(self) -> dict[str, Any]:
        """The parameters validated and converted (durations to ``timedelta``...).

        Raises
        ------
        ConfigError
            Naming the class, the parameter, the value given and what is expected.
        """
        params = self.get_params()
        memo = self._private("_checked_memo")
        if memo is not None and memo[0] == params:
            return dict(memo[1])
        owner = type(self).__name__
        try:
            values = dict(type(self).__pydantic_validator__.validate_python(params).__dict__)
        except ValidationError as exc:
            # the first problem, as the objects are checked one parameter at a time
            raise ConfigError(describe_errors(exc, owner)[0]) from None
        self._check(values)
        self._remember("_checked_memo", (params, values))
        return dict(values)

    def check_params(self) -> None:
        """Check the parameters; raise ConfigError naming the problem."""
        self.checked()

    def _check(self, values: dict[str, Any]) -> None:
        """Rules between parameters (raise ConfigError); the parameters are valid one by one."""

    def needs(self) -> Needs:
        """What it reads from the context (and validates the parameters)."""
        raise NotImplementedError  # pragma: no cover

    # --- configuration mappings ---

    def _written(self) -> dict[str, Any]:
        """The parameters ``to_spec`` writes: those not at their default, as YAML values."""
        out: dict[str, Any] = {}
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            if name == "name":
                if value != self.default_name():
                    out["name"] = value
                continue
            if name not in self.always and not info.is_required() and _plain(value) == info.default:
                continue
            if isinstance(value, timedelta):
                value = _format_duration(value)
            elif isinstance(value, list | tuple):
                value = list(value)
            out[name] = value
        return out

    def to_spec(self) -> dict[str, Any]:
        """The configuration mapping, parameters at their default left out."""
        written = self._written()
        name = {"name": written.pop("name")} if "name" in written else {}
        if self.layout == "flat":
            first = next(iter(type(self).model_fields))
            return {self.kind: written.pop(first), **written, **name}
        if self.layout == "value":
            [value] = written.values()
            return {self.kind: value}
        return {self.kind: written, **name}

    @classmethod
    def spec_keys(cls) -> tuple[str, ...]:
        """The keys of the mapping (the kind key first)."""
        names = list(cls.model_fields)
        if cls.layout == "flat":
            return (cls.kind, *names[1:])
        return (cls.kind, "name") if "name" in names else (cls.kind,)

    @classmethod
    def body_keys(cls) -> tuple[str, ...]:
        """The keys of the mapping under the kind key (``"nested"`` layout)."""
        return tuple(name for name in cls.model_fields if name != "name")

    @classmethod
    def from_spec(
        cls, spec: Mapping[str, Any], where: str, build: Callable[..., Any] | None = None
    ) -> TriggerSpec:
        """Build from a mapping whose keys were checked against :meth:`spec_keys`
        (``build`` reads a child trigger, for combinators)."""
        params = {k: v for k, v in spec.items() if k != cls.kind}
        value = spec[cls.kind]
        if cls.layout == "flat":
            return cls(value, **params)
        if cls.layout == "value":
            return cls(value)
        return cls(**_body(cls, value, where), **params)

    # --- equality and repr, by parameters ---

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self) or not isinstance(other, TriggerSpec):
            return NotImplemented
        return self._comparable() == other._comparable()

    __hash__ = None  # type: ignore[assignment]  # mutable parameters, as in scikit-learn

    def _comparable(self) -> dict[str, Any]:
        out = {}
        for key, value in self.get_params().items():
            if key in self.duration_fields and isinstance(value, str):
                with contextlib.suppress(ConfigError):  # an invalid one compares as written
                    value = parse_duration(value)
            out[key] = _plain(value)
        return out


def _keys_text(keys: Sequence[str]) -> str:
    return ", ".join(keys) if keys else "no keys"


def _body(cls: type[TriggerSpec], value: object, where: str) -> dict[str, Any]:
    """The mapping under the kind key of a ``"nested"`` spec, its keys checked."""
    kind = cls.kind
    allowed = cls.body_keys()
    required = [name for name, info in cls.model_fields.items() if info.is_required()]
    if value is None and not required:
        value = {}
    if not isinstance(value, Mapping):
        if required:  # a guard: named in the message by its caller
            raise ConfigError(
                f"{kind} must be a mapping such as {(cls.example or {}).get(kind)!r}; got {value!r}"
            )
        raise ConfigError(
            f"{where}.{kind} must be a mapping of its settings ({{}} for none); got {value!r}"
        )
    unknown = [k for k in value if k not in allowed]
    missing = [k for k in required if k not in value]
    if required and (unknown or missing):
        raise ConfigError(
            f"{kind} takes {' and '.join(allowed)}; "
            + (f"unknown key(s) {', '.join(map(repr, unknown))}" if unknown else "")
            + ("; " if unknown and missing else "")
            + (f"missing {', '.join(map(repr, missing))}" if missing else "")
            + f". Got {dict(value)!r}"
        )
    if unknown:
        raise ConfigError(
            f"{where}.{kind} has unknown key(s) {', '.join(map(repr, unknown))}; it takes "
            f"{_keys_text(allowed)}. Got {dict(value)!r}"
        )
    return dict(value)

"""Triggers and guards: when should a pipeline retrain?

A trigger reads a :class:`TriggerContext` (the clock, the monitor's latest figures, the row
counts, the code version, its own state from the previous evaluation: plain values gathered by
the engine) and returns a :class:`Decision`: whether it fires, the fire *slot* that identifies
this firing, one line of reason, the evidence it saw and the state to keep for next time. A
guard (:class:`Cooldown`, :class:`MaxRetrains`, :class:`MinNewRows`) may then hold a firing
back. Nothing here reads the clock, the store or the network, so the daemon, the tests and the
backtest run the same decisions.

Edges, levels and slots
-----------------------
Every decision carries two flags. ``active`` says the trigger's condition holds now (a due
cron slot, a metric past its threshold, a drifted monitor window, enough new rows, code that
differs from the champion's, a pending request). ``fire`` is the edge: a condition the trigger
has not acted on yet. A trigger fires once per *slot*, a stable string naming what it acts on,
and the run key is ``run_key(pipeline, trigger, slot)``: evaluating again after a crash gives
the same slot, hence the same key, and the store's unique index drops the duplicate.

================================  =============================================================
trigger                           slot (one run per ...)
================================  =============================================================
:class:`ScheduleTrigger`          the latest due cron slot, UTC ISO (per slot; after downtime
                                  one run for the latest missed slot)
:class:`MetricTrigger`            the evaluation time floored to ``over`` on a UTC grid from
                                  1970-01-01 (per breach per window: see the class)
:class:`DriftTrigger`             the monitor window's end (per monitor result)
:class:`ConceptDriftTrigger`      the latest detection's time (per detection)
:class:`NewDataTrigger`           ``<last training>#<k>``: the k-th batch of new rows since
                                  the champion's training
:class:`CodeChangeTrigger`        ``<pipeline hash>@<git commit>`` (per code version)
:class:`ManualTrigger`            the request id (per request)
:class:`AnyOf`                    ``<child>:<child slot>`` of the first firing child
:class:`AllOf`                    ``<child>:<child slot>`` of each firing child, joined by ``+``
================================  =============================================================

State and ``changed``
---------------------
A decision's ``state`` is a JSON-safe dict the engine stores and hands back as
``TriggerContext.state`` next time (``{}`` at first). It always holds ``status``, a coarse
label of the trigger's condition (``"breach"``, ``"ok"``, ``"insufficient_data"``,
``"drifted"``, ``"blocked:cooldown"``...); ``changed`` is True when the status differs from
the previous evaluation's (and at the first evaluation), so the engine records an event when a
decision fires or changes, not at every tick. The engine should persist the state only after
the run of a firing decision exists: a crash in between then re-fires the same slot, and the
run key makes that harmless.

A guard that holds a firing back returns the *previous* state (with the status
``blocked:<guard>``): nothing was consumed, so the trigger fires when the guard allows it if
its condition still holds (a schedule fires once for its latest slot, a drift trigger for the
monitor window it had not acted on). Guards never touch a decision that does not fire.

Configuration
-------------
:func:`build_trigger` and :func:`build_guard` read the mappings of ``retrainer.yaml``;
``to_spec()`` writes them back, so ``build_trigger(t.to_spec()) == t``.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Protocol, TypeGuard, runtime_checkable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from retrainer.core.clock import as_utc
from retrainer.core.performance import Status
from retrainer.core.windows import parse_duration
from retrainer.errors import ConfigError, DataError

__all__ = [
    "AllOf",
    "AnyOf",
    "CodeChangeTrigger",
    "ConceptDriftTrigger",
    "Cooldown",
    "Decision",
    "DriftTrigger",
    "Guard",
    "ManualTrigger",
    "MaxRetrains",
    "MetricNeed",
    "MetricTrigger",
    "MetricValue",
    "MinNewRows",
    "NewDataTrigger",
    "ScheduleTrigger",
    "Trigger",
    "TriggerContext",
    "apply_guards",
    "build_guard",
    "build_trigger",
    "run_key",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DST_REACH = timedelta(hours=3)  # larger than any daylight-saving shift in the tz database
_CRON_ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_MAX_SCAN = 10_000
_MISSED_CAP = 1000
_KEY_MAX = 200
_MANUAL_MEMORY = 100
_REL_TOL = 1e-9
_ABS_TOL = 1e-12
_CODE_KEYS = ("pipeline_hash", "git_commit")


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


@runtime_checkable
class Trigger(Protocol):
    """What the controller needs from a trigger.

    ``name`` is unique among a pipeline's triggers: it keys the trigger's state and its run
    keys. ``needs`` lists the online metrics ``evaluate`` will read from the context.

    Examples
    --------
    >>> isinstance(ScheduleTrigger("0 2 * * *"), Trigger)
    True
    """

    name: str

    def needs(self) -> tuple[MetricNeed, ...]: ...

    def evaluate(self, ctx: TriggerContext) -> Decision: ...

    def get_params(self) -> dict[str, Any]: ...

    def to_spec(self) -> dict[str, Any]: ...


@runtime_checkable
class Guard(Protocol):
    """What the controller needs from a guard.

    ``check`` returns the decision unchanged when it does not fire; a firing it allows gets
    an entry in ``evidence["guards"]``; a firing it holds back becomes a non-firing decision
    with the guard's reason. ``lookback`` is how far back ``TriggerContext.recent_runs`` must
    reach for this guard.

    Examples
    --------
    >>> isinstance(Cooldown("6h"), Guard)
    True
    """

    kind: ClassVar[str]

    def check(self, ctx: TriggerContext, decision: Decision) -> Decision: ...

    def lookback(self) -> timedelta: ...

    def get_params(self) -> dict[str, Any]: ...

    def to_spec(self) -> dict[str, Any]: ...


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


def _is_number(value: object) -> TypeGuard[int | float]:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, timedelta):
        return _format_duration(value)
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_plain(v) for v in value)
    return value


# validation: every message names the parameter, the value and what is expected


def _check_name(owner: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{owner}.name must be a non-empty string; got {value!r}")
    return value


def _check_int(owner: str, key: str, value: object, minimum: int) -> int:
    if not _is_int(value) or value < minimum:
        raise ConfigError(f"{owner}.{key} must be an integer >= {minimum}; got {value!r}")
    return value


def _check_bool(owner: str, key: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{owner}.{key} must be true or false; got {value!r}")
    return value


def _check_number(owner: str, key: str, value: object, *, positive: bool = False) -> float | None:
    if value is None:
        return None
    if not _is_number(value):
        raise ConfigError(f"{owner}.{key} must be a finite number or None; got {value!r}")
    if positive and value <= 0:
        raise ConfigError(f"{owner}.{key} must be > 0; got {value!r}")
    return float(value)


def _check_duration(owner: str, key: str, value: object) -> timedelta:
    if isinstance(value, str):
        try:
            span = parse_duration(value)
        except ConfigError as exc:
            raise ConfigError(f"{owner}.{key}: {exc}") from None
    elif isinstance(value, timedelta):
        span = value
    else:
        raise ConfigError(
            f"{owner}.{key} must be a duration such as '1d' or '6h' (or a timedelta); got {value!r}"
        )
    if span <= timedelta(0) or span % timedelta(seconds=1):
        raise ConfigError(
            f"{owner}.{key} must be a positive duration in whole seconds; got {value!r}"
        )
    return span


def _check_names(owner: str, key: str, value: object, allowed: Sequence[str] | None) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigError(
            f"{owner}.{key} must be a list of names (e.g. ['price', 'region']); got {value!r}"
        )
    names = list(value)
    for item in names:
        if not isinstance(item, str) or not item:
            raise ConfigError(f"{owner}.{key} must hold non-empty strings; got {item!r}")
        if allowed is not None and item not in allowed:
            raise ConfigError(f"{owner}.{key} may only hold {', '.join(allowed)}; got {item!r}")
    if len(set(names)) != len(names):
        raise ConfigError(f"{owner}.{key} lists a name twice; got {value!r}")
    return names


class _Configurable:
    """scikit-learn's contract: params stored as given, ``get_params``, equality by params."""

    _DURATIONS: ClassVar[frozenset[str]] = frozenset()

    def get_params(self) -> dict[str, Any]:
        raise NotImplementedError  # pragma: no cover

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self) or not isinstance(other, _Configurable):
            return NotImplemented
        return self._comparable() == other._comparable()

    def _comparable(self) -> dict[str, Any]:
        out = {}
        for key, value in self.get_params().items():
            if key in self._DURATIONS and isinstance(value, str):
                with contextlib.suppress(ConfigError):  # an invalid one compares as written
                    value = parse_duration(value)
            out[key] = _plain(value)
        return out


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


# --- schedule ----------------------------------------------------------------------------------


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _interval(cron: str) -> timedelta | None:
    """The interval of an ``every <duration>`` schedule (None for a cron expression)."""
    if not cron.startswith("every "):
        return None
    return parse_duration(cron.removeprefix("every ").strip())


_UTC_ZONES = frozenset(
    {
        "UTC",
        "Etc/UTC",
        "Etc/UCT",
        "UCT",
        "Etc/Universal",
        "Universal",
        "Etc/Zulu",
        "Zulu",
        "GMT",
        "Etc/GMT",
        "Etc/GMT0",
        "Etc/GMT+0",
        "Etc/GMT-0",
        "GMT0",
        "GMT+0",
        "GMT-0",
        "Etc/Greenwich",
        "Greenwich",
    }
)
_DAYS = {"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}
_SHORTCUTS = {
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@hourly": "0 * * * *",
}


def _field(text: str, top: int) -> int | None:
    return int(text) if text.isdigit() and int(text) <= top else None


@functools.lru_cache(maxsize=256)
def _fixed_period(cron: str, tz: ZoneInfo) -> tuple[timedelta, timedelta] | None:
    """``(period, offset)`` when the slots of ``cron`` in ``tz`` are ``1970-01-01 UTC + offset
    + k * period`` for every integer k, so they are found by arithmetic instead of croniter.

    That holds for ``every <duration>`` (offset 0), and for a cron expression in a zone
    without offset changes (UTC) that fixes the minute and the day of month and month are
    ``*``: hourly (``M * * * *``), daily (``M H * * *``) and weekly on one day
    (``M H * * MON``); the shortcuts ``@hourly``, ``@daily`` and ``@weekly`` too. Anything
    else is None (croniter walks the calendar).

    >>> _fixed_period("0 2 * * MON", ZoneInfo("UTC"))  # 1970-01-05 was a Monday
    (datetime.timedelta(days=7), datetime.timedelta(days=4, seconds=7200))
    >>> _fixed_period("0 2 * * MON", ZoneInfo("Europe/Paris")) is None  # clocks change
    True
    """
    step = _interval(cron)
    if step is not None:
        return step, timedelta(0)
    if tz.key not in _UTC_ZONES:
        return None
    fields = _SHORTCUTS.get(cron, cron).split()
    if len(fields) != 5 or fields[2:4] != ["*", "*"]:
        return None
    minute, hour, dow = _field(fields[0], 59), fields[1], fields[4].upper()
    if minute is None:
        return None
    if hour == "*":
        return (timedelta(hours=1), timedelta(minutes=minute)) if dow == "*" else None
    hours = _field(hour, 23)
    if hours is None:
        return None
    at = timedelta(hours=hours, minutes=minute)
    if dow == "*":
        return timedelta(days=1), at
    day = _DAYS.get(dow, _field(dow, 7))
    if day is None:
        return None
    # 1970-01-01 was a Thursday (day 4; Sunday is 0 and 7)
    return timedelta(days=7), timedelta(days=(day - 4) % 7) + at


@functools.lru_cache(maxsize=256)
def _cron_problem(cron: str) -> str | None:
    """Why ``cron`` is not a usable five-field expression (None when it is)."""
    if cron.startswith("every "):
        try:
            _interval(cron)
        except ConfigError as exc:
            return f"'every' needs a duration such as 'every 7d': {exc}"
        return None
    if cron.startswith("@"):
        if cron in _CRON_ALIASES:
            return None
        return f"the shortcuts are {', '.join(_CRON_ALIASES)}"
    if len(cron.split()) != 5:
        return "five fields are expected: minute hour day-of-month month day-of-week"
    try:
        if not croniter.is_valid(cron):
            return "croniter cannot parse it"
        croniter(cron, datetime(2000, 1, 1)).get_next(datetime)
    except Exception as exc:  # croniter raises several types for impossible expressions
        return str(exc)
    return None


@functools.lru_cache(maxsize=256)
def _cron_prototype(cron: str) -> Any:
    return croniter(cron, datetime(2000, 1, 1))


def _cron_at(cron: str, start: datetime) -> Any:
    """A croniter positioned at ``start`` (parsing is most of croniter's cost: done once)."""
    it = copy.copy(_cron_prototype(cron))
    it.set_current(start, force=True)
    return it


def _offset(moment: datetime) -> timedelta:
    return moment.utcoffset() or timedelta(0)


def _wall(moment: datetime, tz: ZoneInfo) -> datetime:
    return moment.astimezone(tz).replace(tzinfo=None)


def _wall_to_utc(wall: datetime, tz: ZoneInfo) -> datetime:
    """The instant of a wall-clock slot in ``tz``.

    A wall time that occurs twice (clocks set back) is its first occurrence; one that never
    occurs (clocks set forward over it) is the instant of the jump. The mapping never
    decreases, so the latest slot before a time is found by walking back.
    """
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if _wall(first, tz) == wall:
        return first
    other = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    lo_s = math.floor(min(first, other).timestamp())  # wall time before the gap
    hi_s = math.ceil(max(first, other).timestamp())  # wall time after it
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if _wall(datetime.fromtimestamp(mid, UTC), tz) >= wall:
            hi_s = mid
        else:
            lo_s = mid
    return datetime.fromtimestamp(hi_s, UTC)


def _latest_slot(cron: str, tz: ZoneInfo, now: datetime) -> datetime:
    """The latest slot at or before ``now``."""
    fixed = _fixed_period(cron, tz)
    if fixed is not None:  # slots every ``step`` from 1970-01-01 UTC + ``offset``
        step, offset = fixed
        return _EPOCH + offset + step * ((now - _EPOCH - offset) // step)
    local = now.astimezone(tz)
    # after clocks were set back, slots up to one shift later on the wall have passed already
    margin = max(timedelta(0), _offset((now - _DST_REACH).astimezone(tz)) - _offset(local))
    it = _cron_at(cron, local.replace(tzinfo=None) + margin + timedelta(microseconds=1))
    for _ in range(_MAX_SCAN):
        slot = _wall_to_utc(it.get_prev(datetime), tz)
        if slot <= now:
            return slot
    raise DataError(f"no slot of cron {cron!r} found before {now.isoformat()}")  # pragma: no cover


def _slots_after(cron: str, tz: ZoneInfo, since: datetime) -> Callable[[], datetime]:
    """A function returning the slots strictly after ``since``, in order, one per call."""
    fixed = _fixed_period(cron, tz)
    if fixed is not None:
        interval, offset = fixed
        k = (since - _EPOCH - offset) // interval

        def every() -> datetime:
            nonlocal k
            k += 1
            return _EPOCH + offset + interval * k

        return every
    local = since.astimezone(tz)
    margin = max(timedelta(0), _offset(local) - _offset((since + _DST_REACH).astimezone(tz)))
    it = _cron_at(cron, local.replace(tzinfo=None) - margin)
    last = since

    def step() -> datetime:
        nonlocal last
        for _ in range(_MAX_SCAN):
            slot = _wall_to_utc(it.get_next(datetime), tz)
            if slot > last:
                last = slot
                return slot
        raise DataError(f"no slot of cron {cron!r} after {last.isoformat()}")  # pragma: no cover

    return step


@functools.lru_cache(maxsize=256)
def _next_slot(cron: str, tz: ZoneInfo, since: datetime) -> datetime:
    """The first slot strictly after ``since`` (pure: cached, so the slot after one tick's
    ``now`` is not searched again when the next tick counts the slots since it)."""
    return _slots_after(cron, tz, since)()


_BOUNDS: dict[tuple[str, ZoneInfo], tuple[datetime, datetime]] = {}
"""The last ``_slot_bounds`` of each schedule: two consecutive slots (none between them)."""


def _slot_bounds(cron: str, tz: ZoneInfo, now: datetime) -> tuple[datetime, datetime]:
    """(the latest slot at or before ``now``, the first slot after it).

    Two consecutive slots bound every ``now`` until the second one passes, so a schedule
    evaluated several times between its slots (or at each of them) searches for them once.
    """
    known = _BOUNDS.get((cron, tz))
    if known is not None and known[0] <= now < known[1]:
        return known
    # ``now`` at the next slot of the last bounds: the latest slot is that one
    latest = known[1] if known is not None and now == known[1] else _latest_slot(cron, tz, now)
    bounds = (latest, _next_slot(cron, tz, now))
    if len(_BOUNDS) >= 1024:
        _BOUNDS.clear()
    _BOUNDS[(cron, tz)] = bounds
    return bounds


class ScheduleTrigger(_Configurable):
    """Fire on a cron schedule, in a time zone (or every fixed interval: ``every 7d``).

    Each evaluation looks for cron slots in ``(latest slot at the previous evaluation, now]``;
    if there are any it fires once, for the latest. So a trigger evaluated every few minutes
    fires once per slot, and after downtime it fires once for the latest missed slot, not once
    per missed slot (the evidence counts the missed ones). The first evaluation only arms the
    trigger: slots at or before it do not fire, unless ``catch_up=True``, which fires once for
    the latest slot before it. A change of ``cron`` or ``timezone`` arms it again (the state
    records both), so a new schedule never fires for slots that passed before it was set. The
    state only changes when a slot passes.

    Slots are wall-clock times in ``timezone``. When clocks are set back, a wall time that
    occurs twice is a slot once, at its first occurrence (so an hourly schedule skips the
    repeated hour); when clocks are set forward over a slot, it fires at the moment of the
    jump (``30 2 * * *`` in Europe/Paris fires at 03:00 CEST on the last Sunday of March).

    Parameters
    ----------
    cron
        A five-field cron expression (minute hour day-of-month month day-of-week, e.g.
        ``"0 2 * * MON"``), a shortcut such as ``"@daily"``, or ``"every <duration>"``
        (``"every 210d"``: slots at whole multiples of the duration since 1970-01-01 UTC,
        for cadences cron cannot say; ``timezone`` does not apply to them).
    timezone
        An IANA time zone name (``"Europe/Paris"``).
    catch_up
        Whether the first evaluation fires for the latest slot before it.
    name
        Defaults to ``"schedule"``.

    Examples
    --------
    >>> trigger = ScheduleTrigger("0 2 * * MON", timezone="Europe/Paris")
    >>> first = trigger.evaluate(
    ...     TriggerContext(now=datetime(2024, 3, 1, tzinfo=UTC), pipeline="ctr"))
    >>> first.fire
    False
    >>> later = trigger.evaluate(TriggerContext(
    ...     now=datetime(2024, 3, 4, 9, tzinfo=UTC), pipeline="ctr", state=first.state))
    >>> later.fire, later.slot
    (True, '2024-03-04T01:00:00+00:00')
    >>> later.reason
    "schedule '0 2 * * MON' (Europe/Paris): slot 2024-03-04T02:00:00+01:00 is due"
    >>> trigger.next_fire(datetime(2024, 3, 4, 9, tzinfo=UTC)).isoformat()
    '2024-03-11T01:00:00+00:00'
    """

    kind: ClassVar[str] = "schedule"

    def __init__(
        self,
        cron: str,
        timezone: str = "UTC",
        catch_up: bool = False,
        name: str | None = None,
    ) -> None:
        self.cron = cron
        self.timezone = timezone
        self.catch_up = catch_up
        self.name = name if name is not None else "schedule"

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters (``name`` resolved to its default)."""
        return {
            "cron": self.cron,
            "timezone": self.timezone,
            "catch_up": self.catch_up,
            "name": self.name,
        }

    def _validate(self) -> ZoneInfo:
        owner = "ScheduleTrigger"
        _check_name(owner, self.name)
        if not isinstance(self.cron, str):
            raise ConfigError(
                f"{owner}.cron must be a cron expression such as '0 2 * * MON'; got {self.cron!r}"
            )
        problem = _cron_problem(" ".join(self.cron.split()))
        if problem:
            raise ConfigError(f"{owner}.cron {self.cron!r} is not a valid cron: {problem}")
        _check_bool(owner, "catch_up", self.catch_up)
        try:
            if not isinstance(self.timezone, str):
                raise TypeError
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ConfigError(
                f"{owner}.timezone must be an IANA time zone name such as 'UTC' or "
                f"'Europe/Paris'; got {self.timezone!r}"
            ) from None

    def needs(self) -> tuple[MetricNeed, ...]:
        """No metric."""
        self._validate()
        return ()

    def next_fire(self, now: datetime) -> datetime:
        """The first slot strictly after ``now`` (aware UTC), for ``retrainer status``."""
        tz = self._validate()
        return _next_slot(" ".join(self.cron.split()), tz, as_utc(now))

    def evaluate(self, ctx: TriggerContext) -> Decision:
        """Fire once if a slot fell in ``(last slot seen, now]``; see the class."""
        tz = self._validate()
        cron = " ".join(self.cron.split())
        now = as_utc(ctx.now)
        seen = _state_time(ctx.state, "last_slot")
        rearm = seen is not None and (
            ctx.state.get("cron") != cron or ctx.state.get("timezone") != self.timezone
        )
        arming = seen is None or rearm
        latest, upcoming = _slot_bounds(cron, tz, now)
        label = f"schedule {self.cron!r} ({self.timezone})"
        evidence: dict[str, Any] = {
            "cron": self.cron,
            "timezone": self.timezone,
            "now": _iso(now),
            "latest_slot": _iso(latest),
            "latest_slot_local": latest.astimezone(tz).isoformat(),
            "next_slot": _iso(upcoming),
            "next_slot_local": upcoming.astimezone(tz).isoformat(),
            "last_slot_seen": None if arming or seen is None else _iso(seen),
        }
        if arming or seen is None:
            due = self.catch_up
            last_seen = latest
        else:
            due = latest > seen
            last_seen = max(latest, seen)  # a clock set back does not re-open old slots
        # the state only changes when a slot passes (or the schedule changes)
        state: dict[str, Any] = {
            "cron": cron,
            "timezone": self.timezone,
            "last_slot": _iso(last_seen),
        }
        local_next = upcoming.astimezone(tz).isoformat()
        if due:
            reason = f"{label}: slot {latest.astimezone(tz).isoformat()} is due"
            if arming or seen is None:
                reason += " (catch_up when armed)"
            else:
                missed = self._count_slots(cron, tz, seen, now, latest)
                evidence["missed_slots"] = missed
                if missed > 1:
                    more = "+" if missed >= _MISSED_CAP else ""
                    reason += f" (the latest of {missed}{more} missed slots)"
        elif rearm:
            reason = f"{label}: re-armed after a schedule change; next slot {local_next}"
        elif arming:
            reason = f"{label}: armed; next slot {local_next}"
        else:
            reason = f"{label}: next slot {local_next}"
        return _decision(
            ctx,
            self.name,
            fire=due,
            active=due,
            slot=_iso(latest),
            reason=reason,
            evidence=evidence,
            state=state,
            status="scheduled",
            watching=True,
        )

    @staticmethod
    def _count_slots(
        cron: str, tz: ZoneInfo, since: datetime, now: datetime, latest: datetime
    ) -> int:
        """The slots in ``(since, now]``; ``latest`` is the latest slot at or before ``now``."""
        if _next_slot(cron, tz, since) == latest:  # the one slot since: the usual case
            return 1
        step = _slots_after(cron, tz, since)
        count = 0
        while count < _MISSED_CAP and step() <= now:
            count += 1
        return count

    def to_spec(self) -> dict[str, Any]:
        """``{"schedule": cron, "timezone": ..., "catch_up": ..., "name": ...}``, defaults left out.

        Examples
        --------
        >>> ScheduleTrigger("0 2 * * MON", timezone="Europe/Paris").to_spec()
        {'schedule': '0 2 * * MON', 'timezone': 'Europe/Paris'}
        """
        spec: dict[str, Any] = {"schedule": self.cron}
        if self.timezone != "UTC":
            spec["timezone"] = self.timezone
        if self.catch_up:
            spec["catch_up"] = self.catch_up
        if self.name != "schedule":
            spec["name"] = self.name
        return spec


# --- metric ------------------------------------------------------------------------------------


class MetricTrigger(_Configurable):
    """Fire when an online metric over the last ``over`` crosses a threshold.

    Thresholds (give at least one; any that is crossed counts):

    - ``below``/``above``: absolute, strict (``ctr < 0.0191``);
    - ``drop``/``rise``: change from the value measured after the last promotion
      (``TriggerContext.metric_at_promotion``), at least this much; in the metric's units, or a
      fraction of that value with ``relative=True`` (``drop=0.1, relative=True``: 10% lower).
      Without a baseline they are not judged (the evidence says so).

    A metric with ``status != "ok"`` or fewer than ``min_samples`` rows never fires.

    One run per breach per window: after firing at ``t`` the trigger stays quiet until
    ``t + over``, so each firing judges a window that shares no data with the previous
    firing's; and it waits until a whole window has passed since the last promotion, so it
    never judges the new champion on rows the old one served. The slot is the evaluation time
    floored to ``over`` on a UTC grid starting 1970-01-01 (for ``over="7d"`` weeks start on
    Thursdays): re-evaluating after a crash gives the same slot, and no two firings share one.

    Parameters
    ----------
    metric
        Metric name (as in the monitor: ``"accuracy"``, a rate metric such as ``"ctr"``).
    below, above
        Absolute bounds; with both, ``below < above`` (fires outside the band).
    drop, rise
        Smallest change from the post-promotion value that fires, ``> 0``.
    relative
        Whether ``drop``/``rise`` are fractions of the post-promotion value.
    over
        The metric window, a duration such as ``"1d"``.
    min_samples
        Fewest rows the metric must rest on.
    name
        Defaults to ``"metric:<metric>"``.

    Examples
    --------
    >>> trigger = MetricTrigger("ctr", below=0.0191, over="1d", min_samples=1000)
    >>> [need] = trigger.needs()
    >>> ctx = TriggerContext(now=datetime(2024, 3, 4, 9, tzinfo=UTC), pipeline="ads",
    ...                      metrics={need: MetricValue(value=0.0173, n=5120, status="ok")})
    >>> d = trigger.evaluate(ctx)
    >>> d.fire, d.slot, d.reason
    (True, '2024-03-04T00:00:00+00:00', 'ctr 0.0173 < 0.0191 over 1d (n=5120)')
    >>> few = replace(ctx, metrics={need: MetricValue(value=None, n=80,
    ...                                               status="insufficient_data")})
    >>> trigger.evaluate(few).reason
    'ctr over 1d: insufficient data (n=80)'
    """

    kind: ClassVar[str] = "metric"
    _DURATIONS = frozenset({"over"})

    def __init__(
        self,
        metric: str,
        below: float | None = None,
        above: float | None = None,
        drop: float | None = None,
        rise: float | None = None,
        relative: bool = False,
        over: str | timedelta = "1d",
        min_samples: int = 1,
        name: str | None = None,
    ) -> None:
        self.metric = metric
        self.below = below
        self.above = above
        self.drop = drop
        self.rise = rise
        self.relative = relative
        self.over = over
        self.min_samples = min_samples
        self.name = name if name is not None else f"metric:{metric}"

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters (``name`` resolved to its default)."""
        return {
            "metric": self.metric,
            "below": self.below,
            "above": self.above,
            "drop": self.drop,
            "rise": self.rise,
            "relative": self.relative,
            "over": self.over,
            "min_samples": self.min_samples,
            "name": self.name,
        }

    def _validate(self) -> timedelta:
        owner = "MetricTrigger"
        _check_name(owner, self.name)
        if not isinstance(self.metric, str) or not self.metric:
            raise ConfigError(f"{owner}.metric must be a metric name; got {self.metric!r}")
        below = _check_number(owner, "below", self.below)
        above = _check_number(owner, "above", self.above)
        _check_number(owner, "drop", self.drop, positive=True)
        _check_number(owner, "rise", self.rise, positive=True)
        _check_bool(owner, "relative", self.relative)
        if below is not None and above is not None and below >= above:
            raise ConfigError(
                f"{owner} for {self.metric!r}: below must be less than above (it fires "
                f"outside [below, above]); got below={self.below!r}, above={self.above!r}"
            )
        if all(v is None for v in (self.below, self.above, self.drop, self.rise)):
            raise ConfigError(
                f"{owner} for {self.metric!r} needs a threshold: below, above, drop or rise; "
                "got none"
            )
        if self.relative and self.drop is None and self.rise is None:
            raise ConfigError(
                f"{owner}.relative applies to drop and rise, and {self.metric!r} has neither"
            )
        _check_int(owner, "min_samples", self.min_samples, 1)
        return _check_duration(owner, "over", self.over)

    def needs(self) -> tuple[MetricNeed, ...]:
        """The one metric this trigger reads."""
        over = self._validate()
        return (MetricNeed(metric=self.metric, over=over, min_samples=self.min_samples),)

    def _conditions(self, value: float, baseline: float | None) -> list[dict[str, Any]]:
        m = self.metric
        rows: list[dict[str, Any]] = []
        if self.below is not None:
            rows.append(
                {
                    "condition": "below",
                    "threshold": self.below,
                    "met": value < self.below,
                    "text": f"{m} {value:.4g} < {self.below:g}",
                }
            )
        if self.above is not None:
            rows.append(
                {
                    "condition": "above",
                    "threshold": self.above,
                    "met": value > self.above,
                    "text": f"{m} {value:.4g} > {self.above:g}",
                }
            )
        for kind, bound, sign, word in (
            ("drop", self.drop, 1.0, "below"),
            ("rise", self.rise, -1.0, "above"),
        ):
            if bound is None:
                continue
            row: dict[str, Any] = {"condition": kind, "threshold": bound, "relative": self.relative}
            if baseline is None or not math.isfinite(baseline):
                row.update(met=False, note="no value measured after the last promotion")
            elif self.relative and baseline == 0:
                row.update(met=False, note="the value after the last promotion is 0")
            else:
                change = sign * (baseline - value)
                if self.relative:
                    change /= abs(baseline)
                    amount, limit = f"{change * 100:.3g}%", f"{bound * 100:g}%"
                else:
                    amount, limit = f"{change:.4g}", f"{bound:g}"
                row.update(
                    change=change,
                    met=_at_least(change, bound),
                    text=(
                        f"{m} {value:.4g} is {amount} {word} {baseline:.4g} after the last "
                        f"promotion ({kind} >= {limit})"
                    ),
                )
            rows.append(row)
        return rows

    def evaluate(self, ctx: TriggerContext) -> Decision:
        """Judge the metric over the last ``over``; see the class for when it fires."""
        over = self._validate()
        now = as_utc(ctx.now)
        over_text = _spec_duration(self.over)
        need = MetricNeed(metric=self.metric, over=over, min_samples=self.min_samples)
        measured = ctx.metrics.get(need)
        raw_baseline = ctx.metric_at_promotion.get(self.metric)
        baseline = None if raw_baseline is None else float(raw_baseline)
        evidence: dict[str, Any] = {
            "metric": self.metric,
            "over": over_text,
            "window_start": _iso(now - over),
            "window_end": _iso(now),
            "min_samples": self.min_samples,
            "value": None,
            "n": None,
            "status": None,
            "baseline": _json_safe(baseline),
        }
        state: dict[str, Any] = {"last_fired_at": ctx.state.get("last_fired_at")}
        label = f"{self.metric} over {over_text}"

        status: str
        if measured is None:
            status, reason = "insufficient_data", f"{label}: not measured"
        else:
            value = measured.value
            evidence.update(value=_json_safe(value), n=measured.n, status=measured.status)
            if measured.status == "undefined" or (value is not None and math.isnan(value)):
                status, reason = "undefined", f"{label}: undefined (n={measured.n})"
            elif measured.status != "ok" or value is None:
                status = "insufficient_data"
                reason = f"{label}: insufficient data (n={measured.n})"
            elif measured.n < self.min_samples:
                status = "insufficient_data"
                reason = (
                    f"{label}: insufficient data (n={measured.n} < min_samples={self.min_samples})"
                )
            else:
                status, reason = "ok", ""
        if status != "ok" or measured is None or measured.value is None:
            return _decision(
                ctx,
                self.name,
                fire=False,
                active=False,
                slot=None,
                reason=reason,
                evidence=evidence,
                state=state,
                status=status,
                watching=False,
            )

        value = float(measured.value)
        conditions = self._conditions(value, baseline)
        evidence["conditions"] = [{k: v for k, v in c.items() if k != "text"} for c in conditions]
        met = [c for c in conditions if c["met"]]
        if not met:
            return _decision(
                ctx,
                self.name,
                fire=False,
                active=False,
                slot=None,
                reason=f"{self.metric} {value:.4g} over {over_text} (n={measured.n}): "
                "no threshold crossed",
                evidence=evidence,
                state=state,
                status="ok",
                watching=True,
            )

        reason = f"{'; '.join(c['text'] for c in met)} over {over_text} (n={measured.n})"
        last_fired = _state_time(ctx.state, "last_fired_at")
        promoted = as_utc(ctx.last_promotion) if ctx.last_promotion is not None else None
        hold = ""
        if last_fired is not None and now < last_fired + over:
            hold = f"; fired at {_iso(last_fired)}, next judged from {_iso(last_fired + over)}"
        elif promoted is not None and now - over < promoted:
            hold = (
                f"; waiting for a full {over_text} after the promotion at {_iso(promoted)}: "
                f"judged from {_iso(promoted + over)}"
            )
        fire = not hold
        if fire:
            state["last_fired_at"] = _iso(now)
        slot = _EPOCH + ((now - _EPOCH) // over) * over
        return _decision(
            ctx,
            self.name,
            fire=fire,
            active=True,
            slot=_iso(slot),
            reason=reason + hold,
            evidence=evidence,
            state=state,
            status="breach",
            watching=True,
        )

    def to_spec(self) -> dict[str, Any]:
        """The configuration mapping, defaults left out (``over`` always written).

        Examples
        --------
        >>> MetricTrigger("ctr", drop=0.1, relative=True, over="1d").to_spec()
        {'metric': 'ctr', 'drop': 0.1, 'relative': True, 'over': '1d'}
        """
        spec: dict[str, Any] = {"metric": self.metric}
        for key in ("below", "above", "drop", "rise"):
            if getattr(self, key) is not None:
                spec[key] = getattr(self, key)
        if self.relative:
            spec["relative"] = self.relative
        spec["over"] = _spec_duration(self.over)
        if self.min_samples != 1:
            spec["min_samples"] = self.min_samples
        if self.name != f"metric:{self.metric}":
            spec["name"] = self.name
        return spec


# --- drift -------------------------------------------------------------------------------------


def _stale(moment: datetime, ctx: TriggerContext) -> bool:
    """Whether a monitor finding predates the last promotion (it judged the previous model)."""
    return ctx.last_promotion is not None and moment <= as_utc(ctx.last_promotion)


class DriftTrigger(_Configurable):
    """Fire on a monitor result that shows data drift, once per monitor result.

    What counts as drift: with neither ``share`` nor ``features``, the monitor's own dataset
    verdict (``drifted``); with ``share``, a share of drifted features of at least ``share``
    (instead of the monitor's ``drift_share``); with ``features``, any of those columns
    drifting. With both, either counts. A result whose window ended at or before the last
    promotion is ignored (it judged the previous champion). Each result is judged once: the
    trigger fires on a result newer than the last one it saw, and the slot is that result's
    window end.

    Parameters
    ----------
    share
        Smallest share of drifted features that fires, in (0, 1].
    features
        Columns whose drift alone fires (predictions included, by their column name).
    name
        Defaults to ``"drift"``.

    Examples
    --------
    >>> trigger = DriftTrigger(share=0.3)
    >>> report = {"drifted": False, "share_drifted": 0.4, "drifted_columns": ["x1", "x2"],
    ...           "window_end": "2024-03-04T00:00:00+00:00"}
    >>> ctx = TriggerContext(now=datetime(2024, 3, 4, 9, tzinfo=UTC), pipeline="p", drift=report)
    >>> d = trigger.evaluate(ctx)
    >>> d.fire, d.slot
    (True, '2024-03-04T00:00:00+00:00')
    >>> print(d.reason)  # doctest: +NORMALIZE_WHITESPACE
    drift in the monitor window ending 2024-03-04T00:00:00+00:00:
    share of drifted features 0.40 >= 0.3
    >>> trigger.evaluate(replace(ctx, state=d.state)).fire  # same result: acted on already
    False
    """

    kind: ClassVar[str] = "drift"

    def __init__(
        self, share: float | None = None, features: Sequence[str] = (), name: str | None = None
    ) -> None:
        self.share = share
        self.features = features
        self.name = name if name is not None else "drift"

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters (``name`` resolved to its default)."""
        return {"share": self.share, "features": self.features, "name": self.name}

    def _validate(self) -> list[str]:
        owner = "DriftTrigger"
        _check_name(owner, self.name)
        share = _check_number(owner, "share", self.share)
        if share is not None and not 0 < share <= 1:
            raise ConfigError(f"{owner}.share must be in (0, 1]; got {self.share!r}")
        return _check_names(owner, "features", self.features, None)

    def needs(self) -> tuple[MetricNeed, ...]:
        """No metric: it reads the monitor's drift report."""
        self._validate()
        return ()

    def evaluate(self, ctx: TriggerContext) -> Decision:
        """Judge the latest monitor result if it is new; see the class."""
        features = self._validate()
        report = ctx.drift
        state: dict[str, Any] = {"last_window_end": ctx.state.get("last_window_end")}
        if not report or report.get("window_end") is None:
            return _decision(
                ctx,
                self.name,
                fire=False,
                active=False,
                slot=None,
                reason="drift: no monitor result yet",
                evidence={"window_end": None},
                state=state,
                status="no_result",
                watching=False,
            )
        window_end = _to_time(report["window_end"], "drift['window_end']")
        drifted_columns = [str(c) for c in report.get("drifted_columns") or ()]
        raw_share = report.get("share_drifted")
        share_drifted = float(raw_share) if _is_number(raw_share) else None
        dataset = bool(report.get("drifted"))
        found: list[str] = []
        if self.share is None and not features and dataset:
            shown = f" (share of drifted features {share_drifted:.2f})" if share_drifted else ""
            found.append(f"dataset drifted{shown}")
        if (
            self.share is not None
            and share_drifted is not None
            and _at_least(share_drifted, self.share)
        ):
            found.append(f"share of drifted features {share_drifted:.2f} >= {self.share:g}")
        hit = [f for f in features if f in drifted_columns]
        if hit:
            found.append(f"drifted: {', '.join(hit)}")
        last_seen = _state_time(ctx.state, "last_window_end")
        new = last_seen is None or window_end > last_seen
        stale = _stale(window_end, ctx)
        # a window without rows (or whose columns could not be tested) judged nothing
        raw_tested = report.get("n_tested")
        tested = int(raw_tested) if _is_int(raw_tested) else None
        watching = tested is None or tested > 0
        active = bool(found) and not stale
        if new:
            state["last_window_end"] = _iso(window_end)
        evidence = {
            "window_end": _iso(window_end),
            "drifted": _json_safe(report.get("drifted")),
            "share_drifted": share_drifted,
            "drifted_columns": drifted_columns,
            "share": self.share,
            "features": list(features),
            "new_result": new,
            "n_tested": tested,
        }
        where = f"the monitor window ending {_iso(window_end)}"
        if stale:
            status = "stale"
            reason = f"drift: {where} predates the last promotion"
        elif found:
            status = "drifted"
            reason = f"drift in {where}: {'; '.join(found)}"
            if not new:
                reason += " (acted on already)"
        elif not watching:
            status = "untested"
            rows = report.get("n_cur")
            reason = (
                f"drift: no column tested in {where} ({rows if rows is not None else '?'} rows)"
            )
        else:
            status = "no_drift"
            share_text = f" (share {share_drifted:.2f})" if share_drifted is not None else ""
            reason = f"no drift in {where}{share_text}"
        return _decision(
            ctx,
            self.name,
            fire=active and new,
            active=active,
            slot=_iso(window_end),
            reason=reason,
            evidence=evidence,
            state=state,
            status=status,
            watching=watching,
        )

    def to_spec(self) -> dict[str, Any]:
        """``{"drift": {"share": ..., "features": [...]}}``, defaults left out.

        Examples
        --------
        >>> DriftTrigger(features=("price",)).to_spec()
        {'drift': {'features': ['price']}}
        """
        body: dict[str, Any] = {}
        if self.share is not None:
            body["share"] = self.share
        if self.features:
            body["features"] = list(self.features)
        spec: dict[str, Any] = {"drift": body}
        if self.name != "drift":
            spec["name"] = self.name
        return spec


class ConceptDriftTrigger(_Configurable):
    """Fire on a new detection of the monitor's concept-drift detector (error stream).

    It fires once per detection newer than the last one it fired on, for the latest one if a
    monitor result holds several; the slot is its time (UTC ISO). Detections at or before the
    last promotion are ignored.

    Parameters
    ----------
    name
        Defaults to ``"concept_drift"``.

    Examples
    --------
    >>> cd = {"drift_detected": True, "detections": ["2024-03-03T17:00:00"]}
    >>> ctx = TriggerContext(now=datetime(2024, 3, 4, tzinfo=UTC), pipeline="p", concept_drift=cd)
    >>> d = ConceptDriftTrigger().evaluate(ctx)
    >>> d.fire, d.slot
    (True, '2024-03-03T17:00:00+00:00')
    """

    kind: ClassVar[str] = "concept_drift"

    def __init__(self, name: str | None = None) -> None:
        self.name = name if name is not None else "concept_drift"

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters (``name`` resolved to its default)."""
        return {"name": self.name}

    def _validate(self) -> None:
        _check_name("ConceptDriftTrigger", self.name)

    def needs(self) -> tuple[MetricNeed, ...]:
        """No metric: it reads the monitor's concept-drift result."""
        self._validate()
        return ()

    def evaluate(self, ctx: TriggerContext) -> Decision:
        """Fire on a detection newer than the last one fired on."""
        self._validate()
        result = ctx.concept_drift or {}
        detections = sorted(
            _to_time(d, "concept_drift['detections'] item") for d in result.get("detections") or ()
        )
        last = _state_time(ctx.state, "last_detection")
        state: dict[str, Any] = {"last_detection": ctx.state.get("last_detection")}
        fresh = [d for d in detections if not _stale(d, ctx)]
        new = [d for d in fresh if last is None or d > last]
        raw_seen = result.get("rows_seen")
        seen = int(raw_seen) if _is_int(raw_seen) else 0
        watching = bool(detections) or seen > 0
        evidence: dict[str, Any] = {
            "method": _json_safe(result.get("method")),
            "detections": [_iso(d) for d in detections],
            "new_detections": len(new),
            "rows_seen": seen,
        }
        if new:
            latest = new[-1]
            state["last_detection"] = _iso(latest)
            method = f" ({result['method']})" if result.get("method") else ""
            more = f"; {len(new)} new detections" if len(new) > 1 else ""
            reason = f"concept drift detected at {_iso(latest)}{method}{more}"
            fire, active, slot = True, True, _iso(latest)
        elif fresh:
            reason = f"concept drift detected at {_iso(fresh[-1])} (acted on already)"
            fire, active, slot = False, True, None
        elif detections:
            reason = "concept drift: the detections predate the last promotion"
            fire, active, slot = False, False, None
        elif watching:
            reason = f"concept drift: no detection in {seen} errors"
            fire, active, slot = False, False, None
        else:
            reason = "concept drift: no error seen yet (no monitor result, or no label arrived)"
            fire, active, slot = False, False, None
        return _decision(
            ctx,
            self.name,
            fire=fire,
            active=active,
            slot=slot,
            reason=reason,
            evidence=evidence,
            state=state,
            status="detected" if active else "none",
            watching=watching,
        )

    def to_spec(self) -> dict[str, Any]:
        """``{"concept_drift": {}}`` (plus ``name`` if not the default)."""
        spec: dict[str, Any] = {"concept_drift": {}}
        if self.name != "concept_drift":
            spec["name"] = self.name
        return spec


# --- new data, code, manual -------------------------------------------------------------------


class NewDataTrigger(_Configurable):
    """Fire when enough rows arrived since the champion's training.

    The threshold is ``rows``, or ``fraction`` of the rows the champion was trained on; with
    both, the smaller. It fires once per batch of that many new rows: when the count since the
    training reaches 1x the threshold, again at 2x if no new model was trained meanwhile (say
    the candidate was not blessed), and so on; the slot is ``<last training>#<batch>``.

    Parameters
    ----------
    rows
        New rows that fire, ``>= 1``.
    fraction
        New rows as a fraction of ``training_rows`` that fire, ``> 0``.
    name
        Defaults to ``"new_data"``.

    Examples
    --------
    >>> ctx = TriggerContext(now=datetime(2024, 3, 4, tzinfo=UTC), pipeline="p",
    ...                      last_training=datetime(2024, 3, 1, tzinfo=UTC),
    ...                      rows_since_training=12_000, training_rows=50_000)
    >>> d = NewDataTrigger(rows=10_000).evaluate(ctx)
    >>> d.fire, d.slot
    (True, '2024-03-01T00:00:00+00:00#1')
    >>> d.reason
    '12000 new rows since the last training >= 10000 (rows=10000)'
    """

    kind: ClassVar[str] = "new_data"

    def __init__(
        self, rows: int | None = None, fraction: float | None = None, name: str | None = None
    ) -> None:
        self.rows = rows
        self.fraction = fraction
        self.name = name if name is not None else "new_data"

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters (``name`` resolved to its default)."""
        return {"rows": self.rows, "fraction": self.fraction, "name": self.name}

    def _validate(self) -> None:
        owner = "NewDataTrigger"
        _check_name(owner, self.name)
        if self.rows is None and self.fraction is None:
            raise ConfigError(f"{owner} needs rows or fraction; got neither")
        if self.rows is not None:
            _check_int(owner, "rows", self.rows, 1)
        _check_number(owner, "fraction", self.fraction, positive=True)

    def needs(self) -> tuple[MetricNeed, ...]:
        """No metric: it reads the row counts."""
        self._validate()
        return ()

    def evaluate(self, ctx: TriggerContext) -> Decision:
        """Compare the rows since the training with the threshold; see the class."""
        self._validate()
        since = ctx.rows_since_training
        base = _iso(ctx.last_training) if ctx.last_training is not None else "untrained"
        thresholds: list[tuple[int, str]] = []
        if self.rows is not None:
            thresholds.append((self.rows, f"rows={self.rows}"))
        if self.fraction is not None and ctx.training_rows:
            thresholds.append(
                (
                    max(1, math.ceil(self.fraction * ctx.training_rows)),
                    f"fraction={self.fraction:g} of {ctx.training_rows} training rows",
                )
            )
        state: dict[str, Any] = {"base": ctx.state.get("base"), "batch": ctx.state.get("batch")}
        evidence: dict[str, Any] = {
            "rows_since_training": since,
            "training_rows": ctx.training_rows,
            "last_training": base,
            "rows": self.rows,
            "fraction": self.fraction,
        }
        if since is None or not thresholds:
            what = "rows since the last training" if since is None else "training rows"
            return _decision(
                ctx,
                self.name,
                fire=False,
                active=False,
                slot=None,
                reason=f"new data: {what} unknown",
                evidence=evidence,
                state=state,
                status="unknown",
                watching=False,
            )
        threshold, rule = min(thresholds)
        batch = since // threshold
        evidence.update(threshold=threshold, batch=batch)
        active = batch >= 1
        prev_batch = ctx.state.get("batch")
        new = ctx.state.get("base") != base or not _is_int(prev_batch) or batch > prev_batch
        fire = active and new
        if fire:
            state = {"base": base, "batch": batch}
        comparison = ">=" if active else "<"
        reason = f"{since} new rows since the last training {comparison} {threshold} ({rule})"
        if active and batch > 1:
            reason += f", batch {batch}"
        if active and not new:
            reason += " (acted on already)"
        return _decision(
            ctx,
            self.name,
            fire=fire,
            active=active,
            slot=f"{base}#{batch}",
            reason=reason,
            evidence=evidence,
            state=state,
            status="enough" if active else "waiting",
            watching=True,
        )

    def to_spec(self) -> dict[str, Any]:
        """``{"new_data": {"rows": ..., "fraction": ...}}``, unset ones left out."""
        body = {
            k: v for k, v in (("rows", self.rows), ("fraction", self.fraction)) if v is not None
        }
        spec: dict[str, Any] = {"new_data": body}
        if self.name != "new_data":
            spec["name"] = self.name
        return spec


class CodeChangeTrigger(_Configurable):
    """Fire when the code differs from the champion's: pipeline hash or git commit.

    A watched value that is unknown on either side (say, not in a git repository) is not
    compared. Without a champion it fires too, once, to train the first model. It fires once
    per code version; the slot is ``<pipeline hash>@<git commit>`` (the watched ones, ``-``
    for unknown).

    Parameters
    ----------
    watch
        Which of ``"pipeline_hash"`` and ``"git_commit"`` to compare (a commit that only
        touches documentation changes the commit, not the pipeline hash).
    name
        Defaults to ``"code_change"``.

    Examples
    --------
    >>> ctx = TriggerContext(now=datetime(2024, 3, 4, tzinfo=UTC), pipeline="p",
    ...                      code={"pipeline_hash": "b2", "git_commit": "c9"},
    ...                      champion_code={"pipeline_hash": "a1", "git_commit": "c9"})
    >>> d = CodeChangeTrigger().evaluate(ctx)
    >>> d.fire, d.slot, d.reason
    (True, 'b2@c9', 'code changed: pipeline_hash a1 -> b2')
    """

    kind: ClassVar[str] = "code_change"

    def __init__(self, watch: Sequence[str] = _CODE_KEYS, name: str | None = None) -> None:
        self.watch = watch
        self.name = name if name is not None else "code_change"

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters (``name`` resolved to its default)."""
        return {"watch": self.watch, "name": self.name}

    def _validate(self) -> list[str]:
        owner = "CodeChangeTrigger"
        _check_name(owner, self.name)
        watch = _check_names(owner, "watch", self.watch, _CODE_KEYS)
        if not watch:
            raise ConfigError(f"{owner}.watch must name at least one of {', '.join(_CODE_KEYS)}")
        return watch

    def needs(self) -> tuple[MetricNeed, ...]:
        """No metric: it reads the code versions."""
        self._validate()
        return ()

    def evaluate(self, ctx: TriggerContext) -> Decision:
        """Compare the current code with the champion's; see the class."""
        watch = self._validate()
        current = {k: ctx.code.get(k) for k in watch}
        champion = ctx.champion_code
        slot = "@".join(current[k] or "-" for k in watch)
        evidence: dict[str, Any] = {
            "code": dict(current),
            "champion_code": {k: champion.get(k) for k in watch} if champion else None,
        }
        state: dict[str, Any] = {"last_slot": ctx.state.get("last_slot")}
        if all(v is None for v in current.values()):
            active, status, reason = False, "unknown", "code change: current code version unknown"
        elif champion is None:
            active, status = True, "no_champion"
            reason = "no champion yet: train the first model"
        else:
            diffs = [
                k
                for k in watch
                if current[k] is not None
                and champion.get(k) is not None
                and current[k] != champion.get(k)
            ]
            active = bool(diffs)
            status = "differs" if active else "same"
            if active:
                changes = ", ".join(f"{k} {champion.get(k)} -> {current[k]}" for k in diffs)
                reason = f"code changed: {changes}"
            else:
                reason = "code unchanged since the champion"
        fire = active and slot != ctx.state.get("last_slot")
        if fire:
            state["last_slot"] = slot
        elif active:
            reason += " (acted on already)"
        return _decision(
            ctx,
            self.name,
            fire=fire,
            active=active,
            slot=slot,
            reason=reason,
            evidence=evidence,
            state=state,
            status=status,
            watching=False,
        )

    def to_spec(self) -> dict[str, Any]:
        """``{"code_change": {}}`` or ``{"code_change": {"watch": [...]}}``."""
        body: dict[str, Any] = {}
        if tuple(self.watch) != _CODE_KEYS:
            body["watch"] = list(self.watch)
        spec: dict[str, Any] = {"code_change": body}
        if self.name != "code_change":
            spec["name"] = self.name
        return spec


class ManualTrigger(_Configurable):
    """Fire for each manual request (``retrainer run``, the API); the slot is its id.

    One request per evaluation, the first pending one it has not fired for (the engine
    passes them oldest first); the ids of the last 100 fired requests are kept in the state,
    so a request the engine has not cleared yet does not fire twice.

    Parameters
    ----------
    name
        Defaults to ``"manual"``.

    Examples
    --------
    >>> ctx = TriggerContext(now=datetime(2024, 3, 4, tzinfo=UTC), pipeline="p",
    ...                      manual_requests=[{"id": "r-17", "at": "2024-03-04T00:00:00+00:00",
    ...                                        "by": "ana"}])
    >>> d = ManualTrigger().evaluate(ctx)
    >>> d.fire, d.slot, d.reason
    (True, 'r-17', 'manual request r-17 by ana at 2024-03-04T00:00:00+00:00')
    >>> ManualTrigger().evaluate(replace(ctx, state=d.state)).fire
    False
    """

    kind: ClassVar[str] = "manual"

    def __init__(self, name: str = "manual") -> None:
        self.name = name

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters."""
        return {"name": self.name}

    def _validate(self) -> None:
        _check_name("ManualTrigger", self.name)

    def needs(self) -> tuple[MetricNeed, ...]:
        """No metric: it reads the pending requests."""
        self._validate()
        return ()

    def evaluate(self, ctx: TriggerContext) -> Decision:
        """Fire for the first pending request not fired for yet."""
        self._validate()
        raw_handled = ctx.state.get("handled") or []
        handled = [str(h) for h in raw_handled]
        pending = []
        for request in ctx.manual_requests:
            if request.get("id") is None or request.get("id") == "":
                raise DataError(f"a manual request needs an 'id'; got {dict(request)!r}")
            if str(request["id"]) not in handled:
                pending.append(request)
        state: dict[str, Any] = {"handled": handled}
        if not pending:
            return _decision(
                ctx,
                self.name,
                fire=False,
                active=False,
                slot=None,
                reason="no pending manual request",
                evidence={"pending": 0},
                state=state,
                status="idle",
                watching=False,
            )
        request = pending[0]
        request_id = str(request["id"])
        state["handled"] = [*handled, request_id][-_MANUAL_MEMORY:]
        by = f" by {request['by']}" if request.get("by") else ""
        at = f" at {_json_safe(request['at'])}" if request.get("at") is not None else ""
        note = f": {request['reason']}" if request.get("reason") else ""
        return _decision(
            ctx,
            self.name,
            fire=True,
            active=True,
            slot=request_id,
            reason=f"manual request {request_id}{by}{at}{note}",
            evidence={"request": _json_safe(request), "pending": len(pending)},
            state=state,
            status="pending" if len(pending) > 1 else "idle",
            watching=False,
        )

    def to_spec(self) -> dict[str, Any]:
        """``{"manual": {}}`` (plus ``name`` if not ``"manual"``)."""
        spec: dict[str, Any] = {"manual": {}}
        if self.name != "manual":
            spec["name"] = self.name
        return spec


# --- combinators -------------------------------------------------------------------------------


class _Combinator(_Configurable):
    kind: ClassVar[str]

    def __init__(self, *triggers: Trigger, name: str | None = None) -> None:
        self.triggers = triggers
        children = ",".join(str(getattr(t, "name", "?")) for t in triggers)
        self.name = name if name is not None else f"{self.kind}({children})"

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters (``name`` resolved to its default)."""
        return {"triggers": self.triggers, "name": self.name}

    def __repr__(self) -> str:
        inner = ", ".join([*(repr(t) for t in self.triggers), f"name={self.name!r}"])
        return f"{type(self).__name__}({inner})"

    def _validate(self) -> tuple[Trigger, ...]:
        owner = type(self).__name__
        _check_name(owner, self.name)
        if not self.triggers:
            raise ConfigError(f"{owner} needs at least one trigger; got none")
        names = []
        for child in self.triggers:
            if not isinstance(child, Trigger):
                raise ConfigError(f"{owner} takes triggers; got {child!r}")
            validate = getattr(child, "_validate", None)
            if callable(validate):
                validate()
            names.append(child.name)
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(
                f"{owner} {self.name!r} has two triggers named {', '.join(map(repr, twice))}; "
                "give them distinct names (each keeps its own state)"
            )
        return self.triggers

    def needs(self) -> tuple[MetricNeed, ...]:
        """The children's needs, each once."""
        return tuple(dict.fromkeys(n for t in self._validate() for n in t.needs()))

    def _children(self, ctx: TriggerContext) -> list[Decision]:
        states = ctx.state.get("children") or {}
        return [t.evaluate(replace(ctx, state=states.get(t.name) or {})) for t in self._validate()]

    @staticmethod
    def _evidence(decisions: Sequence[Decision]) -> list[dict[str, Any]]:
        return [
            {
                "trigger": d.trigger,
                "fire": d.fire,
                "active": d.active,
                "slot": d.slot,
                "reason": d.reason,
                "evidence": d.evidence,
            }
            for d in decisions
        ]

    def _result(
        self,
        ctx: TriggerContext,
        decisions: list[Decision],
        fire: bool,
        active: bool,
        reason: str,
        slot: str | None,
        watching: bool,
    ) -> Decision:
        return _decision(
            ctx,
            self.name,
            fire=fire,
            active=active,
            slot=slot,
            reason=reason,
            evidence={"children": self._evidence(decisions)},
            state={"children": {d.trigger: d.state for d in decisions}},
            status="; ".join(f"{d.trigger}={d.state.get('status')}" for d in decisions),
            watching=watching,
        )

    def to_spec(self) -> dict[str, Any]:
        """``{"any"|"all": [child specs]}`` (plus ``name`` if not the default)."""
        spec: dict[str, Any] = {self.kind: [t.to_spec() for t in self.triggers]}
        children = ",".join(t.name for t in self.triggers)
        if self.name != f"{self.kind}({children})":
            spec["name"] = self.name
        return spec


class AnyOf(_Combinator):
    """Fire when any child fires (one run for all of them).

    Every child is evaluated and keeps its own state (under ``state["children"]``, by name,
    so children need distinct names). When several fire, the slot is the first firing child's
    (``<child>:<slot>``) and the others are acted on by the same run.

    Parameters
    ----------
    *triggers
        The children.
    name
        Defaults to ``"any(<child names>)"``.

    Examples
    --------
    >>> trigger = AnyOf(ManualTrigger(), NewDataTrigger(rows=100))
    >>> ctx = TriggerContext(now=datetime(2024, 3, 4, tzinfo=UTC), pipeline="p",
    ...                      rows_since_training=150)
    >>> d = trigger.evaluate(ctx)
    >>> d.trigger, d.fire, d.slot
    ('any(manual,new_data)', True, 'new_data:untrained#1')
    >>> [c["fire"] for c in d.evidence["children"]]
    [False, True]
    """

    kind: ClassVar[str] = "any"

    def evaluate(self, ctx: TriggerContext) -> Decision:
        """Evaluate every child; fire if one fires."""
        decisions = self._children(ctx)
        firing = [d for d in decisions if d.fire]
        if firing:
            reason = f"{firing[0].trigger}: {firing[0].reason}"
            if len(firing) > 1:
                reason += f" (also firing: {', '.join(d.trigger for d in firing[1:])})"
        else:
            reason = "no trigger fires: " + "; ".join(f"{d.trigger}: {d.reason}" for d in decisions)
        slot = f"{firing[0].trigger}:{firing[0].slot}" if firing else None
        active = any(d.active for d in decisions)
        # watching when one child is: that child alone can fire
        watching = any(d.watching for d in decisions)
        return self._result(ctx, decisions, bool(firing), active, reason, slot, watching)


class AllOf(_Combinator):
    """Fire when every child's condition holds and at least one child fires.

    Conditions are levels (``Decision.active``: a due cron slot, a metric past its threshold,
    enough new rows...), firings are edges. ``AllOf(ScheduleTrigger("0 2 * * MON"),
    NewDataTrigger(rows=10_000))`` fires on Monday at 02:00 if 10,000 rows arrived since the
    last training, and not that week otherwise. A child's firing is acted on whether or not
    the others agree: the Monday slot above is not carried over to Tuesday. The slot joins
    the firing children's (``<child>:<slot>+...``).

    Parameters
    ----------
    *triggers
        The children.
    name
        Defaults to ``"all(<child names>)"``.

    Examples
    --------
    >>> trigger = AllOf(ManualTrigger(), NewDataTrigger(rows=100))
    >>> ctx = TriggerContext(now=datetime(2024, 3, 4, tzinfo=UTC), pipeline="p",
    ...                      rows_since_training=50, manual_requests=[{"id": "r1"}])
    >>> d = trigger.evaluate(ctx)
    >>> d.fire, d.reason
    (False, 'waiting for new_data: 50 new rows since the last training < 100 (rows=100)')
    >>> trigger.evaluate(replace(ctx, rows_since_training=150)).slot
    'manual:r1+new_data:untrained#1'
    """

    kind: ClassVar[str] = "all"

    def evaluate(self, ctx: TriggerContext) -> Decision:
        """Evaluate every child; fire if all hold and one fires."""
        decisions = self._children(ctx)
        inactive = [d for d in decisions if not d.active]
        firing = [d for d in decisions if d.fire]
        fire = not inactive and bool(firing)
        if fire:
            reason = "all hold: " + "; ".join(f"{d.trigger}: {d.reason}" for d in decisions)
        elif inactive:
            reason = "waiting for " + "; ".join(f"{d.trigger}: {d.reason}" for d in inactive)
        else:
            reason = "all hold, none fires anew: " + "; ".join(
                f"{d.trigger}: {d.reason}" for d in decisions
            )
        slot = "+".join(f"{d.trigger}:{d.slot}" for d in firing) if fire else None
        # watching only when every child is: one that waits for its input holds them all
        watching = all(d.watching for d in decisions)
        return self._result(ctx, decisions, fire, not inactive, reason, slot, watching)


# --- guards ------------------------------------------------------------------------------------


def _guard_entry(kind: str, passed: bool, reason: str, **values: Any) -> dict[str, Any]:
    return {"guard": kind, "passed": passed, "reason": reason, **_json_safe(values)}


def _allow(decision: Decision, entry: dict[str, Any]) -> Decision:
    evidence = dict(decision.evidence)
    evidence["guards"] = [*evidence.get("guards", ()), entry]
    return replace(decision, evidence=evidence)


def _hold(ctx: TriggerContext, decision: Decision, entry: dict[str, Any]) -> Decision:
    evidence = dict(decision.evidence)
    evidence["guards"] = [*evidence.get("guards", ()), entry]
    evidence["held_back"] = {"slot": decision.slot, "reason": decision.reason}
    status = f"blocked:{entry['guard']}"
    return Decision(
        fire=False,
        trigger=decision.trigger,
        slot=None,
        reason=f"{entry['reason']} (held back: {decision.reason})",
        evidence=evidence,
        state={**ctx.state, "status": status},
        changed=status != ctx.state.get("status"),
        active=decision.active,
        watching=decision.watching,
    )


class Cooldown(_Configurable):
    """Hold a firing back until ``period`` has passed since the last training or run.

    The reference is the latest of ``last_training`` and ``recent_runs``.

    Parameters
    ----------
    period
        A duration such as ``"6h"``.

    Examples
    --------
    >>> now = datetime(2024, 3, 4, 12, tzinfo=UTC)
    >>> ctx = TriggerContext(now=now, pipeline="p", recent_runs=[now - timedelta(hours=2)])
    >>> fired = Decision(fire=True, trigger="drift", slot="s", reason="drift")
    >>> held = Cooldown("6h").check(ctx, fired)
    >>> held.fire, held.reason
    (False, 'cooldown: last run 2h ago < 6h (held back: drift)')
    """

    kind: ClassVar[str] = "cooldown"
    _DURATIONS = frozenset({"period"})

    def __init__(self, period: str | timedelta) -> None:
        self.period = period

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters."""
        return {"period": self.period}

    def _validate(self) -> timedelta:
        return _check_duration("Cooldown", "period", self.period)

    def lookback(self) -> timedelta:
        """``period``."""
        return self._validate()

    def check(self, ctx: TriggerContext, decision: Decision) -> Decision:
        """Hold ``decision`` back if it fires within ``period`` of the last training or run."""
        period = self._validate()
        if not decision.fire:
            return decision
        now = as_utc(ctx.now)
        refs = []
        if ctx.last_training is not None:
            refs.append((as_utc(ctx.last_training), "last training"))
        if ctx.recent_runs:
            refs.append((max(as_utc(t) for t in ctx.recent_runs), "last run"))
        period_text = _spec_duration(self.period)
        if not refs:
            return _allow(
                decision, _guard_entry(self.kind, True, "cooldown: no training or run yet")
            )
        ref, label = max(refs)
        age = max(now - ref, timedelta(0))
        entry_values = {"period": period_text, "since": _iso(ref), "age": _format_duration(age)}
        if age < period:
            reason = f"cooldown: {label} {_format_duration(age, 2)} ago < {period_text}"
            return _hold(ctx, decision, _guard_entry(self.kind, False, reason, **entry_values))
        reason = f"cooldown: {label} {_format_duration(age, 2)} ago >= {period_text}"
        return _allow(decision, _guard_entry(self.kind, True, reason, **entry_values))

    def to_spec(self) -> dict[str, Any]:
        """``{"cooldown": "6h"}``."""
        return {"cooldown": _spec_duration(self.period)}


class MaxRetrains(_Configurable):
    """Hold a firing back once ``count`` runs were created in the last ``per``.

    Parameters
    ----------
    count
        Most runs allowed in any window of length ``per``, ``>= 1``.
    per
        A duration such as ``"1d"``.

    Examples
    --------
    >>> now = datetime(2024, 3, 4, 12, tzinfo=UTC)
    >>> runs = [now - timedelta(hours=h) for h in (1, 5, 9)]
    >>> ctx = TriggerContext(now=now, pipeline="p", recent_runs=runs)
    >>> fired = Decision(fire=True, trigger="drift", slot="s", reason="drift")
    >>> MaxRetrains(count=3, per="1d").check(ctx, fired).reason
    'max_retrains: 3 runs in the last 1d (limit 3) (held back: drift)'
    """

    kind: ClassVar[str] = "max_retrains"
    _DURATIONS = frozenset({"per"})

    def __init__(self, count: int, per: str | timedelta) -> None:
        self.count = count
        self.per = per

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters."""
        return {"count": self.count, "per": self.per}

    def _validate(self) -> timedelta:
        _check_int("MaxRetrains", "count", self.count, 1)
        return _check_duration("MaxRetrains", "per", self.per)

    def lookback(self) -> timedelta:
        """``per``."""
        return self._validate()

    def check(self, ctx: TriggerContext, decision: Decision) -> Decision:
        """Hold ``decision`` back if ``count`` runs already happened in the last ``per``."""
        per = self._validate()
        if not decision.fire:
            return decision
        now = as_utc(ctx.now)
        recent = sum(1 for t in ctx.recent_runs if as_utc(t) > now - per)
        per_text = _spec_duration(self.per)
        values = {"runs": recent, "count": self.count, "per": per_text}
        if recent >= self.count:
            reason = f"max_retrains: {recent} runs in the last {per_text} (limit {self.count})"
            return _hold(ctx, decision, _guard_entry(self.kind, False, reason, **values))
        reason = f"max_retrains: {recent} of {self.count} runs in the last {per_text}"
        return _allow(decision, _guard_entry(self.kind, True, reason, **values))

    def to_spec(self) -> dict[str, Any]:
        """``{"max_retrains": {"count": 3, "per": "1d"}}``."""
        return {"max_retrains": {"count": self.count, "per": _spec_duration(self.per)}}


class MinNewRows(_Configurable):
    """Hold a firing back until ``rows`` rows arrived since the champion's training.

    A pipeline never trained passes (its first model needs training); an unknown count
    holds the firing back.

    Parameters
    ----------
    rows
        Fewest new rows, ``>= 1``.

    Examples
    --------
    >>> ctx = TriggerContext(now=datetime(2024, 3, 4, tzinfo=UTC), pipeline="p",
    ...                      last_training=datetime(2024, 3, 1, tzinfo=UTC),
    ...                      rows_since_training=400)
    >>> fired = Decision(fire=True, trigger="schedule", slot="s", reason="due")
    >>> MinNewRows(1000).check(ctx, fired).reason
    'min_new_rows: 400 new rows since the last training < 1000 (held back: due)'
    """

    kind: ClassVar[str] = "min_new_rows"

    def __init__(self, rows: int) -> None:
        self.rows = rows

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters."""
        return {"rows": self.rows}

    def _validate(self) -> int:
        return _check_int("MinNewRows", "rows", self.rows, 1)

    def lookback(self) -> timedelta:
        """Zero: it reads no runs."""
        self._validate()
        return timedelta(0)

    def check(self, ctx: TriggerContext, decision: Decision) -> Decision:
        """Hold ``decision`` back if fewer than ``rows`` rows arrived since the training."""
        rows = self._validate()
        if not decision.fire:
            return decision
        since = ctx.rows_since_training
        values = {"rows": rows, "rows_since_training": since}
        if ctx.last_training is None:
            reason = "min_new_rows: no model trained yet"
            return _allow(decision, _guard_entry(self.kind, True, reason, **values))
        if since is None:
            reason = "min_new_rows: rows since the last training unknown"
            return _hold(ctx, decision, _guard_entry(self.kind, False, reason, **values))
        if since < rows:
            reason = f"min_new_rows: {since} new rows since the last training < {rows}"
            return _hold(ctx, decision, _guard_entry(self.kind, False, reason, **values))
        reason = f"min_new_rows: {since} new rows since the last training >= {rows}"
        return _allow(decision, _guard_entry(self.kind, True, reason, **values))

    def to_spec(self) -> dict[str, Any]:
        """``{"min_new_rows": 1000}``."""
        return {"min_new_rows": self.rows}


def apply_guards(ctx: TriggerContext, decision: Decision, guards: Sequence[Guard]) -> Decision:
    """Run ``guards`` in order over a decision; the first that holds it back decides.

    Examples
    --------
    >>> now = datetime(2024, 3, 4, 12, tzinfo=UTC)
    >>> ctx = TriggerContext(now=now, pipeline="p", recent_runs=[now - timedelta(days=2)])
    >>> fired = Decision(fire=True, trigger="drift", slot="s", reason="drift")
    >>> d = apply_guards(ctx, fired, [Cooldown("6h"), MaxRetrains(count=1, per="1d")])
    >>> d.fire, [g["passed"] for g in d.evidence["guards"]]
    (True, [True, True])
    """
    for guard in guards:
        if not decision.fire:
            break
        decision = guard.check(ctx, decision)
    return decision


# --- configuration -----------------------------------------------------------------------------

_TRIGGER_KEYS: dict[str, tuple[str, ...]] = {
    "schedule": ("schedule", "timezone", "catch_up", "name"),
    "metric": (
        "metric",
        "below",
        "above",
        "drop",
        "rise",
        "relative",
        "over",
        "min_samples",
        "name",
    ),
    "drift": ("drift", "name"),
    "concept_drift": ("concept_drift", "name"),
    "new_data": ("new_data", "name"),
    "code_change": ("code_change", "name"),
    "manual": ("manual", "name"),
    "any": ("any", "name"),
    "all": ("all", "name"),
}
_NESTED_KEYS: dict[str, tuple[str, ...]] = {
    "drift": ("share", "features"),
    "concept_drift": (),
    "new_data": ("rows", "fraction"),
    "code_change": ("watch",),
    "manual": (),
}
_GUARD_KINDS = ("cooldown", "max_retrains", "min_new_rows")


def _keys_text(keys: Sequence[str]) -> str:
    return ", ".join(keys) if keys else "no keys"


def _nested(kind: str, value: object, where: str) -> dict[str, Any]:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{where}.{kind} must be a mapping of its settings ({{}} for none); got {value!r}"
        )
    allowed = _NESTED_KEYS[kind]
    unknown = [k for k in value if k not in allowed]
    if unknown:
        raise ConfigError(
            f"{where}.{kind} has unknown key(s) {', '.join(map(repr, unknown))}; it takes "
            f"{_keys_text(allowed)}. Got {dict(value)!r}"
        )
    return dict(value)


def build_trigger(spec: Mapping[str, Any], *, where: str = "trigger") -> Trigger:
    """Build a trigger from its configuration mapping, validating it.

    The one key among ``schedule``, ``metric``, ``drift``, ``concept_drift``, ``new_data``,
    ``code_change``, ``manual``, ``any`` and ``all`` says which trigger it is; ``name`` may
    sit beside it. ``schedule`` and ``metric`` keep their settings beside them, the others
    under their key::

        {"schedule": "0 2 * * MON", "timezone": "Europe/Paris"}
        {"metric": "ctr", "below": 0.0191, "over": "1d", "min_samples": 1000}
        {"metric": "ctr", "drop": 0.1, "relative": True}
        {"drift": {"share": 0.5, "features": ["price"]}}
        {"concept_drift": {}}, {"code_change": {}}, {"manual": {}}
        {"new_data": {"rows": 10000}}
        {"any": [...]}, {"all": [...]}

    Parameters
    ----------
    spec
        The mapping.
    where
        Where the mapping sits in the configuration, for error messages.

    Raises
    ------
    ConfigError
        For no or several kind keys, unknown keys, or bad values; the message names them.

    Examples
    --------
    >>> build_trigger({"schedule": "0 2 * * MON", "timezone": "Europe/Paris"})
    ScheduleTrigger(cron='0 2 * * MON', timezone='Europe/Paris', catch_up=False, name='schedule')
    >>> t = build_trigger({"any": [{"drift": {"share": 0.5}}, {"new_data": {"rows": 10000}}]})
    >>> t.name
    'any(drift,new_data)'
    >>> build_trigger(t.to_spec()) == t
    True
    >>> build_trigger({"metric": "ctr", "below": 0.0191, "window": "1d"})
    Traceback (most recent call last):
    ...
    retrainer.errors.ConfigError: trigger: a metric trigger has unknown key(s) 'window'; ...
    """
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"{where} must be a mapping such as {{'schedule': '0 2 * * MON'}}; got {spec!r}"
        )
    kinds = [k for k in spec if k in _TRIGGER_KEYS]
    if len(kinds) != 1:
        found = f"{', '.join(map(repr, kinds))}" if kinds else "none"
        raise ConfigError(
            f"{where} must have exactly one of the keys {', '.join(_TRIGGER_KEYS)} to say "
            f"which trigger it is; found {found} in {dict(spec)!r}"
        )
    kind = kinds[0]
    unknown = [k for k in spec if k not in _TRIGGER_KEYS[kind]]
    if unknown:
        raise ConfigError(
            f"{where}: a {kind} trigger has unknown key(s) {', '.join(map(repr, unknown))}; "
            f"it takes {_keys_text(_TRIGGER_KEYS[kind])}. Got {dict(spec)!r}"
        )
    params = {k: v for k, v in spec.items() if k != kind}
    trigger: Trigger
    try:
        if kind == "schedule":
            trigger = ScheduleTrigger(cron=spec["schedule"], **params)
        elif kind == "metric":
            trigger = MetricTrigger(metric=spec["metric"], **params)
        elif kind in ("any", "all"):
            children = spec[kind]
            if isinstance(children, str | Mapping) or not isinstance(children, Sequence):
                raise ConfigError(f"{where}.{kind} must be a list of triggers; got {children!r}")
            built = [build_trigger(c, where=f"{where}.{kind}[{i}]") for i, c in enumerate(children)]
            cls = AnyOf if kind == "any" else AllOf
            trigger = cls(*built, **params)
        else:
            body = _nested(kind, spec[kind], where)
            classes: dict[str, Callable[..., Trigger]] = {
                "drift": DriftTrigger,
                "concept_drift": ConceptDriftTrigger,
                "new_data": NewDataTrigger,
                "code_change": CodeChangeTrigger,
                "manual": ManualTrigger,
            }
            trigger = classes[kind](**body, **params)
        trigger.needs()  # validates, children included
    except ConfigError as exc:
        if str(exc).startswith(where):
            raise
        raise ConfigError(f"{where}: {exc}") from None
    return trigger


def build_guard(spec: Mapping[str, Any], *, where: str = "guard") -> Guard:
    """Build a guard from its configuration mapping, validating it.

    Accepted: ``{"cooldown": "6h"}``, ``{"max_retrains": {"count": 3, "per": "1d"}}``,
    ``{"min_new_rows": 1000}``.

    Raises
    ------
    ConfigError
        For an unknown guard, extra keys or bad values; the message names them.

    Examples
    --------
    >>> build_guard({"max_retrains": {"count": 3, "per": "1d"}})
    MaxRetrains(count=3, per='1d')
    >>> build_guard({"cooldown": "6 hours"})
    Traceback (most recent call last):
    ...
    retrainer.errors.ConfigError: guard: Cooldown.period: invalid duration '6 hours': ...
    """
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise ConfigError(
            f"{where} must be a mapping with one key, one of {', '.join(_GUARD_KINDS)} (e.g. "
            f"{{'cooldown': '6h'}}); got {spec!r}"
        )
    [(kind, value)] = spec.items()
    guard: Guard
    try:
        if kind == "cooldown":
            guard = Cooldown(value)
        elif kind == "min_new_rows":
            guard = MinNewRows(value)
        elif kind == "max_retrains":
            if not isinstance(value, Mapping):
                raise ConfigError(
                    f"max_retrains must be a mapping such as {{'count': 3, 'per': '1d'}}; "
                    f"got {value!r}"
                )
            unknown = [k for k in value if k not in ("count", "per")]
            missing = [k for k in ("count", "per") if k not in value]
            if unknown or missing:
                raise ConfigError(
                    "max_retrains takes count and per; "
                    + (f"unknown key(s) {', '.join(map(repr, unknown))}" if unknown else "")
                    + ("; " if unknown and missing else "")
                    + (f"missing {', '.join(map(repr, missing))}" if missing else "")
                    + f". Got {dict(value)!r}"
                )
            guard = MaxRetrains(count=value["count"], per=value["per"])
        else:
            raise ConfigError(f"unknown guard {kind!r}; expected one of {', '.join(_GUARD_KINDS)}")
        guard.lookback()  # validates
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return guard


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

"""Alerts: turn events into notifications, deduplicated, rate-limited, retried and recorded.

The controller hands each tick's new events to :meth:`Alerter.handle`. For every event of a
kind that alerts (:data:`DEFAULT_SEVERITIES`, or the ``rules``), the alerter builds one
:class:`~retrainer.adapters.notifiers.Alert` and, for each notifier that wants it:

1. **deduplicates**: an alert whose ``dedupe_key`` went out through this notifier less than
   ``dedupe_window`` ago is not sent again;
2. **rate-limits**: a notifier that already sent ``rate_limit[0]`` alerts of this pipeline in
   the last ``rate_limit[1]`` sends no more until the oldest leaves that period;
3. **sends**, retrying a failure up to ``retries`` times with exponential backoff
   (``backoff_s``, twice that, ...). A notifier that used up its retries gets a single try
   (no backoff) for the rest of the batch, so a dead endpoint costs the loop one backoff
   sequence per tick, not one per alert;
4. **records** what happened as an event: ``alert.sent``, ``alert.suppressed`` (deduplicated
   or rate-limited: nothing is dropped without a trace) or ``alert.failed`` with the error.

A notifier's failure never raises out of :meth:`Alerter.handle`: the loop goes on. (Errors of
the metadata store itself do propagate; a controller without its store cannot go on anyway.)

The dedupe and rate-limit memory lives in the metadata store, in the per-pipeline state under
the key ``"alerts"``, so it survives restarts and is shared by alerters on one database. It is
written after the sends (a crash in between may send an alert twice, never lose it), with a
compare-and-set; a conflicting writer is merged with by re-reading once. Events that name no
pipeline, or one the store does not know, keep that memory in the alerter only.

Time comes in as ``now``; the only other reach outside is the injected ``sleep``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from retrainer.adapters.metadata._records import json_value
from retrainer.adapters.metadata.protocol import MetadataStore
from retrainer.adapters.notifiers import SEVERITIES, Alert, Notifier, NotifierError, Severity
from retrainer.core.clock import as_utc
from retrainer.core.health import DEFAULT_SEVERITIES as _DEFAULT_SEVERITIES
from retrainer.core.types import Event, EventKind
from retrainer.core.windows import parse_duration
from retrainer.engine.state import ALERTS_STATE_KEY
from retrainer.errors import ConcurrencyError, ConfigError, ModelNotFoundError

__all__ = ["DEFAULT_SEVERITIES", "STATE_KEY", "AlertOutcome", "AlertStatus", "Alerter"]

_log = logging.getLogger(__name__)

STATE_KEY = ALERTS_STATE_KEY
"""The per-pipeline state key under which the alerter keeps its dedupe and rate memory."""

AlertStatus = Literal["sent", "deduplicated", "rate_limited", "failed"]
"""What became of one alert at one notifier."""

DEFAULT_SEVERITIES = cast(Mapping[str, Severity], _DEFAULT_SEVERITIES)
"""The event kinds that alert by default, with their severity (defined in
:mod:`retrainer.core.health`, which judges a pipeline's health by the same kinds)."""

_EVENT_KINDS: Mapping[AlertStatus, EventKind] = {
    "sent": "alert.sent",
    "deduplicated": "alert.suppressed",
    "rate_limited": "alert.suppressed",
    "failed": "alert.failed",
}
_RANK = {severity: i for i, severity in enumerate(SEVERITIES)}


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertOutcome:
    """What became of one alert at one notifier, and the event that records it.

    ``attempts`` counts the calls of the notifier's ``send`` (0 when nothing was tried);
    ``error`` is the last failure's message for ``failed``; ``event`` is the
    ``alert.sent`` / ``alert.suppressed`` / ``alert.failed`` event as stored.

    Examples
    --------
    >>> from datetime import datetime
    >>> alert = Alert(kind="run.failed", pipeline="churn", message="boom", at=datetime(2024, 5, 1))
    >>> AlertOutcome(alert=alert, notifier="slack", status="sent", attempts=1).status
    'sent'
    """

    alert: Alert
    notifier: str
    status: AlertStatus
    attempts: int = 0
    error: str | None = None
    event: Event | None = None


@dataclass(slots=True)
class _Memory:
    """The dedupe and rate memory of one pipeline, parsed from its stored state."""

    sent: dict[str, dict[str, datetime]] = field(default_factory=dict)
    recent: dict[str, list[datetime]] = field(default_factory=dict)
    revision: int | None = None

    @classmethod
    def parse(cls, value: Mapping[str, Any], revision: int | None) -> _Memory:
        # Lenient: an entry that does not parse is forgotten (at worst one alert too many),
        # because a damaged state must not stop alerts.
        memory = cls(revision=revision)
        sent = value.get("sent")
        for name, keys in (sent if isinstance(sent, dict) else {}).items():
            if isinstance(keys, dict):
                parsed = {k: t for k, t in ((k, _parse_time(v)) for k, v in keys.items()) if t}
                memory.sent[name] = parsed
        recent = value.get("recent")
        for name, times in (recent if isinstance(recent, dict) else {}).items():
            if isinstance(times, list):
                memory.recent[name] = [t for t in map(_parse_time, times) if t is not None]
        return memory

    def to_json(self) -> dict[str, Any]:
        return {
            "sent": {
                name: {key: t.isoformat() for key, t in sorted(keys.items())}
                for name, keys in sorted(self.sent.items())
                if keys
            },
            "recent": {
                name: [t.isoformat() for t in sorted(times)]
                for name, times in sorted(self.recent.items())
                if times
            },
        }

    def last_sent(self, notifier: str, key: str) -> datetime | None:
        return self.sent.get(notifier, {}).get(key)

    def sent_since(self, notifier: str, since: datetime) -> int:
        return sum(t > since for t in self.recent.get(notifier, []))

    def record(self, notifiers: Sequence[str], key: str, now: datetime) -> None:
        for name in notifiers:
            self.sent.setdefault(name, {})[key] = now
            self.recent.setdefault(name, []).append(now)

    def prune(self, now: datetime, window: timedelta, period: timedelta | None) -> None:
        for keys in self.sent.values():
            for key in [k for k, t in keys.items() if now - t >= window]:
                del keys[key]
        for name, times in self.recent.items():
            self.recent[name] = [t for t in times if period is not None and now - t < period]


class Alerter:
    """Sends the alerts the controller's events call for; see the module docstring.

    Parameters
    ----------
    store
        The metadata store: outcome events go to it, and the dedupe/rate memory (per-pipeline
        state ``"alerts"``).
    notifiers
        Where alerts go; names must be unique.
    rules
        Which event kinds alert and which notifier gets what::

            {"kinds": ["run.failed", "model.promoted"],      # or {"run.succeeded": "info", ...}
             "notifiers": {"pager": {"min_severity": "critical"},
                           "slack": {"kinds": ["model.promoted", "run.failed"]}}}

        ``kinds`` as a list keeps those default kinds (:data:`DEFAULT_SEVERITIES`); as a
        mapping it gives each kind its severity (any kind; ``alert.*`` kinds never alert).
        Without ``kinds`` the defaults apply; a notifier without a filter gets every alert.
    dedupe_window
        An alert with the same ``dedupe_key`` as one sent less than this long ago through the
        same notifier is suppressed (``"0s"`` or ``None``: no deduplication). The key is the
        event's kind, pipeline, version, run and, for ``trigger.fired``, ``data["trigger"]``;
        an event's ``data["dedupe_key"]`` overrides it.
    rate_limit
        ``(n, period)``: at most ``n`` alerts per notifier and pipeline per period (a sliding
        window); ``None`` for no limit.
    retries
        Retries of a failed send (so ``retries + 1`` tries at most).
    backoff_s
        Seconds before the first retry; each next wait doubles.
    sleep
        Waits between retries (injected so tests and the backtest do not wait).

    Raises
    ------
    ConfigError
        For bad rules (unknown keys, kinds, notifiers or severities), durations or limits.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> from retrainer.adapters.metadata.memory import InMemoryMetadataStore
    >>> from retrainer.adapters.notifiers import RecordingNotifier
    >>> store = InMemoryMetadataStore()
    >>> now = datetime(2024, 5, 1, 12, tzinfo=UTC)
    >>> _ = store.ensure_pipeline("churn", "h1", now)
    >>> pager, chat = RecordingNotifier(name="pager"), RecordingNotifier(name="chat")
    >>> alerter = Alerter(store, [pager, chat],
    ...                   rules={"notifiers": {"pager": {"min_severity": "critical"}}})
    >>> failed = Event(kind="run.failed", at=now, message="run 7 failed: boom",
    ...                pipeline="churn", run_id=7)
    >>> promoted = Event(kind="model.promoted", at=now, message="v3 is champion",
    ...                  pipeline="churn", version=3)
    >>> for outcome in alerter.handle([failed, promoted, failed], now):
    ...     print(outcome.alert.kind, outcome.notifier, outcome.status)
    run.failed pager sent
    run.failed chat sent
    model.promoted chat sent
    run.failed pager deduplicated
    run.failed chat deduplicated
    >>> [e.kind for e in store.list_events()][:3]
    ['alert.sent', 'alert.sent', 'alert.sent']
    >>> [a.kind for a in chat.alerts]
    ['run.failed', 'model.promoted']
    """

    def __init__(
        self,
        store: MetadataStore,
        notifiers: Sequence[Notifier],
        *,
        rules: Mapping[str, Any] | None = None,
        dedupe_window: str | timedelta | None = "1h",
        rate_limit: tuple[int, str | timedelta] | None = (10, "1h"),
        retries: int = 3,
        backoff_s: float = 0.5,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self.store = store
        self.notifiers = tuple(notifiers)
        self.rules = rules
        self.dedupe_window = dedupe_window
        self.rate_limit = rate_limit
        self.retries = retries
        self.backoff_s = backoff_s
        self.sleep = sleep

        for n in self.notifiers:
            if not isinstance(getattr(n, "name", None), str) or not callable(
                getattr(n, "send", None)
            ):
                raise ConfigError(f"Alerter notifiers need a name and a send(alert); got {n!r}")
        names = [n.name for n in self.notifiers]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ConfigError(
                f"Alerter notifier names must be unique; {', '.join(twice)} appear more than "
                "once. Give each a 'name'"
            )
        self._window = (
            timedelta(0)
            if dedupe_window is None
            else _duration(dedupe_window, "dedupe_window", zero_ok=True)
        )
        self._limit, self._period = _rate_limit(rate_limit)
        # durations as the user wrote them, for messages ("1h" rather than "1:00:00")
        self._window_text = _text(dedupe_window, self._window)
        self._rate_text = (
            f"{self._limit} per {_text(rate_limit[1], self._period)}"
            if rate_limit is not None and self._period is not None
            else ""
        )
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigError(f"Alerter retries must be an integer >= 0. Got {retries!r}")
        if (
            isinstance(backoff_s, bool)
            or not isinstance(backoff_s, int | float)
            or not math.isfinite(backoff_s)
            or backoff_s < 0
        ):
            raise ConfigError(f"Alerter backoff_s must be a number >= 0. Got {backoff_s!r}")
        self._kinds, self._filters = _parse_rules(rules, names)
        # memory of pipelines the store cannot hold state for (None, or unknown to it)
        self._local: dict[str | None, _Memory] = {}

    def __repr__(self) -> str:
        return (
            f"Alerter(notifiers={[n.name for n in self.notifiers]}, "
            f"kinds={sorted(self._kinds)}, dedupe_window={self.dedupe_window!r}, "
            f"rate_limit={self.rate_limit!r}, retries={self.retries})"
        )

    # -- public ---------------------------------------------------------------------------

    def alert_for(self, event: Event) -> Alert | None:
        """The alert ``event`` calls for, or ``None`` if its kind does not alert.

        Examples
        --------
        >>> from datetime import datetime
        >>> from retrainer.adapters.metadata.memory import InMemoryMetadataStore
        >>> alerter = Alerter(InMemoryMetadataStore(), [])
        >>> e = Event(kind="drift.detected", at=datetime(2024, 5, 1), message="x drifted",
        ...           pipeline="churn", version=2)
        >>> alert = alerter.alert_for(e)
        >>> alert.severity, alert.dedupe_key
        ('warning', 'drift.detected|churn|v2')
        >>> alerter.alert_for(Event(kind="run.started", at=datetime(2024, 5, 1), message=""))
        """
        severity = self._kinds.get(event.kind)
        if severity is None or event.kind.startswith("alert."):
            return None
        try:
            data = json_value(event.data, "event data")
        except TypeError:
            data = {"unserializable": repr(event.data)}
        if not isinstance(data, dict):
            data = {"value": data}
        key = data.get("dedupe_key")
        if not isinstance(key, str) or not key:
            key = Alert(
                kind=event.kind,
                pipeline=event.pipeline,
                message="",
                at=event.at,
                version=event.version,
                run_id=event.run_id,
            ).dedupe_key
            trigger = data.get("trigger")
            if event.kind == "trigger.fired" and isinstance(trigger, str | int):
                key += f"|trigger={trigger}"
        return Alert(
            kind=event.kind,
            pipeline=event.pipeline,
            message=event.message,
            at=event.at,
            severity=severity,
            data=data,
            dedupe_key=key,
            version=event.version,
            run_id=event.run_id,
        )

    def handle(self, events: Sequence[Event], now: datetime) -> list[AlertOutcome]:
        """Alert on ``events`` in their order; return one outcome per alert and notifier.

        Each outcome is also stored as an ``alert.*`` event at ``now``. Events of kinds that
        do not alert (``alert.*`` included) and notifiers whose filter refuses an alert give
        no outcome. Never raises because a notifier failed.
        """
        now = as_utc(now)
        outcomes: list[AlertOutcome] = []
        down: set[str] = set()  # notifiers that used up their retries in this batch
        for event in events:
            alert = self.alert_for(event)
            if alert is None:
                continue
            targets = [n for n in self.notifiers if self._wants(n.name, alert)]
            if targets:
                outcomes += self._deliver(alert, targets, now, event, down)
        return outcomes

    # -- one alert ------------------------------------------------------------------------

    def _wants(self, notifier: str, alert: Alert) -> bool:
        kinds, min_severity = self._filters.get(notifier, (None, "info"))
        return (kinds is None or alert.kind in kinds) and _RANK[alert.severity] >= _RANK[
            min_severity
        ]

    def _deliver(
        self,
        alert: Alert,
        targets: Sequence[Notifier],
        now: datetime,
        source: Event,
        down: set[str],
    ) -> list[AlertOutcome]:
        memory = self._load(alert.pipeline)
        sent: list[str] = []
        outcomes = []
        for notifier in targets:
            name = notifier.name
            last = memory.last_sent(name, alert.dedupe_key)
            extra: dict[str, Any] = {}
            if last is not None and now - last < self._window:
                status: AlertStatus = "deduplicated"
                attempts, error = 0, None
                extra = {"last_sent": last.isoformat(), "dedupe_window": self._window_text}
            elif self._period is not None and (
                memory.sent_since(name, now - self._period) >= self._limit
            ):
                status, attempts, error = "rate_limited", 0, None
                extra = {"rate_limit": self._rate_text}
            else:
                attempts, error = self._send(notifier, alert, down)
                status = "sent" if error is None else "failed"
                if error is None:
                    sent.append(name)
                    memory.record([name], alert.dedupe_key, now)
            event = self._record(alert, name, status, attempts, error, now, source, extra)
            outcomes.append(
                AlertOutcome(
                    alert=alert,
                    notifier=name,
                    status=status,
                    attempts=attempts,
                    error=error,
                    event=event,
                )
            )
        if sent:
            self._save(alert.pipeline, memory, sent, alert.dedupe_key, now)
        return outcomes

    def _send(self, notifier: Notifier, alert: Alert, down: set[str]) -> tuple[int, str | None]:
        tries = 1 if notifier.name in down else 1 + self.retries
        error = ""
        for attempt in range(1, tries + 1):
            try:
                notifier.send(alert)
            # Any exception, not only NotifierError: a broken third-party notifier must not
            # stop the controller's loop either.
            except Exception as exc:
                error = (
                    str(exc) if isinstance(exc, NotifierError) else f"{type(exc).__name__}: {exc}"
                )
                if attempt < tries:
                    self.sleep(self.backoff_s * 2 ** (attempt - 1))
            else:
                down.discard(notifier.name)
                return attempt, None
        down.add(notifier.name)
        _log.warning(
            "%s alert for %s not sent via %s after %d attempt(s): %s",
            alert.kind,
            alert.pipeline,
            notifier.name,
            tries,
            error,
        )
        return tries, error

    def _record(
        self,
        alert: Alert,
        notifier: str,
        status: AlertStatus,
        attempts: int,
        error: str | None,
        now: datetime,
        source: Event,
        extra: dict[str, Any],
    ) -> Event:
        where = f" for {alert.pipeline}" if alert.pipeline else ""
        if status == "sent":
            message = f"{alert.kind} alert{where} sent via {notifier}"
            if attempts > 1:
                message += f" on attempt {attempts}"
        elif status == "deduplicated":
            message = (
                f"{alert.kind} alert{where} not sent via {notifier}: the same alert went out at "
                f"{extra['last_sent']}, within the dedupe window of {self._window_text}"
            )
        elif status == "rate_limited":
            message = (
                f"{alert.kind} alert{where} not sent via {notifier}: rate limit of "
                f"{extra['rate_limit']} reached"
            )
        else:
            message = (
                f"{alert.kind} alert{where} could not be sent via {notifier} "
                f"({attempts} attempt{'s' if attempts != 1 else ''}): {error}"
            )
        data: dict[str, Any] = {
            "status": status,
            "notifier": notifier,
            "alert_kind": alert.kind,
            "severity": alert.severity,
            "dedupe_key": alert.dedupe_key,
            "attempts": attempts,
            "source_event_id": source.id,
            **extra,
        }
        if error is not None:
            data["error"] = error
        return self.store.append_event(
            Event(
                kind=_EVENT_KINDS[status],
                at=now,
                message=message,
                pipeline=alert.pipeline,
                run_id=alert.run_id,
                version=alert.version,
                data=data,
            )
        )

    # -- memory ---------------------------------------------------------------------------

    def _load(self, pipeline: str | None) -> _Memory:
        if pipeline is None or pipeline in self._local:
            return self._local.setdefault(pipeline, _Memory())
        stored = self.store.get_state(pipeline, STATE_KEY)
        if stored is None:
            return _Memory()
        value, revision = stored
        return _Memory.parse(value, revision)

    def _save(
        self, pipeline: str | None, memory: _Memory, sent: Sequence[str], key: str, now: datetime
    ) -> None:
        memory.prune(now, self._window, self._period)
        if pipeline is None or pipeline in self._local:
            self._local[pipeline] = memory
            return
        try:
            self._put(pipeline, memory, now)
        except ConcurrencyError:
            # Another alerter wrote in between: re-read its memory, add ours, try once more.
            fresh = self._load(pipeline)
            fresh.record(sent, key, now)
            fresh.prune(now, self._window, self._period)
            try:
                self._put(pipeline, fresh, now)
            except ConcurrencyError as exc:
                _log.warning(
                    "alert memory of %s not saved (written concurrently): %s", pipeline, exc
                )
        except ModelNotFoundError:
            # an event may name a pipeline the store does not know; remember it here
            self._local[pipeline] = memory

    def _put(self, pipeline: str, memory: _Memory, now: datetime) -> None:
        self.store.put_state(
            pipeline, STATE_KEY, memory.to_json(), at=now, expected_revision=memory.revision
        )


# -- parameters -------------------------------------------------------------------------------


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return as_utc(datetime.fromisoformat(value))
    except ValueError:
        return None


def _text(given: object, span: timedelta | None) -> str:
    return given.strip() if isinstance(given, str) else str(span)


def _duration(value: object, what: str, *, zero_ok: bool) -> timedelta:
    if isinstance(value, timedelta):
        span = value
    elif isinstance(value, str):
        try:
            span = parse_duration(value)
        except ConfigError as exc:
            raise ConfigError(f"Alerter {what}: {exc}") from None
    else:
        raise ConfigError(
            f"Alerter {what} must be a duration like '1h' or a timedelta. Got {value!r}"
        )
    if span < timedelta(0) or (span == timedelta(0) and not zero_ok):
        raise ConfigError(f"Alerter {what} must be {'>=' if zero_ok else '>'} 0. Got {value!r}")
    return span


def _rate_limit(value: object) -> tuple[int, timedelta | None]:
    if value is None:
        return 0, None
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != 2:
        raise ConfigError(
            f"Alerter rate_limit must be (count, period) like (10, '1h'), or None. Got {value!r}"
        )
    count, period = value
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError(f"Alerter rate_limit count must be an integer >= 1. Got {count!r}")
    return count, _duration(period, "rate_limit period", zero_ok=False)


def _parse_rules(
    rules: Mapping[str, Any] | None, names: Sequence[str]
) -> tuple[dict[str, Severity], dict[str, tuple[frozenset[str] | None, Severity]]]:
    if rules is None:
        return dict(DEFAULT_SEVERITIES), {}
    if not isinstance(rules, Mapping):
        raise ConfigError(
            f"Alerter rules must be a mapping with 'kinds' and/or 'notifiers'. Got {rules!r}"
        )
    problems: list[str] = []
    unknown = sorted(str(k) for k in rules if k not in ("kinds", "notifiers"))
    if unknown:
        problems.append(f"rules: unknown key(s) {', '.join(unknown)}; allowed: kinds, notifiers")

    kinds: dict[str, Severity] = {}
    given = rules.get("kinds")
    if given is None:
        kinds = dict(DEFAULT_SEVERITIES)
    elif isinstance(given, Mapping):
        for kind, severity in given.items():
            if severity not in SEVERITIES:
                problems.append(
                    f"rules.kinds.{kind}: severity must be one of {', '.join(SEVERITIES)}. "
                    f"Got {severity!r}"
                )
            else:
                kinds[str(kind)] = severity
    elif isinstance(given, Sequence) and not isinstance(given, str):
        for kind in given:
            if kind in DEFAULT_SEVERITIES:
                kinds[kind] = DEFAULT_SEVERITIES[kind]
            else:
                problems.append(
                    f"rules.kinds: {kind!r} has no default severity (the defaults are "
                    f"{', '.join(DEFAULT_SEVERITIES)}); give it one: kinds: {{{kind}: warning}}"
                )
    else:
        problems.append(
            "rules.kinds must be a list of event kinds or a mapping kind -> severity. "
            f"Got {given!r}"
        )
    for kind in [k for k in kinds if k.startswith("alert.")]:
        problems.append(f"rules.kinds: {kind!r}: alert.* events never alert (they would loop)")
        del kinds[kind]

    filters: dict[str, tuple[frozenset[str] | None, Severity]] = {}
    per = rules.get("notifiers") or {}
    if not isinstance(per, Mapping):
        problems.append(f"rules.notifiers must map notifier names to filters. Got {per!r}")
        per = {}
    for name, spec in per.items():
        where = f"rules.notifiers.{name}"
        if name not in names:
            problems.append(
                f"{where}: no notifier is named {name!r}; the notifiers are "
                f"{', '.join(names) or 'none'}"
            )
            continue
        if not isinstance(spec, Mapping):
            problems.append(
                f"{where} must be a mapping with 'kinds' and/or 'min_severity'. Got {spec!r}"
            )
            continue
        bad = sorted(str(k) for k in spec if k not in ("kinds", "min_severity"))
        if bad:
            problems.append(
                f"{where}: unknown key(s) {', '.join(bad)}; allowed: kinds, min_severity"
            )
        only = spec.get("kinds")
        if only is not None:
            if isinstance(only, str) or not isinstance(only, Sequence):
                problems.append(f"{where}.kinds must be a list of event kinds. Got {only!r}")
                only = None
            else:
                for kind in only:
                    if kind not in kinds:
                        problems.append(
                            f"{where}.kinds: {kind!r} does not alert; the kinds that alert are "
                            f"{', '.join(sorted(kinds))}"
                        )
                only = frozenset(only)
        floor = spec.get("min_severity", "info")
        if floor not in SEVERITIES:
            problems.append(
                f"{where}.min_severity must be one of {', '.join(SEVERITIES)}. Got {floor!r}"
            )
            floor = "info"
        filters[str(name)] = (only, floor)
    if problems:
        raise ConfigError("Alerter " + "; ".join(problems), problems)
    return kinds, filters

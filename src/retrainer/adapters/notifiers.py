"""Notifiers: where alerts go (a log, a JSON webhook, Slack, email) and the alert they carry.

A :class:`Notifier` has a ``name`` and one method, ``send(alert)``, which delivers one
:class:`Alert` or raises :class:`NotifierError`. Deduplication, rate limits, retries and the
audit trail are the engine's business (:class:`retrainer.engine.control.alerts.Alerter`); a notifier
only delivers, once, within its timeout.

Built in: :class:`LogNotifier` (Python logging), :class:`WebhookNotifier` (the alert as a JSON
POST), :class:`SlackNotifier` (a Slack-compatible incoming webhook), :class:`SMTPNotifier`
(a plain-text email) and :class:`RecordingNotifier` (keeps what it is sent; tests, doctests and
the backtest use it). :func:`build_notifier` makes one from a config mapping, reading secrets
written as ``${ENV_NAME}`` from the environment.

Only the standard library talks to the network here (``urllib.request``, ``smtplib``), so
alerts add no dependency. URLs are shown in messages as ``scheme://host:port/...`` only:
a Slack webhook URL is a secret, and error messages end up in the event log.

Examples
--------
>>> from datetime import datetime, UTC
>>> alert = Alert(kind="run.failed", pipeline="churn", message="run 7 failed: boom",
...               at=datetime(2024, 5, 1, 12, tzinfo=UTC), severity="critical", run_id=7)
>>> recorder = build_notifier({"kind": "recording", "name": "audit"})
>>> recorder.send(alert)
>>> [a.message for a in recorder.alerts]
['run 7 failed: boom']
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import smtplib
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Annotated, Any, ClassVar, Literal, Protocol, get_args
from urllib.parse import urlsplit

from pydantic import (
    BeforeValidator,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from retrainer.adapters._http import describe_error as _describe
from retrainer.adapters._http import one_line as _one_line
from retrainer.adapters._http import post_json as _post_json
from retrainer.adapters._http import redacted as _redacted
from retrainer.core._spec import Flag, Registry, Spec, describe_errors
from retrainer.core.clock import as_utc
from retrainer.errors import ConfigError, NotifierError

__all__ = [
    "NOTIFIERS",
    "SEVERITIES",
    "Alert",
    "LogNotifier",
    "Notifier",
    "NotifierError",
    "NotifierSpec",
    "RecordingNotifier",
    "SMTPNotifier",
    "Severity",
    "SlackNotifier",
    "WebhookNotifier",
    "build_notifier",
]

Severity = Literal["info", "warning", "critical"]
"""How urgent an alert is; the order is ``info < warning < critical``."""

SEVERITIES: tuple[Severity, ...] = get_args(Severity)

_LOG_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}
_SLACK_EMOJI = {
    "info": ":information_source:",
    "warning": ":warning:",
    "critical": ":rotating_light:",
}
# Slack refuses a section text over 3000 characters; keep room for the headline.
_SLACK_SECTION_MAX = 2800


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """One thing worth telling a human, as every notifier receives it.

    Parameters
    ----------
    kind
        The kind of event it reports (``run.failed``, ``model.promoted``...).
    pipeline
        The pipeline concerned, or ``None`` for an alert about no pipeline in particular.
    message
        One human sentence: what happened.
    at
        When it happened (naive datetimes are taken to be UTC).
    severity
        ``info``, ``warning`` or ``critical``.
    data
        JSON values with the details (the event's evidence).
    dedupe_key
        Alerts with the same key are one alert to the deduplication; by default
        ``kind|pipeline`` plus ``|v<version>`` and ``|run<run_id>`` when those are set.
    version, run_id
        The model version and the run concerned, when there are.

    Examples
    --------
    >>> from datetime import datetime
    >>> alert = Alert(kind="model.promoted", pipeline="churn", message="v3 is champion",
    ...               at=datetime(2024, 5, 1), version=3)
    >>> alert.dedupe_key, alert.title
    ('model.promoted|churn|v3', '[retrainer] model.promoted: churn')
    >>> alert.to_dict()["at"]
    '2024-05-01T00:00:00+00:00'
    """

    kind: str
    pipeline: str | None
    message: str
    at: datetime
    severity: Severity = "info"
    data: dict[str, Any] = field(default_factory=dict)
    dedupe_key: str = ""
    version: int | None = None
    run_id: int | None = None

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(
                f"Alert severity must be one of {', '.join(SEVERITIES)}. Got {self.severity!r}"
            )
        try:
            json.dumps(self.data, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"Alert data must hold only JSON values (no NaN or infinities). Got {exc}"
            ) from None
        object.__setattr__(self, "at", as_utc(self.at))
        if not self.dedupe_key:
            parts = [self.kind, self.pipeline or "-"]
            if self.version is not None:
                parts.append(f"v{self.version}")
            if self.run_id is not None:
                parts.append(f"run{self.run_id}")
            object.__setattr__(self, "dedupe_key", "|".join(parts))

    @property
    def title(self) -> str:
        """``[retrainer] <kind>: <pipeline>`` (the email subject, the log line's start)."""
        head = f"[retrainer] {self.kind}"
        return _one_line(f"{head}: {self.pipeline}" if self.pipeline else head)

    def to_dict(self) -> dict[str, Any]:
        """The alert as JSON values (``at`` as an ISO 8601 string): the webhook body."""
        return {
            "kind": self.kind,
            "pipeline": self.pipeline,
            "message": self.message,
            "at": self.at.isoformat(),
            "severity": self.severity,
            "version": self.version,
            "run_id": self.run_id,
            "dedupe_key": self.dedupe_key,
            "data": json.loads(json.dumps(self.data)),
        }


class Notifier(Protocol):
    """Delivers alerts somewhere.

    ``name`` identifies the notifier in rules, rate limits and the event log (unique per
    :class:`~retrainer.engine.control.alerts.Alerter`). ``send`` delivers one alert once, within the
    notifier's own timeout, and raises :class:`NotifierError` when it cannot; it does not
    retry (the alerter does).

    Examples
    --------
    >>> notifier: Notifier = RecordingNotifier()
    >>> notifier.name
    'recording'
    """

    name: str

    def send(self, alert: Alert) -> None: ...


# -- built-in notifiers -----------------------------------------------------------------------


class LogNotifier:
    """Writes each alert as one log record, at the level of its severity.

    ``info`` logs at INFO, ``warning`` at WARNING, ``critical`` at CRITICAL. The record carries
    the alert as ``record.alert`` (a JSON-ready dict) for structured log handlers.

    Parameters
    ----------
    logger
        The logger's name.
    name
        The notifier's name.

    Examples
    --------
    >>> import logging
    >>> from datetime import datetime
    >>> LogNotifier(logger="docs.alerts").send(
    ...     Alert(kind="drift.detected", pipeline="churn", message="3 of 8 features drifted",
    ...           at=datetime(2024, 5, 1), severity="warning"))
    """

    def __init__(self, *, logger: str = "retrainer.alerts", name: str = "log") -> None:
        spec = _checked(LogSpec, "LogNotifier", name=name, logger=logger)
        self.name, self.logger = name, spec.logger

    def __repr__(self) -> str:
        return f"LogNotifier(logger={self.logger!r}, name={self.name!r})"

    def send(self, alert: Alert) -> None:
        logging.getLogger(self.logger).log(
            _LOG_LEVELS[alert.severity],
            "%s: %s",
            alert.title,
            alert.message,
            extra={"alert": alert.to_dict()},
        )


class WebhookNotifier:
    """POSTs each alert as JSON (:meth:`Alert.to_dict`) to a URL.

    Any 2xx answer is a delivery; anything else (an HTTP error, a redirect, no answer within
    ``timeout``) raises :class:`NotifierError`. Redirects are not followed: ``urllib`` would
    turn the POST into a GET without its body and the alert would be lost silently. Proxies
    come from the usual ``HTTP(S)_PROXY`` / ``NO_PROXY`` variables.

    Parameters
    ----------
    url
        An ``http://`` or ``https://`` URL.
    headers
        Extra request headers (e.g. ``{"Authorization": "Bearer ..."}``); never shown in
        messages or ``repr``.
    timeout
        Seconds to wait for the connection and for each read of the answer.
    name
        The notifier's name.

    Examples
    --------
    >>> hook = WebhookNotifier("https://alerts.example.com/hook?token=s3cret",
    ...                        headers={"Authorization": "Bearer s3cret"})
    >>> hook
    WebhookNotifier('https://alerts.example.com/...', headers=['Authorization'], timeout=5)
    """

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str] | None = None,
        timeout: float = 5,
        *,
        name: str = "webhook",
    ) -> None:
        _checked(
            WebhookSpec, "WebhookNotifier", url=url, headers=headers, timeout=timeout, name=name
        )
        self.name, self.url, self.timeout = name, url, timeout
        self.headers = dict(headers or {})

    def __repr__(self) -> str:
        return (
            f"WebhookNotifier({_redacted(self.url)!r}, headers={sorted(self.headers)}, "
            f"timeout={self.timeout})"
        )

    def send(self, alert: Alert) -> None:
        _post_json(
            self.url, alert.to_dict(), self.headers, self.timeout, _failure(self.name, alert)
        )


class SlackNotifier:
    """Posts each alert to a Slack-compatible incoming webhook (Slack, Mattermost...).

    The payload is ``{"text": ..., "blocks": [...]}``: ``text`` is the whole alert on one
    line (what notifications and clients without blocks show), ``blocks`` a section with the
    headline and message and a context line with severity, time, version and run.

    Parameters
    ----------
    url
        The incoming-webhook URL (a secret: keep it in an environment variable).
    timeout
        Seconds to wait for the connection and for each read of the answer.
    blocks
        Send ``blocks`` too; turn off for servers that only take ``text``.
    name
        The notifier's name.

    Examples
    --------
    >>> from datetime import datetime
    >>> slack = SlackNotifier("https://hooks.slack.com/services/T0/B0/XXXX")
    >>> payload = slack.payload(Alert(kind="run.failed", pipeline="churn",
    ...     message="run 7 failed: x < 0", at=datetime(2024, 5, 1), severity="critical"))
    >>> payload["text"]
    ':rotating_light: [retrainer] run.failed: churn - run 7 failed: x &lt; 0'
    >>> [block["type"] for block in payload["blocks"]]
    ['section', 'context']
    >>> slack
    SlackNotifier('https://hooks.slack.com/...', timeout=5)
    """

    def __init__(
        self, url: str, timeout: float = 5, *, blocks: bool = True, name: str = "slack"
    ) -> None:
        _checked(SlackSpec, "SlackNotifier", url=url, timeout=timeout, blocks=blocks, name=name)
        self.name, self.url, self.timeout, self.blocks = name, url, timeout, blocks

    def __repr__(self) -> str:
        return f"SlackNotifier({_redacted(self.url)!r}, timeout={self.timeout})"

    def payload(self, alert: Alert) -> dict[str, Any]:
        """The JSON body posted for ``alert``."""
        emoji = _SLACK_EMOJI[alert.severity]
        text = f"{emoji} {_slack_escape(alert.title)} - {_slack_escape(alert.message)}"
        payload: dict[str, Any] = {"text": text}
        if self.blocks:
            headline = f"*{_slack_escape(alert.kind)}*"
            if alert.pipeline:
                headline += f" on *{_slack_escape(alert.pipeline)}*"
            message = _slack_escape(alert.message)
            if len(message) > _SLACK_SECTION_MAX:
                message = message[: _SLACK_SECTION_MAX - 1] + "\u2026"
            context = [f"severity: {alert.severity}", alert.at.strftime("%Y-%m-%d %H:%M:%S UTC")]
            if alert.version is not None:
                context.append(f"version {alert.version}")
            if alert.run_id is not None:
                context.append(f"run {alert.run_id}")
            payload["blocks"] = [
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": f"{emoji} {headline}\n{message}"},
                },
                {"type": "context", "elements": [{"type": "mrkdwn", "text": " | ".join(context)}]},
            ]
        return payload

    def send(self, alert: Alert) -> None:
        _post_json(self.url, self.payload(alert), {}, self.timeout, _failure(self.name, alert))


class SMTPNotifier:
    """Emails each alert as plain text through an SMTP server.

    The subject is ``[retrainer] <kind>: <pipeline>``; the body holds the message, the
    alert's fields and its data as indented JSON. With ``starttls`` the connection is
    upgraded to TLS (certificate and host name checked) before anything else is said, and a
    server that cannot do it is an error, not a reason to go on in clear text. A message that
    some (not all) recipients refused counts as delivered: sending it again would reach the
    others twice; the refused addresses are logged.

    Parameters
    ----------
    host, port
        The SMTP server.
    sender
        The ``From`` address.
    recipients
        The ``To`` addresses.
    username, password
        Log in with these (both or neither).
    starttls
        Upgrade the connection with STARTTLS.
    timeout
        Seconds to wait for the connection and for each answer of the server.
    name
        The notifier's name.

    Examples
    --------
    >>> from datetime import datetime
    >>> mail = SMTPNotifier("smtp.example.com", 587, sender="retrainer@example.com",
    ...                     recipients=["ops@example.com"], starttls=True)
    >>> msg = mail.message(Alert(kind="run.failed", pipeline="churn", message="boom",
    ...                          at=datetime(2024, 5, 1), severity="critical"))
    >>> msg["Subject"], msg["To"]
    ('[retrainer] run.failed: churn', 'ops@example.com')
    >>> msg.get_content().splitlines()[0]
    'boom'
    """

    def __init__(
        self,
        host: str,
        port: int = 25,
        *,
        sender: str,
        recipients: Sequence[str],
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 10,
        name: str = "email",
    ) -> None:
        if isinstance(recipients, str):  # one address is not a list of its characters
            raise ConfigError(
                f"SMTPNotifier recipients must be a non-empty list of addresses. Got {recipients!r}"
            )
        _checked(
            EmailSpec,
            "SMTPNotifier",
            host=host,
            port=port,
            sender=sender,
            to=recipients,
            username=username,
            password=password,
            starttls=starttls,
            timeout=timeout,
            name=name,
        )
        self.name, self.host, self.port, self.sender = name, host, port, sender
        self.recipients = list(recipients)
        self.username, self.password = username, password
        self.starttls, self.timeout = starttls, timeout

    def __repr__(self) -> str:
        return (
            f"SMTPNotifier({self.host!r}, {self.port}, sender={self.sender!r}, "
            f"recipients={self.recipients!r}, starttls={self.starttls}, timeout={self.timeout})"
        )

    def message(self, alert: Alert) -> EmailMessage:
        """The email sent for ``alert``."""
        msg = EmailMessage()
        msg["Subject"] = alert.title
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg["Date"] = format_datetime(alert.at)
        domain = self.sender.rpartition("@")[2].strip("<> ") or "retrainer.invalid"
        msg["Message-ID"] = make_msgid("retrainer", domain=domain)
        msg["X-Retrainer-Severity"] = alert.severity
        fields = [
            ("kind", alert.kind),
            ("pipeline", alert.pipeline or "-"),
            ("severity", alert.severity),
            ("at", alert.at.isoformat()),
        ]
        if alert.version is not None:
            fields.append(("version", str(alert.version)))
        if alert.run_id is not None:
            fields.append(("run", str(alert.run_id)))
        lines = [alert.message, ""]
        lines += [f"{key + ':':<10} {value}" for key, value in fields]
        if alert.data:
            lines += ["", "data:", json.dumps(alert.data, indent=2, sort_keys=True)]
        lines += ["", "-- ", f"sent by retrainer; dedupe key {alert.dedupe_key}"]
        msg.set_content("\n".join(lines) + "\n")
        return msg

    def send(self, alert: Alert) -> None:
        msg = self.message(alert)
        where = f"{self.host}:{self.port}"
        # Connect outside SMTP() so the socket is closed on every path (a greeting that
        # never comes would otherwise leave it open).
        smtp = smtplib.SMTP(timeout=self.timeout)
        try:
            code, reply = smtp.connect(self.host, self.port)
            if code != 220:
                raise smtplib.SMTPConnectError(code, reply)
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username is not None and self.password is not None:
                smtp.login(self.username, self.password)
            refused = smtp.send_message(msg, from_addr=self.sender, to_addrs=self.recipients)
        except (smtplib.SMTPException, OSError, ValueError) as exc:
            raise NotifierError(
                f"{self.name} could not email the {alert.kind} alert through {where}: "
                f"{_describe(exc)}"
            ) from exc
        else:
            if refused:
                logging.getLogger(__name__).warning(
                    "%s: %s refused %s for the %s alert; it went to the others",
                    self.name,
                    where,
                    ", ".join(sorted(refused)),
                    alert.kind,
                )
            # the message is accepted: a lost goodbye changes nothing
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.quit()
        finally:
            smtp.close()


class RecordingNotifier:
    """Keeps every alert it is sent in :attr:`alerts`; can be told to fail.

    A real notifier for tests, doctests, the demo and the backtest. ``fail_times`` (or
    :meth:`fail_next`) makes the next sends raise :class:`NotifierError` (nothing is recorded
    for a failed send); :attr:`attempts` counts every call of :meth:`send`. Thread-safe.

    Parameters
    ----------
    name
        The notifier's name.
    fail_times
        How many of the next sends fail.

    Examples
    --------
    >>> from datetime import datetime
    >>> alert = Alert(kind="run.failed", pipeline="churn", message="boom", at=datetime(2024, 5, 1))
    >>> rec = RecordingNotifier(fail_times=1)
    >>> rec.send(alert)
    Traceback (most recent call last):
    ...
    retrainer.errors.NotifierError: recording failed on purpose
    >>> rec.send(alert)
    >>> len(rec.alerts), rec.attempts
    (1, 2)
    """

    def __init__(self, *, name: str = "recording", fail_times: int = 0) -> None:
        _checked(RecordingSpec, "RecordingNotifier", name=name)
        self.name = name
        self.alerts: list[Alert] = []
        self.attempts = 0
        self._lock = threading.Lock()
        self._fail_left = 0
        self._fail_message = ""
        self.fail_next(fail_times)

    def __repr__(self) -> str:
        return f"RecordingNotifier(name={self.name!r}, alerts={len(self.alerts)})"

    def fail_next(self, n: int, message: str = "failed on purpose") -> None:
        """Make the next ``n`` sends raise :class:`NotifierError` with ``message``."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"fail_next needs a count >= 0. Got {n!r}")
        with self._lock:
            self._fail_left = n
            self._fail_message = message

    def send(self, alert: Alert) -> None:
        with self._lock:
            self.attempts += 1
            if self._fail_left > 0:
                self._fail_left -= 1
                raise NotifierError(f"{self.name} {self._fail_message}")
            self.alerts.append(alert)

    def clear(self) -> None:
        """Forget the recorded alerts and the attempt count."""
        with self._lock:
            self.alerts.clear()
            self.attempts = 0


# -- building from config ---------------------------------------------------------------------

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

# -- specs: each kind's keys, declared once -----------------------------------------------------


def _deferred(value: Any, info: ValidationInfo) -> bool:
    """Whether ``value`` holds a ``${NAME}`` read at build time (retrainer.yaml is checked
    before the environment is read: the value is checked once it is substituted)."""
    return bool(info.context and info.context.get("env_refs")) and (
        isinstance(value, str) and _ENV_REF.search(value) is not None
    )


def _fail(message: str, *, secret: bool = False) -> PydanticCustomError:
    # a "secret" error's value is not repeated in messages (webhook URLs hold tokens)
    return PydanticCustomError("retrainer_secret" if secret else "retrainer", message)


def _name(value: Any, info: ValidationInfo) -> Any:
    if not isinstance(value, str) or not value.strip():
        raise _fail("must be a non-empty string")
    return value


def _url(value: Any, info: ValidationInfo) -> Any:
    if _deferred(value, info):
        return value
    if not isinstance(value, str):
        raise _fail("must be an http:// or https:// URL")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        shown = _redacted(value) if parts is not None else "an unparsable URL"
        raise _fail(f"must be an http:// or https:// URL with a host. Got {shown}", secret=True)
    return value


def _headers(value: Any, info: ValidationInfo) -> Any:
    if value is None:
        return value
    if not isinstance(value, Mapping):
        raise _fail("must be a mapping of header names to values", secret=True)
    for key, text in value.items():
        if not isinstance(key, str) or not isinstance(text, str):
            raise _fail(f"header {key!r} must be a string with a string value", secret=True)
        if any(c in key + text for c in "\r\n") or not key.strip():
            raise _fail(f"header {key!r} has an empty name or a line break", secret=True)
    return value


def _seconds(value: Any, info: ValidationInfo) -> Any:
    if _deferred(value, info):
        return value
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise _fail("must be a number of seconds > 0")
    return value


def _port(value: Any, info: ValidationInfo) -> Any:
    if _deferred(value, info):
        return value
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise _fail("must be an integer 1-65535")
    return value


def _address(value: Any, info: ValidationInfo) -> Any:
    if _deferred(value, info):
        return value
    if not isinstance(value, str) or "@" not in value or any(c in value for c in "\r\n"):
        raise _fail(f"{value!r} is not an email address like ops@example.com")
    return value


def _recipients(value: Any, info: ValidationInfo) -> Any:
    if isinstance(value, str):  # one address
        return _address(value, info)
    if not isinstance(value, list | tuple) or not value:
        raise _fail("must be a non-empty list of addresses")
    for item in value:
        _address(item, info)
    return value


def _text(value: Any, info: ValidationInfo) -> Any:
    if value is not None and not isinstance(value, str):
        raise _fail("must be a string", secret=True)
    return value


def _fail_times(value: Any, info: ValidationInfo) -> Any:
    if _deferred(value, info):
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail("must be an integer >= 0")
    return value


_EnvText = {"type": "string", "pattern": r".*\$\{[A-Za-z_][A-Za-z0-9_]*\}.*"}
NotifierName = Annotated[str, PlainValidator(_name, json_schema_input_type=str)]
Url = Annotated[str, PlainValidator(_url, json_schema_input_type=str)]
Headers = Annotated[dict[str, str], PlainValidator(_headers, json_schema_input_type=dict[str, str])]
Seconds = Annotated[float, PlainValidator(_seconds, json_schema_input_type=float | str)]
Port = Annotated[int, PlainValidator(_port, json_schema_input_type=int | str)]
Address = Annotated[str, PlainValidator(_address, json_schema_input_type=str)]
Recipients = Annotated[
    str | list[str], PlainValidator(_recipients, json_schema_input_type=str | list[str])
]
Secret = Annotated[str, PlainValidator(_text, json_schema_input_type=str)]
FailTimes = Annotated[int, PlainValidator(_fail_times, json_schema_input_type=int)]


class _NotifierSpec(Spec):
    """What the notifier kinds share: ``kind`` and ``name`` (default: the kind)."""

    name: NotifierName | None = None

    def build(self) -> Notifier:
        """The notifier this spec describes (values as given: substitute ``${NAME}`` first)."""
        raise NotImplementedError

    def _options(self) -> dict[str, Any]:
        params = {k: v for k, v in self.get_params().items() if v is not None}
        params.setdefault("name", self.spec_kind())
        return params


class LogSpec(_NotifierSpec):
    """``kind: log``: each alert as one log record (:class:`LogNotifier`)."""

    kind: Literal["log"] = "log"
    example: ClassVar[Mapping[str, Any] | None] = {"kind": "log", "logger": "ops"}
    logger: NotifierName = "retrainer.alerts"

    def build(self) -> Notifier:
        return LogNotifier(**self._options())

    def describe(self) -> str:
        return f"log records on {self.logger}"


class WebhookSpec(_NotifierSpec):
    """``kind: webhook``: each alert POSTed as JSON (:class:`WebhookNotifier`)."""

    kind: Literal["webhook"] = "webhook"
    example: ClassVar[Mapping[str, Any] | None] = {
        "kind": "webhook",
        "url": "https://x.example/h",
        "timeout": 2,
    }
    url: Url
    headers: Headers | None = None
    timeout: Seconds = 5

    def build(self) -> Notifier:
        return WebhookNotifier(**self._options())

    def describe(self) -> str:
        return f"JSON POST to {_redacted(self.url)}"


class SlackSpec(_NotifierSpec):
    """``kind: slack``: a Slack-compatible incoming webhook (:class:`SlackNotifier`)."""

    kind: Literal["slack"] = "slack"
    example: ClassVar[Mapping[str, Any] | None] = {
        "kind": "slack",
        "url": "https://hooks.slack.com/s/T",
    }
    url: Url
    timeout: Seconds = 5
    blocks: Flag = True

    def build(self) -> Notifier:
        return SlackNotifier(**self._options())

    def describe(self) -> str:
        return f"Slack message to {_redacted(self.url)}"


class EmailSpec(_NotifierSpec):
    """``kind: email``: a plain-text email through SMTP (:class:`SMTPNotifier`)."""

    kind: Literal["email"] = "email"
    example: ClassVar[Mapping[str, Any] | None] = {
        "kind": "email",
        "host": "mx",
        "sender": "r@x.io",
        "to": ["a@x.io"],
    }
    host: NotifierName
    port: Port = 25
    sender: Address
    recipients: Recipients = Field(alias="to")
    """An address or a list of them; the configuration key is ``to``."""
    username: Secret | None = None
    password: Secret | None = None
    starttls: Flag = False
    timeout: Seconds = 10

    @model_validator(mode="after")
    def _login(self) -> EmailSpec:
        if (self.username is None) != (self.password is None):
            raise ValueError(
                "SMTPNotifier needs both username and password to log in, or neither. "
                f"Got username={'set' if self.username is not None else 'None'}, "
                f"password={'set' if self.password is not None else 'None'}"
            )
        return self

    def build(self) -> Notifier:
        options = self._options()
        to = options.pop("recipients")
        return SMTPNotifier(recipients=[to] if isinstance(to, str) else list(to), **options)

    def describe(self) -> str:
        to = [self.recipients] if isinstance(self.recipients, str) else self.recipients
        return f"email to {', '.join(to)} via {self.host}:{self.port}"


class RecordingSpec(_NotifierSpec):
    """``kind: recording``: keeps the alerts (:class:`RecordingNotifier`; tests, demos)."""

    kind: Literal["recording"] = "recording"
    example: ClassVar[Mapping[str, Any] | None] = {"kind": "recording", "name": "audit"}
    fail_times: FailTimes = 0

    def build(self) -> Notifier:
        return RecordingNotifier(**self._options())

    def describe(self) -> str:
        return "kept in memory"


NotifierSpec = Annotated[
    LogSpec | WebhookSpec | SlackSpec | EmailSpec | RecordingSpec, Field(discriminator="kind")
]
"""A notifier as ``retrainer.yaml`` writes it under ``alerts.notifiers``."""

NOTIFIERS: Registry[LogSpec | WebhookSpec | SlackSpec | EmailSpec | RecordingSpec] = Registry(
    "notifier", NotifierSpec
)
"""The notifier kinds: the one list of them."""


def _key_problems(spec: object, where: str) -> list[str]:
    """What is wrong with a notifier mapping's kind and keys (empty: nothing)."""
    if not isinstance(spec, Mapping):
        return [f"{where} must be a mapping with a 'kind'. Got {spec!r}"]
    kind = spec.get("kind")
    if not isinstance(kind, str) or kind not in NOTIFIERS:
        return [
            f"{where}.kind: unknown notifier kind {kind!r}; expected one of "
            f"{', '.join(sorted(NOTIFIERS.kinds))}"
        ]
    fields = NOTIFIERS[kind].model_fields
    allowed = set(NOTIFIERS.config_keys(kind))
    problems = []
    unknown = sorted(str(k) for k in spec if k not in allowed)
    if unknown:
        problems.append(
            f"{where}: unknown key(s) {', '.join(unknown)} for a {kind} notifier; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    missing = [info.alias or n for n, info in fields.items() if info.is_required()]
    missing = [key for key in missing if key not in spec]
    if missing:
        problems.append(f"{where}: a {kind} notifier needs {', '.join(missing)}")
    return problems


def _check_keys(value: Any) -> Any:
    if isinstance(value, Spec):
        return value
    problems = _key_problems(value, "notifier")
    if problems:
        raise ValueError("; ".join(p.removeprefix("notifier").lstrip(":. ") for p in problems))
    return value


ConfiguredNotifier = Annotated[NotifierSpec, BeforeValidator(_check_keys)]
"""A :data:`NotifierSpec` whose kind and keys are checked first: the type of
``alerts.notifiers`` items in ``retrainer.yaml`` (``${NAME}`` values are checked when read)."""


def _checked(cls: type[_NotifierSpec], owner: str, **params: Any) -> Any:
    """``params`` validated as a ``cls``; ConfigError naming ``owner.<parameter>``."""
    try:
        return cls.model_validate(params)
    except ValidationError as exc:
        lines = describe_errors(exc, owner, cls.param_names())
        raise ConfigError("; ".join(lines), lines) from None


_NUMBERS: dict[str, Callable[[str], float]] = {"fail_times": int, "port": int, "timeout": float}


def build_notifier(
    spec: Mapping[str, Any] | Spec,
    *,
    environ: Mapping[str, str] | None = None,
    where: str = "notifier",
) -> Notifier:
    """Make a notifier from a config mapping such as ``{"kind": "slack", "url": ...}``.

    Kinds and their keys (``name`` is optional everywhere and defaults to the kind) are the
    fields of the specs in :data:`NOTIFIERS`:

    - ``log``: ``logger``;
    - ``webhook``: ``url``, ``headers``, ``timeout``;
    - ``slack``: ``url``, ``timeout``, ``blocks``;
    - ``email``: ``host``, ``sender``, ``to`` (an address or a list), ``port``, ``username``,
      ``password``, ``starttls``, ``timeout``;
    - ``recording``: ``fail_times``.

    Any string value (also inside ``headers`` and ``to``) may refer to environment variables
    as ``${NAME}``, e.g. ``"Bearer ${ALERT_TOKEN}"``; they are read here, once.

    Parameters
    ----------
    spec
        The mapping (or a spec of :data:`NOTIFIERS`, as ``retrainer.yaml`` holds it).
    environ
        Where ``${NAME}`` is looked up; ``os.environ`` by default.
    where
        Where the spec sits in the config file, for error messages.

    Raises
    ------
    ConfigError
        For an unknown kind, unknown or missing keys, bad values or an unset variable; the
        message names them.

    Examples
    --------
    >>> build_notifier({"kind": "slack", "url": "${SLACK_URL}"},
    ...                environ={"SLACK_URL": "https://hooks.slack.com/services/T0/B0/X"})
    SlackNotifier('https://hooks.slack.com/...', timeout=5)
    >>> build_notifier({"kind": "email", "host": "localhost", "sender": "r@example.com",
    ...                 "to": "ops@example.com", "name": "ops-mail"}).name
    'ops-mail'
    >>> build_notifier({"kind": "pager"}, where="alerts.notifiers[1]")
    Traceback (most recent call last):
    ...
    retrainer.errors.ConfigError: alerts.notifiers[1].kind: unknown notifier kind 'pager'; ...
    """
    if isinstance(spec, Spec):
        spec = spec.to_spec()
    problems = _key_problems(spec, where)
    if problems:
        raise ConfigError("; ".join(problems), problems)
    kind = str(spec["kind"])
    env = os.environ if environ is None else environ
    options = {str(k): _substitute(v, env, f"{where}.{k}") for k, v in spec.items()}
    for key, convert in _NUMBERS.items():
        # "${SMTP_PORT}" (or a quoted "587") reads as a string; the spec wants a number
        value = options.get(key)
        if isinstance(value, str):
            try:
                options[key] = convert(value)
            except ValueError:
                raise ConfigError(f"{where}.{key} must be a number. Got {value!r}") from None
    return NOTIFIERS.build(kind, options, where).build()


def _substitute(value: Any, env: Mapping[str, str], path: str) -> Any:
    if isinstance(value, str):

        def lookup(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise ConfigError(
                    f"{path} refers to the environment variable {name}, which is not set. "
                    f"Set {name}, or write the value in the config"
                )
            return env[name]

        return _ENV_REF.sub(lookup, value)
    if isinstance(value, Mapping):
        return {k: _substitute(v, env, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_substitute(v, env, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


# -- helpers ----------------------------------------------------------------------------------


def _failure(who: str, alert: Alert) -> str:
    return f"{who} could not deliver the {alert.kind} alert"


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

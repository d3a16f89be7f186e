"""Notifiers: where alerts go (a log, a JSON webhook, Slack, email) and the alert they carry.

A :class:`Notifier` has a ``name`` and one method, ``send(alert)``, which delivers one
:class:`Alert` or raises :class:`NotifierError`. Deduplication, rate limits, retries and the
audit trail are the engine's business (:class:`retrainer.engine.alerts.Alerter`); a notifier
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
import http.client
import json
import logging
import math
import os
import re
import smtplib
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any, Literal, Protocol, get_args
from urllib.parse import urlsplit

from retrainer.core.clock import as_utc
from retrainer.errors import ConfigError, RetrainerError

__all__ = [
    "SEVERITIES",
    "Alert",
    "LogNotifier",
    "Notifier",
    "NotifierError",
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
# How much of an HTTP error response is quoted in the error message.
_ERROR_BODY_MAX = 200


class NotifierError(RetrainerError, OSError):
    """A notifier could not deliver an alert (refused, unreachable, timed out...).

    Examples
    --------
    >>> issubclass(NotifierError, OSError)
    True
    """


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
    :class:`~retrainer.engine.alerts.Alerter`). ``send`` delivers one alert once, within the
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
        self.name = _check_name(name, "LogNotifier")
        if not isinstance(logger, str) or not logger:
            raise ConfigError(f"LogNotifier logger must be a logger name. Got {logger!r}")
        self.logger = logger

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
        self.name = _check_name(name, "WebhookNotifier")
        self.url = _check_url(url, "WebhookNotifier url")
        self.headers = _check_headers(headers, "WebhookNotifier headers")
        self.timeout = _check_timeout(timeout, "WebhookNotifier timeout")

    def __repr__(self) -> str:
        return (
            f"WebhookNotifier({_redacted(self.url)!r}, headers={sorted(self.headers)}, "
            f"timeout={self.timeout})"
        )

    def send(self, alert: Alert) -> None:
        _post_json(self.url, alert.to_dict(), self.headers, self.timeout, self.name, alert)


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
        self.name = _check_name(name, "SlackNotifier")
        self.url = _check_url(url, "SlackNotifier url")
        self.timeout = _check_timeout(timeout, "SlackNotifier timeout")
        if not isinstance(blocks, bool):
            raise ConfigError(f"SlackNotifier blocks must be true or false. Got {blocks!r}")
        self.blocks = blocks

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
        _post_json(self.url, self.payload(alert), {}, self.timeout, self.name, alert)


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
        self.name = _check_name(name, "SMTPNotifier")
        if not isinstance(host, str) or not host.strip():
            raise ConfigError(f"SMTPNotifier host must be a host name. Got {host!r}")
        self.host = host
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ConfigError(f"SMTPNotifier port must be an integer 1-65535. Got {port!r}")
        self.port = port
        self.sender = _check_address(sender, "SMTPNotifier sender")
        if isinstance(recipients, str) or not isinstance(recipients, Sequence) or not recipients:
            raise ConfigError(
                f"SMTPNotifier recipients must be a non-empty list of addresses. Got {recipients!r}"
            )
        self.recipients = [_check_address(r, "SMTPNotifier recipients") for r in recipients]
        if (username is None) != (password is None):
            raise ConfigError(
                "SMTPNotifier needs both username and password to log in, or neither. "
                f"Got username={'set' if username is not None else 'None'}, "
                f"password={'set' if password is not None else 'None'}"
            )
        for what, value in (("username", username), ("password", password)):
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"SMTPNotifier {what} must be a string")
        self.username = username
        self.password = password
        if not isinstance(starttls, bool):
            raise ConfigError(f"SMTPNotifier starttls must be true or false. Got {starttls!r}")
        self.starttls = starttls
        self.timeout = _check_timeout(timeout, "SMTPNotifier timeout")

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
    retrainer.adapters.notifiers.NotifierError: recording failed on purpose
    >>> rec.send(alert)
    >>> len(rec.alerts), rec.attempts
    (1, 2)
    """

    def __init__(self, *, name: str = "recording", fail_times: int = 0) -> None:
        self.name = _check_name(name, "RecordingNotifier")
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

# kind -> (required keys, optional keys); "kind" and "name" are allowed everywhere.
_SPEC_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "email": (("host", "sender", "to"), ("port", "username", "password", "starttls", "timeout")),
    "log": ((), ("logger",)),
    "recording": ((), ("fail_times",)),
    "slack": (("url",), ("timeout", "blocks")),
    "webhook": (("url",), ("headers", "timeout")),
}


def _build_email(o: dict[str, Any]) -> Notifier:
    to = o.pop("to")
    return SMTPNotifier(recipients=[to] if isinstance(to, str) else to, **o)


_NUMBERS: dict[str, Callable[[str], float]] = {"fail_times": int, "port": int, "timeout": float}

_BUILDERS: dict[str, Callable[[dict[str, Any]], Notifier]] = {
    "email": _build_email,
    "log": lambda o: LogNotifier(**o),
    "recording": lambda o: RecordingNotifier(**o),
    "slack": lambda o: SlackNotifier(**o),
    "webhook": lambda o: WebhookNotifier(**o),
}


def build_notifier(
    spec: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
    where: str = "notifier",
) -> Notifier:
    """Make a notifier from a config mapping such as ``{"kind": "slack", "url": ...}``.

    Kinds and their keys (``name`` is optional everywhere and defaults to the kind):

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
        The mapping.
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
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where} must be a mapping with a 'kind'. Got {spec!r}")
    kind = spec.get("kind")
    if not isinstance(kind, str) or kind not in _SPEC_KEYS:
        raise ConfigError(
            f"{where}.kind: unknown notifier kind {kind!r}; expected one of "
            f"{', '.join(sorted(_SPEC_KEYS))}"
        )
    required, optional = _SPEC_KEYS[kind]
    allowed = {"kind", "name", *required, *optional}
    problems = []
    unknown = sorted(str(k) for k in spec if k not in allowed)
    if unknown:
        problems.append(
            f"{where}: unknown key(s) {', '.join(unknown)} for a {kind} notifier; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    missing = [k for k in required if k not in spec]
    if missing:
        problems.append(f"{where}: a {kind} notifier needs {', '.join(missing)}")
    if problems:
        raise ConfigError("; ".join(problems), problems)
    env = os.environ if environ is None else environ
    options = {str(k): _substitute(v, env, f"{where}.{k}") for k, v in spec.items() if k != "kind"}
    options.setdefault("name", kind)
    for key, convert in _NUMBERS.items():
        # "${SMTP_PORT}" (or a quoted "587") reads as a string; the constructor wants a number
        value = options.get(key)
        if isinstance(value, str):
            try:
                options[key] = convert(value)
            except ValueError:
                raise ConfigError(f"{where}.{key} must be a number. Got {value!r}") from None
    try:
        return _BUILDERS[kind](options)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


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


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # Returning None makes urllib raise HTTPError for the 3xx answer instead of following it.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _post_json(
    url: str,
    payload: dict[str, Any],
    headers: Mapping[str, str],
    timeout: float,
    who: str,
    alert: Alert,
) -> None:
    body = json.dumps(payload, allow_nan=False).encode("utf-8")
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "retrainer",
            **headers,
        },
    )
    target = _redacted(url)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            detail = _body_snippet(exc)
        status = f"HTTP {exc.code} {exc.reason}"
        if 300 <= exc.code < 400:
            status += " (redirects are not followed: configure the final URL)"
        raise NotifierError(
            f"{who} could not deliver the {alert.kind} alert to {target}: {status}{detail}"
        ) from exc
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise NotifierError(
            f"{who} could not deliver the {alert.kind} alert to {target}: {_describe(exc)}"
        ) from exc


def _body_snippet(exc: urllib.error.HTTPError) -> str:
    try:
        text = exc.read(_ERROR_BODY_MAX + 1).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return ""
    text = _one_line(text).strip()
    if len(text) > _ERROR_BODY_MAX:
        text = text[:_ERROR_BODY_MAX] + "..."
    return f": {text}" if text else ""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc.reason, str):
        exc = exc.reason
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    rest = "/..." if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{port}{rest}"


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _check_name(name: object, who: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{who} name must be a non-empty string. Got {name!r}")
    return name


def _check_url(url: object, what: str) -> str:
    if not isinstance(url, str):
        raise ConfigError(f"{what} must be an http:// or https:// URL. Got {url!r}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        shown = _redacted(url) if parts is not None else "an unparsable URL"
        raise ConfigError(f"{what} must be an http:// or https:// URL with a host. Got {shown}")
    return url


def _check_headers(headers: object, what: str) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise ConfigError(f"{what} must be a mapping of header names to values")
    out = {}
    for key, value in headers.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ConfigError(f"{what}: header {key!r} must be a string with a string value")
        if any(c in key + value for c in "\r\n") or not key.strip():
            raise ConfigError(f"{what}: header {key!r} has an empty name or a line break")
        out[key] = value
    return out


def _check_timeout(timeout: object, what: str) -> float:
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise ConfigError(f"{what} must be a number of seconds > 0. Got {timeout!r}")
    return timeout


def _check_address(address: object, what: str) -> str:
    if not isinstance(address, str) or "@" not in address or any(c in address for c in "\r\n"):
        raise ConfigError(f"{what}: {address!r} is not an email address like ops@example.com")
    return address

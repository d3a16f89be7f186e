"""Notifiers against real servers on loopback: an HTTP sink and an SMTP sink (stdlib only)."""

from __future__ import annotations

import base64
import email
import email.policy
import json
import logging
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from retrainer.adapters.notifiers import (
    Alert,
    LogNotifier,
    NotifierError,
    RecordingNotifier,
    SlackNotifier,
    SMTPNotifier,
    WebhookNotifier,
    build_notifier,
)
from retrainer.errors import ConfigError

AT = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
SERVER_TIMEOUT_S = 5  # no server thread waits longer than this on a silent client


def make_alert(**overrides: Any) -> Alert:
    fields: dict[str, Any] = {
        "kind": "run.failed",
        "pipeline": "churn",
        "message": "run 7 failed: ValueError: x < 0",
        "at": AT,
        "severity": "critical",
        "data": {"error": "x < 0", "attempt": 2},
        "run_id": 7,
    }
    fields.update(overrides)
    return Alert(**fields)


# -- an HTTP sink ------------------------------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class HTTPSink:
    """A threaded HTTP server on 127.0.0.1 that records requests.

    It answers ``fail_status`` to the first ``fail_times`` requests, then 200 (or a redirect
    when ``redirect_to`` is set).
    """

    def __init__(self, fail_times: int = 0, fail_status: int = 500, redirect_to: str = ""):
        self.requests: list[Received] = []
        self.fail_times = fail_times
        self.fail_status = fail_status
        self.redirect_to = redirect_to
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            timeout = SERVER_TIMEOUT_S

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with sink._lock:
                    sink.requests.append(
                        Received("POST", self.path, dict(self.headers.items()), body)
                    )
                    failing = sink.fail_times > 0
                    sink.fail_times -= failing
                if failing:
                    self._answer(sink.fail_status, b"upstream exploded\nsecond line")
                elif sink.redirect_to:
                    self.send_response(302)
                    self.send_header("Location", sink.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self._answer(200, b"ok")

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep the test output clean

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> HTTPSink:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=SERVER_TIMEOUT_S)


# -- an SMTP sink ------------------------------------------------------------------------------


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    data: bytes
    auth: tuple[str, str] | None = None

    def message(self) -> email.message.EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, email.message.EmailMessage)
        return parsed


@dataclass
class SMTPSinkState:
    mails: list[Mail] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)


class _SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: EHLO/HELO, AUTH PLAIN, MAIL, RCPT, DATA, RSET, QUIT."""

    timeout = SERVER_TIMEOUT_S

    def reply(self, text: str) -> None:
        self.wfile.write(text.encode() + b"\r\n")

    def handle(self) -> None:
        state: SMTPSinkState = self.server.state  # type: ignore[attr-defined]
        sender, auth = "", None
        recipients: list[str] = []
        self.reply("220 sink ESMTP ready")
        while line := self.rfile.readline():
            command = line.decode().rstrip("\r\n")
            verb = command[:4].upper()
            if verb == "EHLO":
                self.wfile.write(b"250-sink\r\n250-8BITMIME\r\n250 AUTH PLAIN\r\n")
            elif verb == "HELO":
                self.reply("250 sink")
            elif verb == "AUTH":
                _, user, password = base64.b64decode(command.split()[2]).decode().split("\0")
                auth = (user, password)
                self.reply("235 2.7.0 authenticated")
            elif verb == "MAIL":
                sender, recipients = command.split("<", 1)[1].split(">", 1)[0], []
                self.reply("250 ok")
            elif verb == "RCPT":
                address = command.split("<", 1)[1].split(">", 1)[0]
                if address in state.refuse:
                    self.reply("550 5.1.1 no such user")
                else:
                    recipients.append(address)
                    self.reply("250 ok")
            elif verb == "DATA":
                self.reply("354 end with <CRLF>.<CRLF>")
                lines = []
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    lines.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                state.mails.append(Mail(sender, list(recipients), b"".join(lines), auth))
                self.reply("250 queued")
            elif verb in ("RSET", "NOOP"):
                self.reply("250 ok")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 not implemented")


class SMTPSink(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SMTPHandler)
        self.state = SMTPSinkState()
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def __enter__(self) -> SMTPSink:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=SERVER_TIMEOUT_S)


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # urllib honours proxy variables; the sinks are on loopback
    for name in (
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def http_sink() -> Iterator[HTTPSink]:
    with HTTPSink() as sink:
        yield sink


@pytest.fixture
def smtp_sink() -> Iterator[SMTPSink]:
    with SMTPSink() as sink:
        yield sink


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never says a word."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- Alert ------------------------------------------------------------------------------------


def test_alert_defaults_its_dedupe_key_and_takes_naive_times_as_utc():
    alert = Alert(kind="drift.detected", pipeline="churn", message="m", at=datetime(2024, 5, 1))
    assert alert.at == datetime(2024, 5, 1, tzinfo=UTC)
    assert alert.dedupe_key == "drift.detected|churn"
    assert alert.severity == "info"
    assert make_alert(version=3).dedupe_key == "run.failed|churn|v3|run7"
    assert make_alert(pipeline=None, run_id=None).dedupe_key == "run.failed|-"
    assert make_alert(dedupe_key="mine").dedupe_key == "mine"
    assert make_alert(pipeline=None).title == "[retrainer] run.failed"


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"severity": "fatal"}, ValueError),
        ({"data": {"x": float("nan")}}, TypeError),
        ({"data": {"when": AT}}, TypeError),
    ],
)
def test_alert_refuses_bad_severity_and_non_json_data(overrides, error):
    with pytest.raises(error):
        make_alert(**overrides)


def test_alert_to_dict_is_json():
    body = make_alert(version=2).to_dict()
    assert json.loads(json.dumps(body)) == body
    assert body == {
        "kind": "run.failed",
        "pipeline": "churn",
        "message": "run 7 failed: ValueError: x < 0",
        "at": "2024-05-01T12:30:00+00:00",
        "severity": "critical",
        "version": 2,
        "run_id": 7,
        "dedupe_key": "run.failed|churn|v2|run7",
        "data": {"error": "x < 0", "attempt": 2},
    }


# -- webhook ----------------------------------------------------------------------------------


def test_webhook_posts_the_alert_as_json_with_its_headers(http_sink: HTTPSink):
    hook = WebhookNotifier(
        http_sink.url + "/hooks/retrainer?team=ml", headers={"Authorization": "Bearer t0k"}
    )
    alert = make_alert()
    hook.send(alert)
    [request] = http_sink.requests
    assert request.method == "POST"
    assert request.path == "/hooks/retrainer?team=ml"
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert request.headers["Authorization"] == "Bearer t0k"
    assert request.json() == alert.to_dict()


def test_webhook_error_status_raises_with_the_status_and_no_secret(http_sink: HTTPSink):
    http_sink.fail_times = 1
    hook = WebhookNotifier(http_sink.url + "/hook?token=s3cret", headers={"X-Key": "s3cret"})
    with pytest.raises(NotifierError) as caught:
        hook.send(make_alert())
    message = str(caught.value)
    assert "HTTP 500" in message
    assert "upstream exploded second line" in message  # the answer, on one line
    assert "run.failed" in message
    assert "s3cret" not in message and "s3cret" not in repr(hook)
    assert isinstance(caught.value, OSError)
    hook.send(make_alert())  # the next answer is 200
    assert len(http_sink.requests) == 2


def test_webhook_does_not_follow_a_redirect():
    with HTTPSink(redirect_to="http://127.0.0.1:9/elsewhere") as sink:
        with pytest.raises(NotifierError, match=r"HTTP 302.*redirects are not followed"):
            WebhookNotifier(sink.url).send(make_alert())
        assert len(sink.requests) == 1


def test_webhook_gives_up_within_its_timeout_on_a_silent_server(silent_port: int):
    hook = WebhookNotifier(f"http://127.0.0.1:{silent_port}/hook", timeout=0.3)
    started = time.monotonic()
    with pytest.raises(NotifierError, match="timed out"):
        hook.send(make_alert())
    assert time.monotonic() - started < 3


def test_webhook_unreachable_raises(closed_port: int):
    with pytest.raises(NotifierError, match=f"http://127.0.0.1:{closed_port}"):
        WebhookNotifier(f"http://127.0.0.1:{closed_port}/x", timeout=2).send(make_alert())


# -- Slack ------------------------------------------------------------------------------------


def test_slack_payload_shape(http_sink: HTTPSink):
    slack = SlackNotifier(http_sink.url + "/services/T0/B0/XXXX")
    slack.send(make_alert(version=4))
    payload = http_sink.requests[0].json()
    assert set(payload) == {"text", "blocks"}
    assert payload["text"] == (
        ":rotating_light: [retrainer] run.failed: churn - run 7 failed: ValueError: x &lt; 0"
    )
    section, context = payload["blocks"]
    assert section["type"] == "section"
    assert section["text"]["type"] == "mrkdwn"
    assert section["text"]["text"].startswith(":rotating_light: *run.failed* on *churn*\n")
    assert context["type"] == "context"
    assert context["elements"][0]["text"] == (
        "severity: critical | 2024-05-01 12:30:00 UTC | version 4 | run 7"
    )


def test_slack_truncates_long_messages_and_can_send_text_only():
    slack = SlackNotifier("https://hooks.example.com/x")
    section = slack.payload(make_alert(message="y" * 10_000))["blocks"][0]["text"]["text"]
    assert len(section) < 3000 and section.endswith("\u2026")
    plain = SlackNotifier("https://hooks.example.com/x", blocks=False)
    assert set(plain.payload(make_alert(severity="info"))) == {"text"}


def test_slack_error_hides_the_webhook_path():
    with HTTPSink(fail_times=1, fail_status=404) as sink:
        slack = SlackNotifier(sink.url + "/services/T0/B0/SECRETTOKEN")
        with pytest.raises(NotifierError, match="HTTP 404") as caught:
            slack.send(make_alert())
    assert "SECRETTOKEN" not in str(caught.value)


# -- email ------------------------------------------------------------------------------------


def test_email_subject_body_and_recipients(smtp_sink: SMTPSink):
    mail = SMTPNotifier(
        "127.0.0.1",
        smtp_sink.port,
        sender="retrainer@example.com",
        recipients=["ops@example.com", "ml@example.com"],
        timeout=5,
    )
    mail.send(make_alert(version=3))
    [sent] = smtp_sink.state.mails
    assert sent.sender == "retrainer@example.com"
    assert sent.recipients == ["ops@example.com", "ml@example.com"]
    assert sent.auth is None
    msg = sent.message()
    assert msg["Subject"] == "[retrainer] run.failed: churn"
    assert msg["From"] == "retrainer@example.com"
    assert msg["To"] == "ops@example.com, ml@example.com"
    assert msg["X-Retrainer-Severity"] == "critical"
    assert msg.get_content_type() == "text/plain"
    body = msg.get_content()
    assert body.splitlines()[0] == "run 7 failed: ValueError: x < 0"
    assert "pipeline:  churn" in body and "version:   3" in body and "run:       7" in body
    assert '"error": "x < 0"' in body


def test_email_logs_in_with_credentials(smtp_sink: SMTPSink):
    SMTPNotifier(
        "127.0.0.1",
        smtp_sink.port,
        sender="r@example.com",
        recipients=["ops@example.com"],
        username="bot",
        password="hunter2",
    ).send(make_alert())
    assert smtp_sink.state.mails[0].auth == ("bot", "hunter2")


def test_email_with_starttls_refuses_a_server_without_it(smtp_sink: SMTPSink):
    mail = SMTPNotifier(
        "127.0.0.1", smtp_sink.port, sender="r@example.com", recipients=["o@example.com"],
        starttls=True, username="bot", password="hunter2",
    )  # fmt: skip
    with pytest.raises(NotifierError, match="STARTTLS"):
        mail.send(make_alert())
    assert smtp_sink.state.mails == []


def test_email_refused_by_every_recipient_raises(smtp_sink: SMTPSink):
    smtp_sink.state.refuse = {"ops@example.com"}
    mail = SMTPNotifier(
        "127.0.0.1", smtp_sink.port, sender="r@example.com", recipients=["ops@example.com"]
    )
    with pytest.raises(NotifierError, match=r"ops@example\.com"):
        mail.send(make_alert())


def test_email_refused_by_some_recipients_is_delivered_and_logged(
    smtp_sink: SMTPSink, caplog: pytest.LogCaptureFixture
):
    smtp_sink.state.refuse = {"gone@example.com"}
    mail = SMTPNotifier(
        "127.0.0.1",
        smtp_sink.port,
        sender="r@example.com",
        recipients=["ops@example.com", "gone@example.com"],
    )
    with caplog.at_level(logging.WARNING, logger="retrainer.adapters.notifiers"):
        mail.send(make_alert())
    assert smtp_sink.state.mails[0].recipients == ["ops@example.com"]
    assert "gone@example.com" in caplog.text


def test_email_gives_up_within_its_timeout_on_a_silent_server(silent_port: int):
    mail = SMTPNotifier(
        "127.0.0.1", silent_port, sender="r@example.com", recipients=["o@example.com"], timeout=0.3
    )
    started = time.monotonic()
    with pytest.raises(NotifierError, match="timed out"):
        mail.send(make_alert())
    assert time.monotonic() - started < 3


def test_email_unreachable_raises(closed_port: int):
    mail = SMTPNotifier(
        "127.0.0.1", closed_port, sender="r@example.com", recipients=["o@example.com"], timeout=2
    )
    with pytest.raises(NotifierError, match=f"127.0.0.1:{closed_port}"):
        mail.send(make_alert())


# -- log and recording ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "level"),
    [("info", logging.INFO), ("warning", logging.WARNING), ("critical", logging.CRITICAL)],
)
def test_log_notifier_logs_at_the_severity(severity, level, caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.DEBUG, logger="test.alerts"):
        LogNotifier(logger="test.alerts").send(make_alert(severity=severity))
    [record] = caplog.records
    assert record.levelno == level
    assert record.getMessage() == "[retrainer] run.failed: churn: run 7 failed: ValueError: x < 0"
    assert record.alert["severity"] == severity  # type: ignore[attr-defined]


def test_recording_notifier_fails_when_told():
    rec = RecordingNotifier(name="rec", fail_times=2)
    for _ in range(2):
        with pytest.raises(NotifierError, match="rec failed on purpose"):
            rec.send(make_alert())
    rec.send(make_alert())
    assert rec.attempts == 3 and len(rec.alerts) == 1
    rec.fail_next(1, "is down")
    with pytest.raises(NotifierError, match="rec is down"):
        rec.send(make_alert())
    rec.clear()
    assert rec.alerts == [] and rec.attempts == 0
    with pytest.raises(ValueError):
        rec.fail_next(-1)


# -- build_notifier ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "cls", "attrs"),
    [
        ({"kind": "log"}, LogNotifier, {"name": "log", "logger": "retrainer.alerts"}),
        (
            {"kind": "webhook", "url": "https://x.example/h", "timeout": 2, "name": "hook"},
            WebhookNotifier,
            {"name": "hook", "timeout": 2, "headers": {}},
        ),
        (
            {"kind": "slack", "url": "https://hooks.slack.com/services/a", "blocks": False},
            SlackNotifier,
            {"name": "slack", "blocks": False, "timeout": 5},
        ),
        (
            {"kind": "email", "host": "mx", "port": 587, "sender": "r@x.io", "to": ["a@x.io"],
             "starttls": True},
            SMTPNotifier,
            {"name": "email", "port": 587, "recipients": ["a@x.io"], "starttls": True},
        ),
        (
            {"kind": "email", "host": "mx", "sender": "r@x.io", "to": "a@x.io"},
            SMTPNotifier,
            {"port": 25, "recipients": ["a@x.io"], "timeout": 10},
        ),
        ({"kind": "recording", "fail_times": 1}, RecordingNotifier, {"name": "recording"}),
    ],
)  # fmt: skip
def test_build_notifier_kinds(spec, cls, attrs):
    notifier = build_notifier(spec)
    assert type(notifier) is cls
    for key, value in attrs.items():
        assert getattr(notifier, key) == value


def test_build_notifier_reads_secrets_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, http_sink: HTTPSink
):
    monkeypatch.setenv("ALERT_URL", http_sink.url + "/hook")
    monkeypatch.setenv("ALERT_TOKEN", "t0k")
    hook = build_notifier(
        {
            "kind": "webhook",
            "url": "${ALERT_URL}",
            "headers": {"Authorization": "Bearer ${ALERT_TOKEN}"},
        }
    )
    hook.send(make_alert())
    assert http_sink.requests[0].headers["Authorization"] == "Bearer t0k"
    mail = build_notifier(
        {"kind": "email", "host": "mx", "port": "${PORT}", "sender": "r@x.io",
         "to": ["${WHO}", "b@x.io"], "username": "u", "password": "${PW}"},
        environ={"PORT": "2525", "WHO": "a@x.io", "PW": "pw"},
    )  # fmt: skip
    assert isinstance(mail, SMTPNotifier)
    assert (mail.port, mail.recipients, mail.password) == (2525, ["a@x.io", "b@x.io"], "pw")


def test_build_notifier_names_a_missing_environment_variable(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    spec = {
        "kind": "webhook",
        "url": "https://x.example/h",
        "headers": {"X": "${NOT_SET_ANYWHERE}"},
    }
    with pytest.raises(ConfigError) as caught:
        build_notifier(spec, where="alerts.notifiers[0]")
    assert "NOT_SET_ANYWHERE" in str(caught.value)
    assert "alerts.notifiers[0].headers.X" in str(caught.value)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("slack", "must be a mapping"),
        ({"url": "https://x.example"}, "unknown notifier kind None"),
        ({"kind": "pager"}, "unknown notifier kind 'pager'; expected one of email, log"),
        ({"kind": "slack", "url": "https://x.example", "channel": "#ml"}, "unknown key(s) channel"),
        ({"kind": "webhook"}, "a webhook notifier needs url"),
        ({"kind": "email", "host": "mx"}, "needs sender, to"),
        ({"kind": "webhook", "url": "ftp://x.example/h"}, "must be an http:// or https:// URL"),
        ({"kind": "webhook", "url": "https://x.example", "timeout": 0}, "timeout must be"),
        ({"kind": "webhook", "url": "https://x.example", "timeout": "soon"}, "timeout must be a number"),
        ({"kind": "webhook", "url": "https://x.example", "headers": ["X"]}, "headers must be a mapping"),
        ({"kind": "webhook", "url": "https://x.example", "headers": {"X": "a\r\nY: b"}}, "line break"),
        ({"kind": "email", "host": "mx", "sender": "r@x.io", "to": []}, "non-empty list"),
        ({"kind": "email", "host": "mx", "sender": "nobody", "to": "a@x.io"}, "sender: 'nobody' is not an email address"),
        ({"kind": "email", "host": "mx", "sender": "r@x.io", "to": ["a@x.io", 3]}, "recipients: 3 is not"),
        ({"kind": ["webhook"]}, "unknown notifier kind ['webhook']"),
        ({"kind": "email", "host": "mx", "sender": "r@x.io", "to": "a@x.io", "port": 70000}, "port must be"),
        ({"kind": "email", "host": "mx", "sender": "r@x.io", "to": "a@x.io", "password": "p"}, "both username and password"),
        ({"kind": "slack", "url": "https://x.example", "name": ""}, "name must be a non-empty"),
    ],
)  # fmt: skip
def test_build_notifier_bad_specs(spec, fragment):
    with pytest.raises(ConfigError) as caught:
        build_notifier(spec, where="alerts.notifiers[2]")
    assert fragment in str(caught.value)
    if isinstance(spec, dict):
        assert str(caught.value).startswith("alerts.notifiers[2]")


def test_reprs_hide_secrets():
    hook = WebhookNotifier("https://user:pw@x.example:8443/h/SECRET?k=SECRET", {"Auth": "SECRET"})
    assert "SECRET" not in repr(hook) and "pw" not in repr(hook)
    assert (
        repr(hook) == "WebhookNotifier('https://x.example:8443/...', headers=['Auth'], timeout=5)"
    )
    mail = SMTPNotifier(
        "mx", sender="r@x.io", recipients=["a@x.io"], username="u", password="SECRET"
    )
    assert "SECRET" not in repr(mail)

"""JSON over HTTP for the webhook and Slack notifiers, with only the standard library.

Redirects are refused (a webhook that moves is a misconfiguration, and following it could
send a secret elsewhere); errors name the host and the status, never the whole URL.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from retrainer.errors import NotifierError

__all__ = ["describe_error", "one_line", "post_json", "redacted"]


def one_line(text: str) -> str:
    return " ".join(text.splitlines())


# How much of an HTTP error response is quoted in the error message.
_ERROR_BODY_MAX = 200


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # Returning None makes urllib raise HTTPError for the 3xx answer instead of following it.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def post_json(
    url: str,
    payload: dict[str, Any],
    headers: Mapping[str, str],
    timeout: float,
    failure: str,
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
    target = redacted(url)
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
        raise NotifierError(f"{failure} to {target}: {status}{detail}") from exc
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise NotifierError(f"{failure} to {target}: {describe_error(exc)}") from exc


def _body_snippet(exc: urllib.error.HTTPError) -> str:
    try:
        text = exc.read(_ERROR_BODY_MAX + 1).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return ""
    text = one_line(text).strip()
    if len(text) > _ERROR_BODY_MAX:
        text = text[:_ERROR_BODY_MAX] + "..."
    return f": {text}" if text else ""


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc.reason, str):
        exc = exc.reason
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def redacted(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    rest = "/..." if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{port}{rest}"

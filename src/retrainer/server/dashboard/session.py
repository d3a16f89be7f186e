"""The dashboard's sign-in: the API's tokens, kept in a cookie, and CSRF tokens for actions.

A person signs in with a token (``retrainer token create --scope read`` or ``admin``); the
page stores it in the ``retrainer_ui`` cookie: ``HttpOnly`` (no script reads it),
``SameSite=Strict`` (no other site's page sends it), ``Secure`` when the dashboard is reached
over HTTPS, scoped to ``/ui``. Every request re-checks the token with the server's
authenticator, so a revoked token signs the page out within the token cache's 5 s.

Actions (promote, rollback) are POST forms carrying a CSRF token: an HMAC of the signed-in
secret, so it is the same on every worker, needs no server-side session, and no other site
can compute it (it cannot read the cookie). A POST whose ``Origin`` names another host is
refused too.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request

from retrainer.server.auth import _SCOPE_ATTR, SCOPES, Authenticator

__all__ = ["COOKIE", "Session", "UiError", "csrf_token", "session_for"]

COOKIE = "retrainer_ui"


class UiError(Exception):
    """An error the dashboard answers with a page (or a redirect to the sign-in)."""

    def __init__(self, status: int, message: str, *, location: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.location = location


@dataclass(frozen=True, slots=True)
class Session:
    """Who looks at the page: their token and its secret (for the CSRF token)."""

    token: Any
    secret: str

    @property
    def admin(self) -> bool:
        return bool(self.token.allows("admin"))

    @property
    def csrf(self) -> str:
        return csrf_token(self.secret)

    @property
    def who(self) -> str:
        name = getattr(self.token, "name", None)
        scope = "admin" if self.admin else "read"
        return f"{name} ({scope})" if name and scope not in name else (name or scope)


def csrf_token(secret: str) -> str:
    """The CSRF token of the session signed in with ``secret``.

    >>> len(csrf_token("rt_abc_secret")), csrf_token("a") == csrf_token("a")
    (64, True)
    """
    return hmac.new(secret.encode(), b"retrainer-ui-csrf", hashlib.sha256).hexdigest()


def secret_of(request: Request) -> str | None:
    """The token a request carries: the cookie, else an ``Authorization: Bearer`` header."""
    cookie = request.cookies.get(COOKIE)
    if cookie:
        return cookie
    kind, _, secret = request.headers.get("authorization", "").partition(" ")
    return secret.strip() if kind.lower() == "bearer" and secret.strip() else None


def _login_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"/ui/login?next={quote(target, safe='')}"


def session_for(scope: str) -> Any:
    """The dependency of a dashboard route that needs ``scope`` (``read`` or ``admin``).

    A page asked without a valid token goes to the sign-in (303); an action without one is a
    401, a token without the scope a 403, both as pages.
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}; got {scope!r}")

    async def check(request: Request) -> Session:
        secret = secret_of(request)
        authenticate: Authenticator = request.app.state.authenticate
        token = authenticate(secret) if secret else None
        page = request.method in ("GET", "HEAD")
        if token is None:
            if page:
                raise UiError(303, "sign in", location=_login_url(request))
            raise UiError(401, "Your session has ended: sign in again.")
        if not token.allows(scope):
            raise UiError(
                403,
                f"This token cannot {'see the dashboard' if scope == 'read' else 'act'}: "
                f"it needs the scope '{scope}' (retrainer token create --scope {scope}).",
            )
        request.state.token = token
        return Session(token=token, secret=secret or "")

    setattr(check, _SCOPE_ATTR, scope)
    return Depends(check)


def check_action(request: Request, session: Session, form: dict[str, str]) -> None:
    """Refuse a POST (403) whose CSRF token is not the session's, or that comes from a page
    of another origin."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.url.netloc:
        raise UiError(403, f"This action came from another site ({origin}): refused.")
    if not hmac.compare_digest(form.get("csrf", ""), session.csrf):
        raise UiError(
            403, "This form has expired or did not come from the dashboard: reload the page."
        )

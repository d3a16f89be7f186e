"""Bearer-token auth: each route declares its scope with one dependency, :func:`require`.

The app holds an *authenticator*: a callable that takes the secret of an
``Authorization: Bearer <secret>`` header and returns an object with ``allows(scope) -> bool``
(a token), or None for an unknown or revoked secret. No header or an unknown secret is a 401,
a token without the scope a 403. The default authenticator is the project's token store
(``retrainer token create``; :class:`retrainer.engine.tokens.TokenCache`): the server never
serves without a token.

:func:`route_scopes` lists ``(method, path, scope)`` for every route of an app, from the
routes themselves, so a test can check every route against every kind of token and a new
route cannot skip auth unnoticed (a route with scope None is public: :data:`PUBLIC_PATHS`).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from fastapi import Depends, Request
from fastapi.routing import APIRoute

from retrainer.engine.tokens import SCOPES
from retrainer.server.errors import ApiError

__all__ = [
    "PUBLIC_PATHS",
    "SCOPES",
    "Authenticator",
    "RateLimiter",
    "default_authenticator",
    "require",
    "route_scopes",
]

PUBLIC_PATHS = frozenset(
    {
        "/",
        "/healthz",
        "/readyz",
        "/docs",
        "/docs/oauth2-redirect",
        "/openapi.json",
        "/ui/login",
        "/ui/logout",
        "/ui/static/{name}",
    }
)
"""Paths served without a token: health (probes), the API's own description, the redirect of
``/`` to the dashboard, and the dashboard's sign-in and static files (plotly.js, its script
and style: nothing of the project's)."""

_SCOPE_ATTR = "__retrainer_scope__"


class Token(Protocol):
    def allows(self, scope: str) -> bool: ...


Authenticator = Callable[[str], Token | None]


def default_authenticator(project: Any) -> Authenticator:
    """``serve.authenticator`` when set, else the project's token store."""
    ref = project.config.serve.authenticator
    if ref:
        from retrainer.adapters.sources import import_ref

        fn = import_ref(ref, project.root)
        if not callable(fn):
            from retrainer.errors import ConfigError

            raise ConfigError(f"serve.authenticator '{ref}' is not a function")
        return fn  # type: ignore[no-any-return,unused-ignore]
    from retrainer.engine.tokens import TokenCache

    # a verified token is trusted for 5 s without a database read: the request path stays
    # off the store, and a revocation reaches every worker within 5 s
    return TokenCache(project, ttl=5.0).verify


class RateLimiter:
    """A token bucket per API token: ``rate`` requests a second, bursts up to ``burst``.

    Kept per server worker, in memory (N workers allow N times the rate in total).

    Examples
    --------
    >>> limiter = RateLimiter(rate=1.0, burst=2)
    >>> [limiter.allow("t1", now=0.0) for _ in range(3)], limiter.allow("t2", now=0.0)
    ([True, True, False], True)
    >>> limiter.allow("t1", now=1.0)
    True
    """

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def allow(self, key: str, *, now: float | None = None) -> bool:
        """Take one request from ``key``'s bucket; False when it is empty."""
        t = time.monotonic() if now is None else now
        with self._lock:
            tokens, at = self._buckets.get(key, (self.burst, t))
            tokens = min(self.burst, tokens + (t - at) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, t)
                return False
            self._buckets[key] = (tokens - 1.0, t)
            return True


def _token_key(token: Token, secret: str) -> str:
    token_id = getattr(token, "id", None)
    if isinstance(token_id, str) and token_id:
        return token_id
    return hashlib.sha256(secret.encode()).hexdigest()  # a custom authenticator's token


def require(scope: str) -> Any:
    """The dependency of a route that needs a token with ``scope`` (``dependencies=[...]``)."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}; got {scope!r}")

    # async: checked on the event loop, without a thread-pool hop per request (the token
    # store's verify_token is expected to answer from memory)
    async def check(request: Request) -> Token:
        header = request.headers.get("authorization", "")
        kind, _, secret = header.partition(" ")
        if kind.lower() != "bearer" or not secret.strip():
            raise ApiError(
                401,
                "unauthorized",
                f"this route needs a bearer token with scope '{scope}': "
                "send 'Authorization: Bearer <token>' (retrainer token create --scope "
                f"{scope})",
                headers={"WWW-Authenticate": "Bearer"},
            )
        authenticate: Authenticator = request.app.state.authenticate
        token = authenticate(secret.strip())
        if token is None:
            raise ApiError(
                401,
                "unauthorized",
                "unknown or revoked token",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        if not token.allows(scope):
            raise ApiError(403, "forbidden", f"this token lacks the scope '{scope}'")
        limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
        if limiter is not None and not limiter.allow(_token_key(token, secret.strip())):
            raise ApiError(
                429,
                "rate_limited",
                f"this token made more than {limiter.rate:g} requests a second (bursts of "
                f"{limiter.burst:g}) on this worker: slow down (serve.rate_limit)",
                headers={"Retry-After": "1"},
            )
        request.state.token = token  # who acts: the management API records it as the actor
        return token

    setattr(check, _SCOPE_ATTR, scope)
    return Depends(check)


def route_scopes(app: Any) -> list[tuple[str, str, str | None]]:
    """``(method, path, scope)`` of every route of ``app``, sorted; scope None: public.

    Examples
    --------
    >>> from fastapi import FastAPI
    >>> app = FastAPI(openapi_url=None, docs_url=None)
    >>> @app.get("/x", dependencies=[require("read")])
    ... def x() -> None: ...
    >>> route_scopes(app)
    [('GET', '/x', 'read')]
    """
    out = []
    for route in app.routes:
        methods = sorted(getattr(route, "methods", None) or ["GET"])
        scope = None
        if isinstance(route, APIRoute):
            for dep in route.dependencies:
                scope = getattr(dep.dependency, _SCOPE_ATTR, None) or scope
        for method in methods:
            if method != "HEAD":
                out.append((method, route.path, scope))
    return sorted(out)

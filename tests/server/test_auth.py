"""The auth matrix, generated from the app's own route table: no route can skip it."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from retrainer.config import ServeConfig
from retrainer.server import create_app, route_scopes
from retrainer.server.auth import PUBLIC_PATHS, SCOPES
from retrainer.testing import in_memory_project
from tests.server.conftest import FAST, authenticate, bearer, trained_project

# the route table needs no model: a project without runs builds it at collection
ROUTES = route_scopes(create_app(in_memory_project(), authenticate=authenticate))
PATH_ARGS = {
    "{pipeline}": "toy",
    "{version}": "1",
    "{run_id}": "1",
    "{backtest_id:path}": "nothing",
}


def _url(path: str) -> str:
    for k, v in PATH_ARGS.items():
        path = path.replace(k, v)
    return path


def test_every_route_declares_a_scope_or_is_public():
    unguarded = [(m, p) for m, p, scope in ROUTES if scope is None and p not in PUBLIC_PATHS]
    assert unguarded == []
    assert {p for _, p, s in ROUTES if s is None} <= PUBLIC_PATHS
    assert ("POST", "/v1/{pipeline}/predict", "predict") in ROUTES
    assert ("GET", "/v1/{pipeline}/rollout", "read") in ROUTES  # the management routes too


@pytest.fixture(scope="module")
def project():
    p = trained_project()
    yield p
    p.close()


@pytest.fixture(scope="module")
def client(project):
    with TestClient(create_app(project, authenticate=authenticate, settings=FAST)) as c:
        yield c


GUARDED = [(m, p, s) for m, p, s in ROUTES if s is not None]
CASES = [
    (method, path, scope, token, expected)
    for method, path, scope in GUARDED
    for token, expected in [
        (None, 401),
        ("not-a-token", 401),
        *[(f"{other}-secret", 403) for other in SCOPES if other not in (scope, "admin")],
        (f"{scope}-secret", None),
        ("admin-secret", None),
    ]
]


@pytest.mark.parametrize(("method", "path", "scope", "token", "expected"), CASES)
def test_auth_matrix(client, method, path, scope, token, expected):
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    if path.startswith("/ui"):  # the dashboard answers with pages, not JSON
        r = client.request(method, _url(path), headers=headers, follow_redirects=False)
        if expected is None:
            # an allowed action still needs its form's CSRF token
            assert r.status_code not in (401, 303), r.text
            assert r.status_code != 403 or "form" in r.text, r.text
        elif expected == 401 and method == "GET":  # a page sends the person to sign in
            assert r.status_code == 303 and r.headers["location"].startswith("/ui/login?next=")
        else:
            assert r.status_code == expected, r.text
            assert "text/html" in r.headers["content-type"]
        return
    r = client.request(method, _url(path), headers=headers, json={"x1": 1.0, "x2": 2.0})
    if expected is None:
        assert r.status_code not in (401, 403), r.text
    else:
        assert r.status_code == expected, r.text
        assert r.json()["error"] == {401: "unauthorized", 403: "forbidden"}[expected]
        if expected == 401:
            assert r.headers["www-authenticate"].startswith("Bearer")


def test_a_malformed_authorization_header_is_a_401(client):
    r = client.get("/v1/models", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401


def test_the_default_authenticator_is_the_projects_token_store(project):
    from datetime import UTC, datetime

    from retrainer.engine.tokens import create_token

    _, secret = create_token(
        project, name="app", scopes=["predict"], now=datetime(2024, 5, 1, tzinfo=UTC)
    )
    app = create_app(project, settings=FAST)  # no authenticate=: the token store decides
    with TestClient(app) as c:
        for method, path, scope in GUARDED:
            unknown = c.request(
                method,
                _url(path),
                headers={"Authorization": "Bearer rt_x_y"},
                follow_redirects=False,
            )
            page = path.startswith("/ui") and method == "GET"  # to the sign-in page
            assert unknown.status_code == (303 if page else 401)
            r = c.request(method, _url(path), headers={"Authorization": f"Bearer {secret}"})
            assert r.status_code != 401  # known: allowed, or refused for its scope
            assert (r.status_code == 403) is (scope != "predict")
        assert c.get("/healthz").status_code == 200


def test_a_token_past_its_rate_limit_gets_a_429_and_others_do_not(project):
    settings = ServeConfig(poll_interval=0.05, flush_interval=0.05, rate_limit=0.001, rate_burst=3)
    with TestClient(create_app(project, authenticate=authenticate, settings=settings)) as c:
        codes = [c.get("/v1/models", headers=bearer("read")).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = c.get("/v1/models", headers=bearer("read"))
        assert r.json()["error"] == "rate_limited" and r.headers["retry-after"] == "1"
        assert "serve.rate_limit" in r.json()["detail"]
        assert c.get("/v1/models", headers=bearer("admin")).status_code == 200  # its own bucket
        assert c.get("/healthz").status_code == 200  # health is never limited

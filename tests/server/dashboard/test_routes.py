"""The dashboard's routes in process: sign-in, pages, fragments, actions and their guards."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from retrainer.config import DashboardConfig
from retrainer.core.types import CHAMPION
from retrainer.server import create_app
from retrainer.server.dashboard import create_dashboard_app
from retrainer.server.dashboard.session import COOKIE, csrf_token
from tests.server.conftest import FAST, authenticate, trained_project


@pytest.fixture(scope="module")
def project():
    p = trained_project(runs=(5, 8, 11))
    yield p
    p.close()


@pytest.fixture
def client(project) -> Iterator[TestClient]:
    with TestClient(create_dashboard_app(project, authenticate=authenticate)) as c:
        yield c


def signed_in(client: TestClient, scope: str) -> TestClient:
    client.cookies.set(COOKIE, f"{scope}-secret")
    return client


def test_the_sign_in_link_sets_a_strict_http_only_cookie_and_drops_the_token(client):
    r = client.get("/ui/login?token=read-secret&next=/ui/events", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/events"
    cookie = r.headers["set-cookie"]
    assert f"{COOKIE}=read-secret" in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert "Secure" not in cookie  # plain http on loopback; set behind https


def test_a_bad_token_or_an_outside_next_is_refused(client):
    r = client.get("/ui/login?token=nope", follow_redirects=False)
    assert (
        r.status_code == 401
        and "Unknown" in r.text
        and COOKIE not in r.headers.get("set-cookie", "")
    )
    r = client.post(
        "/ui/login",
        data={"token": "read-secret", "next": "//evil.example/x"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/ui"
    # a token without read (predict only) cannot sign in
    assert client.get("/ui/login?token=predict-secret", follow_redirects=False).status_code == 401


def test_pages_without_a_session_go_to_the_sign_in(client):
    r = client.get("/ui/pipelines/toy?versions_page=2", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/login?next=%2Fui%2Fpipelines%2Ftoy%3Fversions_page%3D2"
    r = client.get("/ui/login?next=/ui/events")
    assert 'name="next" value="/ui/events"' in r.text and 'name="token"' in r.text


@pytest.mark.parametrize(
    "path",
    [
        "/ui",
        "/ui/pipelines/toy",
        "/ui/pipelines/toy/runs/2",
        "/ui/events",
        "/ui/backtests",
        "/ui/events?kind=model.promoted",
        "/ui/pipelines/toy?versions_page=2&runs_before=3",
    ],
)
def test_every_page_renders_for_read_with_security_headers(client, path):
    r = signed_in(client, "read").get(path)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"
    assert '<main id="main">' in r.text and "Traceback" not in r.text


def test_a_fragment_is_only_the_main_part(client):
    r = signed_in(client, "read").get("/ui", headers={"X-Dashboard-Fragment": "1"})
    assert r.status_code == 200
    assert "<html" not in r.text and 'id="pipelines"' in r.text


def test_the_overview_says_each_pipelines_health_in_words(client):
    r = signed_in(client, "read").get("/ui")
    row = re.search(r'<tr data-pipeline="toy">.*?</tr>', r.text, re.S).group(0)
    assert re.search(r'data-health="(green|amber|red)"', row)
    assert "v3" in row and "/ui/pipelines/toy/runs/3" in row  # the last run, one click away


def test_unknown_pipeline_and_run_are_404_pages(client):
    c = signed_in(client, "read")
    assert c.get("/ui/pipelines/nope").status_code == 404
    r = c.get("/ui/pipelines/toy/runs/999")
    assert r.status_code == 404 and "999" in r.text


def test_static_files_are_served_public_with_an_etag(client):
    r = client.get("/ui/static/plotly.min.js")
    assert r.status_code == 200 and "plotly.js" in r.text[:200]
    again = client.get("/ui/static/plotly.min.js", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    assert client.get("/ui/static/../../etc/passwd").status_code == 404
    assert client.get("/ui/static/secret.txt").status_code == 404


def test_an_admin_rolls_back_and_promotes_through_the_confirmation_with_csrf(project, client):
    c = signed_in(client, "admin")
    store = project.store
    assert store.get_alias("toy", CHAMPION) == 3
    page = c.get("/ui/pipelines/toy/rollback")
    assert "v3 → v2" in page.text and 'id="confirm"' in page.text
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
    assert token == csrf_token("admin-secret")
    # without the CSRF token, or from another origin: refused, nothing moves
    r = c.post("/ui/pipelines/toy/rollback", data={}, follow_redirects=False)
    assert r.status_code == 403
    r = c.post(
        "/ui/pipelines/toy/rollback",
        data={"csrf": token},
        headers={"Origin": "http://evil.example"},
        follow_redirects=False,
    )
    assert r.status_code == 403 and store.get_alias("toy", CHAMPION) == 3
    r = c.post("/ui/pipelines/toy/rollback", data={"csrf": token}, follow_redirects=False)
    assert r.status_code == 303 and store.get_alias("toy", CHAMPION) == 2
    assert "rolled+back" in r.headers["location"]
    assert store.list_events("toy", kinds=["model.rolled_back"], limit=1)[0].version == 2
    # a rollback to a newer version is not offered
    assert 'id="confirm"' not in c.get("/ui/pipelines/toy/rollback?to=3").text
    # then forward again: promote v3
    page = c.get("/ui/pipelines/toy/promote?version=3")
    assert "v2 → v3" in page.text
    r = c.post(
        "/ui/pipelines/toy/promote", data={"version": "3", "csrf": token}, follow_redirects=False
    )
    assert r.status_code == 303 and store.get_alias("toy", CHAMPION) == 3
    assert "v3+is+the+champion+now" in r.headers["location"]
    assert store.list_events("toy", kinds=["model.promoted"], limit=1)[0].version == 3
    assert store.alias_history("toy", CHAMPION)[-1].actor.startswith("dashboard: api token")
    shown = c.get(r.headers["location"])
    assert 'class="flash"' in shown.text and "v3 is the champion now (was v2)" in shown.text


def test_read_cannot_act(project, client):
    c = signed_in(client, "read")
    page = c.get("/ui/pipelines/toy/promote?version=2")
    assert page.status_code == 200 and 'id="confirm"' not in page.text
    assert "admin token is needed" in page.text
    r = c.post(
        "/ui/pipelines/toy/promote",
        data={"version": "2", "csrf": csrf_token("read-secret")},
        follow_redirects=False,
    )
    assert r.status_code == 403 and project.store.get_alias("toy", CHAMPION) == 3


def test_a_refused_move_says_why(project, client):
    c = signed_in(client, "admin")
    r = c.post(
        "/ui/pipelines/toy/promote",
        data={"version": "3", "csrf": csrf_token("admin-secret")},
        follow_redirects=False,
    )
    assert r.status_code == 409 and "Refused" in r.text  # already the champion
    r = c.post(
        "/ui/pipelines/toy/promote",
        data={"version": "77", "csrf": csrf_token("admin-secret")},
        follow_redirects=False,
    )
    assert r.status_code == 404


def test_bad_event_filters_are_named(client):
    r = signed_in(client, "read").get("/ui/events?since=yesterday")
    assert r.status_code == 200 and "since: &#39;yesterday&#39; is not a date" in r.text


def test_serve_includes_the_dashboard_and_sends_root_to_it(project):
    with TestClient(create_app(project, authenticate=authenticate, settings=FAST)) as c:
        assert c.get("/", follow_redirects=False).headers["location"] == "/ui"
        c.cookies.set(COOKIE, "read-secret")
        assert c.get("/ui").status_code == 200


def test_events_filter_by_several_kinds_and_the_pager_keeps_them(project):
    settings = DashboardConfig(page_size=5)
    app = create_dashboard_app(project, authenticate=authenticate, settings=settings)
    with TestClient(app) as c:
        c.cookies.set(COOKIE, "read-secret")
        kinds = "kind=run.started&kind=run.succeeded"
        r = c.get(f"/ui/events?pipeline=toy&{kinds}")
        shown = re.findall(r'<span class="kind">([a-z._]+)</span>', r.text)
        assert len(shown) == 5 and set(shown) == {"run.started", "run.succeeded"}
        older = re.search(r'href="([^"]+)" rel="next"', r.text).group(1).replace("&amp;", "&")
        assert "kind=run.started&kind=run.succeeded" in older and "pipeline=toy" in older
        rest = re.findall(r'<span class="kind">([a-z._]+)</span>', c.get(older).text)
        assert len(shown) + len(rest) == 6  # 3 runs, each started and succeeded


def test_a_bad_query_parameter_is_a_page_that_names_it(client):
    r = signed_in(client, "read").get("/ui/pipelines/toy?versions_page=abc")
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
    assert "versions_page=&#39;abc&#39;" in r.text
    # the API keeps its JSON answer
    r = client.get("/v1/toy/models?limit=-1", headers={"Authorization": "Bearer read-secret"})
    assert r.status_code == 422 and r.json()["error"] == "invalid_request"

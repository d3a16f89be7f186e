"""The management API: the CLI's status, models, promote, rollback and events as JSON routes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from retrainer.engine.project import Project
from retrainer.engine.runs.registry import list_models, show_model
from retrainer.engine.runs.registry import status as status_of
from retrainer.engine.tokens import Token
from retrainer.errors import ArtifactIntegrityError
from retrainer.server import create_app
from tests.server.conftest import FAST, authenticate, bearer, trained_project

ADMIN = Token(
    id="0123456789ab",
    name="deploy-bot",
    scopes=("admin",),
    created_at=datetime(2024, 1, 1, tzinfo=UTC),
    revoked_at=None,
)


def _authenticate(secret: str) -> object | None:
    return ADMIN if secret == "bot-secret" else authenticate(secret)


BOT = {"Authorization": "Bearer bot-secret"}


@pytest.fixture
def project() -> Iterator[Project]:
    p = trained_project((11, 15))  # v1 then v2 (champion)
    yield p
    p.close()


@pytest.fixture
def client(project: Project) -> Iterator[TestClient]:
    with TestClient(create_app(project, authenticate=_authenticate, settings=FAST)) as c:
        yield c


def _served(client: TestClient) -> int | None:
    served = client.get("/v1/models", headers=bearer("read")).json()["pipelines"]["toy"]
    return None if served is None else served["version"]


def test_status_is_what_the_cli_prints(client, project):
    r = client.get("/v1/status", headers=bearer("read"))
    assert r.status_code == 200, r.text
    assert r.json() == [p.to_json() for p in status_of(project, project.clock.now())]
    assert r.json()[0]["champion"] == 2


def test_models_list_and_show_round_trip(client, project):
    r = client.get("/v1/toy/models", headers=bearer("read"))
    assert r.status_code == 200
    assert r.json() == list_models(project, "toy")
    assert [v["version"] for v in r.json()] == [1, 2]
    # limit keeps the newest and any version an alias points at
    project.store.move_alias("toy", "stable", 1, at=project.clock.now(), reason="t", actor="t")
    limited = client.get("/v1/toy/models", params={"limit": 1}, headers=bearer("read")).json()
    assert [v["version"] for v in limited] == [1, 2]
    project.store.move_alias("toy", "stable", None, at=project.clock.now(), reason="t", actor="t")
    limited = client.get("/v1/toy/models?limit=1", headers=bearer("read")).json()
    assert [v["version"] for v in limited] == [2]

    one = client.get("/v1/toy/models/1", headers=bearer("read"))
    assert one.status_code == 200
    assert one.json() == show_model(project, 1, "toy")
    assert one.json()["lineage"]["artifact"]["sha256"]


def test_unknown_pipeline_and_version_are_404s(client):
    for path in ("/v1/nope/models", "/v1/nope/models/1", "/v1/events?pipeline=nope"):
        r = client.get(path, headers=bearer("read"))
        assert r.status_code == 404, path
        assert r.json()["error"] == "no_pipeline"
    r = client.get("/v1/toy/models/99", headers=bearer("read"))
    assert (r.status_code, r.json()["error"]) == (404, "no_version")
    r = client.post("/v1/toy/promote", json={"version": 99}, headers=bearer("admin"))
    assert (r.status_code, r.json()["error"]) == (404, "no_version")
    r = client.post("/v1/nope/rollback", json={}, headers=bearer("admin"))
    assert (r.status_code, r.json()["error"]) == (404, "no_pipeline")


def test_bad_parameters_are_422s_naming_them(client):
    r = client.get("/v1/toy/models?limit=-1", headers=bearer("read"))
    assert r.status_code == 422
    assert r.json()["error"] == "invalid_request"
    assert r.json()["detail"][0]["at"] == ["query", "limit"]
    r = client.get("/v1/toy/models/abc", headers=bearer("read"))
    assert (r.status_code, r.json()["detail"][0]["at"]) == (422, ["path", "version"])
    r = client.post("/v1/toy/promote", json={"versoin": 1}, headers=bearer("admin"))
    assert r.status_code == 422
    assert {tuple(p["at"]) for p in r.json()["detail"]} == {
        ("body", "version"),
        ("body", "versoin"),
    }
    r = client.get("/v1/events?kind=model.promotd", headers=bearer("read"))
    assert r.status_code == 422
    assert r.json()["detail"] == [
        {"at": ["query", "kind"], "problem": "unknown event kind", "value": "model.promotd"}
    ]
    r = client.get("/v1/events?since=yesterday", headers=bearer("read"))
    assert (r.status_code, r.json()["detail"][0]["at"]) == (422, ["query", "since"])


def test_rollback_then_promote_move_the_alias_and_the_holder_follows(client, project):
    assert _served(client) == 2
    r = client.post("/v1/toy/rollback", headers=BOT)
    assert r.status_code == 200, r.text
    assert (r.json()["version"], r.json()["previous"]) == (1, 2)
    assert r.json()["actor"] == "api token 0123456789ab (deploy-bot)"
    assert project.store.get_alias("toy", "champion") == 1
    assert _served(client) == 1  # this worker swapped at once
    r = client.post("/v1/toy/predict", json={"x1": 1.0, "x2": 2.0}, headers=bearer("predict"))
    assert r.json()["predictions"][0]["model_version"] == 1

    r = client.post("/v1/toy/promote", json={"version": 2}, headers=BOT)
    assert r.status_code == 200, r.text
    assert (r.json()["alias"], r.json()["version"], r.json()["previous"]) == ("champion", 2, 1)
    assert project.store.get_alias("toy", "champion") == 2
    assert _served(client) == 2

    moves = project.store.alias_history("toy", "champion")
    assert [m.actor for m in moves[-2:]] == ["api token 0123456789ab (deploy-bot)"] * 2
    kinds = [e.kind for e in project.store.list_events("toy")][-2:]
    assert kinds == ["model.rolled_back", "model.promoted"]


def test_promote_to_another_alias_and_rollback_to_a_version(client, project):
    r = client.post("/v1/toy/promote", json={"version": 1, "alias": "stable"}, headers=BOT)
    assert r.status_code == 200
    assert project.store.aliases("toy") == {"champion": 2, "stable": 1}
    r = client.post("/v1/toy/rollback", json={"to": 1}, headers=bearer("admin"))
    assert r.status_code == 200
    assert r.json()["actor"] == "api token"  # a custom authenticator's token has no id
    assert project.store.get_alias("toy", "champion") == 1


def test_refused_moves_are_409s(client, project):
    r = client.post("/v1/toy/promote", json={"version": 2}, headers=BOT)
    assert (r.status_code, r.json()["error"]) == (409, "promotion_refused")
    assert r.json()["detail"] == "toy v2 is already 'champion'"
    r = client.post("/v1/toy/rollback", json={"to": 2}, headers=BOT)
    assert r.status_code == 409
    client.post("/v1/toy/rollback", headers=BOT)  # to v1: nothing earlier is left
    r = client.post("/v1/toy/rollback", headers=BOT)
    assert (r.status_code, r.json()["error"]) == (409, "promotion_refused")
    assert "no earlier blessed version" in r.json()["detail"]


def test_an_artifact_failing_its_check_is_a_409_and_the_alias_stays(client, project, monkeypatch):
    def broken(sha256: str, size: int) -> None:
        raise ArtifactIntegrityError(f"artifact {sha256[:12]} is missing")

    monkeypatch.setattr(project.artifacts, "verify", broken)
    r = client.post("/v1/toy/rollback", headers=BOT)
    assert (r.status_code, r.json()["error"]) == (409, "artifact_integrity")
    assert r.json()["detail"].startswith("refusing to point toy 'champion' at v1: its artifact")
    assert "\n" not in r.json()["detail"]
    assert project.store.get_alias("toy", "champion") == 2
    assert _served(client) == 2
    assert project.store.list_events("toy")[-1].kind == "promotion.skipped"


def test_events_filters_like_the_cli(client, project):
    client.post("/v1/toy/rollback", headers=BOT)
    every = client.get("/v1/events", headers=bearer("read")).json()
    assert len(every) == len(project.store.list_events(limit=200))
    assert every[-1]["kind"] == "model.rolled_back"
    r = client.get(
        "/v1/events",
        params={"pipeline": "toy", "kind": ["model.rolled_back", "model.promoted"]},
        headers=bearer("read"),
    )
    assert {e["kind"] for e in r.json()} <= {"model.rolled_back", "model.promoted"}
    assert r.json()[-1]["kind"] == "model.rolled_back"
    assert len(client.get("/v1/events?limit=2", headers=bearer("read")).json()) == 2
    last = every[-1]["at"]
    since = client.get("/v1/events", params={"since": last}, headers=bearer("read")).json()
    assert since and all(e["at"] >= last for e in since)
    assert client.get("/v1/events?limit=0", headers=bearer("read")).status_code == 422


def test_the_holder_of_another_worker_follows_by_polling(project):
    # two apps on one project: a move through one reaches the other at its next poll
    with (
        TestClient(create_app(project, authenticate=_authenticate, settings=FAST)) as a,
        TestClient(create_app(project, authenticate=_authenticate, settings=FAST)) as b,
    ):
        assert a.post("/v1/toy/rollback", headers=BOT).status_code == 200
        deadline = time.monotonic() + 10
        while _served(b) != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _served(b) == 1


def test_requests_are_counted_by_route_name_not_path(client):
    client.get("/v1/toy/models/98", headers=bearer("read"))
    client.get("/v1/toy/models/99", headers=bearer("read"))
    client.get("/v1/status", headers=bearer("read"))
    text = client.get("/metrics", headers=bearer("read")).text
    assert 'endpoint="models_show",pipeline="-",status="404",variant="-"} 2.0' in text
    assert 'endpoint="status",pipeline="-",status="200",variant="-"} 1.0' in text
    assert 'endpoint="99"' not in text

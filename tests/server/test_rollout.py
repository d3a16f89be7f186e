"""The server routes by the stored rollout: challenger answers, shadow copies logged beside the
champion's answers, a failing challenger never reaches the user, the stats reach the controller,
and the management API shows the rollout."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient
from scipy.stats import binom

from retrainer.engine.rollout import SERVING_KEY_PREFIX, current_rollout, health_of, observe
from retrainer.server import create_app
from tests.engine.test_routing import ROW, breaking_holder, keys, rollout_project
from tests.server.conftest import FAST, authenticate, bearer

T = datetime(2024, 1, 20, tzinfo=UTC)


def _predict(client: TestClient, key: str | None = None, body: object = ROW) -> dict:
    headers = bearer("predict") | ({"X-Request-Key": key} if key is not None else {})
    r = client.post("/v1/toy/predict", json=body, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def _published(project) -> list[dict]:
    return [
        v for k, v in project.store.list_state("toy").items() if k.startswith(SERVING_KEY_PREFIX)
    ]


def test_ab_the_key_picks_the_variant_and_the_log_and_stats_follow_the_answers():
    project = rollout_project("ab")
    answered: dict[str, tuple[int, str]] = {}
    with TestClient(create_app(project, authenticate=authenticate, settings=FAST)) as client:
        for k in keys(200):
            (p,) = _predict(client, k)["predictions"]
            answered[p["prediction_id"]] = (p["model_version"], p["variant"])
            # sticky: the same key again gets the same variant
            (again,) = _predict(client, k)["predictions"]
            assert (again["model_version"], again["variant"]) == answered[p["prediction_id"]]
            answered[again["prediction_id"]] = (again["model_version"], again["variant"])
        metrics = client.get("/metrics", headers=bearer("read")).text
    assert set(answered.values()) == {(1, "champion"), (2, "challenger")}
    logged = project.log_store().predictions("toy", None, None)
    assert len(logged) == len(answered) == 400
    for row in logged.itertuples():
        assert (row.model_version, row.variant) == answered[row.id]
    assert logged["request_key"].notna().all()
    assert 'retrainer_model_version{pipeline="toy",variant="challenger"} 2.0' in metrics
    challenger_rows = sum(v == (2, "challenger") for v in answered.values())
    assert (
        f'retrainer_predictions_total{{pipeline="toy",variant="challenger"}} '
        f"{float(challenger_rows)}" in metrics
    )
    # the graceful stop published this worker's stats: what the controller's guards read
    state, _ = current_rollout(project, "toy")
    seen = observe(project, state, now=T)
    assert seen.candidate.requests == challenger_rows
    assert seen.champion.requests == 400 - challenger_rows
    assert seen.candidate.errors == seen.champion.errors == 0


def test_requests_without_a_key_split_at_random_within_binomial_bounds():
    project = rollout_project("ab")
    with TestClient(create_app(project, authenticate=authenticate, settings=FAST)) as client:
        variants = [_predict(client)["predictions"][0]["variant"] for _ in range(400)]
    n = variants.count("challenger")
    low, high = binom.interval(0.999, 400, 0.5)
    assert low <= n <= high
    logged = project.log_store().predictions("toy", None, None)
    assert logged["request_key"].isna().all()  # the random routing key is not logged as one


def test_shadow_the_user_gets_the_champion_and_both_rows_are_logged_paired():
    project = rollout_project("shadow")
    with TestClient(create_app(project, authenticate=authenticate, settings=FAST)) as client:
        answers = []
        for i in range(20):
            answers += _predict(client, f"user-{i}", body=[ROW, {"x1": -2.0, "x2": 1.0}])[
                "predictions"
            ]
        metrics_text = None
        for _ in range(100):  # the shadow copies are scored after the answers
            metrics_text = client.get("/metrics", headers=bearer("read")).text
            if 'retrainer_predictions_total{pipeline="toy",variant="shadow"} 40.0' in metrics_text:
                break
    assert {(a["model_version"], a["variant"]) for a in answers} == {(1, "champion")}
    assert metrics_text is not None and "retrainer_shadow_dropped_total 0.0" in metrics_text
    logged = project.log_store().predictions("toy", None, None)
    champion = logged[logged["variant"] == "champion"]
    shadow = logged[logged["variant"] == "shadow"]
    assert len(champion) == len(shadow) == 40
    assert set(champion["id"]) == {a["prediction_id"] for a in answers}
    assert set(shadow["model_version"]) == {2}
    assert set(shadow["shadow_of"]) == set(champion["id"])  # each paired with its answer
    assert not set(shadow["id"]) & set(champion["id"])  # own prediction ids
    assert champion["shadow_of"].isna().all()
    pairs = shadow.merge(champion, left_on="shadow_of", right_on="id", suffixes=("", "_c"))
    assert (pairs["x1"] == pairs["x1_c"]).all() and (
        pairs["request_key"] == pairs["request_key_c"]
    ).all()
    # the shadow's requests are counted for the guards, off the champion's
    shadow_health = health_of(_published(project), version=2, variants=["shadow"])
    assert (shadow_health.requests, shadow_health.errors) == (20, 0)


def test_a_failing_challenger_is_answered_by_the_champion_and_counted_for_the_guard():
    project = rollout_project("ab")
    holder = breaking_holder(project, poll_interval=FAST.poll_interval)
    app = create_app(project, authenticate=authenticate, settings=FAST, holder=holder)
    with TestClient(app) as client:
        answers = [_predict(client, k)["predictions"][0] for k in keys(100)]
        metrics = client.get("/metrics", headers=bearer("read")).text
    assert {(a["model_version"], a["variant"]) for a in answers} == {(1, "champion")}
    routed = sum(holder.pick("toy", k)[0].variant == "challenger" for k in keys(100))
    assert routed > 20
    assert (
        f'retrainer_model_errors_total{{pipeline="toy",variant="challenger"}} {float(routed)}'
        in metrics
    )
    state, _ = current_rollout(project, "toy")
    seen = observe(project, state, now=T)
    assert (seen.candidate.requests, seen.candidate.errors) == (routed, routed)
    assert seen.champion.requests == 100 and seen.champion.errors == 0
    logged = project.log_store().predictions("toy", None, None)
    assert set(logged["variant"]) == {"champion"} and len(logged) == 100


def test_the_rollout_route_answers_the_stored_state():
    project = rollout_project("canary")
    with TestClient(create_app(project, authenticate=authenticate, settings=FAST)) as client:
        r = client.get("/v1/toy/rollout", headers=bearer("read"))
        assert r.status_code == 200, r.text
        body = r.json()
        assert {k: body[k] for k in ("status", "strategy", "candidate", "champion", "share")} == {
            "status": "running",
            "strategy": "canary",
            "candidate": 2,
            "champion": 1,
            "share": 0.05,
        }
        assert {"step", "started_at", "reason", "evidence", "test", "revision"} <= set(body)
        r = client.get("/v1/nope/rollout", headers=bearer("read"))
        assert (r.status_code, r.json()["error"]) == (404, "no_pipeline")


def test_the_rollout_route_is_a_404_naming_why_for_a_pipeline_that_never_had_one(client):
    r = client.get("/v1/toy/rollout", headers=bearer("read"))
    assert r.status_code == 404
    assert r.json()["error"] == "no_rollout"
    assert "never had a rollout" in r.json()["detail"]

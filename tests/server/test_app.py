"""The prediction and feedback API: answers, validation, limits, the log it writes."""

from __future__ import annotations

from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from retrainer.config import ServeConfig
from retrainer.engine.monitoring.online import online_performance
from retrainer.server import create_app
from tests.server.conftest import FAST, authenticate, bearer, trained_project

ROW = {"x1": 0.5, "x2": -1.0}


def test_predict_one_row_answers_prediction_score_id_version_and_variant(client: TestClient):
    r = client.post("/v1/toy/predict", json=ROW, headers=bearer("predict"))
    assert r.status_code == 200, r.text
    (answer,) = r.json()["predictions"]
    assert answer["prediction"] in (0, 1)
    assert 0.0 <= answer["score"] <= 1.0
    assert set(answer["probabilities"]) == {"0", "1"}
    assert answer["probabilities"]["1"] == pytest.approx(answer["score"])
    assert answer["model_version"] == 1
    assert answer["variant"] == "champion"
    assert len(answer["prediction_id"]) == 32


def test_predict_a_batch_answers_each_row_in_order_with_distinct_ids(client: TestClient):
    rows = [{"x1": -3.0, "x2": -3.0}, {"x1": 3.0, "x2": 3.0}, {"x1": 3, "x2": 3}]
    r = client.post("/v1/toy/predict", json=rows, headers=bearer("predict"))
    assert r.status_code == 200, r.text
    answers = r.json()["predictions"]
    assert [a["prediction"] for a in answers] == [0, 1, 1]  # integers are numbers too
    assert len({a["prediction_id"] for a in answers}) == 3


@pytest.mark.parametrize(
    ("body", "row", "column", "value", "words"),
    [
        ({"x1": 1.0}, 0, "x2", None, "missing"),
        ({"x1": 1.0, "x2": 2.0, "x3": 7}, 0, "x3", 7, "not a feature"),
        ({"x1": "high", "x2": 2.0}, 0, "x1", "high", "must be a number"),
        ({"x1": True, "x2": 2.0}, 0, "x1", True, "must be a number"),
        ([ROW, {"x1": 1.0, "x2": [1]}], 1, "x2", [1], "must be a number"),
        ([ROW, 5], 1, None, 5, "must be an object"),
    ],
)
def test_a_bad_row_is_a_422_naming_row_column_and_value(client, body, row, column, value, words):
    r = client.post("/v1/toy/predict", json=body, headers=bearer("predict"))
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_rows"
    (problem,) = [p for p in r.json()["detail"] if p["column"] == column]
    assert (problem["row"], problem["value"]) == (row, value)
    assert words in problem["problem"]


def test_a_body_that_is_not_json_is_a_422(client: TestClient):
    r = client.post("/v1/toy/predict", content=b"{nope", headers=bearer("predict"))
    assert r.status_code == 422
    assert r.json()["error"] == "invalid_json"


def test_unknown_pipeline_is_404_and_no_champion_is_503_with_a_clear_message():
    project = trained_project(runs=())
    with TestClient(create_app(project, authenticate=authenticate, settings=FAST)) as client:
        r = client.post("/v1/other/predict", json=ROW, headers=bearer("predict"))
        assert r.status_code == 404
        r = client.post("/v1/toy/predict", json=ROW, headers=bearer("predict"))
        assert r.status_code == 503
        assert "no 'champion' yet" in r.json()["detail"]
        assert client.get("/readyz").status_code == 200  # nothing to load: ready


def test_limits_on_body_size_and_rows_per_request():
    settings = ServeConfig(max_body_bytes=200, max_rows=2, flush_interval=0.05)
    with TestClient(
        create_app(trained_project(), authenticate=authenticate, settings=settings)
    ) as client:
        r = client.post("/v1/toy/predict", json=[ROW] * 3, headers=bearer("predict"))
        assert r.status_code == 413
        assert "max_rows" in r.json()["detail"]
        r = client.post("/v1/toy/predict", json=[ROW] * 20, headers=bearer("predict"))
        assert r.status_code == 413
        assert "200" in r.json()["detail"]
        assert client.post("/v1/toy/predict", json=[ROW] * 2, headers=bearer("predict")).is_success


def test_health_ready_models_and_metrics(client: TestClient):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["pipelines"] == {"toy": True}
    models = client.get("/v1/models", headers=bearer("read")).json()
    assert models["pipelines"]["toy"]["version"] == 1
    client.post("/v1/toy/predict", json=[ROW, ROW], headers=bearer("predict"))
    client.post("/v1/toy/predict", json={"x1": "bad"}, headers=bearer("predict"))
    text = client.get("/metrics", headers=bearer("read")).text
    assert (
        'retrainer_requests_total{endpoint="predict",pipeline="toy",status="200",variant="champion"} 1.0'
        in text
    )
    assert (
        'retrainer_requests_total{endpoint="predict",pipeline="toy",status="422",variant="champion"} 1.0'
        in text
    )
    assert 'retrainer_predictions_total{pipeline="toy",variant="champion"} 2.0' in text
    assert 'retrainer_model_version{pipeline="toy",variant="champion"} 1.0' in text
    assert "retrainer_request_seconds_bucket" in text
    assert 'retrainer_log_queue_rows{kind="predictions"}' in text


def test_predictions_and_feedback_reach_the_log_the_online_metrics_read():
    project = trained_project()
    n = 30
    with TestClient(create_app(project, authenticate=authenticate, settings=FAST)) as client:
        rows = [{"x1": float(i % 5) - 2, "x2": 0.0} for i in range(n)]
        answers = []
        for i in range(0, n, 10):
            r = client.post(
                "/v1/toy/predict",
                json=rows[i : i + 10],
                headers=bearer("predict") | {"X-Request-Key": "u1"},
            )
            answers += r.json()["predictions"]
        feedback = [
            {"prediction_id": a["prediction_id"], "outcome": a["prediction"]} for a in answers
        ]
        feedback[0]["outcome"] = 1 - feedback[0]["outcome"]  # one wrong answer
        r = client.post(
            "/v1/toy/feedback",
            json={"feedback": [*feedback, {"prediction_id": "nobody", "outcome": 1}]},
            headers=bearer("feedback"),
        )
        assert r.json() == {"accepted": n, "unknown": ["nobody"]}
    # the app has stopped: everything is flushed
    logs = project.log_store()
    logged = logs.predictions("toy", None, None)
    assert len(logged) == n and logged["id"].is_unique
    assert set(logged["id"]) == {a["prediction_id"] for a in answers}
    assert set(logged["variant"]) == {"champion"} and set(logged["request_key"]) == {"u1"}
    assert {"x1", "x2", "score", "model_version"} <= set(logged.columns)
    windows = online_performance(
        logs,
        "toy",
        ["accuracy"],
        start=datetime(2024, 1, 19),
        end=datetime(2024, 1, 21),
        every="1d",
        now=datetime(2024, 1, 21),
    )
    (window,) = [w for w in windows if w.n_rows]
    assert (window.n_rows, window.n_labelled) == (n, n)
    assert window.value("accuracy") == pytest.approx((n - 1) / n)


def test_feedback_for_ids_another_worker_logged_is_accepted_from_the_log():
    project = trained_project()
    with TestClient(create_app(project, authenticate=authenticate, settings=FAST)) as first:
        ids = [
            a["prediction_id"]
            for a in first.post(
                "/v1/toy/predict", json=[ROW] * 3, headers=bearer("predict")
            ).json()["predictions"]
        ]
    with TestClient(create_app(project, authenticate=authenticate, settings=FAST)) as second:
        r = second.post(
            "/v1/toy/feedback",
            json=[{"prediction_id": i, "outcome": 1} for i in ids],
            headers=bearer("feedback"),
        )
        assert r.json() == {"accepted": 3, "unknown": []}


@pytest.mark.parametrize(
    "body",
    [
        {"feedback": [{"prediction_id": "a"}]},
        {"feedback": [{"prediction_id": "a", "outcome": 1, "x": 2}]},
        7,
    ],
)
def test_malformed_feedback_is_a_422(client: TestClient, body):
    r = client.post("/v1/toy/feedback", json=body, headers=bearer("feedback"))
    assert r.status_code == 422
    assert r.json()["error"] == "invalid_feedback"


def test_the_openapi_document_lists_the_routes(client: TestClient):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/{pipeline}/predict", "/v1/{pipeline}/feedback", "/metrics"} <= set(paths)


def test_feedback_keeps_its_own_time_in_utc():
    project = trained_project()
    with TestClient(create_app(project, authenticate=authenticate, settings=FAST)) as client:
        (a,) = client.post("/v1/toy/predict", json=ROW, headers=bearer("predict")).json()[
            "predictions"
        ]
        r = client.post(
            "/v1/toy/feedback",
            json=[
                {
                    "prediction_id": a["prediction_id"],
                    "outcome": 1,
                    "timestamp": "2024-01-20T14:00:00+02:00",
                }
            ],
            headers=bearer("feedback"),
        )
        assert r.json()["accepted"] == 1
    (at,) = project.log_store().feedback(None, None)["timestamp"]
    assert at == datetime(2024, 1, 20, 12)


def test_a_null_the_model_cannot_take_is_a_422_naming_row_and_column(client: TestClient):
    rows = [ROW, {"x1": None, "x2": 1.0}]
    r = client.post("/v1/toy/predict", json=rows, headers=bearer("predict"))
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_rows"
    (problem,) = r.json()["detail"]
    assert (problem["row"], problem["column"]) == (1, "x1")
    assert "cannot take missing values" in problem["problem"]


@pytest.mark.parametrize(
    "literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"1" + b"0" * 400]
)
def test_nan_infinity_and_too_large_numbers_are_a_422_naming_the_column(client, literal):
    body = b'[{"x1": 0.5, "x2": 1.0}, {"x1": 0.5, "x2": ' + literal + b"}]"
    r = client.post("/v1/toy/predict", content=body, headers=bearer("predict"))
    assert r.status_code == 422, r.text
    (problem,) = r.json()["detail"]
    assert (problem["row"], problem["column"]) == (1, "x2")


def test_readyz_says_no_champion_for_a_pipeline_without_one():
    with TestClient(
        create_app(trained_project(runs=()), authenticate=authenticate, settings=FAST)
    ) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200  # nothing to load: ready, as documented
        assert ready.json()["pipelines"] == {"toy": "no champion"}

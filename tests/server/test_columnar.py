"""Columnar predict bodies: Arrow IPC streams and Parquet files in, Arrow or JSON out."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from retrainer.config import ServeConfig
from retrainer.server import create_app
from tests.server.conftest import FAST, authenticate, bearer, trained_project

ARROW = "application/vnd.apache.arrow.stream"
PARQUET = "application/vnd.apache.parquet"
ROWS = [{"x1": -3.0, "x2": -3.0}, {"x1": 3.0, "x2": 3.0}, {"x1": 0.5, "x2": None}]


def arrow_body(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as stream:
        stream.write_table(table)
    return bytes(sink.getvalue())


def parquet_body(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def post(client: TestClient, body: bytes, media: str, **headers: str):
    return client.post(
        "/v1/toy/predict",
        content=body,
        headers=bearer("predict") | {"Content-Type": media} | headers,
    )


BODIES = {ARROW: arrow_body, PARQUET: parquet_body}


@pytest.mark.parametrize("media", [ARROW, PARQUET])
def test_a_columnar_batch_answers_as_the_same_rows_in_json(client: TestClient, media):
    # the third row's null: a model without an imputer cannot take it; leave it out here
    rows = [*ROWS[:2], {"x1": 3, "x2": 3}]
    table = pa.table({"x1": [-3.0, 3.0, 3.0], "x2": pa.array([-3, 3, 3], pa.int64())})
    r = post(client, BODIES[media](table), media)
    assert r.status_code == 200, r.text
    answers = r.json()["predictions"]
    by_json = client.post("/v1/toy/predict", json=rows, headers=bearer("predict")).json()
    strip = [{k: v for k, v in a.items() if k != "prediction_id"} for a in answers]
    assert strip == [
        {k: v for k, v in a.items() if k != "prediction_id"} for a in by_json["predictions"]
    ]
    assert [a["prediction"] for a in answers] == [0, 1, 1]
    assert len({a["prediction_id"] for a in answers}) == 3


def test_an_arrow_answer_when_accept_asks_for_it(client: TestClient):
    table = pa.table({"x1": [-3.0, 3.0], "x2": [-3.0, 3.0]})
    r = post(client, arrow_body(table), ARROW, Accept=ARROW)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(ARROW)
    out = pa.ipc.open_stream(r.content).read_all().to_pylist()
    assert [sorted(row) for row in out] == [
        sorted(
            [
                "prediction_id",
                "prediction",
                "score",
                "model_version",
                "variant",
                "proba_0",
                "proba_1",
            ]
        )
    ] * 2
    assert [row["prediction"] for row in out] == [0, 1]
    assert all(row["model_version"] == 1 and row["variant"] == "champion" for row in out)
    assert all(row["score"] == pytest.approx(row["proba_1"]) for row in out)
    assert len({row["prediction_id"] for row in out}) == 2
    # a JSON body can ask for an Arrow answer too
    r = client.post("/v1/toy/predict", json=ROWS[:2], headers=bearer("predict") | {"Accept": ARROW})
    assert pa.ipc.open_stream(r.content).read_all().num_rows == 2


@pytest.mark.parametrize("media", [ARROW, PARQUET])
@pytest.mark.parametrize(
    ("columns", "row", "column", "value", "words"),
    [
        ({"x1": [1.0, 2.0]}, None, "x2", None, "missing"),
        ({"x1": [1.0, 2.0], "x2": [1.0, 2.0], "x3": [7, 8]}, None, "x3", None, "not a feature"),
        ({"x1": [1.0, 2.0], "x2": ["2.0", "high"]}, 0, "x2", "2.0", "must be a number"),
        ({"x1": [1.0, 2.0], "x2": [True, False]}, 0, "x2", True, "must be a number"),
        ({"x1": [1.0, float("inf")], "x2": [1.0, 2.0]}, 1, "x1", "Infinity", "finite"),
        ({"x1": [1.0, float("nan")], "x2": [1.0, 2.0]}, 1, "x1", "NaN", "NaN"),
    ],
)
def test_a_bad_column_is_a_422_naming_it(client, media, columns, row, column, value, words):
    r = post(client, BODIES[media](pa.table(columns)), media)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_rows"
    problem = next(p for p in r.json()["detail"] if p["column"] == column)
    assert (problem["row"], problem["value"]) == (row, value)
    assert words in problem["problem"]


def test_a_null_the_model_cannot_take_is_a_422_naming_row_and_column(client: TestClient):
    r = post(client, arrow_body(pa.table({"x1": [0.5, 1.0], "x2": [1.0, None]})), ARROW)
    assert r.status_code == 422, r.text
    (problem,) = r.json()["detail"]
    assert (problem["row"], problem["column"]) == (1, "x2")


@pytest.mark.parametrize("media", [ARROW, PARQUET])
def test_a_body_that_is_not_one_is_a_422(client: TestClient, media):
    r = post(client, b"not columns", media)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_body"
    empty = pa.table({"x1": pa.array([], pa.float64()), "x2": pa.array([], pa.float64())})
    r = post(client, BODIES[media](empty), media)
    assert (r.status_code, r.json()["detail"]) == (422, "the batch is empty")


@pytest.mark.parametrize("media", [ARROW, PARQUET])
def test_limits_on_rows_and_bytes_apply_to_columnar_bodies(media):
    settings = ServeConfig(max_body_bytes=4000, max_rows=3, flush_interval=0.05)
    with TestClient(
        create_app(trained_project(), authenticate=authenticate, settings=settings)
    ) as client:
        body = BODIES[media](pa.table({"x1": [0.0] * 4, "x2": [0.0] * 4}))
        r = post(client, body, media)
        assert r.status_code == 413, r.text
        assert "max_rows" in r.json()["detail"]
        big = BODIES[media](pa.table({"x1": [float(i) for i in range(3000)], "x2": [0.0] * 3000}))
        assert len(big) > 4000
        r = post(client, big, media)
        assert r.status_code == 413
        assert "4000" in r.json()["detail"]
        ok = post(client, BODIES[media](pa.table({"x1": [0.0] * 3, "x2": [0.0] * 3})), media)
        assert ok.status_code == 200, ok.text


def test_columnar_predictions_are_logged_and_counted_like_json_ones():
    project = trained_project()
    with TestClient(create_app(project, authenticate=authenticate, settings=FAST)) as client:
        table = pa.table({"x1": [float(i) - 2 for i in range(5)], "x2": [0.0] * 5})
        r = post(client, arrow_body(table), ARROW, **{"X-Request-Key": "u1"})
        ids = [a["prediction_id"] for a in r.json()["predictions"]]
        r = client.post(
            "/v1/toy/feedback",
            json=[{"prediction_id": i, "outcome": 1} for i in ids],
            headers=bearer("feedback"),
        )
        assert r.json() == {"accepted": 5, "unknown": []}
        metrics = client.get("/metrics", headers=bearer("read")).text
        assert 'retrainer_predictions_total{pipeline="toy",variant="champion"} 5.0' in metrics
    logged = project.log_store().predictions("toy", None, None)
    assert sorted(logged["id"]) == sorted(ids)
    assert set(logged["request_key"]) == {"u1"}
    assert sorted(logged["x1"]) == [-2.0, -1.0, 0.0, 1.0, 2.0]
    assert set(logged["variant"]) == {"champion"}

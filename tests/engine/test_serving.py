"""Serving: the model holder follows the alias (hot swap), keeps a model that failed to load's
predecessor, and the batch writer loses no row."""

from __future__ import annotations

import math
import threading
import time
from datetime import UTC, datetime

import fsspec
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from retrainer.adapters.logstore import InMemoryLogStore
from retrainer.adapters.logstore.writer import BatchWriter
from retrainer.core.clock import SimulatedClock
from retrainer.engine.runs.registry import promote, rollback
from retrainer.engine.serving import (
    ModelHolder,
    RowError,
    ServedModel,
    feature_specs,
    predict_frame,
    rows_frame,
)
from retrainer.server import create_app
from tests.server.conftest import FAST, authenticate, bearer, trained_project

CLOCK = SimulatedClock(datetime(2024, 1, 25, tzinfo=UTC))


def test_holder_serves_the_champion_and_swaps_when_it_moves():
    project = trained_project(runs=(11, 15))
    holder = ModelHolder(project)
    assert [s.version for s in holder.refresh()] == [2]
    assert holder.refresh() == []  # nothing moved: nothing loaded
    old = holder.get("toy")
    rollback(project, clock=CLOCK)
    assert [s.version for s in holder.refresh()] == [1]
    assert holder.get("toy").version == 1
    assert old.version == 2 and old.model is not holder.get("toy").model  # in flight: old one
    assert holder.ready() == {"toy": True}


def test_a_version_that_fails_to_load_keeps_the_old_one_serving_and_records_one_event():
    project = trained_project(runs=(11, 15))
    rollback(project, clock=CLOCK)  # champion v1
    holder = ModelHolder(project, retry_interval=0.0)
    holder.refresh()
    v2 = project.store.get_version("toy", 2)
    promote(project, 2, clock=CLOCK)
    with fsspec.open(project.artifacts.url(v2.artifact_sha256), "wb") as f:
        f.write(b"not a model")  # damaged after its promotion
    holder.refresh()
    holder.refresh()  # retried: still broken, no second event
    assert holder.get("toy").version == 1
    assert holder.ready() == {"toy": False}
    events = [e for e in project.store.list_events("toy") if e.kind == "model.load_failed"]
    assert len(events) == 1
    assert events[0].version == 2 and events[0].data["serving"] == 1
    assert "v1 keeps serving" in events[0].message


def test_the_failed_load_alerts_by_default():
    from retrainer.engine.control.alerts import DEFAULT_SEVERITIES

    assert DEFAULT_SEVERITIES["model.load_failed"] == "critical"


def test_hot_swap_under_concurrent_requests_fails_none_and_answers_only_alias_targets():
    project = trained_project(runs=(11, 15, 19))
    targets = {3}
    failures: list[str] = []
    versions: list[int] = []
    stop = threading.Event()
    with TestClient(create_app(project, authenticate=authenticate, settings=FAST)) as client:

        def load() -> None:
            while not stop.is_set():
                r = client.post(
                    "/v1/toy/predict", json={"x1": 0.1, "x2": 0.2}, headers=bearer("predict")
                )
                if r.status_code != 200:
                    failures.append(r.text)
                else:
                    versions.append(r.json()["predictions"][0]["model_version"])

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            for i in range(20):
                if i % 2 == 0:
                    targets.add(rollback(project, clock=CLOCK).version)
                else:
                    targets.add(promote(project, 3, clock=CLOCK).version)
                time.sleep(0.1)
        finally:
            stop.set()
            for t in threads:
                t.join()
        served_at_end = client.get("/v1/models", headers=bearer("read")).json()
    assert failures == []
    assert len(versions) > 40
    assert set(versions) <= targets
    assert len(set(versions)) >= 2  # the swaps reached the requests
    assert served_at_end["pipelines"]["toy"]["version"] == project.store.get_alias(
        "toy", "champion"
    )
    # every answer was logged, with the version that gave it
    logged = project.log_store().predictions("toy", None, None)
    assert sorted(logged["model_version"].tolist()) == sorted(versions)


def test_rows_frame_keeps_training_dtypes():
    specs = feature_specs(
        ["a", "b", "c", "d"], {"a": "int64", "b": "float32", "c": "bool", "d": "object"}
    )
    frame = rows_frame(
        specs, [{"a": 1, "b": 2, "c": True, "d": "x"}, {"a": 2.0, "b": None, "c": False, "d": None}]
    )
    assert frame.dtypes.astype(str).tolist() == ["int64", "float32", "bool", "object"]
    with pytest.raises(RowError, match="column 'a' must be an integer"):
        rows_frame(specs, [{"a": 1.5, "b": 2, "c": True, "d": "x"}])
    with pytest.raises(RowError, match="column 'c' must not be null"):
        rows_frame(specs, [{"a": 1, "b": 2, "c": None, "d": "x"}])


def _rows(n: int, start: int = 0) -> list[dict]:
    return [
        {
            "id": f"r{i}",
            "timestamp": datetime(2024, 1, 1, 12),
            "pipeline": "p",
            "model_version": 1,
            "prediction": i % 2,
        }
        for i in range(start, start + n)
    ]


def test_writer_after_n_submits_and_close_holds_exactly_n_rows():
    store = InMemoryLogStore()
    writer = BatchWriter(store.append_predictions, flush_interval=0.01, flush_rows=7)
    threads = [
        threading.Thread(
            target=lambda k=k: [writer.submit(_rows(3, k * 300 + 3 * j)) for j in range(100)]
        )
        for k in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    ids = store.predictions("p", None, None)["id"]
    assert len(ids) == 1200 and ids.is_unique
    assert writer.written_rows == 1200 and writer.depth == 0


def test_writer_refuses_rows_when_full_and_counts_them():
    gate = threading.Event()

    def slow(frame: pd.DataFrame) -> None:
        gate.wait()

    writer = BatchWriter(slow, flush_interval=0.01, max_rows=5, wait=0.05)
    assert writer.submit(_rows(5))
    time.sleep(0.05)  # the thread is stuck in slow()
    assert not writer.submit(_rows(1))
    assert writer.rejected_rows == 1
    gate.set()
    writer.close()
    assert writer.written_rows == 5


def test_writer_retries_a_failed_append():
    store = InMemoryLogStore()
    calls = []

    def flaky(frame: pd.DataFrame):
        calls.append(len(frame))
        if len(calls) == 1:
            raise OSError("disk full")
        return store.append_predictions(frame)

    writer = BatchWriter(flaky, flush_interval=60)
    writer.submit(_rows(4))
    assert writer.flush() == 0 and writer.failed_flushes == 1
    writer.close()
    assert len(store.predictions("p", None, None)) == 4


def _served_on_two_features(model) -> ServedModel:
    """``model`` fitted on x1, x2 (float64) as a served model."""
    X = pd.DataFrame({"x1": [0.0, 1.0, 2.0, 3.0], "x2": [1.0, 0.0, 1.0, 0.0]})
    model.fit(X, [0, 0, 1, 1])
    features = feature_specs(["x1", "x2"], {"x1": "float64", "x2": "float64"})
    return ServedModel("toy", 1, model, features, datetime(2024, 1, 1))


def test_missing_values_a_model_cannot_take_are_a_row_error_naming_row_and_column():
    served = _served_on_two_features(LogisticRegression())
    frame = rows_frame(served.features, [{"x1": 1.0, "x2": 0.0}, {"x1": 2.0, "x2": None}])
    with pytest.raises(RowError) as caught:
        predict_frame(served, frame)
    assert [(p["row"], p["column"]) for p in caught.value.problems] == [(1, "x2")]
    assert "row 1: column 'x2' is missing" in str(caught.value)
    assert "cannot take missing values" in str(caught.value)


def test_a_model_with_an_imputer_still_takes_missing_values():
    served = _served_on_two_features(make_pipeline(SimpleImputer(), LogisticRegression()))
    frame = rows_frame(served.features, [{"x1": 2.0, "x2": None}])
    assert len(predict_frame(served, frame)) == 1


@pytest.mark.parametrize(
    ("value", "dtype", "words"),
    [
        (math.nan, "float64", "NaN"),
        (math.inf, "float64", "finite"),
        (-math.inf, "float64", "finite"),
        (10**400, "float64", "finite"),
        (1e39, "float32", "finite"),
        (10**30, "int64", "out of range"),
        (math.inf, "int64", "must be an integer"),
    ],
)
def test_numbers_that_do_not_fit_the_dtype_are_row_errors_naming_the_column(value, dtype, words):
    features = feature_specs(["a", "b"], {"a": "float64", "b": dtype})
    with pytest.raises(RowError) as caught:
        rows_frame(features, [{"a": 1.0, "b": 1.0}, {"a": 1.0, "b": value}])
    (problem,) = caught.value.problems
    assert (problem["row"], problem["column"]) == (1, "b")
    assert words in problem["problem"]


def test_readiness_status_says_no_champion_for_a_pipeline_without_one():
    holder = ModelHolder(trained_project(runs=()))
    holder.refresh()
    assert holder.ready() == {"toy": True}  # nothing to load: it does not hold readiness back
    assert holder.status() == {"toy": "no champion"}
    holder = ModelHolder(trained_project())
    assert holder.status() == {"toy": False}  # not polled yet
    holder.refresh()
    assert holder.status() == {"toy": True}


def test_a_row_error_message_counts_the_problems_after_the_first():
    features = feature_specs(["a", "b"], {"a": "float64", "b": "float64"})
    with pytest.raises(RowError, match=r"^row 0: column 'a' must be a number .* \(and 2 more"):
        rows_frame(features, [{"a": "x", "b": "y"}, {"a": "z", "b": 1.0}])

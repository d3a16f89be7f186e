"""Online performance use cases: logging files, delayed labels, windows, the trigger's view."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from retrainer.adapters.logstore import InMemoryLogStore, LogStore, ParquetLogStore
from retrainer.core.metrics import get_metric
from retrainer.core.performance import get_online_metric, make_rate_metric
from retrainer.core.windows import parse_duration
from retrainer.engine.monitoring.online import (
    log_feedback,
    log_predictions,
    online_performance,
    recent_performance,
    recent_performance_many,
)
from retrainer.errors import ConfigError, DataError, SourceError

D1 = datetime(2024, 1, 1)


@pytest.fixture(params=["parquet", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> LogStore:
    if request.param == "parquet":
        return ParquetLogStore(tmp_path / "logs")
    return InMemoryLogStore()


def _ads_log(store: LogStore, n_per_day: int = 10, days: int = 3, seed: int = 0) -> pd.DataFrame:
    """Impressions every hour-ish; a click arrives 2 hours after its impression, or never."""
    rng = np.random.default_rng(seed)
    n = n_per_day * days
    times = pd.Timestamp("2024-01-01") + pd.to_timedelta(
        np.repeat(np.arange(days), n_per_day) * 24 * 60 + np.tile(np.arange(n_per_day) * 60, days),
        unit="min",
    )
    score = rng.random(n)
    clicks = (rng.random(n) < score).astype(int)
    predictions = pd.DataFrame(
        {
            "id": [f"imp{i}" for i in range(n)],
            "timestamp": times,
            "pipeline": "ads",
            "model_version": 1,
            "prediction": (score > 0.5).astype(int),
            "score": score,
        }
    )
    store.append_predictions(predictions)
    store.append_feedback(
        pd.DataFrame(
            {"id": predictions["id"], "timestamp": times + pd.Timedelta(hours=2), "outcome": clicks}
        )
    )
    return predictions.assign(outcome=clicks, feedback_at=times + pd.Timedelta(hours=2))


def test_windows_fill_in_as_feedback_arrives(store: LogStore) -> None:
    truth = _ads_log(store)
    kwargs: dict[str, Any] = {
        "start": D1,
        "end": datetime(2024, 1, 4),
        "every": "1d",
        "min_samples": 5,
    }
    # on day 2 at 05:00, day 1's feedback has all arrived, day 2's partly, day 3's not at all
    now = datetime(2024, 1, 2, 5)
    day1, day2, day3 = online_performance(store, "ads", ["ctr", "accuracy"], now=now, **kwargs)
    assert (day1.n_rows, day1.n_labelled, day1.status) == (10, 10, "ok")
    assert day1.value("ctr") == pytest.approx(truth["outcome"][:10].mean())
    assert (day2.n_rows, day2.n_labelled, day2.status) == (10, 4, "insufficient_data")
    assert day2.value("ctr") is None
    assert (day3.n_rows, day3.n_labelled) == (10, 0)
    # two days later everything has arrived
    later = online_performance(
        store, "ads", ["ctr", "accuracy"], now=datetime(2024, 1, 6), **kwargs
    )
    for w, day in zip(later, range(3), strict=True):
        rows = truth.iloc[day * 10 : (day + 1) * 10]
        assert w.n_labelled == 10
        assert w.value("ctr") == pytest.approx(rows["outcome"].mean())
        assert w.value("accuracy") == pytest.approx((rows["prediction"] == rows["outcome"]).mean())


def test_probability_metrics_read_the_logged_score(store: LogStore) -> None:
    truth = _ads_log(store)
    [w] = online_performance(
        store,
        "ads",
        ["roc_auc", "log_loss"],
        start=D1,
        end=datetime(2024, 1, 4),
        every="3d",
        origin=D1,
        now=datetime(2024, 1, 9),
    )
    assert w.value("roc_auc") == pytest.approx(
        get_metric("roc_auc").fn(
            truth["outcome"].to_numpy(), truth["prediction"].to_numpy(), truth["score"].to_numpy()
        )
    )
    assert w.result("log_loss").n == 30


def test_a_probability_metric_without_logged_scores_is_a_config_error(store: LogStore) -> None:
    store.append_predictions(
        pd.DataFrame(
            {"id": ["a"], "timestamp": [D1], "pipeline": "p", "model_version": 1, "prediction": [1]}
        )
    )
    with pytest.raises(
        ConfigError, match=r"roc_auc need the predicted probability.*'p'.*no 'score'"
    ):
        online_performance(
            store, "p", ["roc_auc"], start=D1, end=datetime(2024, 1, 2), every="1d", now=D1
        )


def test_recent_performance_is_what_a_ctr_trigger_reads(store: LogStore) -> None:
    truth = _ads_log(store, n_per_day=24)
    now = datetime(2024, 1, 3, 12)
    w = recent_performance(store, "ads", ["ctr"], last="1d", now=now, min_samples=10)
    window = truth[(truth["timestamp"] >= now - timedelta(days=1)) & (truth["timestamp"] < now)]
    labelled = window[window["feedback_at"] <= now]
    assert w.start == datetime(2024, 1, 2, 12, tzinfo=UTC)
    assert (w.n_rows, w.n_labelled) == (len(window), len(labelled))
    assert w.value("ctr") == pytest.approx(labelled["outcome"].mean())
    assert recent_performance(
        store, "ads", ["ctr"], last="1d", now=now, min_samples=1000
    ).status == ("insufficient_data")


def test_metric_objects_and_empty_logs(store: LogStore) -> None:
    complaints = make_rate_metric("complaints", greater_is_better=False)
    windows = online_performance(
        store, "none", [complaints], start=D1, end=datetime(2024, 1, 3), every="1d", now=D1
    )
    assert [(w.n_rows, w.status) for w in windows] == [(0, "insufficient_data")] * 2


def test_string_labels(store: LogStore) -> None:
    store.append_predictions(
        pd.DataFrame(
            {
                "id": ["a", "b", "c"],
                "timestamp": ["2024-01-01T01:00", "2024-01-01T02:00", "2024-01-01T03:00"],
                "pipeline": "pets",
                "model_version": 2,
                "prediction": ["cat", "dog", "cat"],
            }
        )
    )
    store.append_feedback(
        pd.DataFrame({"id": ["a", "b"], "timestamp": "2024-01-01T05:00", "outcome": ["cat", "cat"]})
    )
    [w] = online_performance(
        store,
        "pets",
        ["accuracy"],
        start=D1,
        end=datetime(2024, 1, 2),
        every="1d",
        now=datetime(2024, 1, 2),
    )
    assert (w.n_rows, w.n_labelled, w.value("accuracy")) == (3, 2, 0.5)


def test_bad_times_and_durations(store: LogStore) -> None:
    with pytest.raises(ConfigError, match="now must be a datetime"):
        online_performance(store, "p", ["ctr"], start=D1, end=D1, every="1d", now="today")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="positive duration"):
        recent_performance(store, "p", ["ctr"], last=timedelta(0), now=D1)
    with pytest.raises(ConfigError, match="invalid duration"):
        recent_performance(store, "p", ["ctr"], last="yesterday", now=D1)


# --- logging files ------------------------------------------------------------------------

PREDICTIONS_CSV = (
    "id,timestamp,model_version,prediction,score,x\n"
    "001,2024-01-01T10:00:00Z,3,1,0.9,1.5\n"
    "002,2024-01-01T11:00:00+01:00,3,0,0.2,2.5\n"
)


def _file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_log_files_then_measure(store: LogStore, tmp_path: Path) -> None:
    assert log_predictions(store, _file(tmp_path, "p.csv", PREDICTIONS_CSV), pipeline="ads") == 2
    feedback = '{"id": "001", "timestamp": "2024-01-01T12:00:00Z", "outcome": 1}\n'
    feedback += '{"id": "002", "timestamp": "2024-01-01T12:00:00Z", "outcome": 1}\n'
    assert log_feedback(store, _file(tmp_path, "f.jsonl", feedback)) == 2
    logged = store.predictions("ads", None, None)
    assert logged["id"].tolist() == ["001", "002"]
    assert logged["timestamp"].tolist()[1] == pd.Timestamp("2024-01-01T10:00")
    assert logged["x"].tolist() == [1.5, 2.5]
    [w] = online_performance(
        store,
        "ads",
        ["accuracy"],
        start=D1,
        end=datetime(2024, 1, 2),
        every="1d",
        now=datetime(2024, 1, 2),
    )
    assert w.value("accuracy") == 0.5


def test_log_predictions_takes_the_pipeline_from_the_file(store: LogStore, tmp_path: Path) -> None:
    text = "pipeline," + PREDICTIONS_CSV.replace("\n0", "\nads,0")
    path = _file(tmp_path, "p.csv", text)
    assert log_predictions(store, path) == 2
    assert log_predictions(store, path, pipeline="ads") == 2  # agrees with the file; a retry
    assert len(store.predictions("ads", None, None)) == 2


@pytest.mark.parametrize(
    ("text", "pipeline", "message"),
    [
        (PREDICTIONS_CSV, None, r"p\.csv: the file has no 'pipeline' column.*--pipeline NAME"),
        (
            "pipeline," + PREDICTIONS_CSV.replace("\n0", "\nother,0"),
            "ads",
            r"also has rows for 'other'",
        ),
        (
            PREDICTIONS_CSV.replace("0.9", "high"),
            "ads",
            r"p\.csv: column 'score' must hold numbers.*'high'",
        ),
        (
            PREDICTIONS_CSV.replace("2024-01-01T10:00:00Z", "01/13/2024 10am"),
            "ads",
            r"p\.csv: column 'timestamp'",
        ),
    ],
)
def test_log_predictions_errors_name_the_file(
    store: LogStore, tmp_path: Path, text: str, pipeline: str | None, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        log_predictions(store, _file(tmp_path, "p.csv", text), pipeline=pipeline)
    assert store.days() == []


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda s, d: log_feedback(s, d / "nope.csv"), SourceError),
        (
            lambda s, d: log_feedback(s, _file(d, "f.csv", "id,timestamp\na,2024-01-01\n")),
            DataError,
        ),
        (lambda s, d: log_predictions(s, d / "p.csv", pipeline=""), ConfigError),
    ],
)
def test_log_file_failures(
    store: LogStore, tmp_path: Path, call: Callable[[LogStore, Path], int], error: type[Exception]
) -> None:
    if not (tmp_path / "p.csv").exists():
        _file(tmp_path, "p.csv", PREDICTIONS_CSV)
    with pytest.raises(error):
        call(store, tmp_path)


def test_recent_performance_many_matches_one_pipeline_at_a_time(store: LogStore) -> None:
    # the controller reads every pipeline's metrics in one query; each pipeline's share of
    # it (rows interleaved, one pipeline without any) must be what a query of its own gives
    rng = np.random.default_rng(7)
    n = 600
    names = rng.choice(["a", "b", "c"], size=n)
    times = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.sort(rng.integers(0, 2880, n)), "m")
    ids = [f"r{i}" for i in range(n)]
    store.append_predictions(
        pd.DataFrame(
            {
                "id": ids,
                "timestamp": times,
                "pipeline": names,
                "model_version": 1,
                "prediction": rng.integers(0, 2, n),
                "score": rng.random(n),
            }
        )
    )
    labelled = rng.random(n) < 0.8
    store.append_feedback(
        pd.DataFrame(
            {
                "id": np.array(ids)[labelled],
                "timestamp": times[labelled] + pd.Timedelta("30min"),
                "outcome": rng.integers(0, 2, int(labelled.sum())),
            }
        )
    )
    now = datetime(2024, 1, 2, 20)
    needs = [
        (name, metric, last, 5)
        for name in ("a", "b", "c", "nobody")
        for metric in ("ctr", "accuracy", "roc_auc")
        for last in ("1d", "6h")
    ]
    many = recent_performance_many(store, needs, now=now)
    assert len(many) == len(needs)
    for name, metric, last, min_samples in needs:
        one = recent_performance(store, name, [metric], last=last, now=now, min_samples=min_samples)
        got = many[(name, get_online_metric(metric).name, parse_duration(last), min_samples)]
        assert got.result(metric) == one.result(metric), (name, metric, last)
        assert got.n_rows == one.n_rows
    assert many[("nobody", "ctr", timedelta(days=1), 5)].n_rows == 0
    assert many[("a", "roc_auc", timedelta(days=1), 5)].n_rows > 50

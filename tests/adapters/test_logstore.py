"""Contract tests run against every LogStore adapter, plus Parquet-on-disk specifics."""

from __future__ import annotations

import gzip
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from retrainer.adapters.logstore import (
    InMemoryLogStore,
    LogStore,
    ParquetLogStore,
    read_log_file,
)
from retrainer.errors import ConfigError, DataError, SourceError

D1 = datetime(2024, 1, 1)
D2 = datetime(2024, 1, 2)
D3 = datetime(2024, 1, 3)


def preds(
    ids: list[str],
    times: list[str] | list[datetime],
    *,
    pipeline: str = "p",
    prediction: list[Any] | None = None,
    **extra: Any,
) -> pd.DataFrame:
    n = len(ids)
    frame = pd.DataFrame(
        {
            "id": ids,
            "timestamp": times,
            "pipeline": pipeline,
            "model_version": 1,
            "prediction": prediction if prediction is not None else [1] * n,
        }
    )
    for name, values in extra.items():
        frame[name] = values
    return frame


def fb(ids: list[str], times: list[str], outcomes: list[Any], **extra: Any) -> pd.DataFrame:
    frame = pd.DataFrame({"id": ids, "timestamp": times, "outcome": outcomes})
    for name, values in extra.items():
        frame[name] = values
    return frame


def _parquet_local(tmp_path: Path) -> ParquetLogStore:
    return ParquetLogStore(tmp_path / "logs")


def _parquet_memory(tmp_path: Path) -> ParquetLogStore:
    return ParquetLogStore(f"memory://logstore-tests/{uuid.uuid4().hex}")


def _in_memory(tmp_path: Path) -> InMemoryLogStore:
    return InMemoryLogStore()


@pytest.fixture(
    params=[_parquet_local, _parquet_memory, _in_memory, "s3"],
    ids=["parquet-local", "parquet-fsspec", "in-memory", "parquet-s3"],
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> LogStore:
    if request.param == "s3":  # a real S3 API: moto's server on loopback (tests/s3.py)
        return ParquetLogStore(f"s3://{request.getfixturevalue('s3_bucket')}/logs")
    make: Callable[[Path], LogStore] = request.param
    return make(tmp_path)


# --- contract: appends and reads -----------------------------------------------------------


def test_predictions_round_trip_with_normalized_types(store: LogStore) -> None:
    frame = preds(
        ["a", "b"],
        ["2024-01-01T10:00:00", "2024-01-01T11:30:00"],
        prediction=[1, 0],
        score=[0.9, 0.2],
        x=[1.5, 2.5],
        segment=pd.Categorical(["u", "v"]),
    )
    assert store.append_predictions(frame) == 2
    got = store.predictions("p", None, None)
    assert list(got.columns) == [
        "id",
        "timestamp",
        "pipeline",
        "model_version",
        "prediction",
        "score",
        "x",
        "segment",
    ]
    assert got["id"].tolist() == ["a", "b"]
    assert str(got["timestamp"].dtype) == "datetime64[us]"
    assert got["timestamp"].tolist() == [
        pd.Timestamp("2024-01-01T10:00"),
        pd.Timestamp("2024-01-01T11:30"),
    ]
    assert got["model_version"].dtype == np.int64
    assert got["score"].tolist() == [0.9, 0.2]
    assert got["x"].tolist() == [1.5, 2.5]
    assert got["segment"].tolist() == ["u", "v"]


def test_integer_ids_are_stored_as_text(store: LogStore) -> None:
    store.append_predictions(preds([7, 8], ["2024-01-01", "2024-01-01"]))  # type: ignore[list-item]
    store.append_feedback(fb(["7"], ["2024-01-02"], [1]))
    assert store.predictions("p", None, None)["id"].tolist() == ["7", "8"]
    assert store.joined("p", None, None, feedback_until=D3)["id"].tolist() == ["7"]


@pytest.mark.parametrize(
    "times",
    [
        ["2024-01-01T12:00:00+02:00"],
        ["2024-01-01T10:00:00Z"],
        [datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))],
        [datetime(2024, 1, 1, 10)],  # naive: UTC
        pd.to_datetime(["2024-01-01T05:00"]).tz_localize("America/New_York"),
    ],
)
def test_timestamps_are_normalized_to_naive_utc(store: LogStore, times: Any) -> None:
    store.append_predictions(preds(["a"], list(times)))
    got = store.predictions("p", None, None)["timestamp"].tolist()
    assert got == [pd.Timestamp("2024-01-01T10:00")]


def test_predictions_are_filtered_by_pipeline_and_half_open_range(store: LogStore) -> None:
    store.append_predictions(
        preds(
            ["a", "b", "c", "d"],
            ["2024-01-01T00:00", "2024-01-01T12:00", "2024-01-02", "2024-01-03"],
        )
    )
    store.append_predictions(preds(["z"], ["2024-01-01T12:00"], pipeline="other"))
    assert store.predictions("p", D1, D2)["id"].tolist() == ["a", "b"]
    assert store.predictions("p", D2, None)["id"].tolist() == ["c", "d"]
    assert store.predictions("p", None, D2)["id"].tolist() == ["a", "b"]
    assert store.predictions("other", None, None)["id"].tolist() == ["z"]
    assert store.predictions("nobody", None, None).empty
    # aware bounds are converted to UTC
    assert store.predictions(
        "p", datetime(2024, 1, 1, 13, tzinfo=timezone(timedelta(hours=1))), D2
    )["id"].tolist() == ["b"]


def test_results_are_sorted_by_time_then_id(store: LogStore) -> None:
    store.append_predictions(preds(["c", "a", "b"], ["2024-01-02", "2024-01-01", "2024-01-01"]))
    store.append_predictions(preds(["0"], ["2024-01-01T06:00"]))
    assert store.predictions("p", None, None)["id"].tolist() == ["a", "b", "0", "c"]


def test_columns_selects_and_orders(store: LogStore) -> None:
    store.append_predictions(preds(["a"], ["2024-01-01"], x=[3.0]))
    got = store.predictions("p", None, None, columns=["x", "id"])
    assert list(got.columns) == ["x", "id"]
    assert got.to_dict("records") == [{"x": 3.0, "id": "a"}]


def test_unknown_column_is_a_data_error_naming_it(store: LogStore) -> None:
    store.append_predictions(preds(["a"], ["2024-01-01"]))
    with pytest.raises(DataError, match=r"no column\(s\) 'nope'.*columns are: id, timestamp"):
        store.predictions("p", None, None, columns=["id", "nope"])
    with pytest.raises(DataError, match="'score'"):
        store.joined("p", None, None, feedback_until=D3, columns=["score"])


def test_empty_store_gives_typed_empty_frames(store: LogStore) -> None:
    got = store.predictions("p", D1, D2)
    assert got.empty
    assert list(got.columns) == ["id", "timestamp", "pipeline", "model_version", "prediction"]
    assert str(got["timestamp"].dtype) == "datetime64[us]"
    assert list(store.predictions("p", None, None, columns=["x"]).columns) == ["x"]
    assert list(store.feedback(None, None).columns) == ["id", "timestamp", "pipeline", "outcome"]
    joined = store.joined("p", None, None, feedback_until=D3)
    assert joined.empty and list(joined.columns)[-2:] == ["outcome", "feedback_timestamp"]
    assert store.days() == [] and store.days("feedback") == []


def test_empty_batch_appends_nothing(store: LogStore) -> None:
    assert store.append_predictions(preds([], [])) == 0
    assert store.days() == []


def test_retried_batch_is_stored_once(store: LogStore) -> None:
    batch = preds(["a", "b"], ["2024-01-01", "2024-01-02"])
    store.append_predictions(batch)
    store.append_predictions(batch.copy())
    assert store.predictions("p", None, None)["id"].tolist() == ["a", "b"]
    clicks = fb(["a"], ["2024-01-02"], [1])
    store.append_feedback(clicks)
    store.append_feedback(clicks)
    assert len(store.feedback(None, None)) == 1


def test_an_append_says_how_many_of_its_rows_were_new(store: LogStore) -> None:
    batch = preds(["a", "b", "c"], ["2024-01-01T01:00", "2024-01-02T01:00", "2024-01-02T02:00"])
    first = store.append_predictions(batch)
    assert (first, first.new, first.already_logged) == (3, 3, 0)
    assert pickle.loads(pickle.dumps(first)).new == 3
    again = store.append_predictions(batch)
    assert (again, again.new, again.already_logged) == (3, 0, 3)
    store.append_predictions(preds(["e"], ["2024-01-01T02:00"]))
    store.compact(D1)
    after = store.append_predictions(batch)  # its segment of the 1st was compacted
    assert (after, after.new) == (3, 0)
    assert store.predictions("p", None, None)["id"].tolist() == ["a", "e", "b", "c"]
    clicks = fb(["a"], ["2024-01-02"], [1])
    assert store.append_feedback(clicks).new == 1
    assert store.append_feedback(clicks).new == 0


def test_batches_are_partitioned_by_utc_day(store: LogStore) -> None:
    store.append_predictions(
        preds(
            ["a", "b", "c"],
            ["2024-01-01T23:59:59Z", "2024-01-02T00:30:00+01:00", "2024-01-03T00:00:00Z"],
        )
    )
    # b is 2024-01-01T23:30 UTC
    assert store.days() == [date(2024, 1, 1), date(2024, 1, 3)]
    assert store.predictions("p", D1, D2)["id"].tolist() == ["b", "a"]


def test_columns_may_change_between_batches(store: LogStore) -> None:
    store.append_predictions(preds(["a"], ["2024-01-01"], prediction=[1]))
    store.append_predictions(
        preds(["b"], ["2024-01-01T01:00"], prediction=[0.5], score=[0.5], x=["u"])
    )
    store.append_predictions(preds(["c"], ["2024-01-02"], prediction=[0]))
    got = store.predictions("p", None, None)
    assert got["prediction"].tolist() == [1.0, 0.5, 0.0]
    assert got["x"].tolist()[1] == "u" and pd.isna(got["x"].tolist()[0])
    assert got["score"].isna().tolist() == [True, False, True]


def test_a_column_whose_type_changes_is_read_as_text(store: LogStore) -> None:
    store.append_predictions(preds(["a"], ["2024-01-01"], prediction=[1]))
    store.append_predictions(preds(["b"], ["2024-01-01T01:00"], prediction=["cat"]))
    assert store.predictions("p", None, None)["prediction"].tolist() == ["1", "cat"]


def test_feedback_is_filtered_by_time_and_pipeline(store: LogStore) -> None:
    store.append_feedback(
        fb(["a", "b"], ["2024-01-01", "2024-01-02"], [1, 0], pipeline=["p", None])
    )
    store.append_feedback(fb(["c"], ["2024-01-01"], [1], pipeline=["q"]))
    assert store.feedback(None, None)["id"].tolist() == ["a", "c", "b"]
    assert store.feedback(D2, None)["id"].tolist() == ["b"]
    assert store.feedback(None, None, pipeline="p")["id"].tolist() == ["a", "b"]


# --- contract: the join and delayed labels -------------------------------------------------


def _clicks_log(store: LogStore) -> None:
    store.append_predictions(
        preds(
            ["a", "b", "c"],
            ["2024-01-01T10:00", "2024-01-01T11:00", "2024-01-01T12:00"],
            score=[0.9, 0.6, 0.1],
        )
    )
    store.append_feedback(fb(["a"], ["2024-01-01T10:05"], [1]))
    store.append_feedback(fb(["b"], ["2024-01-02T08:00"], [0]))  # arrives the next day


def test_feedback_after_feedback_until_does_not_count(store: LogStore) -> None:
    _clicks_log(store)
    early = store.joined("p", D1, D2, feedback_until=datetime(2024, 1, 1, 23))
    assert early["id"].tolist() == ["a"]
    at = store.joined("p", D1, D2, feedback_until=datetime(2024, 1, 2, 8))  # inclusive
    assert at["id"].tolist() == ["a", "b"]
    assert at["outcome"].tolist() == [1, 0]
    assert at["feedback_timestamp"].tolist() == [
        pd.Timestamp("2024-01-01T10:05"),
        pd.Timestamp("2024-01-02T08:00"),
    ]
    assert at["score"].tolist() == [0.9, 0.6]


def test_include_unlabelled_is_a_left_join(store: LogStore) -> None:
    _clicks_log(store)
    got = store.joined(
        "p", D1, D2, feedback_until=datetime(2024, 1, 1, 23), include_unlabelled=True
    )
    assert got["id"].tolist() == ["a", "b", "c"]
    assert got["outcome"].isna().tolist() == [False, True, True]


def test_include_unlabelled_without_any_feedback(store: LogStore) -> None:
    store.append_predictions(preds(["a"], ["2024-01-01"]))
    got = store.joined("p", None, None, feedback_until=D3, include_unlabelled=True)
    assert got["id"].tolist() == ["a"] and got["outcome"].isna().all()
    assert store.joined("p", None, None, feedback_until=D3).empty


def test_latest_feedback_at_or_before_until_wins(store: LogStore) -> None:
    store.append_predictions(preds(["a"], ["2024-01-01T10:00"]))
    store.append_feedback(fb(["a", "a"], ["2024-01-01T11:00", "2024-01-01T13:00"], [0, 1]))
    store.append_feedback(fb(["a"], ["2024-01-01T12:00"], [0]))
    store.append_feedback(fb(["a"], ["2024-01-03T00:00"], [0]))  # after until
    got = store.joined("p", None, None, feedback_until=datetime(2024, 1, 2))
    assert got[["outcome", "feedback_timestamp"]].values.tolist() == [
        [1, pd.Timestamp("2024-01-01T13:00")]
    ]
    got = store.joined("p", None, None, feedback_until=datetime(2024, 1, 1, 12, 30))
    assert got["outcome"].tolist() == [0]


def test_a_feedback_tie_is_broken_by_the_larger_outcome(store: LogStore) -> None:
    store.append_predictions(preds(["a"], ["2024-01-01T10:00"]))
    store.append_feedback(fb(["a"], ["2024-01-01T11:00"], [1]))
    store.append_feedback(fb(["a"], ["2024-01-01T11:00"], [0]))
    assert store.joined("p", None, None, feedback_until=D2)["outcome"].tolist() == [1]


def test_feedback_for_another_pipeline_is_ignored(store: LogStore) -> None:
    store.append_predictions(preds(["a", "b"], ["2024-01-01", "2024-01-01"]))
    store.append_predictions(preds(["a"], ["2024-01-01"], pipeline="q"))
    store.append_feedback(
        fb(["a", "b"], ["2024-01-01T01:00", "2024-01-01T01:00"], [1, 1], pipeline=["q", None])
    )
    assert store.joined("p", None, None, feedback_until=D2)["id"].tolist() == ["b"]
    assert store.joined("q", None, None, feedback_until=D2)["id"].tolist() == ["a"]


def test_joined_columns_selects_prediction_columns(store: LogStore) -> None:
    _clicks_log(store)
    got = store.joined("p", D1, D2, feedback_until=D3, columns=["score"])
    assert list(got.columns) == ["score", "outcome", "feedback_timestamp"]


def test_feedback_long_before_the_window_is_not_read(store: LogStore) -> None:
    store.append_predictions(preds(["a", "b"], ["2024-01-05T00:30", "2024-01-05T00:40"]))
    store.append_feedback(fb(["a"], ["2024-01-04T23:00"], [1]))  # skewed clock: within grace
    store.append_feedback(fb(["b"], ["2024-01-01T00:00"], [1]))  # days before: ignored
    got = store.joined(
        "p", datetime(2024, 1, 5), datetime(2024, 1, 6), feedback_until=datetime(2024, 1, 6)
    )
    assert got["id"].tolist() == ["a"]


def test_bad_query_arguments_are_config_errors(store: LogStore) -> None:
    with pytest.raises(ConfigError, match="after end"):
        store.predictions("p", D2, D1)
    with pytest.raises(ConfigError, match="pipeline"):
        store.predictions("", None, None)
    with pytest.raises(ConfigError, match="start must be a datetime"):
        store.predictions("p", "2024-01-01", None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="columns"):
        store.predictions("p", None, None, columns="id")
    with pytest.raises(ConfigError, match="day"):
        store.compact("yesterday")
    with pytest.raises(ConfigError, match="kind"):
        store.days("clicks")  # type: ignore[arg-type]


# --- contract: validation -----------------------------------------------------------------


def _good() -> pd.DataFrame:
    return preds(["a", "b"], ["2024-01-01", "2024-01-01"], score=[0.1, 0.2])


BAD_PREDICTIONS: list[tuple[str, Callable[[pd.DataFrame], pd.DataFrame], str]] = [
    (
        "missing column",
        lambda f: f.drop(columns="model_version"),
        r"missing required column\(s\) 'model_version'",
    ),
    (
        "null id",
        lambda f: f.assign(id=["a", None]),
        r"column 'id' has 1 missing value\(s\) \(first at row 1",
    ),
    ("float id", lambda f: f.assign(id=[1.5, 2.5]), r"column 'id' must hold text"),
    (
        "bad timestamp",
        lambda f: f.assign(timestamp=["2024-01-01", "next tuesday"]),
        r"column 'timestamp' has 1 value\(s\) that are not ISO 8601.*'next tuesday' at row 1",
    ),
    (
        "numeric timestamp",
        lambda f: f.assign(timestamp=[1704067200, 1704067201]),
        r"column 'timestamp' holds numbers",
    ),
    (
        "null timestamp",
        lambda f: f.assign(timestamp=[pd.Timestamp("2024-01-01"), pd.NaT]),
        r"column 'timestamp' has 1 missing",
    ),
    ("null pipeline", lambda f: f.assign(pipeline=["p", None]), r"column 'pipeline' has 1 missing"),
    ("numeric pipeline", lambda f: f.assign(pipeline=[1, 2]), r"column 'pipeline' must hold text"),
    (
        "fractional version",
        lambda f: f.assign(model_version=[1.0, 1.5]),
        r"column 'model_version' must hold integers.*1.5 at row 1",
    ),
    (
        "text version",
        lambda f: f.assign(model_version=["v1", "v2"]),
        r"column 'model_version' must hold integers",
    ),
    (
        "null version",
        lambda f: f.assign(model_version=[1, None]),
        r"column 'model_version' has 1 missing",
    ),
    (
        "text score",
        lambda f: f.assign(score=["0.5", "high"]),
        r"column 'score' must hold numbers.*'high' at row 1",
    ),
    ("bool score", lambda f: f.assign(score=[True, False]), r"column 'score' must hold numbers"),
    ("reserved name", lambda f: f.assign(outcome=[1, 0]), r"'outcome' are reserved"),
    ("partition name", lambda f: f.assign(date=["x", "y"]), r"'date' are reserved"),
    (
        "mixed column",
        lambda f: f.assign(x=[1, "a"]),
        r"column 'x' \(dtype object\) cannot be stored",
    ),
]


@pytest.mark.parametrize(
    ("change", "message"),
    [(c, m) for _, c, m in BAD_PREDICTIONS],
    ids=[i for i, _, _ in BAD_PREDICTIONS],
)
def test_bad_predictions_are_data_errors_naming_the_column(
    store: LogStore, change: Callable[[pd.DataFrame], pd.DataFrame], message: str
) -> None:
    with pytest.raises(DataError, match=message):
        store.append_predictions(change(_good()))
    assert store.days() == []  # nothing half-stored


def test_error_messages_name_the_origin(store: LogStore) -> None:
    with pytest.raises(DataError, match=r"^upload\.csv: column 'id'"):
        store.append_predictions(_good().assign(id=[None, "b"]), origin="upload.csv")


def test_duplicate_and_non_string_column_names_are_refused(store: LogStore) -> None:
    frame = _good()
    frame.columns = ["id", "timestamp", "pipeline", "model_version", "prediction", "id"]
    with pytest.raises(DataError, match="duplicate column name"):
        store.append_predictions(frame)
    with pytest.raises(DataError, match="column names must be non-empty strings"):
        store.append_predictions(_good().assign(**{"": 1}))
    with pytest.raises(DataError, match="expected a pandas DataFrame"):
        store.append_predictions({"id": ["a"]})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (
            pd.DataFrame({"id": ["a"], "timestamp": ["2024-01-01"]}),
            r"missing required column\(s\) 'outcome'",
        ),
        (
            fb(["a", "b"], ["2024-01-01", "2024-01-01"], [1, None]),
            r"column 'outcome' has 1 missing",
        ),
        (
            fb(["a"], ["2024-01-01"], [1], feedback_timestamp=[1]),
            r"'feedback_timestamp' are reserved",
        ),
        (
            fb(["a"], ["2024-13-01"], [1]),
            r"column 'timestamp' has 1 value\(s\) that are not ISO 8601",
        ),
        (fb(["a"], ["2024-01-01"], [1], pipeline=[3]), r"column 'pipeline' must hold text"),
    ],
)
def test_bad_feedback_is_a_data_error(store: LogStore, frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(DataError, match=message):
        store.append_feedback(frame)


# --- contract: compaction -----------------------------------------------------------------


def test_compaction_neither_loses_nor_duplicates_rows(store: LogStore) -> None:
    for i in range(5):
        store.append_predictions(
            preds([f"{i}a", f"{i}b"], [f"2024-01-01T0{i}:00", "2024-01-02T00:00"], x=[float(i)] * 2)
        )
        store.append_feedback(fb([f"{i}a"], [f"2024-01-01T0{i}:30"], [i % 2]))
    store.append_predictions(preds(["y"], ["2024-01-01T00:00"], y=["extra"]))
    before = store.predictions("p", None, None)
    joined_before = store.joined("p", None, None, feedback_until=D3)
    assert store.compact(date(2024, 1, 1)) == 6 + 5
    after = store.predictions("p", None, None)
    pd.testing.assert_frame_equal(before, after)
    pd.testing.assert_frame_equal(joined_before, store.joined("p", None, None, feedback_until=D3))
    assert store.compact("2024-01-01") == 0  # already one segment per kind
    # new appends land beside the compacted segment; compaction takes them in next time
    store.append_predictions(preds(["n"], ["2024-01-01T09:00"]))
    assert len(store.predictions("p", D1, D2)) == 7
    assert store.compact("2024-01-01") == 2
    assert len(store.predictions("p", D1, D2)) == 7
    assert store.compact("2024-01-05") == 0  # an empty day


def test_retrying_a_compacted_batch_adds_nothing(store: LogStore) -> None:
    first = preds(["a"], ["2024-01-01T01:00"])
    store.append_predictions(first)
    store.append_predictions(preds(["b"], ["2024-01-01T02:00"]))
    store.compact(D1)
    store.append_predictions(first)  # the client never heard back, and retries
    assert store.predictions("p", None, None)["id"].tolist() == ["a", "b"]
    store.compact(D1)
    assert store.predictions("p", None, None)["id"].tolist() == ["a", "b"]


# --- Parquet specifics --------------------------------------------------------------------


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_parquet_layout_is_day_partitioned_segments(tmp_path: Path) -> None:
    store = ParquetLogStore(tmp_path)
    store.append_predictions(preds(["a", "b"], ["2024-01-01T10:00", "2024-01-02T10:00"]))
    store.append_feedback(fb(["a"], ["2024-01-02T00:00"], [1]))
    files = _files(tmp_path)
    assert [f.rsplit("/", 1)[0] for f in files] == [
        "feedback/date=2024-01-02",
        "predictions/date=2024-01-01",
        "predictions/date=2024-01-02",
    ]
    assert all(f.endswith(".parquet") and len(f.rsplit("/", 1)[1]) == 32 + 8 for f in files)
    # other tools can read the log with hive partitioning
    con = duckdb.connect()
    rows = con.sql(
        f"SELECT id, date FROM read_parquet('{tmp_path}/predictions/*/*.parquet', "
        "hive_partitioning = true) ORDER BY id"
    ).fetchall()
    assert [(i, str(d)) for i, d in rows] == [("a", "2024-01-01"), ("b", "2024-01-02")]
    con.close()


def test_parquet_counts_the_days_of_a_batch_already_logged(tmp_path: Path) -> None:
    store = ParquetLogStore(tmp_path)
    batch = preds(["a", "b"], ["2024-01-01T01:00", "2024-01-02T01:00"])
    store.append_predictions(batch)
    # each day of a batch is a segment: the 1st's is the same, the 2nd's is new (and holds b
    # again: the store does not dedupe rows, only segments)
    more = store.append_predictions(pd.concat([batch, preds(["c"], ["2024-01-02T03:00"])]))
    assert (more, more.new, more.already_logged) == (3, 2, 1)
    assert store.predictions("p", None, None)["id"].tolist() == ["a", "b", "b", "c"]


def test_parquet_reads_only_the_days_in_range(tmp_path: Path) -> None:
    store = ParquetLogStore(tmp_path)
    store.append_predictions(preds(["a", "b"], ["2024-01-01T10:00", "2024-01-03T10:00"]))
    day2 = tmp_path / "predictions" / "date=2024-01-02"
    day2.mkdir()
    (day2 / "corrupt.parquet").write_bytes(b"not parquet at all")
    assert store.predictions("p", D1, D2)["id"].tolist() == ["a"]
    assert store.predictions("p", D3, None)["id"].tolist() == ["b"]
    with pytest.raises(SourceError, match=r"corrupt\.parquet"):
        store.predictions("p", D1, D3 + timedelta(days=1))


def test_parquet_ignores_leftover_temp_files(tmp_path: Path) -> None:
    store = ParquetLogStore(tmp_path)
    store.append_predictions(preds(["a"], ["2024-01-01T10:00"]))
    day = tmp_path / "predictions" / "date=2024-01-01"
    (day / ".0123abcd.parquet.deadbeef.tmp").write_bytes(b"PAR1 half a segm")
    (day / "notes.txt").write_text("not a segment")
    (tmp_path / "predictions" / "scratch").mkdir()
    assert store.predictions("p", None, None)["id"].tolist() == ["a"]
    assert store.days() == [date(2024, 1, 1)]


def test_parquet_relative_root_is_resolved_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = ParquetLogStore("logs")
    monkeypatch.chdir("/")
    store.append_predictions(preds(["a"], ["2024-01-01"]))
    assert (tmp_path / "logs" / "predictions").is_dir()
    assert repr(store) == f"ParquetLogStore('file://{tmp_path / 'logs'}')"


def test_a_second_store_on_the_same_root_sees_the_rows(tmp_path: Path) -> None:
    ParquetLogStore(tmp_path).append_predictions(preds(["a"], ["2024-01-01"]))
    assert ParquetLogStore(tmp_path).predictions("p", None, None)["id"].tolist() == ["a"]


def test_compaction_that_dies_before_deleting_leaves_no_duplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ParquetLogStore(tmp_path)
    for i in range(3):
        store.append_predictions(preds([str(i)], [f"2024-01-01T0{i}:00"]))
    monkeypatch.setattr(ParquetLogStore, "_delete", lambda self, folder, names: None)
    assert store.compact(D1) == 3
    day = tmp_path / "predictions" / "date=2024-01-01"
    assert len(list(day.glob("*.parquet"))) == 4  # the merged one and the three it replaces
    assert store.predictions("p", None, None)["id"].tolist() == ["0", "1", "2"]
    monkeypatch.undo()
    assert store.compact(D1) == 0  # nothing to merge, but the leftovers are removed
    assert [p.name[:2] for p in day.glob("*.parquet")] == ["c-"]
    assert store.predictions("p", None, None)["id"].tolist() == ["0", "1", "2"]


def test_a_reader_racing_a_compaction_lists_again(tmp_path: Path) -> None:
    reader = ParquetLogStore(tmp_path)
    compactor = ParquetLogStore(tmp_path)
    for i in range(3):
        reader.append_predictions(preds([str(i)], [f"2024-01-01T0{i}:00"]))
    original = reader._relation
    calls = []

    def relation_then_compaction(*args: Any) -> Any:
        sql = original(*args)
        if not calls:
            compactor.compact(D1)  # deletes the segments the reader just listed
        calls.append(sql)
        return sql

    reader._relation = relation_then_compaction  # type: ignore[method-assign]
    assert reader.predictions("p", None, None)["id"].tolist() == ["0", "1", "2"]
    assert len(calls) == 2


_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import pandas as pd
    from retrainer.adapters.logstore import ParquetLogStore

    root, mode = sys.argv[1], sys.argv[2]
    store = ParquetLogStore(root)

    def batch(i, n=2000):
        return pd.DataFrame({
            "id": [f"{i}-{j}" for j in range(n)],
            "timestamp": pd.Timestamp("2024-01-01") + pd.to_timedelta(range(n), unit="s"),
            "pipeline": "p", "model_version": 1, "prediction": range(n),
            "x": [float(j) for j in range(n)],
        })

    store.append_predictions(batch(0))
    if mode == "die-before-rename":
        os.fsync = lambda fd: os._exit(17)  # the bytes are in the temp file, not renamed yet
        store.append_predictions(batch(1))
    else:
        i = 1
        while True:  # until the parent kills us
            store.append_predictions(batch(i))
            i += 1
    """
)


def _run_writer(root: Path, mode: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", _WRITER, str(root), mode])


def test_a_writer_killed_before_the_rename_leaves_earlier_segments_and_no_partial_one(
    tmp_path: Path,
) -> None:
    proc = _run_writer(tmp_path, "die-before-rename")
    assert proc.wait(timeout=60) == 17
    day = tmp_path / "predictions" / "date=2024-01-01"
    assert len(list(day.glob(".*.tmp"))) == 1  # the dead writer's temp file
    assert len(list(day.glob("*.parquet"))) == 1
    store = ParquetLogStore(tmp_path)
    got = store.predictions("p", None, None)
    assert len(got) == 2000 and got["id"].str.startswith("0-").all()
    # the log stays writable beside the dead writer's temp file
    store.append_predictions(got.assign(id=got["id"].str.replace("0-", "1-")))
    assert len(store.predictions("p", None, None)) == 4000


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_writer_killed_mid_batch_leaves_whole_segments_only(tmp_path: Path) -> None:
    proc = _run_writer(tmp_path, "loop")
    day = tmp_path / "predictions" / "date=2024-01-01"
    deadline = time.monotonic() + 60
    while len(list(day.glob("*.parquet"))) < 4:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    got = ParquetLogStore(tmp_path).predictions("p", None, None)
    segments = len(list(day.glob("*.parquet")))
    assert len(got) == 2000 * segments
    batches = got["id"].str.split("-").str[0].astype(int)
    assert sorted(set(batches)) == list(range(segments))  # earlier segments all intact
    assert (batches.value_counts() == 2000).all()


# --- in-memory specifics ------------------------------------------------------------------


def test_in_memory_repr_counts_rows() -> None:
    store = InMemoryLogStore()
    store.append_predictions(preds(["a", "b"], ["2024-01-01", "2024-01-02"]))
    assert repr(store) == "InMemoryLogStore(<2 rows>)"


# --- read_log_file ------------------------------------------------------------------------

FILE_FRAME = pd.DataFrame(
    {
        "id": ["007", "008"],
        "timestamp": ["2024-01-01T10:00:00Z", "2024-01-01T11:00:00Z"],
        "pipeline": ["p", "p"],
        "model_version": [1, 1],
        "prediction": [1, 0],
        "score": [0.8, 0.3],
    }
)


def _write(frame: pd.DataFrame, path: Path) -> None:
    name = path.name
    if name.endswith(".csv"):
        frame.to_csv(path, index=False)
    elif name.endswith(".csv.gz"):
        with gzip.open(path, "wt") as f:
            frame.to_csv(f, index=False)
    elif name.endswith(".tsv"):
        frame.to_csv(path, index=False, sep="\t")
    elif name.endswith(".parquet"):
        frame.to_parquet(path)
    elif name.endswith(".jsonl"):
        frame.to_json(path, orient="records", lines=True)
    elif name.endswith(".json"):
        frame.to_json(path, orient="records")


@pytest.mark.parametrize(
    "name", ["log.csv", "log.csv.gz", "log.tsv", "log.parquet", "log.jsonl", "log.json"]
)
def test_read_log_file_reads_every_format(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    _write(FILE_FRAME, path)
    frame = read_log_file(path)
    assert frame["id"].tolist() == ["007", "008"]
    store = InMemoryLogStore()
    assert store.append_predictions(frame) == 2
    got = store.predictions("p", None, None)
    assert got["score"].tolist() == [0.8, 0.3]
    assert got["timestamp"].tolist()[0] == pd.Timestamp("2024-01-01T10:00")


def test_read_log_file_keeps_integer_json_ids_as_text(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_text('{"id": 7, "timestamp": "2024-01-01", "outcome": 1}\n')
    assert read_log_file(path)["id"].tolist() == ["7"]


@pytest.mark.parametrize(
    ("name", "content", "error", "message"),
    [
        ("log.xlsx", b"x", DataError, r"cannot tell the format.*\.csv"),
        ("missing.csv", None, SourceError, "cannot open"),
        ("empty.csv", b"", DataError, "the file is empty"),
        ("bad.jsonl", b"{not json\n", DataError, "cannot read it as jsonl"),
        ("bad.parquet", b"PAR1 nope", DataError, "cannot read it as parquet"),
    ],
)
def test_read_log_file_errors_name_the_file(
    tmp_path: Path, name: str, content: bytes | None, error: type[Exception], message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(error, match=message) as info:
        read_log_file(path)
    assert name in str(info.value)


def test_a_missing_column_is_named_with_the_file_columns(tmp_path: Path) -> None:
    """A column the caller adds to the file's frame (the pipeline the CLI is given) is neither
    listed as the file's nor asked of it."""
    path = tmp_path / "preds.csv"
    path.write_text("id,timestamp,prediction\na,2024-01-01,1\n")
    frame = read_log_file(path).assign(pipeline="p")
    with pytest.raises(DataError) as info:
        InMemoryLogStore().append_predictions(frame, origin=str(path))
    assert str(info.value) == (
        f"{path}: missing required column(s) 'model_version'. A prediction row needs id, "
        "timestamp, model_version, prediction; got columns: id, timestamp, prediction"
    )
    # a frame changed otherwise is described as it is
    renamed = read_log_file(path).rename(columns={"prediction": "pred"}).assign(pipeline="p")
    with pytest.raises(DataError, match=r"needs id, timestamp, pipeline, model_version, pred"):
        InMemoryLogStore().append_predictions(renamed)
    with pytest.raises(DataError, match=r"got columns: id, timestamp, pred, pipeline$"):
        InMemoryLogStore().append_predictions(renamed)


def test_aware_feature_columns_come_back_in_utc(store: LogStore) -> None:
    when = pd.Series(pd.to_datetime(["2024-01-01T12:00+02:00"])).dt.tz_convert(UTC)
    store.append_predictions(preds(["a"], ["2024-01-01"], seen_at=when))
    got = store.predictions("p", None, None)["seen_at"]
    assert got.tolist()[0] == pd.Timestamp("2024-01-01T10:00", tz="UTC")


def test_joined_many_equals_joined_per_pipeline(store: LogStore):
    import numpy as np

    rng = np.random.default_rng(7)
    n = 60
    times = pd.date_range("2024-03-01", periods=n, freq="37min")
    preds = pd.DataFrame(
        {
            "id": [f"r{i % 50}" for i in range(n)],  # ids shared across pipelines
            "timestamp": times,
            "pipeline": np.where(np.arange(n) % 3 == 0, "a", "b"),
            "model_version": 1,
            "prediction": rng.integers(0, 2, n),
            "score": rng.random(n),
        }
    )
    store.append_predictions(preds)
    feedback = pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(50)] * 2,
            "timestamp": list(times[:50] + pd.Timedelta("1h"))
            + list(times[:50] + pd.Timedelta("3h")),
            "outcome": rng.integers(0, 2, 100),
            "pipeline": ["a"] * 25 + [None] * 25 + ["b"] * 50,
        }
    )
    store.append_feedback(feedback)
    start, end = datetime(2024, 3, 1, 5, tzinfo=UTC), datetime(2024, 3, 2, tzinfo=UTC)
    until = datetime(2024, 3, 1, 20, tzinfo=UTC)
    cols = ["pipeline", "timestamp", "prediction", "score"]
    for unlabelled in (False, True):
        many = store.joined_many(
            ["a", "b"],
            start,
            end,
            feedback_until=until,
            columns=cols,
            include_unlabelled=unlabelled,
        )
        one = pd.concat(
            [
                store.joined(
                    p, start, end, feedback_until=until, columns=cols, include_unlabelled=unlabelled
                )
                for p in ("a", "b")
            ],
            ignore_index=True,
        )
        pd.testing.assert_frame_equal(many.reset_index(drop=True), one, check_dtype=False)

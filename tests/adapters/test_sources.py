import sqlite3
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retrainer.adapters.sources import (
    CallableSource,
    FileSource,
    SQLSource,
    row_hashes,
    snapshot_of,
)
from retrainer.errors import DataError, SourceError
from tests.conftest import make_frame

START, END = datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 5, tzinfo=UTC)


def _expected(frame: pd.DataFrame) -> pd.DataFrame:
    ts = frame["ts"]
    return frame[(ts >= "2024-01-02") & (ts < "2024-01-05")].reset_index(drop=True)


@pytest.fixture
def frame() -> pd.DataFrame:
    return make_frame(200)


def test_parquet_file_and_folder(tmp_path: Path, frame: pd.DataFrame):
    frame.to_parquet(tmp_path / "one.parquet")
    got = FileSource(str(tmp_path / "one.parquet"), time_column="ts").load(START, END)
    pd.testing.assert_frame_equal(got, _expected(frame))
    folder = tmp_path / "parts"
    folder.mkdir()
    frame.iloc[:100].to_parquet(folder / "a.parquet")
    frame.iloc[100:].to_parquet(folder / "b.parquet")
    got = FileSource(str(folder), time_column="ts").load(START, END)
    pd.testing.assert_frame_equal(got, _expected(frame))


def test_parquet_with_aware_timestamps(tmp_path: Path, frame: pd.DataFrame):
    aware = frame.assign(ts=frame["ts"].dt.tz_localize("UTC"))
    aware.to_parquet(tmp_path / "aware.parquet")
    got = FileSource(str(tmp_path / "aware.parquet"), time_column="ts").load(START, END)
    assert len(got) == len(_expected(frame))
    assert got["ts"].dt.tz is None


def test_csv_file(tmp_path: Path, frame: pd.DataFrame):
    frame.to_csv(tmp_path / "d.csv", index=False)
    got = FileSource(str(tmp_path / "d.csv"), time_column="ts", format="csv").load(START, END)
    assert got["x1"].tolist() == pytest.approx(_expected(frame)["x1"].tolist())


def test_sql_query_is_filtered(tmp_path: Path, frame: pd.DataFrame):
    db = tmp_path / "d.db"
    with sqlite3.connect(db) as con:
        frame.to_sql("rows", con, index=False)
    src = SQLSource(f"sqlite:///{db}", "SELECT ts, x1, x2, y FROM rows", time_column="ts")
    got = src.load(START, END)
    assert len(got) == len(_expected(frame))
    assert got["ts"].min() >= pd.Timestamp("2024-01-02")
    assert "sqlite" in src.description


def test_sql_bad_query_is_a_source_error(tmp_path: Path):
    src = SQLSource(f"sqlite:///{tmp_path / 'e.db'}", "SELECT * FROM missing", time_column="ts")
    with pytest.raises(SourceError, match="query failed"):
        src.load(None, None)


def test_callable_result_is_refiltered(frame: pd.DataFrame):
    got = CallableSource(lambda s, e: frame, time_column="ts", name="t").load(START, END)
    assert len(got) == len(_expected(frame))


def test_missing_file_and_time_column(tmp_path: Path, frame: pd.DataFrame):
    with pytest.raises(SourceError, match="no such file"):
        FileSource(str(tmp_path / "nope.parquet"), time_column="ts").load(None, None)
    frame.to_parquet(tmp_path / "d.parquet")
    with pytest.raises(DataError, match="time column 'when' not found"):
        FileSource(str(tmp_path / "d.parquet"), time_column="when").load(None, None)


def test_unparseable_time_column():
    bad = pd.DataFrame({"ts": ["yesterday", "today"], "x": [1, 2]})
    with pytest.raises(
        DataError, match=r"^source t: time column 'ts' has a value that is not a timestamp: "
    ):
        CallableSource(lambda s, e: bad, time_column="ts", name="t").load(None, None)


def test_csv_time_column_names_the_bad_value_and_its_row(tmp_path: Path, frame: pd.DataFrame):
    # one bad value among valid ones: the message names it and its row, in one line, without
    # pandas' advice about format= (an argument the user does not set)
    text = frame.assign(ts=frame["ts"].astype(str))
    text.loc[123, "ts"] = "not-a-time"
    text.loc[150, "ts"] = "never"
    text.to_csv(tmp_path / "d.csv", index=False)
    src = FileSource(str(tmp_path / "d.csv"), time_column="ts", format="csv")
    with pytest.raises(DataError) as info:
        src.load(None, None)
    msg = str(info.value)
    assert msg == (
        f"source {tmp_path / 'd.csv'}: time column 'ts' has 2 values that are not timestamps; "
        "the first: 'not-a-time' (row 123, counting from 0)"
    )
    text.loc[150, "ts"] = text.loc[149, "ts"]
    text.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError, match=r"has a value that is not a timestamp: 'not-a-time' "):
        src.load(None, None)
    # in the first row, no format is inferred: pandas' warning about format= is not shown
    text.loc[123, "ts"], text.loc[0, "ts"] = text.loc[122, "ts"], "not-a-time"
    text.to_csv(tmp_path / "d.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError, match=r"not a timestamp: 'not-a-time' \(row 0, counting"):
            src.load(None, None)


def test_csv_folder_time_error_names_the_file(tmp_path: Path, frame: pd.DataFrame):
    folder = tmp_path / "parts"
    folder.mkdir()
    frame.iloc[:100].to_csv(folder / "a.csv", index=False)
    second = frame.iloc[100:].assign(ts=frame["ts"].iloc[100:].astype(str)).reset_index(drop=True)
    second.loc[7, "ts"] = "2024-13-45"
    second.to_csv(folder / "b.csv", index=False)
    src = FileSource(str(folder), time_column="ts", format="csv")
    with pytest.raises(
        DataError, match=r"\(file b\.csv\): time column 'ts' .* '2024-13-45' \(row 7, "
    ):
        src.load(None, None)
    second.loc[7, "ts"] = second.loc[6, "ts"]
    second.to_csv(folder / "b.csv", index=False)
    got = src.load(START, END)  # files read one by one: the same rows as the whole frame
    pd.testing.assert_frame_equal(got, _expected(frame))


def test_time_column_mixing_formats_says_so():
    mixed = pd.DataFrame({"ts": ["2024-01-01 00:00:00", "2024-01-01T01:00:00Z"], "x": [1, 2]})
    with pytest.raises(
        DataError,
        match=r"time column 'ts' mixes timestamp formats: '2024-01-01 00:00:00' \(row 0\) "
        r"and '2024-01-01T01:00:00Z' \(row 1",
    ):
        CallableSource(lambda s, e: mixed, time_column="ts", name="t").load(None, None)


def test_missing_time_names_the_first_row():
    gap = pd.DataFrame({"ts": pd.to_datetime(["2024-01-01", None, None]), "x": [1, 2, 3]})
    with pytest.raises(DataError, match=r"2 missing value\(s\) \(first at row 1, counting"):
        CallableSource(lambda s, e: gap, time_column="ts", name="t").load(None, None)


def test_row_hashes_are_pandas_hashes():
    # the fingerprint's row hashes are pandas' own (hash_pandas_object), computed faster:
    # every dtype, NaN of any sign, -0.0, NaT, infinities, duplicate names, slices
    rng = np.random.default_rng(0)
    n = 50
    frame = pd.DataFrame(
        {
            "ts": pd.date_range("2024-01-01", periods=n, freq="h"),
            "tz": pd.date_range("2024-01-01", periods=n, freq="h", tz="Europe/Paris"),
            "f": rng.normal(size=n),
            "f32": rng.normal(size=n).astype("float32"),
            "i": rng.integers(-5, 5, n),
            "i32": rng.integers(-5, 5, n).astype("int32"),
            "u8": rng.integers(0, 255, n).astype("uint8"),
            "b": rng.integers(0, 2, n).astype(bool),
            "s": rng.choice(["a", "b", None], n),
            "cat": pd.Categorical(rng.choice(["x", "y"], n)),
            "I": pd.array(rng.integers(0, 3, n), dtype="Int64"),
            "td": pd.to_timedelta(rng.integers(0, 100, n), unit="s"),
            "c": rng.normal(size=n) + 1j,
            "str": pd.array(rng.choice(["a", "b"], n), dtype="string"),
            "f2": rng.normal(size=n),
        }
    )
    frame.loc[3, "f"] = np.nan
    frame.loc[4, "f"] = -0.0
    frame.loc[5, "f32"] = -0.0
    frame.loc[6, "f2"] = -np.nan
    frame.loc[7, "f2"] = np.inf
    frame.loc[8, "ts"] = pd.NaT
    dup = pd.DataFrame([[1.0, 2.0], [np.nan, -0.0]], columns=["a", "a"])
    for case in (frame, frame[["f", "f2", "i"]], frame.iloc[10:40:3], frame.iloc[:0], dup):
        expected = pd.util.hash_pandas_object(case, index=False).to_numpy()
        got = row_hashes(case)
        assert got.dtype == expected.dtype
        assert np.array_equal(got, expected)


def test_fingerprint_is_content_addressed(frame: pd.DataFrame):
    a = snapshot_of(frame, "ts")
    assert a.fingerprint == snapshot_of(frame.copy(), "ts").fingerprint
    changed = frame.copy()
    changed.loc[5, "x1"] += 1e-9
    assert snapshot_of(changed, "ts").fingerprint != a.fingerprint
    assert a.rows == len(frame)
    assert a.min_time == datetime(2024, 1, 1, tzinfo=UTC)

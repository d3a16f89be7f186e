import sqlite3
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
    with pytest.raises(DataError, match=r"time column 'ts'.*cannot be read as timestamps"):
        CallableSource(lambda s, e: bad, time_column="ts", name="t").load(None, None)


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

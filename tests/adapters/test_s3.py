"""S3 specifics: sources on S3, a missing s3fs, no secrets in retrainer.yaml, atomic PUTs.

The artifact and log contract suites also run on S3 (their ``s3`` parameters); these tests
cover what only S3 has. The server is moto's, on loopback (``tests/s3.py``).
"""

from __future__ import annotations

import io
import sys
from datetime import datetime

import pandas as pd
import pytest

from retrainer.adapters.artifacts import open_artifact_store
from retrainer.adapters.logstore import open_log_store
from retrainer.adapters.sources import FileSource
from retrainer.config import parse_config
from retrainer.errors import ConfigError
from retrainer.testing import pipeline_spec

EXTRA = "pip install 'retrainer[s3]'"


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


def test_a_parquet_folder_on_s3_is_read_in_range_and_new_files_are_seen(s3_bucket: str) -> None:
    import s3fs

    fs = s3fs.S3FileSystem()
    day = pd.DataFrame({"ts": pd.date_range("2024-01-01", periods=48, freq="h"), "x": range(48)})
    fs.pipe_file(f"{s3_bucket}/data/a.parquet", _parquet(day))
    source = FileSource(f"s3://{s3_bucket}/data", time_column="ts")
    assert len(source.load(datetime(2024, 1, 2), None)) == 24
    # a long-lived daemon must see a file added after its first load
    fs.pipe_file(
        f"{s3_bucket}/data/b.parquet", _parquet(day.assign(ts=day.ts + pd.Timedelta("2D")))
    )
    assert len(source.load(datetime(2024, 1, 2), None)) == 72


def test_a_csv_on_s3_is_read(s3_bucket: str) -> None:
    import s3fs

    s3fs.S3FileSystem().pipe_file(
        f"{s3_bucket}/d.csv", b"ts,x\n2024-01-01T00:00,1\n2024-01-02T00:00,2\n"
    )
    frame = FileSource(f"s3://{s3_bucket}/d.csv", time_column="ts", format="csv").load(None, None)
    assert frame["x"].tolist() == [1, 2]


def test_an_artifact_put_on_s3_is_one_object_at_its_final_key(s3_bucket: str) -> None:
    import s3fs

    store = open_artifact_store(f"s3://{s3_bucket}/artifacts")
    ref = store.put(b"model bytes")
    # no temporary key was ever written and moved: S3 would emulate the move by copy + delete
    keys = s3fs.S3FileSystem().find(f"{s3_bucket}/artifacts")
    assert keys == [ref.url.removeprefix("s3://")]


@pytest.fixture
def without_s3fs(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if s3fs were not installed: fsspec's import of it fails."""
    registry = sys.modules["fsspec.registry"]._registry  # `fsspec.registry` is a read-only view
    monkeypatch.delitem(registry, "s3", raising=False)
    monkeypatch.delitem(registry, "s3a", raising=False)
    monkeypatch.setitem(sys.modules, "s3fs", None)


@pytest.mark.parametrize(
    "open_store",
    [
        lambda: open_artifact_store("s3://bucket/artifacts"),
        lambda: open_log_store("s3://bucket/logs"),
        lambda: FileSource("s3://bucket/data.parquet", time_column="ts").load(None, None),
    ],
    ids=["artifacts", "logs", "source"],
)
def test_a_missing_s3fs_is_one_line_naming_the_extra(without_s3fs: None, open_store) -> None:
    with pytest.raises(ConfigError) as info:
        open_store()
    message = str(info.value)
    assert EXTRA in message and "s3fs" in message and "\n" not in message


@pytest.mark.parametrize(
    ("storage", "source", "named"),
    [
        ({"aws_secret_access_key": "hunter2"}, {}, "storage: key 'aws_secret_access_key'"),
        ({"key": "hunter2"}, {}, "storage: key 'key'"),
        ({}, {"secret": "hunter2"}, "pipelines[0].source: key 'secret'"),
        ({"artifacts_url": "s3://AKIA:hunter2@bucket/a"}, {}, "storage.artifacts_url"),
        ({}, {"url": "s3://AKIA:hunter2@bucket/d.parquet"}, "pipelines[0].source.url"),
    ],
)
def test_a_secret_in_retrainer_yaml_is_refused_and_not_repeated(
    storage: dict[str, str], source: dict[str, str], named: str
) -> None:
    spec = pipeline_spec()
    spec["source"] = {**spec["source"], **source}
    with pytest.raises(ConfigError) as info:
        parse_config({"storage": storage, "pipelines": [spec]})
    assert named in str(info.value)
    assert "environment" in str(info.value) and "hunter2" not in str(info.value)


def test_s3_urls_without_secrets_are_accepted() -> None:
    spec = pipeline_spec()
    spec["source"] = {**spec["source"], "url": "s3://bucket/data/"}
    config = parse_config(
        {"storage": {"artifacts_url": "s3://b/a", "logs_url": "s3://b/l"}, "pipelines": [spec]}
    )
    assert config.storage.artifacts_url == "s3://b/a"

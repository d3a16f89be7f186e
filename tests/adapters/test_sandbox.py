"""The sanity check: load and predict with a stored artifact in a fresh interpreter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from retrainer.adapters.artifacts import ArtifactRef, InMemoryArtifactStore, LocalArtifactStore
from retrainer.adapters.sandbox import SanityResult, predict_in_fresh_process
from retrainer.adapters.serialization import dump_model


@pytest.fixture(scope="module")
def frame() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    y = (X["a"] - X["c"] > 0).to_numpy().astype(int)
    return X, y


def _check(ref: ArtifactRef, sample: pd.DataFrame, **kwargs: Any) -> SanityResult:
    options: dict[str, Any] = {"fmt": "skops", "trusted_types": [], "allow_pickle": False}
    options.update(kwargs)
    return predict_in_fresh_process(
        artifact_url=ref.url, sha256=ref.sha256, sample=sample, **options
    )


def _assert_failed(result: SanityResult, *fragments: str) -> None:
    assert not result.ok
    assert result.predictions is None
    assert result.error is not None
    assert "Traceback" not in result.error
    assert "\n" not in result.error
    for fragment in fragments:
        assert fragment in result.error


def test_fresh_process_predictions_match_in_process(
    tmp_path: Path, frame: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, y = frame
    model = make_pipeline(StandardScaler(), HistGradientBoostingClassifier(max_iter=20))
    model.fit(X, y)
    ref = LocalArtifactStore(tmp_path).put(dump_model(model))
    result = _check(ref, X.head(50))
    assert result.ok, result.error
    assert result.error is None
    assert result.predictions is not None
    np.testing.assert_array_equal(result.predictions, model.predict(X.head(50)))
    assert result.seconds > 0


def test_string_labels_and_joblib(tmp_path: Path, frame: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = frame
    model = LogisticRegression().fit(X, np.where(y == 1, "buy", "skip"))
    ref = LocalArtifactStore(tmp_path).put(dump_model(model, fmt="joblib"))
    result = _check(ref, X, fmt="joblib", allow_pickle=True)
    assert result.ok, result.error
    assert result.predictions is not None
    assert result.predictions.tolist() == model.predict(X).tolist()


def test_tampered_artifact_fails_the_check(
    tmp_path: Path, frame: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, y = frame
    ref = LocalArtifactStore(tmp_path).put(dump_model(LogisticRegression().fit(X, y)))
    path = tmp_path / "sha256" / ref.sha256[:2] / ref.sha256
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    result = _check(ref, X)
    _assert_failed(result, "ArtifactIntegrityError", ref.sha256, "must not be loaded")


class Shift(TransformerMixin, BaseEstimator):
    def fit(self, X: Any, y: Any = None) -> Shift:
        return self

    def transform(self, X: Any) -> Any:
        return X


def test_untrusted_type_fails_the_check(
    tmp_path: Path, frame: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, y = frame
    model = make_pipeline(Shift(), LogisticRegression()).fit(X, y)
    ref = LocalArtifactStore(tmp_path).put(dump_model(model))
    result = _check(ref, X)
    _assert_failed(result, "UntrustedArtifactError", f"{Shift.__module__}.Shift")


def test_predict_raising_fails_the_check(
    tmp_path: Path, frame: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, y = frame
    ref = LocalArtifactStore(tmp_path).put(dump_model(LogisticRegression().fit(X, y)))
    result = _check(ref, X[["a", "b"]])  # a column the model needs is missing
    _assert_failed(result, "ValueError")


def test_timeout_fails_the_check(tmp_path: Path, frame: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = frame
    ref = LocalArtifactStore(tmp_path).put(dump_model(LogisticRegression().fit(X, y)))
    result = _check(ref, X, timeout_s=0.01)
    _assert_failed(result, "within 0.01 s")


def test_unwritable_sample_fails_without_raising(tmp_path: Path) -> None:
    ref = LocalArtifactStore(tmp_path).put(b"not used")
    sample = pd.DataFrame([[1.0, 2.0]], columns=["a", "a"])  # Parquet refuses duplicates
    result = _check(ref, sample)
    _assert_failed(result, "Duplicate column names")


def test_in_memory_store_artifacts_are_handed_to_the_child(
    frame: tuple[pd.DataFrame, np.ndarray],
) -> None:
    X, y = frame
    model = LogisticRegression().fit(X, y)
    store = InMemoryArtifactStore()
    ref = store.put(dump_model(model))
    result = _check(ref, X)
    assert result.ok, result.error
    assert result.predictions is not None
    np.testing.assert_array_equal(result.predictions, model.predict(X))

    with fsspec.open(ref.url, "wb") as f:
        f.write(b"tampered")
    _assert_failed(_check(ref, X), "ArtifactIntegrityError")


def test_the_server_started_early_serves_the_checks(tmp_path, monkeypatch):
    from multiprocessing import forkserver

    from retrainer.adapters import sandbox

    monkeypatch.delenv("RETRAINER_SANITY_SUBPROCESS", raising=False)
    sandbox.start_fresh_process_server()
    sandbox.start_fresh_process_server()  # a second call is a no-op
    pid = forkserver._forkserver._forkserver_pid
    assert pid is not None
    forkserver.ensure_running()
    assert forkserver._forkserver._forkserver_pid == pid  # the same server, still running

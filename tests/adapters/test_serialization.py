"""Model serialization: skops with an allowlist by default, joblib only when pickle is allowed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from retrainer.adapters.serialization import dump_model, is_trusted_type, load_model
from retrainer.errors import (
    ArtifactIntegrityError,
    ConfigError,
    TrainingError,
    UntrustedArtifactError,
)


class Shift(TransformerMixin, BaseEstimator):
    """A user-defined step: not trusted until the user names it."""

    def __init__(self, by: float = 1.0) -> None:
        self.by = by

    def fit(self, X: Any, y: Any = None) -> Shift:
        return self

    def transform(self, X: Any) -> Any:
        return np.asarray(X) + self.by


SHIFT = f"{Shift.__module__}.{Shift.__qualname__}"


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    return X, y


def _models() -> list[Any]:
    return [
        LogisticRegression(),
        Pipeline(
            [("scale", StandardScaler()), ("gbm", HistGradientBoostingClassifier(max_iter=20))]
        ),
        RandomForestClassifier(n_estimators=5, random_state=0),
    ]


@pytest.mark.parametrize("model", _models(), ids=lambda m: type(m).__name__)
def test_skops_round_trip_predicts_identically(
    model: Any, data: tuple[np.ndarray, np.ndarray]
) -> None:
    X, y = data
    model.fit(X, y)
    blob = dump_model(model)
    loaded = load_model(blob)
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_untrusted_custom_class_is_refused(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    model = make_pipeline(Shift(by=2.0), LogisticRegression()).fit(X, y)
    blob = dump_model(model)
    with pytest.raises(UntrustedArtifactError) as info:
        load_model(blob)
    message = str(info.value)
    assert SHIFT in message
    assert "serialization.trusted_types" in message
    assert "retrainer.yaml" in message


def test_custom_class_loads_when_trusted_by_name(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    model = make_pipeline(Shift(by=2.0), LogisticRegression()).fit(X, y)
    loaded = load_model(dump_model(model), trusted_types=[SHIFT])
    assert loaded.steps[0][1].by == 2.0
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_trust_is_by_exact_name(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    blob = dump_model(make_pipeline(Shift(), LogisticRegression()).fit(X, y))
    with pytest.raises(UntrustedArtifactError):
        load_model(blob, trusted_types=[Shift.__module__, "Shift", SHIFT.upper()])


def test_library_function_needs_to_be_trusted_by_name() -> None:
    model = FunctionTransformer(np.sum)
    blob = dump_model(model)
    with pytest.raises(UntrustedArtifactError, match=r"numpy\.sum"):
        load_model(blob)
    assert load_model(blob, trusted_types=["numpy.sum"]).func is np.sum


@pytest.mark.parametrize(
    ("name", "trusted"),
    [
        ("sklearn.tree._tree.Tree", True),
        ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor", True),
        ("numpy.ndarray", True),
        ("scipy.sparse._csr.csr_matrix", True),
        ("builtins.slice", True),
        ("numpy.memmap", False),  # opens files when constructed
        ("scipy.io.FortranFile", False),
        ("numpy.save", False),  # a function
        ("builtins.eval", False),
        ("builtins.open", False),
        ("os.system", False),
        ("sklearn.does_not_exist.Nothing", False),
        ("sklearnx.Model", False),
    ],
)
def test_allowlist(name: str, trusted: bool) -> None:
    assert is_trusted_type(name) is trusted


@pytest.mark.parametrize("fmt", ["joblib", "pickle"])
def test_pickles_are_refused_without_allow_pickle(
    data: tuple[np.ndarray, np.ndarray], fmt: str
) -> None:
    X, y = data
    model = LogisticRegression().fit(X, y)
    blob = dump_model(model, fmt=fmt)
    with pytest.raises(UntrustedArtifactError, match=r"allow_pickle: true") as info:
        load_model(blob, fmt=fmt)
    assert "pickle" in str(info.value)
    loaded = load_model(blob, fmt=fmt, allow_pickle=True)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_a_truncated_pickle_is_an_integrity_error(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    blob = dump_model(LogisticRegression().fit(X, y), fmt="pickle")
    with pytest.raises(ArtifactIntegrityError, match="not a readable pickle"):
        load_model(blob[: len(blob) // 2], fmt="pickle", allow_pickle=True)


def test_a_model_that_cannot_be_pickled_is_a_training_error() -> None:
    with pytest.raises(TrainingError, match="cannot be pickled"):
        dump_model(HoldsALambda(), fmt="pickle")


@pytest.mark.parametrize("fmt", ["cloudpickle", "SKOPS", ""])
def test_unknown_format_is_a_config_error(fmt: str) -> None:
    with pytest.raises(ConfigError, match=repr(fmt)):
        dump_model(LogisticRegression(), fmt=fmt)
    with pytest.raises(ConfigError, match=repr(fmt)):
        load_model(b"whatever", fmt=fmt)


class HoldsALambda(BaseEstimator):
    def __init__(self) -> None:
        self.link = lambda z: z


def test_model_skops_cannot_save_is_a_training_error() -> None:
    with pytest.raises(TrainingError, match="cannot be saved with skops") as info:
        dump_model(HoldsALambda())
    assert "joblib" in str(info.value)
    assert "allow_pickle" in str(info.value)


def test_joblib_file_read_as_skops_is_refused(data: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = data
    blob = dump_model(LogisticRegression().fit(X, y), fmt="joblib")
    with pytest.raises(ArtifactIntegrityError, match="not a readable skops file"):
        load_model(blob)

"""River online models behind the scikit-learn interface retrainer trains and serves.

:class:`RiverClassifier` wraps a River classifier (optionally behind River's online
``StandardScaler``): ``fit`` starts a fresh model and learns the rows, ``partial_fit`` keeps
learning (what a run with ``window: {kind: new}`` calls on a copy of the champion), and
``predict`` / ``predict_proba`` answer for a batch. Each run's model is a checkpoint: a
version in the registry, blessed and promoted like any other.

In ``retrainer.yaml``::

    model:
      estimator: retrainer.integrations.river:RiverClassifier
      params: {model: linear_model.LogisticRegression, scale: true}
    window: {kind: new}

The pipeline's ``categorical`` features are handed to it (``categorical=[...]``) and one-hot
encoded by River itself, a value at a time: a category first seen in production is learned
from the next update on, and answered meanwhile as no known category.

Examples
--------
>>> import pandas as pd
>>> X = pd.DataFrame({"a": [0.0, 1.0, 0.1, 0.9] * 20})
>>> y = pd.Series([0, 1, 0, 1] * 20)
>>> clf = RiverClassifier().fit(X, y)
>>> clf.predict(pd.DataFrame({"a": [0.05, 0.95]})).tolist()
[0, 1]
>>> clf.partial_fit(X, y).predict_proba(X).shape
(80, 2)

With a text column of categories:

>>> X = pd.DataFrame({"a": [0.0, 1.0] * 40, "band": ["low", "high"] * 40})
>>> clf = RiverClassifier(categorical=["band"]).fit(X, [0, 1] * 40)
>>> clf.predict(pd.DataFrame({"a": [0.5, 0.5], "band": ["low", "high"]})).tolist()
[0, 1]
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


def _build(model: str, params: dict[str, Any]) -> Any:
    from retrainer.adapters.serialization import is_trusted_type

    module, _, name = model.rpartition(".")
    if not module or not name:
        raise ValueError(f"model must name a River class as 'module.Class'; got {model!r}")
    # a loaded model's ``model`` comes from its file: only a River model class may be built
    if not is_trusted_type(f"river.{model}"):
        raise ValueError(f"model must name a River model class; got {model!r}")
    cls = getattr(importlib.import_module(f"river.{module}"), name)
    return cls(**params)


_MANY_FROM = 200  # rows from which predict_proba_many beats predict_proba_one


def _records(X: Any) -> list[dict[Any, Any]]:
    """The rows of ``X`` as ``{column: value}`` dicts, as River takes them.

    Ten times faster than ``DataFrame.to_dict("records")`` on the small frames of an online
    update (values are Python scalars either way).
    """
    frame = pd.DataFrame(X)
    columns = list(frame.columns)
    return [dict(zip(columns, row, strict=True)) for row in frame.to_numpy().tolist()]


def _scaler() -> Any:
    from river import preprocessing

    return preprocessing.StandardScaler()


def _scalers(step: Any) -> list[Any]:
    """The StandardScalers inside a River pipeline or union (any depth)."""
    out = [step] if isinstance(getattr(step, "vars", None), dict) else []
    for children in (getattr(step, "steps", None), getattr(step, "transformers", None)):
        for child in children.values() if isinstance(children, dict) else ():
            out += _scalers(child)
    return out


class RiverClassifier:
    """A River classifier with ``fit``/``partial_fit``/``predict``/``predict_proba``.

    Parameters
    ----------
    model
        The River class under ``river.``, e.g. ``"linear_model.LogisticRegression"``,
        ``"tree.HoeffdingAdaptiveTreeClassifier"``, ``"naive_bayes.GaussianNB"``.
    scale
        Put River's online ``StandardScaler`` in front of it (of the numeric columns).
    categorical
        Columns of categories (text or codes): one-hot encoded by River's ``OneHotEncoder``,
        never scaled. A pipeline passes its ``categorical:`` features here.
    **params
        The model's parameters.
    """

    def __init__(
        self,
        model: str = "linear_model.LogisticRegression",
        scale: bool = True,
        categorical: Sequence[str] = (),
        **params: Any,
    ) -> None:
        self.model = model
        self.scale = scale
        self.categorical = list(categorical)
        self.params = params
        self.estimator_: Any = None
        self.classes_: np.ndarray = np.empty(0)

    def fit(self, X: pd.DataFrame, y: Any) -> RiverClassifier:
        """A fresh model, learned on the rows."""
        self.estimator_ = None
        self.classes_ = np.empty(0)
        return self.partial_fit(X, y)

    def partial_fit(self, X: pd.DataFrame, y: Any) -> RiverClassifier:
        """Keep learning, one mini-batch (rows in order)."""
        if self.estimator_ is None:
            self.estimator_ = self._pipeline(list(pd.DataFrame(X).columns))
        targets = np.asarray(y)
        seen = np.unique(targets)
        self.classes_ = np.union1d(self.classes_, seen) if len(self.classes_) else seen
        # one row at a time, in order: River's learn_many takes one gradient step per batch
        learn = self.estimator_.learn_one
        for x, target in zip(_records(X), targets.tolist(), strict=True):
            learn(x, target)
        return self

    def _pipeline(self, columns: list[Any]) -> Any:
        """The River model, behind the scaler and the one-hot encoder it needs."""
        model = _build(self.model, dict(self.params))
        # an object loaded from a file written before ``categorical`` existed has none
        categorical = list(getattr(self, "categorical", None) or ())
        if not categorical:
            return _scaler() | model if self.scale else model
        from river import compose, preprocessing

        # Select (not Discard): a union's parts answer predict_proba_many, Discard does not
        steps = compose.Select(*categorical) | preprocessing.OneHotEncoder()
        numeric = [c for c in columns if c not in categorical]
        if numeric:
            rest = compose.Select(*numeric)
            steps = steps + (rest | _scaler() if self.scale else rest)
        return steps | model

    def _clamp(self) -> None:
        # River's running variance can sit at -1e-17 for a constant column (rounding), and
        # transform_many would take a complex square root: clamp it at 0
        for scaler in _scalers(self.estimator_):
            variances = scaler.vars
            for key, value in variances.items():
                if value < 0:
                    variances[key] = 0.0

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Class probabilities in the order of ``classes_``.

        Small frames are answered row by row (``predict_proba_one``): River's
        ``predict_proba_many`` costs about 0.6 ms per call whatever the size, and a day of
        predictions is a few dozen rows; from ``_MANY_FROM`` rows on it is the faster one.
        """
        X = pd.DataFrame(X)
        self._clamp()
        columns: dict[Any, np.ndarray]
        if len(X) >= _MANY_FROM and hasattr(self.estimator_, "predict_proba_many"):
            proba = self.estimator_.predict_proba_many(X.reset_index(drop=True))
            columns = {key: proba[key].fillna(0.0).to_numpy() for key in proba.columns}
        else:
            rows = [self.estimator_.predict_proba_one(x) for x in _records(X)]
            keys = {key for row in rows for key in row}
            columns = {
                key: np.array([row.get(key, 0.0) or 0.0 for row in rows], dtype=float)
                for key in keys
            }
        out = np.zeros((len(X), len(self.classes_)))
        for j, label in enumerate(self.classes_):
            for key in (label, bool(label) if len(self.classes_) == 2 else label):
                if key in columns:
                    out[:, j] = columns[key]
                    break
        if len(self.classes_) == 2 and not out.any(axis=1).all():
            out[:, 0] = np.where(out.any(axis=1), out[:, 0], 0.5)
            out[:, 1] = 1.0 - out[:, 0]
        return out

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The most probable class of each row."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

"""Serving use cases: hold the champion of every pipeline, validate rows, predict, log.

The HTTP server (:mod:`retrainer.server`) and ``retrainer predict FILE`` both go through here:

- :class:`ModelHolder` loads the version each pipeline's alias (``champion``) points at with
  :meth:`Project.load_version <retrainer.Project.load_version>` (sha256, size and the recorded
  types are checked), warms it with one prediction, and swaps it in by replacing one reference:
  a request that took the old model finishes on it, the next one gets the new model, and no
  request waits for a load. :meth:`ModelHolder.start` polls the aliases every
  ``poll_interval`` seconds in a background thread, so promotions and rollbacks reach a running
  server within that time. A version that fails to load (or to warm) leaves the old model
  serving and records a ``model.load_failed`` event (the daemon's alerter sends it, severity
  critical); it is retried every ``retry_interval`` seconds, with one event per version.
- While a pipeline's rollout (:mod:`retrainer.core.rollout`, the store's state ``rollout``)
  is ``running``, the holder also loads its candidate the same way, and
  :meth:`ModelHolder.pick` routes each request by its key: the champion answers, or the
  candidate does (variant ``challenger``), or the champion answers and the candidate scores a
  copy (variant ``shadow``; :mod:`retrainer.engine.routing` runs it off the request path).
  Each answer is counted in the holder's :class:`~retrainer.engine.rollout.ServingStats`,
  published to the store every ``stats_interval`` seconds for the rollout's guards.
- :func:`feature_specs` and :func:`rows_frame` check rows against the features of the pipeline
  and the dtypes the served model was trained on (its snapshot's schema); a problem is a
  :class:`RowError` naming the row, the column and the value.
- :func:`predict_frame` answers per row the prediction, the score (probability of the positive
  class, or of the predicted class) and the class probabilities.
- :func:`log_rows` is the prediction log row of each answer, in the columns the log store and
  the monitor read (``id``, ``timestamp``, ``pipeline``, ``model_version``, ``prediction``,
  ``score``, the features, ``variant``, ``request_key``).
- :func:`score_file` is batch scoring: a CSV/Parquet file in, predictions out, all logged.

Examples
--------
>>> from datetime import UTC, datetime
>>> from retrainer.core.clock import SimulatedClock
>>> from retrainer.engine.runs.run import execute_run
>>> from retrainer.testing import in_memory_project
>>> project = in_memory_project(name="churn")
>>> _ = execute_run(project, clock=SimulatedClock(datetime(2024, 1, 11, tzinfo=UTC)))
>>> holder = ModelHolder(project)
>>> [(s.pipeline, s.version) for s in holder.refresh()]
[('churn', 1)]
>>> served = holder.get("churn")
>>> frame = rows_frame(served.features, [{"x1": 0.5, "x2": -1.0}])
>>> [sorted(answer) for answer in predict_frame(served, frame)]
[['prediction', 'probabilities', 'score']]
>>> rows_frame(served.features, [{"x1": "high", "x2": 1}])
Traceback (most recent call last):
...
retrainer.engine.rows.RowError: row 0: column 'x1' must be a number (float64); got 'high'
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from retrainer.core.clock import Clock
from retrainer.core.rollout import CHALLENGER, ROLLOUT_KEY, RolloutState, route
from retrainer.core.types import CHAMPION, Event, ModelVersion
from retrainer.engine.pipeline import _transform_once
from retrainer.engine.rollout import ServingStats
from retrainer.engine.rows import (  # the checks; re-exported
    _MAX_PROBLEMS,
    FeatureSpec,
    RowError,
    feature_specs,
    frame_of,
    rows_frame,
    table_frame,
)
from retrainer.errors import DataError, ModelNotFoundError

if TYPE_CHECKING:
    from retrainer.engine.project import Project

__all__ = [
    "FeatureSpec",
    "ModelHolder",
    "Predicted",
    "RowError",
    "ServedModel",
    "feature_specs",
    "frame_of",
    "log_records",
    "log_rows",
    "predict_arrays",
    "predict_frame",
    "rows_frame",
    "score_file",
    "table_frame",
]

_log = logging.getLogger(__name__)


# --- the model -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServedModel:
    """A loaded, warmed model version and what its rows must look like."""

    pipeline: str
    version: int
    model: Any
    features: tuple[FeatureSpec, ...]
    loaded_at: datetime
    variant: str = "champion"


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _missing_values(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A problem per missing cell of ``frame`` (the first :data:`_MAX_PROBLEMS`)."""
    problems: list[dict[str, Any]] = []
    isna = frame.isna().to_numpy()
    for i, j in zip(*np.nonzero(isna), strict=True):
        problems.append(
            {
                "row": int(i),
                "column": str(frame.columns[j]),
                "value": None,
                "problem": "is missing, and this model cannot take missing values",
            }
        )
        if len(problems) >= _MAX_PROBLEMS:
            break
    return problems


@dataclass(frozen=True, slots=True)
class Predicted:
    """A model's answers to the rows of a frame, as arrays (one entry per row).

    ``score``: the probability of the positive class (binary), of the predicted class
    (multiclass), or the predicted value (regression); NaN where there is none.
    ``proba``: the class probabilities (rows x ``classes``), None without ``predict_proba``.
    """

    prediction: np.ndarray
    score: np.ndarray
    proba: np.ndarray | None = None
    classes: tuple[Any, ...] = ()

    def __len__(self) -> int:
        return len(self.prediction)

    def predictions(self) -> list[Any]:
        """The predictions as plain Python values."""
        return self.prediction.tolist()

    def scores(self) -> list[float | None]:
        """The scores as floats, None where there is none."""
        out = self.score.tolist()
        if np.isnan(self.score).any():
            return [None if math.isnan(v) else v for v in out]
        return out

    def probabilities(self) -> list[dict[str, float]] | None:
        """Per row, the probability of each class (by its name); None: not a classifier."""
        if self.proba is None:
            return None
        names = [str(c) for c in self.classes]
        return [dict(zip(names, row, strict=True)) for row in self.proba.tolist()]

    def answers(self) -> list[dict[str, Any]]:
        """Per row ``prediction``, ``score`` and (classifiers) ``probabilities``."""
        preds, scores, probs = self.predictions(), self.scores(), self.probabilities()
        if probs is None:
            return [{"prediction": p, "score": s} for p, s in zip(preds, scores, strict=True)]
        return [
            {"prediction": p, "score": s, "probabilities": pr}
            for p, s, pr in zip(preds, scores, probs, strict=True)
        ]


def predict_frame(served: ServedModel, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Per row: ``prediction``, ``score`` and (classifiers) ``probabilities`` by class
    (:func:`predict_arrays` as one dict per row)."""
    return predict_arrays(served, frame).answers()


def predict_arrays(served: ServedModel, frame: pd.DataFrame) -> Predicted:
    """The model's answers to ``frame`` as arrays.

    A model that cannot take missing values (it raises scikit-learn's "Input X contains NaN")
    on a frame with some is a :class:`RowError` naming each missing cell; a model that takes
    them (an imputer, a tree booster) answers as usual.
    """
    try:
        return _predict_arrays(served, frame)
    except ValueError as exc:
        # whether a model takes NaN is only known by asking it (a Pipeline's imputer may cover
        # some columns only), so the missing cells are named after the model refuses them
        if "nan" not in str(exc).lower() or not (problems := _missing_values(frame)):
            raise
        raise RowError(problems) from exc


def _predict_arrays(served: ServedModel, frame: pd.DataFrame) -> Predicted:
    model = served.model
    X: Any = frame
    with_proba = hasattr(model, "predict_proba") and hasattr(model, "classes_")
    if with_proba and _transform_once(model):
        # a scikit-learn Pipeline: transform once for both answers (the same values)
        X = model[:-1].transform(X)
        model = model[-1]
    y_pred = np.asarray(model.predict(X))
    if with_proba:
        proba = np.asarray(model.predict_proba(X), dtype=float)
        classes = tuple(_plain(c) for c in model.classes_)
        if len(classes) == 2:
            score = proba[:, 1]
        elif classes:
            score = proba.max(axis=1)
        else:
            score = np.full(len(y_pred), math.nan)
        return Predicted(y_pred, score, proba, classes)
    if y_pred.dtype.kind in "iuf":
        return Predicted(y_pred, y_pred.astype(float))
    score = np.array(
        [
            float(p) if isinstance(p, int | float) and not isinstance(p, bool) else math.nan
            for p in y_pred.tolist()
        ],
        dtype=float,
    )
    return Predicted(y_pred, score)


def log_records(
    served: ServedModel,
    frame: pd.DataFrame,
    predicted: Predicted,
    ids: Sequence[str],
    *,
    now: datetime,
    request_key: str | None = None,
    shadow_of: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """:func:`log_rows` built by column: the features from the checked ``frame`` (the values
    the model saw; a missing value is None), the answers from ``predicted``.

    Examples
    --------
    >>> from datetime import datetime
    >>> served = ServedModel("p", 3, None, feature_specs(["x"], {"x": "float64"}),
    ...                      datetime(2024, 1, 1))
    >>> frame = pd.DataFrame({"x": [0.5, float("nan")]})
    >>> rows = log_records(served, frame, Predicted(np.array([1, 0]), np.array([0.9, 0.2])),
    ...                    ["a", "b"], now=datetime(2024, 1, 2))
    >>> [(r["id"], r["prediction"], r["score"], r["x"], r["variant"]) for r in rows]
    [('a', 1, 0.9, 0.5, 'champion'), ('b', 0, 0.2, None, 'champion')]
    """
    at = now if now.tzinfo is None else now.astimezone(UTC).replace(tzinfo=None)
    keys = ["id", "timestamp", "pipeline", "model_version", "prediction", "score", "variant"]
    keys.append("request_key")
    columns: list[Any] = [
        ids,
        repeat(at),
        repeat(served.pipeline),
        repeat(served.version),
        predicted.predictions(),
        predicted.scores(),
        repeat(served.variant),
        repeat(request_key),
    ]
    if shadow_of is not None:
        keys.append("shadow_of")
        columns.append(shadow_of)
    for name in frame.columns:
        if name in keys:
            continue
        values = frame[name]
        listed = values.tolist()
        if values.hasnans:
            listed = [None if v is None or v is pd.NA or v != v else v for v in listed]
        keys.append(str(name))
        columns.append(listed)
    return [dict(zip(keys, row, strict=False)) for row in zip(*columns, strict=False)]


def log_rows(
    served: ServedModel,
    rows: Sequence[Mapping[str, Any]],
    answers: Sequence[Mapping[str, Any]],
    ids: Sequence[str],
    *,
    now: datetime,
    request_key: str | None = None,
    shadow_of: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """The prediction log rows of ``answers`` to the feature ``rows`` (valid, as
    :func:`rows_frame` checks them; see the module docstring for the columns).

    ``shadow_of``: per row, the id of the champion's prediction a shadow scored a copy of
    (the column ``shadow_of``, which pairs the two for the rollout's test)."""
    at = now if now.tzinfo is None else now.astimezone(UTC).replace(tzinfo=None)
    floats = [f.name for f in served.features if f.kind == "float"]
    out = []
    for i, answer in enumerate(answers):
        row = {
            "id": ids[i],
            "timestamp": at,
            "pipeline": served.pipeline,
            "model_version": served.version,
            "prediction": answer["prediction"],
            "score": answer["score"],
            "variant": served.variant,
            "request_key": request_key,
        }
        if shadow_of is not None:
            row["shadow_of"] = shadow_of[i]
        for name, value in rows[i].items():
            row.setdefault(str(name), value)
        for name in floats:  # 1 and 1.0 are one type in the log
            if row[name] is not None:
                row[name] = float(row[name])
        out.append(row)
    return out


def new_ids(n: int) -> list[str]:
    """Fresh prediction ids: 32 hex digits, a random 96-bit prefix (one uuid4 per call) and an
    8-digit counter, unique across calls as uuid4s are (1,000 uuid4s cost ~2 ms).

    >>> ids = new_ids(3)
    >>> len(set(ids)), len(ids[0]), ids[1][-8:]
    (3, 32, '00000001')
    """
    prefix = uuid.uuid4().hex[:24]
    return [f"{prefix}{i:08x}" for i in range(n)]


def _warm_row(features: Sequence[FeatureSpec], profile: Mapping[str, Any] | None) -> dict[str, Any]:
    """A plausible row: each feature's mean (or first label) in the training profile."""
    stats = (profile or {}).get("features", {}) if isinstance(profile, Mapping) else {}
    row: dict[str, Any] = {}
    for spec in features:
        info = stats.get(spec.name) or {}
        if spec.kind == "float":
            mean = info.get("mean")
            row[spec.name] = float(mean) if isinstance(mean, int | float) else 0.0
        elif spec.kind == "int":
            mean = info.get("mean")
            row[spec.name] = round(mean) if isinstance(mean, int | float) else 0
        elif spec.kind == "bool":
            row[spec.name] = False
        else:
            labels = info.get("labels") or [""]
            row[spec.name] = labels[0]
    return row


@dataclass(frozen=True, slots=True)
class _Route:
    """A running rollout of a pipeline and its loaded candidate (swapped as one reference)."""

    state: RolloutState
    candidate: ServedModel


class ModelHolder:
    """The served models of each pipeline: the version an alias points at and, while a
    rollout runs, its candidate.

    Parameters
    ----------
    project
        Whose pipelines, registry and artifacts.
    alias
        The alias served (``champion``). Only a holder of the champion follows rollouts.
    poll_interval
        Seconds between checks of the aliases and rollouts once :meth:`start` ed.
    retry_interval
        Seconds before a version that failed to load is tried again.
    clock
        Stamps ``loaded_at``, the events and the published stats (default: the project's).
    stats
        The request counters this worker publishes (default: a new :class:`ServingStats`).
    stats_interval
        Seconds between publications of ``stats`` to the store once :meth:`start` ed (and
        once more at :meth:`stop`): what the controller's rollout guards read.

    See the module docstring for an example; :meth:`pick` routes a request.
    """

    def __init__(
        self,
        project: Project,
        *,
        alias: str = CHAMPION,
        poll_interval: float = 2.0,
        retry_interval: float = 60.0,
        clock: Clock | None = None,
        stats: ServingStats | None = None,
        stats_interval: float = 5.0,
    ) -> None:
        self.project = project
        self.alias = alias
        self.poll_interval = poll_interval
        self.retry_interval = retry_interval
        self.clock = clock if clock is not None else project.clock
        self.stats = stats if stats is not None else ServingStats()
        self.stats_interval = stats_interval
        self.pipelines = tuple(p.name for p in project.config.pipelines)
        # copy-on-write: a swap replaces the whole mapping, so a reader never sees half of one
        self._served: dict[str, ServedModel] = {}
        self._routes: dict[str, _Route] = {}
        self._rollouts: dict[str, RolloutState | None] = {}
        self._targets: dict[str, int | None] = {}
        # (pipeline, version, alias) -> monotonic time of the failure
        self._failed: dict[tuple[str, int, str], float] = {}
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._recorded = 0  # requests recorded: publish only when it moved
        self._recorded_lock = threading.Lock()
        self._published = 0
        self.load_failures = 0
        self.swaps = 0

    # reading ----------------------------------------------------------------------------

    def get(self, pipeline: str) -> ServedModel:
        """The model serving ``pipeline``; ModelNotFoundError when it has none (yet)."""
        served = self._served.get(pipeline)
        if served is None:
            if pipeline not in self.pipelines:
                raise ModelNotFoundError(f"no pipeline {pipeline!r} in this project")
            target = self._targets.get(pipeline)
            if target is None:
                raise ModelNotFoundError(
                    f"{pipeline} has no '{self.alias}' yet: run a retrain that blesses one "
                    f"(retrainer run) or promote a version (retrainer promote VERSION)"
                )
            raise ModelNotFoundError(f"{pipeline} v{target} ('{self.alias}') is not loaded yet")
        return served

    def pick(self, pipeline: str, key: str) -> tuple[ServedModel, ServedModel | None]:
        """The model that answers a request with ``key`` and the one scoring a shadow copy.

        :func:`retrainer.core.rollout.route` decides by the pipeline's running rollout: the
        champion answers alone, or the candidate answers (variant ``challenger``), or the
        champion answers and the candidate scores a copy (variant ``shadow``). Without a
        running rollout whose candidate is loaded, the champion answers alone. The same key
        always gets the same variant during a rollout; ModelNotFoundError as :meth:`get`.
        """
        champion = self.get(pipeline)
        current = self._routes.get(pipeline)
        if current is None:
            return champion, None
        variant = route(current.state, key)
        if variant == "challenger":
            return current.candidate, None
        if variant == "shadow":
            return champion, current.candidate
        return champion, None

    def served(self) -> dict[str, ServedModel]:
        """The champions served now, by pipeline."""
        return dict(self._served)

    def candidates(self) -> dict[str, ServedModel]:
        """The candidates of the running rollouts, loaded and routed to now, by pipeline."""
        return {name: r.candidate for name, r in self._routes.items()}

    def rollout(self, pipeline: str) -> RolloutState | None:
        """The pipeline's rollout as last polled (None: none stored, or not polled yet)."""
        return self._rollouts.get(pipeline)

    def ready(self) -> dict[str, bool]:
        """Per pipeline: whether the version its alias pointed at when last polled is loaded
        (a pipeline without the alias is ready: it has nothing to serve)."""
        out = {}
        for name in self.pipelines:
            target = self._targets.get(name)
            served = self._served.get(name)
            polled = name in self._targets
            out[name] = polled and (
                target is None or (served is not None and served.version == target)
            )
        return out

    def status(self) -> dict[str, bool | str]:
        """Per pipeline, what ``/readyz`` shows: ``True`` its champion is loaded, ``False`` it
        is not (yet, or it failed to load), ``"no champion"`` the alias points at no version
        (nothing to load: it does not hold readiness back, see :meth:`ready`)."""
        ready = self.ready()
        return {
            name: "no " + self.alias
            if name in self._targets and self._targets[name] is None
            else ready[name]
            for name in self.pipelines
        }

    # loading ----------------------------------------------------------------------------

    def load(self, pipeline: str, version: int, *, variant: str = CHAMPION) -> ServedModel:
        """Load and warm ``version`` of ``pipeline`` (raises on any failure)."""
        mv: ModelVersion = self.project.store.get_version(pipeline, version)
        model = self.project.load_version(mv)
        features = feature_specs(
            self.project.pipeline(pipeline).feature_columns, mv.snapshot.schema
        )
        served = ServedModel(
            pipeline=pipeline,
            version=version,
            model=model,
            features=features,
            loaded_at=self.clock.now(),
            variant=variant,
        )
        predict_arrays(served, rows_frame(features, [_warm_row(features, mv.profile)]))
        return served

    def refresh(self) -> list[ServedModel]:
        """Check every pipeline's alias (and, for the champion, its rollout) once; load and
        swap in what moved. Returns the models swapped in."""
        swapped = []
        with self._refresh_lock:
            for name in self.pipelines:
                served = self._refresh_alias(name)
                if served is not None:
                    swapped.append(served)
                if self.alias == CHAMPION:
                    candidate = self._refresh_rollout(name)
                    if candidate is not None:
                        swapped.append(candidate)
        return swapped

    def _refresh_alias(self, name: str) -> ServedModel | None:
        target = self.project.store.get_alias(name, self.alias)
        self._targets[name] = target
        current = self._served.get(name)
        if target is None:
            if current is not None:
                self._served = {k: v for k, v in self._served.items() if k != name}
            return None
        if current is not None and current.version == target:
            return None
        served = self._try_load(name, target, self.alias, CHAMPION, current)
        if served is not None:
            self._served = {**self._served, name: served}
            _log.info("%s: serving v%d", name, target)
        return served

    def _refresh_rollout(self, name: str) -> ServedModel | None:
        stored = self.project.store.get_state(name, ROLLOUT_KEY)
        state = None
        if stored is not None:
            try:
                state = RolloutState.from_dict(stored[0])
            except Exception:  # a state this version cannot read: serve the champion alone
                _log.exception("%s: the stored rollout state cannot be read", name)
        if self._rollouts.get(name, False) != state:
            self._rollouts = {**self._rollouts, name: state}
        current = self._routes.get(name)
        champion = self._served.get(name)
        if state is None or state.status != "running" or champion is None:
            if current is not None:
                self._routes = {k: v for k, v in self._routes.items() if k != name}
                _log.info(
                    "%s: v%d no longer served beside the champion", name, current.candidate.version
                )
            return None
        variant = "shadow" if state.strategy == "shadow" else CHALLENGER
        if current is not None and current.candidate.version == state.candidate:
            model = current.candidate
            if model.variant != variant:
                model = replace(model, variant=variant)
            if current.state != state or model is not current.candidate:
                self._routes = {**self._routes, name: _Route(state, model)}
            return None
        served = self._try_load(name, state.candidate, CHALLENGER, variant, champion)
        if served is None:
            # the champion answers alone until the candidate loads
            self._routes = {k: v for k, v in self._routes.items() if k != name}
            return None
        self._routes = {**self._routes, name: _Route(state, served)}
        _log.info(
            "%s: serving v%d as %s (%s, %.0f%%)",
            name,
            served.version,
            variant,
            state.strategy,
            100 * state.share,
        )
        return served

    def _try_load(
        self, name: str, version: int, alias: str, variant: str, current: ServedModel | None
    ) -> ServedModel | None:
        """``version`` loaded, or None after a failure (recorded; retried later)."""
        key = (name, version, alias)
        failed_at = self._failed.get(key)
        if failed_at is not None and time.monotonic() - failed_at < self.retry_interval:
            return None
        try:
            served = self.load(name, version, variant=variant)
        except Exception as exc:
            self._load_failed(name, version, current, exc, first=failed_at is None, alias=alias)
            self._failed[key] = time.monotonic()
            return None
        self._failed.pop(key, None)
        self.swaps += 1
        return served

    def _load_failed(
        self,
        pipeline: str,
        version: int,
        current: ServedModel | None,
        exc: Exception,
        *,
        first: bool,
        alias: str,
    ) -> None:
        self.load_failures += 1
        kept = f"v{current.version} keeps serving" if current else "nothing is served"
        if alias != self.alias and current is not None:
            kept += " alone"
        message = (
            f"{pipeline} v{version} ('{alias}') failed to load in the server: "
            f"{type(exc).__name__}: {exc}; {kept}"
        )
        _log.error(message)
        if not first:
            return  # one event per version: the retries would repeat it every minute
        try:
            self.project.store.append_event(
                Event(
                    kind="model.load_failed",
                    at=self.clock.now(),
                    message=message,
                    pipeline=pipeline,
                    version=version,
                    data={
                        "alias": alias,
                        "serving": current.version if current else None,
                        "error": f"{type(exc).__name__}: {exc}",
                        "host": os.uname().nodename if hasattr(os, "uname") else None,
                        "pid": os.getpid(),
                    },
                )
            )
        except Exception:  # the store is down too: the log line above is what is left
            _log.exception("recording model.load_failed failed")

    # serving stats ----------------------------------------------------------------------

    def record(self, served: ServedModel, *, ok: bool, seconds: float) -> None:
        """Count one request ``served`` answered (or failed: ``ok`` False) in :attr:`stats`."""
        self.stats.record(served.pipeline, served.version, served.variant, ok=ok, seconds=seconds)
        with self._recorded_lock:
            self._recorded += 1

    def publish_stats(self) -> bool:
        """Publish :attr:`stats` to the store if a request was recorded since the last time
        (what :func:`retrainer.engine.rollout.observe` sums). Returns whether it wrote."""
        recorded = self._recorded
        if recorded == self._published:
            return False
        self.stats.publish(self.project, now=self.clock.now())
        self._published = recorded
        return True

    # polling ----------------------------------------------------------------------------

    def start(self) -> None:
        """Poll the aliases and rollouts every ``poll_interval`` seconds and publish the
        stats every ``stats_interval`` seconds, in a background thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="retrainer-model-poll", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        next_poll = time.monotonic() + self.poll_interval
        next_stats = time.monotonic() + self.stats_interval
        while not self._stop.wait(max(0.0, min(next_poll, next_stats) - time.monotonic())):
            now = time.monotonic()
            if now >= next_poll:
                next_poll = now + self.poll_interval
                try:
                    self.refresh()
                except Exception:  # a store outage: keep serving what is loaded, try again
                    _log.exception("checking the registry's aliases failed")
            if now >= next_stats:
                next_stats = now + self.stats_interval
                self._publish_logged()

    def _publish_logged(self) -> None:
        try:
            self.publish_stats()
        except Exception:  # a store outage: the counters are cumulative, the next one tells
            _log.exception("publishing the serving stats failed")

    def stop(self) -> None:
        """Stop polling and publish the stats a last time (the served models stay)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._publish_logged()


# --- batch scoring ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scored:
    """What :func:`score_file` did: rows scored, the version used, where the output went."""

    rows: int
    pipeline: str
    version: int
    out: Path
    logged: int = 0
    columns: list[str] = field(default_factory=list)


def _read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix == ".csv":
            return pd.read_csv(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: cannot be read: {exc}") from None
    raise DataError(f"{path}: expected a .csv or .parquet file")


def _frame_rows(frame: pd.DataFrame, features: Sequence[FeatureSpec]) -> pd.DataFrame:
    """The feature columns of a file's frame, checked, in training dtypes."""
    missing = [f.name for f in features if f.name not in frame.columns]
    if missing:
        raise RowError(
            [
                {"row": None, "column": name, "value": None, "problem": "is missing from the file"}
                for name in missing
            ]
        )
    columns = frame[[f.name for f in features]].copy()
    problems: list[dict[str, Any]] = []
    for spec in features:
        column = columns[spec.name]
        if spec.kind not in ("float", "int") or pd.api.types.is_numeric_dtype(column.dtype):
            continue
        # a CSV column with one non-number in it is read as text: convert the numbers and
        # name the rows that are not numbers, with their own value
        numbers = pd.to_numeric(column, errors="coerce")
        for i in np.flatnonzero(numbers.isna().to_numpy() & column.notna().to_numpy()):
            value = _plain(column.iloc[i])
            problems.append(
                {
                    "row": int(i),
                    "column": spec.name,
                    "value": value,
                    "problem": f"must be a number ({spec.dtype}); got {value!r}",
                }
            )
        columns[spec.name] = numbers
    if problems:
        problems.sort(key=lambda p: (p["row"], [f.name for f in features].index(p["column"])))
        raise RowError(problems[:_MAX_PROBLEMS])
    records = columns.astype(object).where(columns.notna(), None)
    return rows_frame(features, records.to_dict("records"))


def score_file(
    project: Project,
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    pipeline: str | None = None,
    clock: Clock | None = None,
    log: bool = True,
) -> Scored:
    """Score a CSV or Parquet file with the champion; write the file's columns plus
    ``prediction_id``, ``prediction``, ``score``, ``model_version`` to ``out`` (CSV or
    Parquet by its suffix), and log the predictions as the server does (variant ``batch``).

    Extra columns (ids, times) are kept in the output; the feature columns are checked as the
    server checks them.
    """
    clock = clock if clock is not None else project.clock
    name = project.config.pipeline(pipeline).name
    source, target = Path(path), Path(out)
    if target.suffix.lower() not in (".csv", ".parquet"):
        raise DataError(f"{target}: the output must end in .csv or .parquet")
    folder = target.parent
    if not folder.is_dir():  # before scoring: no work is lost to a typo in the path
        raise DataError(f"{target}: the folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DataError(f"{target}: the folder {folder} is not writable")
    holder = ModelHolder(project, clock=clock)
    version = project.store.get_alias(name, holder.alias)
    if version is None:
        raise ModelNotFoundError(
            f"{name} has no '{holder.alias}' yet: run a retrain that blesses one (retrainer run) "
            "or promote a version (retrainer promote VERSION)"
        )
    served = holder.load(name, version)
    served = ServedModel(
        pipeline=served.pipeline,
        version=served.version,
        model=served.model,
        features=served.features,
        loaded_at=served.loaded_at,
        variant="batch",
    )
    frame = _read_table(source)
    X = _frame_rows(frame, served.features)
    answers = predict_frame(served, X)
    ids = new_ids(len(answers))
    result = frame.copy()
    result["prediction_id"] = ids
    result["prediction"] = [a["prediction"] for a in answers]
    result["score"] = [a["score"] for a in answers]
    result["model_version"] = served.version
    if target.suffix.lower() == ".parquet":
        result.to_parquet(target, index=False)
    else:
        result.to_csv(target, index=False)
    logged = 0
    if log and answers:
        records = cast(list[dict[str, Any]], X.to_dict("records"))
        rows = log_rows(served, records, answers, ids, now=clock.now())
        logged = int(
            project.log_store().append_predictions(
                pd.DataFrame.from_records(rows), origin=str(source)
            )
        )
    return Scored(
        rows=len(answers),
        pipeline=name,
        version=served.version,
        out=target,
        logged=logged,
        columns=list(result.columns),
    )

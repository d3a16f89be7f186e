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
retrainer.engine.serving.RowError: row 0: column 'x1' must be a number (float64); got 'high'
"""

from __future__ import annotations

import logging
import math
import os
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import pandas as pd

from retrainer.core.clock import Clock
from retrainer.core.types import CHAMPION, Event, ModelVersion
from retrainer.engine.pipeline import _transform_once
from retrainer.errors import DataError, ModelNotFoundError

if TYPE_CHECKING:
    from retrainer.engine.project import Project

__all__ = [
    "FeatureSpec",
    "ModelHolder",
    "RowError",
    "ServedModel",
    "feature_specs",
    "log_rows",
    "predict_frame",
    "rows_frame",
    "score_file",
]

_log = logging.getLogger(__name__)

Kind = Literal["float", "int", "bool", "text", "any"]


# --- rows ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """One feature a served model takes: its name, training dtype, and what a value may be."""

    name: str
    dtype: str
    kind: Kind
    nullable: bool


def _kind(dtype: str) -> tuple[Kind, bool]:
    d = dtype.lower()
    if d.startswith("float"):
        return "float", True
    if d.startswith(("int", "uint")):
        return "int", dtype[0] in "IU"  # pandas' Int64/UInt8... hold <NA>
    if d == "bool":
        return "bool", False
    if d == "boolean":
        return "bool", True
    if d in ("object", "str", "category") or d.startswith("string"):
        return "text", True
    return "any", True


def feature_specs(features: Sequence[str], schema: Mapping[str, str]) -> tuple[FeatureSpec, ...]:
    """The specs of ``features`` from a snapshot's schema (column -> dtype name).

    Examples
    --------
    >>> [(s.name, s.kind) for s in feature_specs(["a", "b"], {"a": "int64", "b": "object"})]
    [('a', 'int'), ('b', 'text')]
    """
    out = []
    for name in features:
        dtype = schema.get(name, "any")
        kind, nullable = _kind(dtype)
        out.append(FeatureSpec(name=name, dtype=dtype, kind=kind, nullable=nullable))
    return tuple(out)


class RowError(DataError):
    """Rows that do not fit the features: ``problems`` lists each (row, column, value, problem).

    The message names the first problem; the server answers 422 with all of them (the first 20).
    """

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        self.problems = problems
        first = problems[0]
        where = f"row {first['row']}: " if first.get("row") is not None else ""
        column = f"column {first['column']!r} " if first.get("column") is not None else ""
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        super().__init__(f"{where}{column}{first['problem']}{more}")


_MAX_PROBLEMS = 20


def _check(spec: FeatureSpec, value: Any) -> str | None:
    """Why ``value`` cannot be a value of ``spec`` (None: it can)."""
    if value is None:
        return None if spec.nullable else f"must not be null ({spec.dtype}); got null"
    kind = spec.kind
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be a number ({spec.dtype}); got {value!r}"
        return _out_of_range(spec, value)
    elif kind == "int":
        if isinstance(value, float) and value.is_integer():
            return _out_of_range(spec, value)
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be an integer ({spec.dtype}); got {value!r}"
        return _out_of_range(spec, value)
    elif kind == "bool":
        if not isinstance(value, bool):
            return f"must be true or false ({spec.dtype}); got {value!r}"
    elif kind == "text" and not isinstance(value, str):
        return f"must be text ({spec.dtype}); got {value!r}"
    return None


def _out_of_range(spec: FeatureSpec, value: int | float) -> str | None:
    """Why a number does not fit ``spec``'s dtype: NaN, infinite (JSON's NaN/Infinity or
    1e999) or too large (None: it fits). Such values would make the model fail, not the row."""
    try:
        as_float = float(value)
    except OverflowError:  # an int beyond any float
        as_float = math.inf
    if math.isnan(as_float):
        return f"must be a number ({spec.dtype}); got NaN (send null for a missing value)"
    if spec.kind == "int":
        try:
            info = np.iinfo(np.dtype(spec.dtype.lower()))
        except TypeError:
            return None
        if math.isinf(as_float) or not info.min <= int(value) <= info.max:
            return f"is out of range for {spec.dtype} ({info.min}..{info.max}); got {value!r}"
        return None
    try:
        limit = float(np.finfo(np.dtype(spec.dtype.lower())).max)
    except TypeError:
        limit = math.inf
    if math.isinf(as_float) or abs(as_float) > limit:
        return f"must be a finite number that fits {spec.dtype}; got {value!r}"
    return None


def rows_frame(features: Sequence[FeatureSpec], rows: Sequence[Any]) -> pd.DataFrame:
    """The rows (JSON objects) as a frame of the features, in training dtypes.

    Raises :class:`RowError` for a row that is not an object, a missing or extra column, or a
    value of the wrong type, naming the row, the column and the value.
    """
    names = [f.name for f in features]
    known = set(names)
    problems: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            problems.append(
                {
                    "row": i,
                    "column": None,
                    "value": row,
                    "problem": f"must be an object; got {row!r}",
                }
            )
            continue
        for spec in features:
            if spec.name not in row:
                problems.append(
                    {"row": i, "column": spec.name, "value": None, "problem": "is missing"}
                )
            elif (why := _check(spec, row[spec.name])) is not None:
                problems.append(
                    {"row": i, "column": spec.name, "value": row[spec.name], "problem": why}
                )
        for extra in [k for k in row if k not in known]:
            problems.append(
                {
                    "row": i,
                    "column": extra,
                    "value": row[extra],
                    "problem": f"is not a feature of this pipeline (features: {', '.join(names)})",
                }
            )
        if len(problems) >= _MAX_PROBLEMS:
            break
    if problems:
        raise RowError(problems[:_MAX_PROBLEMS])
    dtypes = {f.dtype for f in features}
    if len(dtypes) == 1 and all(f.kind == "float" for f in features):
        # the usual case (numeric features): one 2-D block, about 10x faster than per column
        block = np.array(
            [[math.nan if row[n] is None else row[n] for n in names] for row in rows],
            dtype=features[0].dtype,
        )
        return pd.DataFrame(block, columns=names)
    columns: dict[str, Any] = {}
    for spec in features:
        values = [row[spec.name] for row in rows]
        if spec.kind == "float":
            columns[spec.name] = np.array(
                [math.nan if v is None else v for v in values], dtype=spec.dtype
            )
        elif spec.kind in ("int", "bool"):
            columns[spec.name] = (
                pd.array(values, dtype=spec.dtype)  # type: ignore[call-overload]
                if spec.nullable
                else (np.array(values, dtype=spec.dtype))
            )
        else:
            try:  # the training dtype: object, str, string, category...
                columns[spec.name] = pd.Series(
                    values, dtype=spec.dtype if spec.kind == "text" else object
                )
            except (TypeError, ValueError):
                columns[spec.name] = pd.Series(values, dtype=object)
    return pd.DataFrame(columns, columns=names)


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


def predict_frame(served: ServedModel, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Per row: ``prediction``, ``score`` and (classifiers) ``probabilities`` by class.

    A model that cannot take missing values (it raises scikit-learn's "Input X contains NaN")
    on a frame with some is a :class:`RowError` naming each missing cell; a model that takes
    them (an imputer, a tree booster) answers as usual.
    """
    try:
        return _predict_frame(served, frame)
    except ValueError as exc:
        # whether a model takes NaN is only known by asking it (a Pipeline's imputer may cover
        # some columns only), so the missing cells are named after the model refuses them
        if "nan" not in str(exc).lower() or not (problems := _missing_values(frame)):
            raise
        raise RowError(problems) from exc


def _predict_frame(served: ServedModel, frame: pd.DataFrame) -> list[dict[str, Any]]:
    model = served.model
    X: Any = frame
    proba: np.ndarray | None = None
    classes: list[Any] = []
    with_proba = hasattr(model, "predict_proba") and hasattr(model, "classes_")
    if with_proba and _transform_once(model):
        # a scikit-learn Pipeline: transform once for both answers (the same values)
        X = model[:-1].transform(X)
        model = model[-1]
    y_pred = np.asarray(model.predict(X))
    if with_proba:
        proba = np.asarray(model.predict_proba(X), dtype=float)
        classes = [_plain(c) for c in model.classes_]
    out: list[dict[str, Any]] = []
    for i, pred in enumerate(y_pred.tolist()):
        answer: dict[str, Any] = {"prediction": pred, "score": None}
        if proba is not None:
            row = proba[i].tolist()
            if len(classes) == 2:
                answer["score"] = row[1]
            elif classes:
                answer["score"] = max(row)
            answer["probabilities"] = {str(c): p for c, p in zip(classes, row, strict=True)}
        elif isinstance(pred, int | float) and not isinstance(pred, bool):
            answer["score"] = float(pred)
        out.append(answer)
    return out


def log_rows(
    served: ServedModel,
    rows: Sequence[Mapping[str, Any]],
    answers: Sequence[Mapping[str, Any]],
    ids: Sequence[str],
    *,
    now: datetime,
    request_key: str | None = None,
) -> list[dict[str, Any]]:
    """The prediction log rows of ``answers`` to the feature ``rows`` (valid, as
    :func:`rows_frame` checks them; see the module docstring for the columns)."""
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
        for name, value in rows[i].items():
            row.setdefault(str(name), value)
        for name in floats:  # 1 and 1.0 are one type in the log
            if row[name] is not None:
                row[name] = float(row[name])
        out.append(row)
    return out


def new_ids(n: int) -> list[str]:
    """Fresh prediction ids (random 128-bit hex)."""
    return [uuid.uuid4().hex for _ in range(n)]


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


class ModelHolder:
    """The served model of each pipeline, following an alias of the registry.

    Parameters
    ----------
    project
        Whose pipelines, registry and artifacts.
    alias
        The alias served (``champion``).
    poll_interval
        Seconds between checks of the aliases once :meth:`start` ed.
    retry_interval
        Seconds before a version that failed to load is tried again.
    clock
        Stamps ``loaded_at`` and the events (default: the project's clock).

    See the module docstring for an example.
    """

    def __init__(
        self,
        project: Project,
        *,
        alias: str = CHAMPION,
        poll_interval: float = 2.0,
        retry_interval: float = 60.0,
        clock: Clock | None = None,
    ) -> None:
        self.project = project
        self.alias = alias
        self.poll_interval = poll_interval
        self.retry_interval = retry_interval
        self.clock = clock if clock is not None else project.clock
        self.pipelines = tuple(p.name for p in project.config.pipelines)
        # copy-on-write: a swap replaces the whole mapping, so a reader never sees half of one
        self._served: dict[str, ServedModel] = {}
        self._targets: dict[str, int | None] = {}
        self._failed: dict[tuple[str, int], float] = {}  # (pipeline, version) -> monotonic time
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
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

    def served(self) -> dict[str, ServedModel]:
        """The models served now, by pipeline."""
        return dict(self._served)

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

    def load(self, pipeline: str, version: int) -> ServedModel:
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
        )
        predict_frame(served, rows_frame(features, [_warm_row(features, mv.profile)]))
        return served

    def refresh(self) -> list[ServedModel]:
        """Check every pipeline's alias once; load and swap in what moved. Returns the swaps."""
        import time

        swapped = []
        with self._refresh_lock:
            for name in self.pipelines:
                target = self.project.store.get_alias(name, self.alias)
                self._targets[name] = target
                current = self._served.get(name)
                if target is None:
                    if current is not None:
                        self._served = {k: v for k, v in self._served.items() if k != name}
                    continue
                if current is not None and current.version == target:
                    continue
                failed_at = self._failed.get((name, target))
                if failed_at is not None and time.monotonic() - failed_at < self.retry_interval:
                    continue
                try:
                    served = self.load(name, target)
                except Exception as exc:
                    self._load_failed(name, target, current, exc, first=failed_at is None)
                    self._failed[(name, target)] = time.monotonic()
                    continue
                self._failed.pop((name, target), None)
                self._served = {**self._served, name: served}
                self.swaps += 1
                swapped.append(served)
                _log.info("%s: serving v%d", name, target)
        return swapped

    def _load_failed(
        self,
        pipeline: str,
        version: int,
        current: ServedModel | None,
        exc: Exception,
        *,
        first: bool,
    ) -> None:
        self.load_failures += 1
        kept = f"v{current.version} keeps serving" if current else "nothing is served"
        message = (
            f"{pipeline} v{version} ('{self.alias}') failed to load in the server: "
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
                        "alias": self.alias,
                        "serving": current.version if current else None,
                        "error": f"{type(exc).__name__}: {exc}",
                        "host": os.uname().nodename if hasattr(os, "uname") else None,
                        "pid": os.getpid(),
                    },
                )
            )
        except Exception:  # the store is down too: the log line above is what is left
            _log.exception("recording model.load_failed failed")

    # polling ----------------------------------------------------------------------------

    def start(self) -> None:
        """Poll the aliases every ``poll_interval`` seconds in a background thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="retrainer-model-poll", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self.refresh()
            except Exception:  # a store outage: keep serving what is loaded, try again
                _log.exception("checking the registry's aliases failed")

    def stop(self) -> None:
        """Stop polling (the served models stay)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


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

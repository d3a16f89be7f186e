"""A pipeline made runnable: its source, window, training, metrics, gate and definition hash.

:class:`Pipeline` turns a validated :class:`~retrainer.config.PipelineConfig` into the
objects a run needs, checks loaded data before training (naming the column and the problem),
trains with an estimator spec or the user's ``train(data, params)`` function, and scores a
model on the holdout into a :class:`~retrainer.core.blessing.ScoreCard`.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from retrainer.adapters.sources import (
    CallableSource,
    Source,
    column_arrays,
    import_ref,
    make_source,
    row_hashes,
)
from retrainer.config import (
    Code,
    MetricConfig,
    ModelConfig,
    PipelineConfig,
    callable_ref,
    parse_config,
)
from retrainer.core.blessing import Gate, Rule, ScoreCard, SliceRule, SliceScore
from retrainer.core.metrics import Metric, compute, get_metric, make_metric
from retrainer.core.significance import HoldoutRows
from retrainer.core.types import EvidenceRow
from retrainer.core.windows import window_from_spec
from retrainer.errors import ConfigError, DataError, TrainingError

MAX_CLASSES_FOR_AUTO = 50

MOSTLY_NUMERIC = 0.9
"""A text column whose non-missing values are numbers but for a share below ``1 -
MOSTLY_NUMERIC`` holds bad values (``'abc'`` in a column of prices), not text."""

HALF_NUMERIC = 0.5
"""A text column whose non-missing values are at least this share of numbers, some with a
fraction (``'12.5'``: measurements, which codes never are), holds bad values too, however
many: half a column of prices turned to ``'abc'`` is a broken source, not categories."""

_FIRST_LOOK = 16
"""How many values of a text column are looked at before it is read whole as numbers."""


def _is_text(dtype: Any) -> bool:
    """Whether ``dtype`` is an object or string dtype (the dtypes a stray string makes)."""
    return (isinstance(dtype, np.dtype) and dtype.kind == "O") or isinstance(dtype, pd.StringDtype)


def _stray_text(values: Any) -> tuple[int, int, int] | None:
    """For a text column of mostly numbers (see :data:`MOSTLY_NUMERIC`), or of at least half
    numbers with fractions (:data:`HALF_NUMERIC`): how many of its non-missing values are not
    numbers, how many values are not missing, and the position of the first that is not a
    number; None for a column of numbers only, or of text (codes, categories...).

    The caller asks only for object or string columns. A first look at a few values spread
    over the column leaves text without numbers alone (categories, names...: a validation
    runs on each window of a replay); a column that may hold numbers gets one vectorized
    ``pd.to_numeric``.
    """
    n = len(values)
    if n > _FIRST_LOOK:
        picks = values.take(np.linspace(0, n - 1, num=_FIRST_LOOK, dtype=np.intp))
        seen = numbers_seen = 0
        for value in picks.tolist():
            if value is None or value is pd.NA:
                continue
            seen += 1
            try:
                float(value)
            except (TypeError, ValueError, OverflowError):
                continue
            numbers_seen += 1
        if seen and not numbers_seen:  # any number seen: a sample may miss half of them
            return None  # text where it was looked at
    column = pd.Series(values, copy=False)
    numbers = pd.to_numeric(column, errors="coerce")
    present = column.notna().to_numpy()
    bad = present & numbers.isna().to_numpy()
    n_bad = int(bad.sum())
    if not n_bad:
        return None
    n_present = int(present.sum())
    n_numbers = n_present - n_bad
    if n_numbers < MOSTLY_NUMERIC * n_present:
        if n_numbers < HALF_NUMERIC * n_present:
            return None  # text (codes, categories...), which a train function may use
        found = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
        found = found[np.isfinite(found)]
        if not np.any(found != np.floor(found)):
            return None  # whole numbers and text: codes ('123', 'code-a'), not measurements
    return n_bad, n_present, int(np.argmax(bad))


def _all_missing(values: Any) -> bool:
    """Whether every value of a column's array (NumPy or extension) is missing; a float
    column with a first value is answered without a pass over the rest."""
    if not len(values):
        return False
    if isinstance(values, np.ndarray):
        if values.dtype.kind in "iubSU":
            return False  # no missing value in these dtypes
        if values.dtype.kind == "f":
            return bool(np.isnan(values[0])) and bool(np.isnan(values).all())
    return bool(pd.isna(values).all())


def _missing_counts(frame: pd.DataFrame, columns: Sequence[str]) -> str:
    """``" on missing values (feature column 'x' has 40 of 300 values missing; ...)"`` for the
    columns of ``frame`` with missing values ("" when none has): what a fit failing on NaN
    says before the estimator's own message."""
    counts = [(c, int(frame[c].isna().sum())) for c in columns if c in frame.columns]
    parts = [f"feature column '{c}' has {n} of {len(frame)} values missing" for c, n in counts if n]
    return f" on missing values ({'; '.join(parts)})" if parts else ""


@dataclass(frozen=True, slots=True)
class Prediction:
    """Predictions on a frame: labels/values and, when the model has it, the score."""

    y_pred: np.ndarray
    y_score: np.ndarray | None


def _transform_once(model: Any) -> bool:
    """Whether ``model`` is a scikit-learn Pipeline whose transforming steps can run once for
    predict and predict_proba: more than one step, the last one an estimator with both."""
    try:
        from sklearn.pipeline import Pipeline as SkPipeline
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        return False
    if type(model) is not SkPipeline or len(model.steps) < 2:
        return False
    final = model.steps[-1][1]
    return hasattr(final, "predict") and hasattr(final, "predict_proba")


def _takes_categorical(cls: Any) -> bool:
    """Whether an estimator class encodes categories itself: its constructor takes
    ``categorical`` (the column names), as RiverClassifier's does."""
    try:
        return "categorical" in inspect.signature(cls).parameters
    except (TypeError, ValueError):  # a builtin or C class without a readable signature
        return False


def _estimator_factory(model: ModelConfig, root: Path) -> Any:
    """What builds a new unfitted estimator from ``params``: the ``module:Class`` named, or,
    for ``mlflow: <uri>``, a clone of that MLflow model (loaded at the first fit)."""
    if model.mlflow:
        from retrainer.integrations.mlflow import MlflowTemplate

        return MlflowTemplate(model.mlflow)
    return import_ref(model.estimator, root)


def encode_categorical(estimator: Any, categorical: Sequence[str]) -> Any:
    """``estimator`` behind a one-hot encoding of the ``categorical`` columns: a scikit-learn
    Pipeline whose ColumnTransformer passes the other columns through as they are.

    A category first seen after training is encoded as all zeros (``handle_unknown=
    "ignore"``), so a new value in production is answered, not refused. The encoding is dense:
    not every estimator takes sparse input (HistGradientBoosting does not), and categories
    are few where this is used.

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> X = pd.DataFrame({"amount": [1.0, 2.0, 3.0, 4.0], "band": ["a", "b", "a", "b"]})
    >>> model = encode_categorical(DecisionTreeClassifier(random_state=0), ["band"])
    >>> model = model.fit(X, [0, 1, 0, 1])
    >>> model.predict(pd.DataFrame({"amount": [1.5, 1.5], "band": ["b", "new"]})).tolist()
    [1, 0]
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline as SkPipeline
    from sklearn.preprocessing import OneHotEncoder

    encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    columns = ColumnTransformer(
        [("categorical", encoder, list(categorical))], remainder="passthrough"
    )
    return SkPipeline([("encode", columns), ("model", estimator)])


def _code(ref: Code, root: Path) -> Any:
    """The object user code names: imported from its ``module:function`` string, or itself."""
    return import_ref(ref, root) if isinstance(ref, str) else ref


def _frame_loader(frame: pd.DataFrame) -> Callable[[datetime | None, datetime | None], Any]:
    """A source function over a DataFrame held in memory: each load reads it as it is then
    (the source keeps the rows of the window)."""

    def load(start: datetime | None, end: datetime | None) -> pd.DataFrame:
        return frame

    load.__qualname__ = "DataFrame"
    return load


def _spec(obj: Any, what: str) -> Mapping[str, Any]:
    """The configuration mapping of a trigger, guard or rule given as a mapping or an object."""
    if isinstance(obj, Mapping):
        return obj
    to_spec = getattr(obj, "to_spec", None)
    if callable(to_spec):
        return dict(to_spec())
    if isinstance(obj, Rule):  # the rules of core.blessing: their parameters, "column" as "slice"
        spec = {k: v for k, v in obj.get_params().items() if v is not None}
        if isinstance(obj, SliceRule):
            spec["slice"] = spec.pop("column")
        return spec
    raise ConfigError(f"{what}: expected a mapping or an object with to_spec(), got {obj!r}")


def _metric_spec(metric: Any, where: str) -> str | Mapping[str, Any] | MetricConfig:
    if isinstance(metric, str | MetricConfig):
        return metric
    if isinstance(metric, Metric):
        return {
            "name": metric.name,
            "function": metric.fn,
            "greater_is_better": metric.greater_is_better,
            "needs_proba": metric.needs_proba,
        }
    if callable(metric):
        raise ConfigError(
            f"{where}: {callable_ref(metric)} is a function without a name and a direction; "
            f"wrap it: make_metric({getattr(metric, '__name__', 'name')!r}, fn, "
            "greater_is_better=True or False)"
        )
    raise ConfigError(
        f"{where}: expected a metric name (e.g. 'accuracy') or a Metric (make_metric), got "
        f"{metric!r}"
    )


class Pipeline:
    """The runnable form of one pipeline of ``retrainer.yaml``.

    Parameters
    ----------
    config
        The validated pipeline configuration.
    root
        The project folder: relative paths and user modules are resolved against it.
    source
        A source to use instead of the one the configuration describes (tests, backtests).

    Examples
    --------
    From a validated configuration (what ``retrainer.yaml`` holds; a train function or a
    metric may be the object itself instead of its ``module:function`` name):

    >>> from retrainer.config import PipelineConfig
    >>> from retrainer.testing import drifting_frame
    >>> config = PipelineConfig.model_validate({
    ...     "name": "demo",
    ...     "source": {"kind": "callable", "function": lambda start, end: drifting_frame(),
    ...                "time_column": "ts"},
    ...     "target": "y",
    ...     "features": ["x1", "x2"],
    ...     "model": {"estimator": "sklearn.linear_model:LogisticRegression"},
    ...     "metrics": ["accuracy"],
    ...     "blessing": {"rules": [{"metric": "accuracy", "min": 0.6}]},
    ... })
    >>> pipeline = Pipeline(config, Path("."))
    >>> pipeline.feature_columns, len(pipeline.definition_hash)
    (['x1', 'x2'], 64)

    Without a configuration, see :meth:`from_callables`.
    """

    def __init__(self, config: PipelineConfig, root: Path, source: Source | None = None) -> None:
        self.config = config
        self.root = root
        self.name = config.name
        if (
            source is None
            and config.source.kind == "callable"
            and callable(fn := config.source.function)
        ):
            source = CallableSource(
                fn, time_column=config.source.time_column, name=callable_ref(fn)
            )
        self.source = source if source is not None else make_source(config.source, root)
        self.time_column = config.source.time_column
        self.window = window_from_spec(config.window.model_dump(exclude_none=True))
        self.metrics = self._metrics()
        self.rules = list(config.blessing.rules)
        self.gate = Gate(self.rules, self.metrics)
        self._train_fn = _code(config.train, root) if config.train else None
        self._train_name = callable_ref(config.train) if config.train else None
        self._estimator_cls = _estimator_factory(config.model, root) if config.model else None
        if self._estimator_cls is not None and not callable(self._estimator_cls):
            raise ConfigError(f"model.estimator '{config.model.estimator}' is not a class")  # type: ignore[union-attr]
        self.definition_hash = self._definition_hash()

    @classmethod
    def from_callables(
        cls,
        *,
        name: str,
        source: Callable[[datetime | None, datetime | None], pd.DataFrame] | pd.DataFrame | Source,
        target: str,
        features: Sequence[str],
        train: Callable[[pd.DataFrame, dict[str, Any]], Any],
        metrics: Sequence[str | Metric],
        rules: Sequence[Mapping[str, Any] | Rule],
        time_column: str | None = None,
        holdout: float = 0.2,
        window: Mapping[str, Any] | None = None,
        triggers: Sequence[Any] = (),
        guards: Sequence[Any] = (),
        params: Mapping[str, Any] | None = None,
        task: Literal["auto", "classification", "regression"] = "auto",
        sanity: bool = False,
        root: str | os.PathLike[str] | None = None,
        **config: Any,
    ) -> Pipeline:
        """A pipeline from Python objects: no YAML file, no ``module:function`` strings.

        It is validated as ``retrainer.yaml`` is (the same messages, naming the key), and
        records and hashes its functions by their ``module:qualname`` and the source of
        their file, as a file's pipeline does. Run it in :meth:`Project.in_memory
        <retrainer.Project.in_memory>`.

        Parameters
        ----------
        name
            The pipeline's name.
        source
            ``load(start, end) -> DataFrame``, a DataFrame (read again at each load, so
            changes to it are seen), or a :class:`~retrainer.Source`.
        target, features
            The label column and the feature columns.
        train
            ``train(data, params) -> model``: ``data`` is the training window, ``params``
            holds ``features``, ``target`` and ``params``. The model needs ``predict``.
        metrics
            Built-in metric names (``"accuracy"``) or :class:`~retrainer.Metric` objects
            (:func:`~retrainer.make_metric` gives one a name and a direction).
        rules
            Blessing rules: mappings as in ``retrainer.yaml`` (``{"metric": "accuracy",
            "min": 0.6}``) or rule objects (:class:`~retrainer.AbsoluteRule`, ...).
        time_column
            The source's time column (taken from ``source`` when it is a Source).
        holdout, window, triggers, guards, params, task
            As the keys of ``retrainer.yaml``; triggers and guards may be objects with
            ``to_spec()``.
        sanity
            Run the fresh-process check (off by default: it needs an artifact store another
            process can read, e.g. :class:`~retrainer.LocalArtifactStore`, and a model whose
            classes import in a new interpreter).
        root
            The folder relative paths resolve from (default: the current folder).
        **config
            Any other key of a pipeline in ``retrainer.yaml`` (``monitor``, ``run``,
            ``unlabelled``).

        Raises
        ------
        ConfigError
            One line per problem, as for ``retrainer.yaml``.

        Examples
        --------
        >>> from sklearn.linear_model import LogisticRegression
        >>> from retrainer import make_metric
        >>> from retrainer.testing import drifting_frame
        >>> def train(data, params):
        ...     model = LogisticRegression()
        ...     return model.fit(data[params["features"]], data[params["target"]])
        >>> def balanced(y_true, y_pred, y_score):
        ...     return float((y_pred == 1).mean())
        >>> pipeline = Pipeline.from_callables(
        ...     name="churn",
        ...     source=drifting_frame(),
        ...     time_column="ts",
        ...     target="y",
        ...     features=["x1", "x2"],
        ...     train=train,
        ...     metrics=["accuracy", make_metric("share_1", balanced, greater_is_better=True)],
        ...     rules=[{"metric": "accuracy", "min": 0.6}],
        ... )
        >>> sorted(pipeline.metrics), pipeline.recorded_params()["train"]
        (['accuracy', 'share_1'], 'retrainer.engine.pipeline:train')
        >>> Pipeline.from_callables(
        ...     name="churn", source=drifting_frame(), time_column="ts", target="y",
        ...     features=["x1"], train=train, metrics=["acuracy"],
        ...     rules=[{"metric": "accuracy", "min": 0.6}],
        ... )
        Traceback (most recent call last):
        ...
        retrainer.errors.ConfigError: Pipeline.from_callables(name='churn') has 1 problem:
          metrics[0]: got 'acuracy'; unknown metric 'acuracy' (did you mean 'accuracy'?). Known ...
        """
        source_obj: Source | None = None
        if isinstance(source, pd.DataFrame):
            function: Callable[..., Any] = _frame_loader(source)
        elif callable(source):
            function = source
        elif callable(getattr(source, "load", None)) and hasattr(source, "time_column"):
            source_obj = source
            function = source.load
            time_column = time_column or source.time_column
        else:
            raise ConfigError(
                f"pipeline {name!r}: source must be a function load(start, end) -> DataFrame, "
                f"a DataFrame or a Source; got {type(source).__name__}"
            )
        if time_column is None:
            raise ConfigError(f"pipeline {name!r}: time_column is required for this source")
        spec: dict[str, Any] = {
            "name": name,
            "source": {"kind": "callable", "function": function, "time_column": time_column},
            "target": target,
            "features": list(features),
            "task": task,
            "train": train,
            "params": dict(params or {}),
            "metrics": [_metric_spec(m, f"metrics[{i}]") for i, m in enumerate(metrics)],
            "blessing": {
                "holdout": holdout,
                "rules": [_spec(r, f"rules[{i}]") for i, r in enumerate(rules)],
                "sanity": {"enabled": sanity},
            },
            "triggers": [_spec(t, f"triggers[{i}]") for i, t in enumerate(triggers)],
            "guards": [_spec(g, f"guards[{i}]") for i, g in enumerate(guards)],
            **config,
        }
        if window is not None:
            spec["window"] = dict(window)
        origin = f"Pipeline.from_callables(name={name!r})"
        try:
            project = parse_config({"pipelines": [spec]}, origin=origin)
        except ConfigError as exc:  # the keys as this method names them, not as a file does
            problems = [p.removeprefix("pipelines[0].") for p in exc.problems]
            raise ConfigError(
                f"{origin} has {len(problems)} problem{'s' if len(problems) != 1 else ''}:\n"
                + "\n".join(f"  {p}" for p in problems),
                problems,
            ) from None
        base = Path.cwd() if root is None else Path(root)
        return cls(project.pipelines[0], base, source_obj)

    # -- definition ---------------------------------------------------------------------
    def _metrics(self) -> dict[str, Metric]:
        out: dict[str, Metric] = {}
        for m in self.config.metrics:
            if isinstance(m, MetricConfig):
                fn = _code(m.function, self.root)
                out[m.name] = make_metric(
                    m.name, fn, greater_is_better=m.greater_is_better, needs_proba=m.needs_proba
                )
            else:
                out[m] = get_metric(m)
        return out

    def _definition_hash(self) -> str:
        """sha256 of the pipeline's config and the source of the user code it names."""
        h = hashlib.sha256()
        definition = self.config.model_dump(mode="json")
        # under its first name, so a config that set it keeps its hash
        definition["deploy"] = definition.pop("rollout", None)
        if definition.get("deploy") is None:  # unset: the hash of projects written before it
            definition.pop("deploy", None)
        if definition.get("duplicates") == "keep":  # the default: the hash written before it
            definition.pop("duplicates", None)
        if not definition.get("categorical"):  # none declared: the hash written before it
            definition.pop("categorical", None)
        drift = (definition.get("monitor") or {}).get("drift") or {}
        if drift.get("window") == "auto":  # likewise
            drift.pop("window")
        if (definition.get("model") or {}).get("mlflow", 0) is None:  # likewise
            del definition["model"]["mlflow"]
        h.update(json.dumps(definition, sort_keys=True).encode())
        user_code: list[Code] = [self.config.train] if self.config.train else []
        user_code += [m.function for m in self.config.metrics if isinstance(m, MetricConfig)]
        if self.config.source.kind == "callable":
            user_code.append(self.config.source.function)
        # a callable hashes as the source of its file, as the module a string names does
        objects = {callable_ref(c): c for c in user_code}
        for ref in sorted(objects):
            obj = _code(objects[ref], self.root)
            try:
                src_file = inspect.getsourcefile(obj)
                code = Path(src_file).read_bytes() if src_file else b""
            except (TypeError, OSError):
                code = ref.encode()
            h.update(ref.encode() + b"\0" + code)
        return h.hexdigest()

    @property
    def feature_columns(self) -> list[str]:
        return list(self.config.features)

    @property
    def slice_columns(self) -> list[str]:
        return sorted({r.column for r in self.rules if isinstance(r, SliceRule)})

    def train_params(self) -> dict[str, Any]:
        """What the user's train function receives: features, target, the categorical
        features (when declared) and the pipeline's params."""
        out: dict[str, Any] = {"features": self.feature_columns, "target": self.config.target}
        if self.config.categorical:  # only when declared: the params recorded before it
            out["categorical"] = list(self.config.categorical)
        return {**out, **self.config.params}

    def recorded_params(self) -> dict[str, Any]:
        """Every parameter recorded with a run and a model version."""
        out = self.train_params()
        if self.config.model is not None:
            out["estimator"] = self.config.model.estimator or self.config.model.mlflow
            out["model_params"] = dict(self.config.model.params)
        else:
            out["train"] = self._train_name
        out["window"] = self.config.window.model_dump(exclude_none=True)
        out["holdout"] = self.config.blessing.holdout
        if self.config.duplicates != "keep":
            out["duplicates"] = self.config.duplicates
        return out

    # -- data ---------------------------------------------------------------------------
    @property
    def incremental(self) -> bool:
        """Whether runs update the champion on new rows (window kind ``new``)."""
        return bool(getattr(self.window, "incremental", False))

    @property
    def follows_change(self) -> bool:
        """Whether the window starts at the detected concept change (``since_change``)."""
        return bool(getattr(self.window, "follows_change", False))

    def load(
        self, now: datetime, since: datetime | None = None, change_at: datetime | None = None
    ) -> tuple[pd.DataFrame, datetime | None, datetime]:
        """Load the window ending at ``now`` (starting at ``since`` for an online update;
        ``change_at``: the detected change a ``since_change`` window starts from)."""
        if self.follows_change:
            start, end = self.window.bounds(now, change_at=change_at)  # type: ignore[call-arg]
        else:
            start, end = self.window.bounds(now)
        if since is not None:
            start = since
        frame = self.source.load(start, end)
        if self.window.max_rows is not None and len(frame) > self.window.max_rows:
            frame = frame.iloc[-self.window.max_rows :].reset_index(drop=True)
        return frame, start, end

    def labelled(self, frame: pd.DataFrame, where: str) -> tuple[pd.DataFrame, int]:
        """The rows of a loaded window whose target is known, and how many were not.

        With ``unlabelled: skip`` (the default) rows whose target is missing (labels that
        arrive later than the features) are left out; a window with rows and no label fails
        with a DataError. With ``unlabelled: error`` the frame is returned as is, and
        :meth:`validate` names the missing values. A nullable integer or boolean target
        (``Int64``, ``boolean``) gets its NumPy dtype back once its missing rows are gone.
        """
        target = self.config.target
        if self.config.unlabelled == "error" or target not in frame.columns or frame.empty:
            return frame, 0
        y = frame[target]
        if isinstance(y.dtype, np.dtype) and y.dtype.kind in "iub":
            return frame, 0  # a NumPy integer or boolean column has no missing value
        known = y.notna().to_numpy()
        if known.all():
            return frame, 0
        n_missing = int(len(known) - known.sum())
        if n_missing == len(known):
            raise DataError(
                f"the window {where} has {len(frame)} rows and none has a label yet (target "
                f"column '{target}' is missing in all of them); a window must reach back past "
                "the label delay: make it longer, or run again once labels have arrived"
            )
        first_missing = int(np.argmin(known))
        if not known[first_missing:].any():  # the usual case: the newest rows wait for labels
            out = frame.iloc[:first_missing]
        else:
            out = frame.loc[known].reset_index(drop=True)
        dtype: Any = out[target].dtype
        if pd.api.types.is_extension_array_dtype(dtype) and dtype.kind in "iub":
            out = out.assign(**{target: out[target].to_numpy(dtype=dtype.numpy_dtype)})
        return out, n_missing

    def duplicates(
        self, frame: pd.DataFrame, hashes: np.ndarray | None = None
    ) -> tuple[pd.DataFrame, np.ndarray, EvidenceRow | None]:
        """Find the rows of a window that repeat an earlier row exactly (every column).

        Returns the frame (without the repeats with ``duplicates: drop``), its row hashes
        (``hashes``: those of ``frame`` when the caller has them) and, when there are repeats,
        the data-quality row the blessing evidence carries (count and share). Distinct row
        hashes prove there is none, the usual case; equal ones are confirmed on the values.

        Examples
        --------
        >>> from retrainer.testing import drifting_frame
        >>> pipeline = Pipeline.from_callables(
        ...     name="toy", source=drifting_frame(4), time_column="ts", target="y",
        ...     features=["x1", "x2"], train=lambda data, params: None, metrics=["accuracy"],
        ...     rules=[{"metric": "accuracy", "min": 0.5}])
        >>> twice = pd.concat([drifting_frame(4), drifting_frame(4)], ignore_index=True)
        >>> frame, hashes, row = pipeline.duplicates(twice)
        >>> len(frame), row.note
        (8, '4 of 8 rows (50.0%) repeat another row exactly; trained on as they are (set duplicates: drop in the pipeline to leave them out)')
        """  # noqa: E501
        if hashes is None or len(hashes) != len(frame):
            hashes = row_hashes(frame)
        if len(hashes) < 2 or pd.Index(hashes).is_unique:
            return frame, hashes, None
        repeated = frame.duplicated(keep="first").to_numpy()
        n = int(repeated.sum())
        if not n:  # equal hashes of different rows
            return frame, hashes, None
        drop = self.config.duplicates == "drop"
        share = n / len(frame)
        what = (
            "left out (duplicates: drop)"
            if drop
            else "trained on as they are (set duplicates: drop in the pipeline to leave them out)"
        )
        row = EvidenceRow(
            rule="data",
            metric="duplicate rows",
            candidate=share,
            champion=None,
            delta=None,
            threshold="dropped" if drop else "reported",
            passed=True,
            note=f"{n} of {len(frame)} rows ({share:.1%}) repeat another row exactly; {what}",
        )
        if drop:
            frame, hashes = frame.loc[~repeated].reset_index(drop=True), hashes[~repeated]
        return frame, hashes, row

    def known_row_hashes(self, frame: pd.DataFrame) -> np.ndarray | None:
        """The row hashes of a frame ``load`` returned, when the source knows them without
        hashing (a replay's source does: see ``ReplaySource.known_row_hashes``), else None."""
        known = getattr(self.source, "known_row_hashes", None)
        return None if known is None else known(frame)

    def task(self, frame: pd.DataFrame, y: pd.Series | None = None) -> str:
        """The configured task, or for ``auto`` the target's (``y``: the target column of
        ``frame``, when the caller has it): regression for floats, else classification."""
        if self.config.task != "auto":
            return self.config.task
        if pd.api.types.is_float_dtype(frame[self.config.target] if y is None else y):
            return "regression"
        return "classification"

    def validate(self, frame: pd.DataFrame, where: str) -> None:
        """Raise DataError naming the column and the problem when ``frame`` cannot be used."""
        cfg = self.config
        if frame.empty:
            raise DataError(f"the window {where} has no rows")
        missing = [c for c in [cfg.target, *cfg.features] if c not in frame.columns]
        if missing:
            from retrainer.core._spec import did_you_mean

            role = {cfg.target: "target"}
            columns = [str(c) for c in frame.columns]
            hints = {c: did_you_mean(c, columns).removeprefix("; ") for c in missing}
            names = ", ".join(
                f"{role.get(c, 'feature')} column '{c}'" + (f" ({hints[c]})" if hints[c] else "")
                for c in missing
            )
            raise DataError(
                f"{names} not found in the data of {where}; columns are: {', '.join(columns)}"
            )
        y = frame[cfg.target]
        n_missing = int(y.isna().sum())
        if n_missing:
            raise DataError(
                f"target column '{cfg.target}' has {n_missing} missing value(s) (NaN) of "
                f"{len(y)} rows in {where}; drop or fill them in the source, or set "
                "'unlabelled: skip' to train on the labelled rows"
            )
        if _is_text(y.dtype) and (stray := _stray_text(y.array)) is not None:
            raise DataError(
                f"target column '{cfg.target}' mixes numbers and text in {where}: "
                f"{self._stray_example(frame, y.array, stray)}; a label column holds one kind of "
                "value: fix or drop those rows in the source"
            )
        task = self.task(frame, y)
        if cfg.task == "auto":  # a configured task was checked with the config
            from retrainer.config import task_metric_problems

            why = f" (task: auto, and target column '{cfg.target}' has dtype {y.dtype})"
            if problems := task_metric_problems(cfg, f"pipelines[{cfg.name}]", task, why):
                raise ConfigError("; ".join(problems))
        if task == "regression" and not pd.api.types.is_numeric_dtype(y):
            raise DataError(
                f"target column '{cfg.target}' has dtype {y.dtype}; regression needs a numeric "
                "target"
            )
        fractional = pd.api.types.is_float_dtype(y) and not np.all(np.mod(y.to_numpy(), 1) == 0)
        if task == "classification" and fractional:
            raise DataError(
                f"target column '{cfg.target}' has non-integer float values (e.g. "
                f"{y[np.mod(y, 1) != 0].iloc[0]!r}); classification needs labels: set "
                "task: regression or fix the column"
            )
        arrays = dict(zip(frame.columns.tolist(), column_arrays(frame), strict=True))
        # categories and codes (which may hold letters): not numbers with stray text
        declared_text = set(cfg.categorical) | set(cfg.monitor.drift.categorical)
        finite_checked: list[str] = []  # numeric, non-boolean features: no infinities
        for col in cfg.features:
            dtype = arrays[col].dtype
            if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(
                dtype
            ):
                raise DataError(
                    f"feature column '{col}' has dtype {dtype}; models cannot use raw "
                    "timestamps: derive numeric features from it"
                )
            if (
                _is_text(dtype)
                and col not in declared_text
                and (stray := _stray_text(arrays[col])) is not None
            ):
                raise DataError(
                    f"feature column '{col}' has non-numeric values in {where}, e.g. "
                    f"{self._stray_example(frame, arrays[col], stray)}; fix or drop those rows "
                    "in the source (a column of codes or categories that are mostly digits: "
                    "list it under categorical: in the pipeline)"
                )
            boolean = pd.api.types.is_bool_dtype(dtype)
            numeric = boolean or pd.api.types.is_numeric_dtype(dtype)
            if self._estimator_cls is not None and not numeric and col not in cfg.categorical:
                example = frame[col].dropna().head(1).tolist()
                spec = cfg.model.estimator or cfg.model.mlflow  # type: ignore[union-attr]
                raise DataError(
                    f"feature column '{col}' has dtype {dtype} (e.g. {example}), which the "
                    f"estimator spec '{spec}' cannot use as it is: if it holds "
                    f"categories, list it under categorical: in the pipeline (categorical: "
                    f"[{col}]) to have it one-hot encoded; else convert it to numbers in the "
                    "source"
                )
            if numeric and not boolean:
                finite_checked.append(col)
        for col in finite_checked:
            values = arrays[col]
            if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
                continue  # integers have no infinity
            if not (isinstance(values, np.ndarray) and values.dtype.kind == "f"):
                values = frame[col].to_numpy(dtype=float, na_value=np.nan)  # nullable: <NA> NaN
            count = int(np.isinf(values).sum())
            if count:
                raise DataError(f"feature column '{col}' has {count} infinite value(s) in {where}")

    def _stray_example(self, frame: pd.DataFrame, values: Any, stray: tuple[int, int, int]) -> str:
        """The first value of ``values`` (a column's array) that is not a number, where it
        is, and how many there are."""
        n_bad, n_present, at = stray
        value = values[at]
        shown = repr(value.item() if isinstance(value, np.generic) else value)
        place = f"row {at} of the window"
        if self.time_column in frame.columns:
            place += f", time {frame[self.time_column].iloc[at]}"
        share = f"{n_bad} of {n_present} values are not numbers"
        if n_bad == 1:
            share = f"1 of {n_present} values is not a number"
        return f"{shown} ({place}; {share})"

    def check_train(self, train: pd.DataFrame, where: str) -> None:
        """Check the training rows of a window (after the holdout is split off) before a
        fit from scratch: no feature column all missing (no model can learn from it, and
        most fail on it naming no column), and at least two classes for a classifier.

        Missing values in some rows are left to the model: an imputer or a
        gradient-boosted tree handles them.
        """
        arrays = dict(zip(train.columns.tolist(), column_arrays(train), strict=True))
        for col in self.config.features:
            if col in arrays and _all_missing(arrays[col]):
                raise DataError(
                    f"feature column '{col}' has no value in the {len(train)} training rows "
                    f"of {where}: all are missing (NaN); fix the column in the source, or "
                    "take it out of the pipeline's features"
                )
        self.check_classes(train, where)

    def check_classes(self, train: pd.DataFrame, where: str) -> None:
        """A classifier needs at least two classes in its training rows."""
        if self.task(train) != "classification":
            return
        classes = pd.unique(train[self.config.target])
        if len(classes) < 2:
            raise DataError(
                f"target column '{self.config.target}' has a single class "
                f"({classes[0]!r}) in the {len(train)} training rows of {where}; a classifier "
                "needs at least two: widen the window"
            )

    @functools.cached_property
    def _feature_index(self) -> pd.Index:
        return pd.Index(self.feature_columns)

    def features(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The feature columns of ``frame``, in the configured order.

        A positional ``take`` when the columns are unique and all there: about four times
        faster than ``frame[list]`` on the small frames a replay passes each batch (same result).
        """
        columns = frame.columns
        if columns.is_unique:
            positions = columns.get_indexer(self._feature_index)
            if (positions >= 0).all():
                return frame.take(positions, axis=1)
        return frame[self.feature_columns]

    # -- model --------------------------------------------------------------------------
    def estimator(self) -> Any:
        """A new, unfitted model of the estimator spec (``model:``), with the pipeline's
        ``categorical`` features encoded.

        An estimator whose constructor takes ``categorical`` (River models behind
        :class:`~retrainer.integrations.river.RiverClassifier`) is given the list and encodes
        them itself; any other is wrapped by :func:`encode_categorical`.

        Examples
        --------
        >>> from retrainer.config import PipelineConfig
        >>> config = PipelineConfig.model_validate({
        ...     "name": "loans",
        ...     "source": {"kind": "parquet", "url": "loans.parquet", "time_column": "ts"},
        ...     "target": "repaid", "features": ["amount", "salary_range"],
        ...     "categorical": ["salary_range"],
        ...     "model": {"estimator": "sklearn.linear_model:LogisticRegression"},
        ...     "metrics": ["accuracy"],
        ...     "blessing": {"rules": [{"metric": "accuracy", "min": 0.6}]},
        ... })
        >>> [name for name, _ in Pipeline(config, Path(".")).estimator().steps]
        ['encode', 'model']
        """
        if self._estimator_cls is None:
            raise ConfigError(f"pipeline {self.name!r} trains with a function, not model:")
        params = dict(self.config.model.params)  # type: ignore[union-attr]
        categorical = list(self.config.categorical)
        if not categorical:
            return self._estimator_cls(**params)
        if _takes_categorical(self._estimator_cls):
            params.setdefault("categorical", categorical)
            return self._estimator_cls(**params)
        return encode_categorical(self._estimator_cls(**params), categorical)

    def fit(self, train: pd.DataFrame, *, cpu: list[float] | None = None) -> Any:
        """Train a candidate on ``train``; user errors become TrainingError.

        ``cpu``: append the process time of the fit itself (the estimator's ``fit``, or the
        user's train function), without the column selection around it.
        """
        X = self.features(train)
        y = train[self.config.target]
        cpu0 = time.process_time()
        try:
            if self._estimator_cls is not None:
                model = self.estimator()
                model.fit(X, y)
            else:
                model = self._train_fn(train, self.train_params())  # type: ignore[misc]
            if cpu is not None:
                cpu.append(time.process_time() - cpu0)
        except (DataError, TrainingError):
            raise
        except Exception as exc:
            model_cfg = self.config.model
            who = (model_cfg.estimator or model_cfg.mlflow) if model_cfg else self._train_name
            hint = _missing_counts(train, self.feature_columns) if "NaN" in str(exc) else ""
            raise TrainingError(
                f"training with '{who}' raised {type(exc).__name__}{hint}: {exc}"
            ) from exc
        if model is None or not callable(getattr(model, "predict", None)):
            raise TrainingError(
                f"'{self._train_name}' returned {type(model).__name__}, which has no "
                "predict() method; return a fitted model"
            )
        return model

    def update(self, model: Any, rows: pd.DataFrame, *, cpu: list[float] | None = None) -> Any:
        """Update ``model`` (a copy of the champion) with new rows: online learning.

        ``cpu``: append the process time of ``partial_fit`` itself, as for :meth:`fit`.
        """
        fn = getattr(model, "partial_fit", None)
        if not callable(fn):
            raise TrainingError(
                f"window kind 'new' updates the champion with partial_fit(X, y), which "
                f"{type(model).__name__} does not have; use an online model (e.g. "
                "retrainer.integrations.river:RiverClassifier) or a 'full'/'sliding' window"
            )
        X, y = self.features(rows), rows[self.config.target]
        cpu0 = time.process_time()
        try:
            fn(X, y)
            if cpu is not None:
                cpu.append(time.process_time() - cpu0)
        except Exception as exc:
            raise TrainingError(
                f"updating {type(model).__name__} with partial_fit raised "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        return model

    def predict(self, model: Any, frame: pd.DataFrame) -> Prediction:
        X = self.features(frame)
        proba_needed = any(m.needs_proba for m in self.metrics.values()) and hasattr(
            model, "predict_proba"
        )
        if proba_needed and _transform_once(model):
            # a scikit-learn Pipeline: its steps before the estimator run once for both
            # answers, not once in predict and again in predict_proba (the same values)
            X = model[:-1].transform(X)
            model = model[-1]
        y_pred = np.asarray(model.predict(X))
        y_score = None
        if proba_needed:
            proba = np.asarray(model.predict_proba(X))
            y_score = proba[:, 1] if proba.ndim == 2 and proba.shape[1] == 2 else proba
        return Prediction(y_pred=y_pred, y_score=y_score)

    def _metric_values(
        self, y_true: np.ndarray, pred: Prediction, index: np.ndarray | None = None
    ) -> dict[str, float]:
        out = {}
        for name, metric in self.metrics.items():
            yp = pred.y_pred if index is None else pred.y_pred[index]
            ys = None
            if metric.needs_proba:
                if pred.y_score is None:
                    out[name] = float("nan")
                    continue
                ys = pred.y_score if index is None else pred.y_score[index]
            yt = y_true if index is None else y_true[index]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out[name] = float(compute(metric, yt, yp, ys))
        return out

    def score(self, model: Any, holdout: pd.DataFrame) -> ScoreCard:
        """Score ``model`` on ``holdout``: overall and per slice of each slice rule's column."""
        try:
            pred = self.predict(model, holdout)
        except Exception as exc:
            hint = _missing_counts(holdout, self.feature_columns) if "NaN" in str(exc) else ""
            raise TrainingError(
                f"the model failed to predict on the holdout{hint}: {type(exc).__name__}: {exc}"
            ) from exc
        y_true = holdout[self.config.target].to_numpy()
        slices: dict[str, dict[str, SliceScore]] = {}
        for col in self.slice_columns:
            if col not in holdout.columns:
                raise DataError(
                    f"slice column '{col}' (blessing rule) not found in the holdout data; "
                    f"columns are: {', '.join(map(str, holdout.columns))}"
                )
            groups = holdout.groupby(holdout[col].astype(str), sort=True).indices
            slices[col] = {
                str(value): SliceScore(
                    n=len(idx), metrics=self._metric_values(y_true, pred, np.asarray(idx))
                )
                for value, idx in groups.items()
            }
        # per-row answers only for significance rules: the stages then store them (stages.py)
        rows = (
            HoldoutRows(y_true=y_true, y_pred=pred.y_pred, y_score=pred.y_score)
            if self.gate.needs_rows
            else None
        )
        return ScoreCard(
            n=len(holdout), metrics=self._metric_values(y_true, pred), slices=slices, rows=rows
        )

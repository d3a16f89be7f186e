"""``retrainer.yaml``: the project's configuration, validated with Pydantic.

A bad file is reported as one line per problem, each naming the key path, the bad value and
what is expected; :func:`load_config` raises :class:`~retrainer.errors.ConfigError` carrying
those lines. Environment variables override the storage URLs (``RETRAINER_DB_URL``,
``RETRAINER_ARTIFACTS_URL``).

Examples
--------
>>> cfg = parse_config({
...     "pipelines": [{
...         "name": "demo",
...         "source": {"kind": "parquet", "url": "data.parquet", "time_column": "ts"},
...         "target": "y",
...         "features": ["a", "b"],
...         "model": {"estimator": "sklearn.linear_model:LogisticRegression"},
...         "metrics": ["accuracy"],
...         "blessing": {"rules": [{"metric": "accuracy", "min": 0.5}]},
...     }]
... })
>>> cfg.pipelines[0].window.kind
'full'
>>> parse_config({"pipelines": [{"name": "x"}]})
Traceback (most recent call last):
...
retrainer.errors.ConfigError: retrainer.yaml has 5 problems...
"""

from __future__ import annotations

import functools
import os
import re
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    FieldSerializationInfo,
    GetPydanticSchema,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_core import core_schema

from retrainer.adapters.locations import refuse_secret_keys, refuse_url_secret
from retrainer.adapters.notifiers import ConfiguredNotifier
from retrainer.core._spec import did_you_mean
from retrainer.core.blessing import ConfiguredRule
from retrainer.core.deploy import DeploySpec
from retrainer.core.metrics import metric_task_problem
from retrainer.core.windows import ConfiguredWindow, FullHistory
from retrainer.errors import ConfigError
from retrainer.integrations.mlflow_config import MlflowConfig, MlflowModelUri

CONFIG_FILE = "retrainer.yaml"
ENV_DB_URL = "RETRAINER_DB_URL"
ENV_ARTIFACTS_URL = "RETRAINER_ARTIFACTS_URL"
ENV_LOGS_URL = "RETRAINER_LOGS_URL"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def callable_ref(obj: Any) -> str:
    """The ``module:qualname`` a callable is recorded (and hashed) as; a string stays itself.

    >>> import math
    >>> callable_ref(math.sqrt), callable_ref("pipeline:train")
    ('math:sqrt', 'pipeline:train')
    """
    if isinstance(obj, str):
        return obj
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{getattr(obj, '__module__', None) or type(obj).__module__}:{name}"


def _keep_callable(value: Any, handler: core_schema.ValidatorFunctionWrapHandler) -> Any:
    return value if callable(value) and not isinstance(value, str) else handler(value)


def _ref_in_json(value: Any, info: core_schema.SerializationInfo) -> Any:
    return callable_ref(value) if info.mode_is_json() else value


Code = Annotated[
    str | Callable[..., Any],
    GetPydanticSchema(
        lambda _type, _handler: core_schema.no_info_wrap_validator_function(
            _keep_callable,
            core_schema.str_schema(),
            serialization=core_schema.plain_serializer_function_ser_schema(
                _ref_in_json, info_arg=True
            ),
        )
    ),
]
"""User code: a ``"module:function"`` string (``retrainer.yaml``) or, from Python, the object
itself (:meth:`retrainer.Pipeline.from_callables`). A file can only hold strings, and a string
is validated as before; the JSON schema says "string"; JSON dumps (definition hash, recorded
parameters) hold a callable's ``module:qualname``."""


class StorageConfig(_Model):
    """Where metadata and artifacts live; relative paths are relative to the config file.

    ``artifacts_url`` and ``logs_url`` may be fsspec URLs (``s3://bucket/prefix``, with
    ``pip install 'retrainer[s3]'``); their credentials come from the environment only.
    """

    db_url: str = "sqlite:///.retrainer/retrainer.db"
    artifacts_url: str = ".retrainer/artifacts"
    logs_url: str = ".retrainer/logs"
    reports_dir: str = ".retrainer/reports"
    auto_migrate: bool = True

    _no_secrets = model_validator(mode="before")(refuse_secret_keys)
    _no_url_secret = field_validator("artifacts_url", "logs_url")(
        classmethod(lambda cls, v: refuse_url_secret(v))
    )


class SerializationConfig(_Model):
    """How models are saved: skops (safe, the default), or joblib or pickle (pickles: trusted
    artifacts only)."""

    format: Literal["skops", "joblib", "pickle"] = "skops"
    trusted_types: list[str] = Field(default_factory=list)
    allow_pickle: bool = False

    @model_validator(mode="after")
    def _joblib_needs_opt_in(self) -> SerializationConfig:
        if self.format in ("joblib", "pickle") and not self.allow_pickle:
            raise ValueError(
                f"format {self.format!r} loads with pickle, which runs arbitrary code; "
                "set allow_pickle: true to use it with trusted artifacts only"
            )
        return self


class FileSourceConfig(_Model):
    """A Parquet or CSV file or folder, at a local path or any fsspec URL."""

    kind: Literal["parquet", "csv"]
    url: str
    time_column: str

    _no_secrets = model_validator(mode="before")(refuse_secret_keys)
    _no_url_secret = field_validator("url")(classmethod(lambda cls, v: refuse_url_secret(v)))


class SQLSourceConfig(_Model):
    """A SQL query over a SQLAlchemy URL; the window filter is applied around the query."""

    kind: Literal["sql"]
    url: str
    query: str
    time_column: str


class CallableSourceConfig(_Model):
    """A Python function ``load(start, end) -> DataFrame`` named ``module:function``."""

    kind: Literal["callable"]
    function: Code
    time_column: str

    @field_validator("function")
    @classmethod
    def _ref(cls, v: Code) -> Code:
        return _check_ref(v)


SourceConfig = Annotated[
    FileSourceConfig | SQLSourceConfig | CallableSourceConfig, Field(discriminator="kind")
]


class ModelConfig(_Model):
    """A scikit-learn style estimator named ``module:Class`` with its parameters, or an MLflow
    model (``mlflow: models:/name@alias``, see docs/mlflow.md) cloned as the template."""

    estimator: str = ""
    mlflow: MlflowModelUri | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("estimator")
    @classmethod
    def _ref(cls, v: str) -> str:
        return _check_ref(v) if v else v

    @model_validator(mode="after")
    def _one(self) -> ModelConfig:
        if bool(self.estimator) == bool(self.mlflow):
            raise ValueError("give exactly one of 'estimator' (module:Class) or 'mlflow' (a URI)")
        return self


class MetricConfig(_Model):
    """A user metric: ``function`` is ``module:function(y_true, y_pred, y_score) -> float``."""

    name: str
    function: Code
    greater_is_better: bool
    needs_proba: bool = False

    @field_validator("function")
    @classmethod
    def _ref(cls, v: Code) -> Code:
        return _check_ref(v)


WindowConfig = ConfiguredWindow
"""The data a run trains on (``retrainer.core.windows``): the full history, a sliding window
(duration or rows), ``new``: only the rows since the champion's window, learned by updating the
champion (``partial_fit``: online learning, e.g. with ``retrainer.integrations.river``), or
``since_change``: the rows since the newest concept change the monitor detected, at least
``min`` and at most ``max`` long."""

# The flat window model this file had dumped every key; a pipeline's definition hash is taken
# over its dump, so the window keeps that form there (``exclude_none`` dumps are unchanged).
_FLAT_WINDOW_KEYS = ("kind", "duration", "rows", "min", "max")


class SanityConfig(_Model):
    """The fresh-process check: reload the saved artifact and predict on sample rows."""

    enabled: bool = True
    sample_rows: int = Field(default=200, gt=0)
    timeout: float = Field(default=120.0, gt=0)


class BlessingConfig(_Model):
    """The validation gate: holdout share of the window, rules, and the sanity check."""

    holdout: float = Field(default=0.2, gt=0, lt=1)
    rules: list[ConfiguredRule] = Field(min_length=1)
    """Blessing rules (``retrainer.core.blessing``); their keys decide the kind."""
    sanity: SanityConfig = Field(default_factory=SanityConfig)


def _duration(value: str) -> str:
    from retrainer.core.windows import parse_duration

    try:
        parse_duration(value)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    return value


class DriftConfig(_Model):
    """The drift check (see ``retrainer.core.drift.DriftCheck`` for each parameter)."""

    numeric_method: str = "ks"
    categorical_method: str = "chi2"
    alpha: float = Field(default=0.01, gt=0, lt=1)
    correction: Literal["holm", "bonferroni", "none"] = "holm"
    drift_share: float = Field(default=0.5, gt=0, le=1)
    min_samples: int = Field(default=30, ge=1)
    min_distance: float = Field(default=0.0, ge=0)
    thresholds: dict[str, float] = Field(default_factory=dict)
    features: dict[str, dict[str, Any]] = Field(default_factory=dict)
    categorical: list[str] = Field(default_factory=list)
    window: str = "auto"
    """The rows the check reads, ending where the monitor's window ends: ``auto``, whole weeks
    (whole days under a day) covering the window, so that a weekly cycle is compared whole;
    ``same``, the monitor's window; or a duration."""

    @field_validator("window")
    @classmethod
    def _window(cls, v: str) -> str:
        return v if v in ("auto", "same") else _duration(v)

    def check_params(self) -> dict[str, Any]:
        return self.model_dump(exclude={"categorical", "window"})


class PerformanceConfig(_Model):
    """Online metrics per time window; ``metrics`` defaults to the pipeline's metrics."""

    metrics: list[str] | None = None
    every: str = "1d"
    min_samples: int = Field(default=100, ge=1)

    _every = field_validator("every")(classmethod(lambda cls, v: _duration(v)))


class ConceptDriftConfig(_Model):
    """A streaming detector (River) on the serving model's error stream."""

    enabled: bool = True
    method: Literal["adwin", "page_hinkley", "kswin"] = "adwin"
    params: dict[str, Any] = Field(default_factory=dict)


class MonitorConfig(_Model):
    """``retrainer monitor``: the window it checks and how.

    ``data: source`` reads the current window from the pipeline's source (labels included when
    the source has them); ``data: log`` reads the logged predictions and the feedback that has
    arrived (``retrainer log predictions|feedback``).
    """

    window: str = "7d"
    every: str = "1d"
    data: Literal["source", "log"] = "source"
    drift: DriftConfig = Field(default_factory=DriftConfig)
    performance: PerformanceConfig = Field(default_factory=PerformanceConfig)
    concept_drift: ConceptDriftConfig = Field(default_factory=ConceptDriftConfig)

    _window = field_validator("window", "every")(classmethod(lambda cls, v: _duration(v)))


class RunConfig(_Model):
    """Limits of one run: a run still going after ``timeout`` seconds is stale (its heartbeat
    stops renewing its lease);
    ``memory_mb`` caps a daemon-run training's address space (process executor)."""

    timeout: float = Field(default=7200.0, gt=0)
    memory_mb: int | None = Field(default=None, gt=0)


class ExecutorConfig(_Model):
    """Where the daemon executes runs: ``process`` (default), ``inline`` or ``dask``."""

    kind: Literal["inline", "process", "dask"] = "process"
    max_workers: int = Field(default=1, ge=1)
    address: str | None = None


class ControllerConfig(_Model):
    """The daemon: tick length, retries of interrupted runs, executor, shutdown grace."""

    tick: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    retry_backoff: str = "1m"
    shutdown_grace: float = Field(default=30.0, ge=0)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)

    _backoff = field_validator("retry_backoff")(classmethod(lambda cls, v: _duration(v)))


class AlertsConfig(_Model):
    """Notifiers (log, webhook, slack, email) and how alerts are deduplicated and limited."""

    notifiers: list[ConfiguredNotifier] = Field(default_factory=list)
    """Notifiers (``retrainer.adapters.notifiers``); ``${NAME}`` values are read at start."""
    kinds: list[str] | None = None
    dedupe_window: str = "1h"
    rate_limit: int = Field(default=10, ge=1)
    rate_period: str = "1h"
    retries: int = Field(default=3, ge=0)

    _durations = field_validator("dedupe_window", "rate_period")(
        classmethod(lambda cls, v: _duration(v))
    )


class _Specs:
    """The JSON schema of a list of trigger (or guard) mappings: the union of the spec models
    of every registered kind, built when a schema is asked for (reading a config does not
    import the triggers)."""

    def __init__(self, family: Literal["trigger", "guard"]) -> None:
        self.family = family

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> Any:
        from pydantic import TypeAdapter

        from retrainer.core.triggers.spec import GUARDS, TRIGGERS

        union = (TRIGGERS if self.family == "trigger" else GUARDS).config_type()
        return handler(TypeAdapter(list[union]).core_schema)  # type: ignore[valid-type]


class ServeConfig(_Model):
    """``retrainer serve``: address, model polling, prediction-log batching and request limits
    (docs/serving.md explains each)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    poll_interval: float = Field(default=2.0, gt=0)
    """Seconds between checks of the registry's aliases (a swap follows within this)."""
    stats_interval: float = Field(default=5.0, gt=0)
    """Seconds between publications of a worker's request counters (a rollout's guards)."""
    shadow_queue: int = Field(default=1000, ge=1)
    """Requests waiting for a shadow candidate to score; beyond, copies are dropped."""
    flush_interval: float = Field(default=1.0, gt=0)
    """Seconds between flushes of the prediction log: at most this much is lost on a kill -9."""
    flush_rows: int = Field(default=10_000, ge=1)
    """A flush starts early once this many rows wait."""
    queue_rows: int = Field(default=100_000, ge=1)
    """Rows the log queue holds; a request that finds it full waits ``queue_wait``, then 503."""
    queue_wait: float = Field(default=0.5, ge=0)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1)
    max_rows: int = Field(default=10_000, ge=1)
    rate_limit: float | None = Field(default=1000.0, gt=0)
    """Requests a second each API token may make on one worker (429 beyond); null: no limit."""
    rate_burst: float | None = Field(default=None, gt=0)
    """Requests a token may make at once before ``rate_limit`` applies (default: twice it)."""
    recent_ids: int = Field(default=200_000, ge=0)
    """Prediction ids a worker remembers to accept feedback without reading the log."""
    feedback_lookback: str = "30d"
    """How far back the log is searched for a feedback id this worker does not remember."""
    authenticator: str | None = None
    """``module:function`` taking a bearer secret and returning a token (an object with
    ``allows(scope)``) or None: your own auth. Default: the project's tokens."""

    _lookback = field_validator("feedback_lookback")(classmethod(lambda cls, v: _duration(v)))


class DashboardConfig(_Model):
    """The dashboard (``/ui`` of ``retrainer serve``, or ``retrainer ui``; docs/dashboard.md)."""

    refresh: float = Field(default=5.0, ge=0.2)
    """Seconds between a page's refreshes of its data (no reload)."""
    page_size: int = Field(default=50, ge=5, le=1000)
    """Rows per page of the overview and of the events page."""


class PipelineConfig(_Model):
    """One pipeline: where its data comes from, how it trains and how it is judged."""

    name: str
    source: SourceConfig
    target: str
    features: list[str] = Field(min_length=1)
    categorical: list[str] = Field(default_factory=list)
    """Features holding categories (text such as ``'20K - 40K'``, or codes): the estimator
    spec one-hot encodes them (a scikit-learn ``ColumnTransformer`` with
    ``OneHotEncoder(handle_unknown="ignore")``; River models take them natively), and the
    drift check treats them as categories. Each must be one of ``features``."""
    task: Literal["auto", "classification", "regression"] = "auto"
    unlabelled: Literal["skip", "error"] = "skip"
    """Rows whose target is missing (a label not arrived yet): left out of training and
    counted in the run's ``run.succeeded`` event (``skip``), or the run fails naming the
    column (``error``)."""
    duplicates: Literal["keep", "drop"] = "keep"
    """Rows of the window that repeat another row exactly (every column): reported in the
    blessing evidence and trained on (``keep``), or reported and left out (``drop``)."""
    model: ModelConfig | None = None
    train: Code | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    metrics: list[str | MetricConfig] = Field(min_length=1)
    window: WindowConfig = Field(default_factory=FullHistory)
    blessing: BlessingConfig
    run: RunConfig = Field(default_factory=RunConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    triggers: Annotated[list[dict[str, Any]], _Specs("trigger")] = Field(default_factory=list)
    """Each a mapping read by ``retrainer.core.triggers.build_trigger`` (checked, with its key
    path, by :func:`validate`); the JSON schema is that of the registered trigger kinds."""
    guards: Annotated[list[dict[str, Any]], _Specs("guard")] = Field(default_factory=list)
    rollout: DeploySpec | None = Field(None, validation_alias=AliasChoices("rollout", "deploy"))
    """How a blessed candidate is rolled out: ``{strategy: replace}`` (the default, also when
    unset) makes it the champion at once; ``shadow``, ``canary`` and ``ab`` try it on live
    traffic first (see docs/rollouts.md). ``deploy:``, its earlier name, is read too."""

    @field_serializer("window", mode="wrap")
    def _flat_window(
        self, value: Any, handler: SerializerFunctionWrapHandler, info: FieldSerializationInfo
    ) -> Any:
        data = handler(value)
        if isinstance(data, dict) and not info.exclude_none:
            data = {**dict.fromkeys(_FLAT_WINDOW_KEYS), **data}
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(
                "must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
            )
        return v

    @field_validator("train")
    @classmethod
    def _train_ref(cls, v: Code | None) -> Code | None:
        return None if v is None else _check_ref(v)

    @field_validator("features")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        dupes = sorted({f for f in v if v.count(f) > 1})
        if dupes:
            raise ValueError(f"features must be unique; repeated: {', '.join(dupes)}")
        return v

    @field_validator("categorical")
    @classmethod
    def _unique_categorical(cls, v: list[str]) -> list[str]:
        dupes = sorted({f for f in v if v.count(f) > 1})
        if dupes:
            raise ValueError(f"categorical columns must be unique; repeated: {', '.join(dupes)}")
        return v

    @model_validator(mode="after")
    def _train_or_model(self) -> PipelineConfig:
        if (self.model is None) == (self.train is None):
            raise ValueError(
                "give exactly one of 'model' (an estimator spec: module:Class + params) "
                "or 'train' (a function module:function(data, params) -> model)"
            )
        if self.target in self.features:
            raise ValueError(f"the target column '{self.target}' is also listed in features")
        stray = [c for c in self.categorical if c not in self.features]
        if stray:
            raise ValueError(
                f"categorical lists {', '.join(map(repr, stray))}, which "
                f"{'is' if len(stray) == 1 else 'are'} not in features "
                f"({', '.join(self.features)}); categorical names features that hold "
                "categories: add them to features or remove them from categorical"
            )
        if self.window.kind == "since_change" and not self.monitor.concept_drift.enabled:
            raise ValueError(
                "window kind 'since_change' starts at the change the concept-drift monitor "
                "detects: set monitor.concept_drift.enabled: true (or use a sliding window)"
            )
        return self

    def metric_names(self) -> list[str]:
        return [m if isinstance(m, str) else m.name for m in self.metrics]


class ProjectConfig(_Model):
    """The whole ``retrainer.yaml``."""

    root: str | None = None
    """The project folder: relative paths (sources, train modules, storage) resolve from it.
    Relative to this file's folder, which is the default. ``retrainer backtest`` sets it in
    ``recommended.yaml`` so that file runs as is from the backtest's output folder."""
    storage: StorageConfig = Field(default_factory=StorageConfig)
    serialization: SerializationConfig = Field(default_factory=SerializationConfig)
    controller: ControllerConfig = Field(default_factory=ControllerConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    ui: DashboardConfig = Field(default_factory=DashboardConfig)
    mlflow: MlflowConfig | None = None  # mirror to MLflow (docs/mlflow.md)
    pipelines: list[PipelineConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> ProjectConfig:
        names = [p.name for p in self.pipelines]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"pipeline names must be unique; repeated: {', '.join(dupes)}")
        return self

    def pipeline(self, name: str | None = None) -> PipelineConfig:
        """The pipeline called ``name``, or the only one when ``name`` is None."""
        if name is None:
            if len(self.pipelines) == 1:
                return self.pipelines[0]
            raise ConfigError(
                "this project has several pipelines "
                f"({', '.join(p.name for p in self.pipelines)}); choose one with --pipeline"
            )
        for p in self.pipelines:
            if p.name == name:
                return p
        raise ConfigError(
            f"no pipeline named '{name}'; the project has: "
            f"{', '.join(p.name for p in self.pipelines)}"
        )


_C = TypeVar("_C")


def _check_ref(v: _C) -> _C:
    if isinstance(v, str) and not _REF.match(v):
        raise ValueError("must name a Python object as 'module:attribute', e.g. 'pipeline:train'")
    return v


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or "[" in str(part):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _union_tags() -> dict[str, set[str]]:
    """Key (or list key) of a tagged union -> the tags Pydantic puts in its error locations."""
    from retrainer.adapters.notifiers import NOTIFIERS
    from retrainer.core.blessing import RULES
    from retrainer.core.windows import WINDOWS

    sources = {
        tag
        for model in typing.get_args(typing.get_args(SourceConfig)[0])
        for tag in typing.get_args(model.model_fields["kind"].annotation)
    }
    return {
        "source": sources,
        "window": set(WINDOWS.kinds),
        "rules": set(RULES.kinds),
        "notifiers": set(NOTIFIERS.kinds),
    }


def _without_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """``loc`` without the tag pydantic adds after a discriminated union's field: a source's
    ``kind`` value is not a key of the file (``source.time_column``, not
    ``source.parquet.time_column``), nor is a rule's (``rules[0].min``, not
    ``rules[0].absolute.min``)."""
    tags = _union_tags()
    out = []
    for i, part in enumerate(loc):
        owner = loc[i - 1] if i > 0 else None
        if isinstance(owner, int) and i > 1:  # an item of a list: rules[2].<tag>
            owner = loc[i - 2]
        if isinstance(owner, str) and isinstance(part, str) and part in tags.get(owner, ()):
            continue
        out.append(part)
    return tuple(out)


def _sentence(msg: str) -> str:
    """``msg`` to follow a semicolon: 'Input should...' -> 'input should...'; a class name such
    as 'SinceChange.max ...' stays as it is."""
    first = msg.split(" ", 1)[0]
    return msg[0].lower() + msg[1:] if first[1:] == first[1:].lower() else msg


def _model_keys(model: Any, seen: set[Any] | None = None) -> set[str]:
    """Every key a model's mapping (and the models nested in it) may hold: what an unknown
    key may be a misspelling of."""
    seen = set() if seen is None else seen
    if model in seen:
        return set()
    seen.add(model)
    keys: set[str] = set()
    stack = [info.annotation for info in model.model_fields.values()]
    keys.update(info.alias or name for name, info in model.model_fields.items())
    while stack:
        annotation = stack.pop()
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= _model_keys(annotation, seen)
        stack.extend(typing.get_args(annotation))
    return keys


@functools.cache
def _yaml_names() -> tuple[re.Pattern[str], dict[str, str]]:
    """The Python class names a spec's own check may use (``CostAwareTrigger.value_per_point``)
    and the words of retrainer.yaml for them (``cost_aware.value_per_point``)."""
    from retrainer.core.blessing import RULES
    from retrainer.core.triggers import GUARDS, TRIGGERS

    names = {
        cls.__name__: kind for registry in (TRIGGERS, GUARDS) for kind, cls in registry.items()
    }
    names |= {cls.__name__: f"{kind} rule" for kind, cls in RULES.items()}
    return re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b"), names


def _in_yaml_words(message: str) -> str:
    """``message`` with the spec classes named as retrainer.yaml names them."""
    pattern, names = _yaml_names()
    return pattern.sub(lambda m: names[m.group(1)], message)


def _problems(exc: ValidationError, model: Any = None) -> list[str]:
    errors = exc.errors()
    # a misspelt required key shows as that key missing beside an unknown one: pair them
    missing: dict[tuple[Any, ...], list[str]] = {}
    for err in errors:
        if err["type"] == "missing" and err["loc"]:
            loc = _without_tags(tuple(err["loc"]))
            missing.setdefault(loc[:-1], []).append(str(loc[-1]))
    known = _model_keys(model) if model is not None else set()
    lines = []
    for err in errors:
        loc = _without_tags(tuple(err["loc"]))
        msg = err["msg"].removeprefix("Value error, ")
        kind = err["type"]
        if kind == "union_tag_invalid":
            ctx = err.get("ctx", {})
            lines.append(
                f"{_loc((*loc, 'kind'))}: got {ctx.get('tag')!r}; "
                f"expected one of {ctx.get('expected_tags')}"
            )
        elif kind == "union_tag_not_found":
            lines.append(f"{_loc(loc)}: missing key 'kind'; {msg}")
        elif kind == "missing":
            lines.append(f"{_loc(loc)}: missing; this key is required")
        elif kind == "retrainer_secret":  # the value may hold a token: not repeated
            lines.append(f"{_loc(loc)}: {msg}")
        elif kind == "extra_forbidden":
            hint = did_you_mean(str(loc[-1]), missing.get(loc[:-1], ())) or did_you_mean(
                str(loc[-1]), known
            )
            lines.append(
                f"{_loc(loc)}: unknown key (value {_short(err['input'])}); "
                + (hint.removeprefix("; ") if hint else "remove it")
            )
        else:
            lines.append(f"{_loc(loc)}: got {_short(err['input'])}; {_sentence(msg)}")
    return [_in_yaml_words(line) for line in lines]


def parse_config(data: Any, *, origin: str = CONFIG_FILE) -> ProjectConfig:
    """Validate a configuration mapping; raise ConfigError with one line per problem."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{origin}: expected a mapping at the top level, got {type(data).__name__}",
        )
    cfg = _validate(ProjectConfig, data, origin)
    _check_semantics(cfg, origin)
    return cfg


_M = TypeVar("_M", bound=BaseModel)


def _validate(model: type[_M], data: Any, origin: str) -> _M:
    """``model.model_validate(data)``, or ConfigError with one line per problem."""
    try:
        # ${NAME} values (notifiers' secrets) are read when the daemon starts, checked then
        return model.model_validate(data, context={"env_refs": True})
    except ValidationError as exc:
        problems = _problems(exc, model)
        raise ConfigError(
            f"{origin} has {len(problems)} problem{'s' if len(problems) != 1 else ''}:\n"
            + "\n".join(f"  {p}" for p in problems),
            problems,
        ) from None


def _read_yaml(file: Path) -> Any:
    """The YAML document in ``file``; ConfigError naming the line of a syntax error."""
    try:
        return yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{file}: not valid YAML{where}: {problem}") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot be read: {exc.strerror}") from None


def _trigger_metrics(spec: Any, where: str) -> list[tuple[str, Any]]:
    """(key path, metric name) of a trigger spec's metrics, nested any/all included."""
    if not isinstance(spec, Mapping):
        return []
    out = [(f"{where}.metric", spec["metric"])] if "metric" in spec else []
    for kind in ("any", "all"):
        for k, child in enumerate(spec.get(kind) or ()):
            out += _trigger_metrics(child, f"{where}.{kind}[{k}]")
    return out


def task_metric_problems(
    pipeline: PipelineConfig, where: str, task: str | None = None, why: str = ""
) -> list[str]:
    """Every metric of ``pipeline`` (its metrics, monitor metrics and metric triggers) that
    does not fit ``task`` (default: the configured one; nothing to check for ``auto``)."""
    task = task or pipeline.task
    named: list[tuple[str, Any]] = [
        (f"{where}.metrics[{j}]", m) for j, m in enumerate(pipeline.metrics)
    ]
    named += [
        (f"{where}.monitor.performance.metrics[{j}]", m)
        for j, m in enumerate(pipeline.monitor.performance.metrics or [])
    ]
    for j, spec in enumerate(pipeline.triggers):
        named += _trigger_metrics(spec, f"{where}.triggers[{j}]")
    problems = (metric_task_problem(m, task, key, why) for key, m in named)
    return [p for p in problems if p is not None]


def _check_semantics(cfg: ProjectConfig, origin: str) -> None:
    """Checks Pydantic cannot express: blessing rules and metric names (built in core)."""
    import difflib

    from retrainer.core.drift import DriftCheck
    from retrainer.core.metrics import get_metric
    from retrainer.core.performance import get_online_metric

    problems: list[str] = []
    for i, p in enumerate(cfg.pipelines):
        bad_metrics: list[str] = []  # misspelt names: a rule naming the right one is not blamed
        for j, m in enumerate(p.metrics):
            if isinstance(m, str):
                try:
                    get_metric(m)
                except ConfigError as exc:
                    problems.append(f"pipelines[{i}].metrics[{j}]: got {m!r}; {exc}")
                    bad_metrics.append(m)
        try:
            DriftCheck(**p.monitor.drift.check_params()).validate()
        except ConfigError as exc:
            problems.append(f"pipelines[{i}].monitor.drift: {exc}")
        for j, name in enumerate(p.monitor.performance.metrics or []):
            try:
                get_online_metric(name)
            except ConfigError as exc:
                problems.append(
                    f"pipelines[{i}].monitor.performance.metrics[{j}]: got {name!r}; {exc}"
                )
        from retrainer.core.triggers import AnyOf, build_guard, build_trigger

        built = []
        for j, spec in enumerate(p.triggers):
            try:
                built.append(build_trigger(spec, where=f"pipelines[{i}].triggers[{j}]"))
            except ConfigError as exc:
                problems.append(str(exc))
                continue
            problems += _trigger_metric_problems(spec, f"pipelines[{i}].triggers[{j}]", p)
        if len(built) > 1:
            try:
                AnyOf(*built)
            except ConfigError as exc:
                problems.append(f"pipelines[{i}].triggers: {exc}")
        for j, spec in enumerate(p.guards):
            try:
                build_guard(spec, where=f"pipelines[{i}].guards[{j}]")
            except ConfigError as exc:
                problems.append(str(exc))
        problems += task_metric_problems(p, f"pipelines[{i}]")
        known = set(p.metric_names()) - set(bad_metrics)
        for j, rule in enumerate(p.blessing.rules):
            key = f"pipelines[{i}].blessing.rules[{j}]"
            metric = rule.metric
            if metric not in known and not (
                isinstance(metric, str) and difflib.get_close_matches(metric, bad_metrics, n=1)
            ):
                problems.append(
                    f"{key}.metric: got {metric!r}; expected one of the pipeline's metrics "
                    f"({', '.join(sorted(known))})"
                )
    if problems:
        problems = [_in_yaml_words(p) for p in problems]
        raise ConfigError(
            f"{origin} has {len(problems)} problem{'s' if len(problems) != 1 else ''}:\n"
            + "\n".join(f"  {p}" for p in problems),
            problems,
        )


def _trigger_metric_problems(spec: Any, where: str, pipeline: PipelineConfig) -> list[str]:
    """The metric names of a (valid) trigger spec, nested ``any``/``all`` included, that the
    controller cannot measure: metric triggers read the built-in online metrics of the
    prediction log (``get_online_metric``), which a pipeline's custom metrics are not."""

    from retrainer.core.performance import get_online_metric, online_metric_names

    if not isinstance(spec, Mapping):
        return []
    out: list[str] = []
    for kind in ("any", "all"):
        for k, child in enumerate(spec.get(kind) or ()):
            out += _trigger_metric_problems(child, f"{where}.{kind}[{k}]", pipeline)
    name = spec.get("metric")
    if not isinstance(name, str):
        return out
    try:
        get_online_metric(name)
    except ConfigError:
        pass
    else:
        return out
    known = online_metric_names()
    custom = [m.name for m in pipeline.metrics if isinstance(m, MetricConfig)]
    if name in custom:
        out.append(
            f"{where}.metric: {name!r} is a custom metric of this pipeline; metric triggers "
            f"read the built-in metrics of the prediction log only: {', '.join(known)}"
        )
        return out
    hint = did_you_mean(name, known).removeprefix("; ")
    hint = f" ({hint})" if hint else ""
    out.append(f"{where}.metric: unknown metric {name!r}{hint}; known: {', '.join(known)}")
    return out


def find_config(path: str | os.PathLike[str] | None = None) -> Path:
    """Resolve a config path: a file, a project folder, or ./retrainer.yaml."""
    candidate = Path(path) if path is not None else Path.cwd()
    if candidate.is_dir():
        candidate = candidate / CONFIG_FILE
    if not candidate.is_file():
        raise ConfigError(
            f"no configuration at {candidate}; create a project with "
            "'retrainer init DIR --example elec2' or pass --config PATH"
        )
    return candidate


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> tuple[ProjectConfig, Path]:
    """Read and validate ``retrainer.yaml``; return the config and the file's resolved path.

    Relative storage paths and source paths are resolved against the project's folder (the
    file's, or its ``root``: :func:`project_root`) by the engine; ``RETRAINER_DB_URL`` and
    ``RETRAINER_ARTIFACTS_URL`` in ``env`` (default: the process environment) override the
    storage URLs.
    """
    file = find_config(path).resolve()
    data = _read_yaml(file)
    if data is None:
        raise ConfigError(f"{file}: the file is empty; it needs at least a 'pipelines' list")
    cfg = parse_config(data, origin=str(file))
    env = os.environ if env is None else env
    overrides: dict[str, str] = {}
    if env.get(ENV_DB_URL):
        overrides["db_url"] = env[ENV_DB_URL]
    if env.get(ENV_ARTIFACTS_URL):
        overrides["artifacts_url"] = env[ENV_ARTIFACTS_URL]
    if env.get(ENV_LOGS_URL):
        overrides["logs_url"] = env[ENV_LOGS_URL]
    if overrides:
        cfg = cfg.model_copy(update={"storage": cfg.storage.model_copy(update=overrides)})
    return cfg, file


def project_root(config: ProjectConfig, file: Path) -> Path:
    """The folder relative paths of the project at ``file`` resolve from (its ``root``)."""
    if config.root is None:
        return file.parent
    root = (file.parent / Path(config.root).expanduser()).resolve()
    if not root.is_dir():
        raise ConfigError(f"{file}: root: {config.root!r} is not a folder ({root})")
    return root


def json_schema() -> dict[str, Any]:
    """The JSON schema of ``retrainer.yaml`` (for editors and docs)."""
    return ProjectConfig.model_json_schema()

"""Replay one retraining policy over history: the same controller, on a simulated clock.

A :class:`Replay` holds what every policy of a backtest shares: the data set (sorted by
time), the serving batches, the label delay and the pipeline being replayed. :func:`run_policy`
runs one policy through it:

1. the first model is trained at the end of the warm start (a manual run);
2. at the start of each batch the controller ticks, exactly as ``retrainer daemon`` would
   (triggers, guards, windows, gate, promotion), on in-memory stores;
3. the champion after the tick serves the batch: its predictions are scored against the
   batch's labels (prequential scoring: each model is scored on the interval it served);
4. the predictions go to the prediction log, and each label reaches the feedback log when it
   arrives (the row's time plus the label delay), so metric and concept-drift triggers see
   exactly what production would see.

No look-ahead: the source (:class:`ReplaySource`) returns only rows from before the simulated
now, whatever window a policy asks for, and hides each row's label until it arrives; a run trains
on the rows whose label is there (``unlabelled: skip``), while a data-drift monitor sees the
features at once. The tests check it with a training function that records what it was given.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retrainer.adapters.artifacts import DictArtifactStore
from retrainer.adapters.metadata.memory import InMemoryMetadataStore
from retrainer.adapters.sources import normalize_time, row_hashes
from retrainer.config import ProjectConfig
from retrainer.core.clock import Clock, SimulatedClock, utc_datetime64
from retrainer.core.metrics import compute, get_metric
from retrainer.errors import ConfigError, DataError, SourceError, TrainingError

BACKTEST_SERIALIZATION = {"format": "pickle", "allow_pickle": True}
"""Artifacts of a backtest never leave its process: pickled, not skops (10x faster)."""

POLICY_KEYS = ("triggers", "guards", "window", "model", "train", "params", "blessing", "monitor")
"""The pipeline keys a policy may set; the rest comes from the replayed pipeline."""


class ReplaySource:
    """A data set revealed as simulated time passes; each label when it arrives.

    ``load(start, end)`` returns the rows with ``start <= time < end`` and ``time < now``
    (``now`` from the clock): a row's features are there from its time on, as in a production
    table. Its target is missing (``NaN``, ``<NA>`` for an integer or boolean column, None for
    labels) until ``time + label_delay <= now``: what a pipeline trains on are the rows whose
    label has arrived (``unlabelled: skip``), and a drift monitor sees the features at once.

    Examples
    --------
    >>> import pandas as pd
    >>> from datetime import UTC, datetime, timedelta
    >>> from retrainer.core.clock import SimulatedClock
    >>> frame = pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=5, freq="D"),
    ...                       "y": [0, 1, 0, 1, 0]})
    >>> clock = SimulatedClock(datetime(2024, 1, 4, tzinfo=UTC))
    >>> source = ReplaySource(frame, "timestamp", clock, target="y",
    ...                       label_delay=timedelta(days=1))
    >>> source.load(None, datetime(2030, 1, 1, tzinfo=UTC))["y"].tolist()  # Jan 3's label is in
    [0, 1, 0]
    >>> _ = clock.set(datetime(2024, 1, 5, 12, tzinfo=UTC))  # Jan 5: its row, no label
    >>> source.load(None, datetime(2030, 1, 1, tzinfo=UTC))["y"].tolist()
    [0, 1, 0, 1, <NA>]
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        time_column: str,
        clock: Clock,
        *,
        target: str,
        label_delay: timedelta = timedelta(0),
        name: str = "replay",
    ) -> None:
        self.frame = normalize_time(frame, time_column, f"replay source {name}")
        self.time_column = time_column
        self.clock = clock
        self.label_delay = label_delay
        if target not in self.frame.columns:
            raise DataError(
                f"replay source {name}: target column '{target}' not found; columns are: "
                f"{', '.join(map(str, self.frame.columns))}"
            )
        self.target = target
        """The label column, hidden in each row until its label arrives."""
        self.name = name
        self._times = self.frame[time_column].to_numpy().astype("datetime64[ns]")
        self._hashes: np.ndarray | None = None  # row_hashes(self.frame), when first asked
        self._last: tuple[pd.DataFrame, int, int] | None = None  # the last frame load returned

    @property
    def description(self) -> str:
        return f"replay:{self.name}"

    def load(self, start: datetime | None, end: datetime | None) -> pd.DataFrame:
        now = self.clock.now()
        # rows up to here have their label: time + delay <= now
        labelled = int(
            np.searchsorted(self._times, utc_datetime64(now - self.label_delay), "right")
        )

        def before(moment: datetime) -> int:
            return int(np.searchsorted(self._times, utc_datetime64(moment), "left"))

        hi = before(now)  # the past only
        if end is not None:
            hi = min(hi, before(end))
        lo = 0 if start is None else before(start)
        hi = max(lo, hi)
        out = self.frame.iloc[lo:hi].reset_index(drop=True)
        if max(labelled, lo) < hi:  # rows whose label has not arrived
            out = _hide_labels(out, self.target, max(labelled - lo, 0))
            self._last = None  # the rows differ from the data set's: hashed by the caller
        else:
            self._last = (out, lo, hi)
        return out

    def known_row_hashes(self, frame: pd.DataFrame) -> np.ndarray | None:
        """``row_hashes(frame)`` for the frame the last ``load`` returned (the rows of an
        immutable frame: a slice of its hashes, computed once), else None."""
        last = self._last  # read once: another thread's load may replace it
        if last is None or last[0] is not frame:
            return None
        if self._hashes is None:
            self._hashes = row_hashes(self.frame)
        _, lo, hi = last
        return self._hashes[lo:hi]


def _hide_labels(frame: pd.DataFrame, target: str, known: int) -> pd.DataFrame:
    """``frame`` with the target missing from row ``known`` on (a nullable integer or boolean
    column, so an integer label does not turn into a float one)."""
    y = frame[target]
    dtype = y.dtype
    if not pd.api.types.is_extension_array_dtype(dtype) and dtype.kind in "iub":
        nullable: Any = {"i": pd.Int64Dtype(), "u": pd.UInt64Dtype(), "b": pd.BooleanDtype()}
        y = y.astype(nullable[dtype.kind])
    keep = np.arange(len(frame)) < known
    return frame.assign(**{target: y.where(keep)})


@dataclass
class Replay:
    """What every policy of a backtest shares (picklable: sent to worker processes).

    Parameters
    ----------
    frame
        The whole data set, any order (sorted here).
    pipeline
        The replayed pipeline's configuration as a mapping (``PipelineConfig`` fields).
    batch
        The serving batch: the controller ticks and a model serves at this period.
    start
        When the first model is trained (the end of the warm start); the first batch starts.
    end
        The end of the last batch (default: after the last row).
    label_delay
        How long after its row a label arrives.
    select_until
        The selection part ends here; the held-out part follows.
    root
        The project folder (user modules, relative paths).
    persist
        Keep each policy's metadata (SQLite) and artifacts in ``persist/<policy>/``, with a
        ``retrainer.yaml`` there, so ``retrainer models list -c persist/<policy>`` shows its
        registry; None (default): in-memory stores, gone with the replay.
    """

    frame: pd.DataFrame
    pipeline: Mapping[str, Any]
    batch: timedelta
    start: datetime
    select_until: datetime
    root: Path
    end: datetime | None = None
    label_delay: timedelta = timedelta(0)
    metric: str | None = None
    git: tuple[str | None, bool | None] = (None, None)
    persist: Path | None = None
    """With a folder: each policy's stores go to ``persist/<policy>/`` (SQLite + artifacts)."""
    times: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        tcol = self.time_column
        self.frame = normalize_time(self.frame, tcol, "backtest data")
        self.times = self.frame[tcol].to_numpy().astype("datetime64[ns]")
        if self.batch <= timedelta(0):
            raise ConfigError(f"backtest batch must be a positive duration; got {self.batch}")
        if self.end is None:
            last = pd.Timestamp(self.times[-1]).to_pydatetime().replace(tzinfo=UTC)
            n = (last - self.start) // self.batch + 1
            self.end = self.start + n * self.batch
        if self.end <= self.start:
            raise DataError(
                f"the backtest starts at {self.start:%Y-%m-%d %H:%M} but the data end at "
                f"{self.end:%Y-%m-%d %H:%M}: nothing left to replay"
            )
        if self.metric is None:
            self.metric = self.metric_names[0]

    @property
    def name(self) -> str:
        return str(self.pipeline["name"])

    @property
    def time_column(self) -> str:
        return str(self.pipeline["source"]["time_column"])

    @property
    def target(self) -> str:
        return str(self.pipeline["target"])

    @property
    def metric_names(self) -> list[str]:
        return [m if isinstance(m, str) else str(m["name"]) for m in self.pipeline["metrics"]]

    @property
    def n_batches(self) -> int:
        return int((self.end - self.start) // self.batch)  # type: ignore[operator]

    def source(self, clock: Clock) -> ReplaySource:
        """The data set as a source on ``clock``: each row from its time on, its label once
        it arrives (``label_delay`` later)."""
        return ReplaySource(
            self.frame,
            self.time_column,
            clock,
            label_delay=self.label_delay,
            target=self.target,
            name=self.name,
        )

    def boundaries(self) -> list[datetime]:
        """Batch starts, then the end of the last batch."""
        return [self.start + i * self.batch for i in range(self.n_batches + 1)]

    def batch_rows(self) -> np.ndarray:
        """Row offsets of the batch boundaries (``rows[i]:rows[i+1]`` is batch i)."""
        return np.searchsorted(self.times, [utc_datetime64(t) for t in self.boundaries()], "left")

    def selection_batches(self) -> int:
        """How many batches (from the first) make the selection part."""
        ends = self.boundaries()[1:]
        return sum(1 for e in ends if e <= self.select_until)


def policy_pipeline(base: Mapping[str, Any], policy: Mapping[str, Any]) -> dict[str, Any]:
    """The replayed pipeline with the policy's keys (triggers, window, ...) in place."""
    unknown = [k for k in policy if k not in (*POLICY_KEYS, "name")]
    if unknown:
        raise ConfigError(
            f"policy {policy.get('name', '?')!r} has unknown key(s) {', '.join(unknown)}; a "
            f"policy sets name and {', '.join(POLICY_KEYS)}"
        )
    out = copy.deepcopy(dict(base))
    out.setdefault("triggers", [])
    out.setdefault("guards", [])
    for key in POLICY_KEYS:
        if key in policy:
            out[key] = copy.deepcopy(policy[key])
    if "model" in policy:
        out.pop("train", None)
    if "train" in policy:
        out.pop("model", None)
    if "triggers" not in policy:
        out["triggers"] = []  # a policy without triggers never retrains
    if "guards" not in policy:
        out["guards"] = []  # nor does it inherit the project's guards (a cooldown, say)
    return out


def reads_log(pipeline: Mapping[str, Any]) -> bool:
    """Whether a replayed pipeline (a config mapping) reads the prediction/feedback log.

    Metric triggers do; the monitor (drift, concept drift, a ``since_change`` window's
    detector) does only with ``data: log``: with ``data: source`` it reads the replayed
    source, which shows each row's features from its time and its label once it arrived.
    """
    from retrainer.engine.control.policy import policy_needs, watches_monitor

    needs = policy_needs(pipeline.get("triggers") or [], pipeline.get("guards") or [])
    monitored = watches_monitor(needs, (pipeline.get("window") or {}).get("kind"))
    monitor_log = (pipeline.get("monitor") or {}).get("data") == "log"
    return bool(needs.metrics) or (monitored and monitor_log)


@dataclass
class PolicyRun:
    """What one policy did over the replay (before the backtest's statistics)."""

    name: str
    params: dict[str, Any]
    n: np.ndarray  # rows per batch
    values: dict[str, np.ndarray]  # metric -> value per batch
    y_true: np.ndarray
    y_pred: np.ndarray
    y_score: np.ndarray | None
    retrained_at: list[datetime]
    train_cpu: list[float]
    promoted_at: list[datetime]
    failed: list[str]
    wall_s: float
    versions: int
    watching: np.ndarray | None = None
    """Per batch: the policy's trigger judged its signal at that batch (None: not recorded)."""
    error: str | None = None
    """Why the policy could not run on this data (its first model failed); None: it ran."""


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Numerical libraries on one thread while the block runs.

    threadpoolctl limits the libraries loaded when the block starts; numpy, scipy and
    scikit-learn are imported lazily elsewhere, so they are loaded first here (a BLAS loaded
    later would run on every core and count its waiting threads as training CPU).
    """
    import numpy  # noqa: F401
    import scipy.linalg  # noqa: F401
    import sklearn.utils  # noqa: F401
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def run_policy(replay: Replay, policy: Mapping[str, Any]) -> PolicyRun:
    """Replay ``policy`` (a name and pipeline keys) with the production controller.

    Numerical libraries run on one thread, so the training CPU seconds measure the fits and
    not the threads waiting for work (and parallel policies do not oversubscribe the cores).
    """
    with one_thread():
        try:
            return _run_policy(replay, policy)
        except (DataError, TrainingError, SourceError) as exc:
            # this policy cannot run on this data (e.g. a window too short for the label
            # delay): reported as such, and the other policies still run
            return PolicyRun(
                name=str(policy.get("name") or "policy"),
                params={k: v for k, v in policy.items() if k != "name"},
                n=np.zeros(0, dtype=np.int64),
                values={},
                y_true=np.empty(0),
                y_pred=np.empty(0),
                y_score=None,
                retrained_at=[],
                train_cpu=[],
                promoted_at=[],
                failed=[],
                wall_s=0.0,
                versions=0,
                error=str(exc),
            )


def _run_policy(replay: Replay, policy: Mapping[str, Any]) -> PolicyRun:
    from retrainer.engine.control.controller import Controller
    from retrainer.engine.control.policy import policy_needs
    from retrainer.engine.project import Project
    from retrainer.engine.runs.run import execute_run
    from retrainer.engine.state import CHAMPION

    t_wall = time.perf_counter()
    name = str(policy.get("name") or "policy")
    cfg = policy_pipeline(replay.pipeline, policy)
    cfg.setdefault("blessing", {}).setdefault("sanity", {})["enabled"] = False
    cfg["unlabelled"] = "skip"  # the replay hides the labels not arrived yet, by design
    try:
        config = ProjectConfig.model_validate(
            {"serialization": BACKTEST_SERIALIZATION, "pipelines": [cfg]}
        )
    except Exception as exc:
        raise ConfigError(f"policy {name!r}: {exc}") from exc
    clock = SimulatedClock(replay.start)
    source = replay.source(clock)
    project = Project.in_memory(config, replay.root, {replay.name: source})
    project.artifacts = DictArtifactStore()  # this policy's own blobs, freed with it
    project.store = InMemoryMetadataStore(copies=False)  # the controller never edits a read
    if replay.persist is not None:
        _persist(project, replay, cfg, name)
    project.git = replay.git
    project.cache_models = True
    # reference profiles only serve data-drift checks: skipped when no trigger reads them
    project.profiles = policy_needs(cfg.get("triggers") or []).profiles
    logs = project.log_store() if reads_log(cfg) else None

    first = execute_run(project, replay.name, clock=clock, cause="initial", actor="backtest")
    if first.ok and not first.promoted:
        raise DataError(
            f"policy {name!r}: the first model (trained at {replay.start:%Y-%m-%d %H:%M}) was "
            f"not blessed: {first.verdict.reason if first.verdict else '?'}"
        )
    if not first.ok:
        raise DataError(
            f"policy {name!r}: the first model (trained at {replay.start:%Y-%m-%d %H:%M}) "
            f"failed: {first.run.error}"
        )
    controller = Controller(project, clock=clock, owner="backtest")
    store = project.store
    served = serve(replay, project, controller, clock, logs=logs)
    rows = replay.batch_rows()
    target = replay.frame[replay.target].to_numpy()
    y_pred, y_score = served.predictions()

    runs = [r for r in store.list_runs(replay.name, limit=None) if r.cause != "initial"]
    runs.sort(key=lambda r: r.id or 0)
    trained = [r for r in runs if r.status == "succeeded"]
    moves = store.alias_history(replay.name, CHAMPION)
    lo_all, hi_all = int(rows[0]), int(rows[-1])
    return PolicyRun(
        name=name,
        params={k: cfg.get(k) for k in POLICY_KEYS if k in policy or k in ("triggers", "window")},
        n=served.n,
        values=served.values,
        y_true=target[lo_all:hi_all],
        y_pred=y_pred,
        y_score=y_score,
        retrained_at=[r.started_at or r.created_at for r in trained],
        train_cpu=[float(r.timings.get("train_cpu", 0.0)) for r in trained],
        promoted_at=[m.at for m in moves[1:]],
        failed=[f"{r.created_at:%Y-%m-%d}: {r.error}" for r in runs if r.status == "failed"],
        wall_s=time.perf_counter() - t_wall,
        versions=len(store.list_versions(replay.name)),
        watching=served.watching,
    )


@dataclass
class Served:
    """What the champions served over the replayed batches, and how it scored."""

    n: np.ndarray  # rows per batch
    values: dict[str, np.ndarray]  # metric -> value per batch (NaN: not served)
    y_pred: list[np.ndarray]
    y_score: list[np.ndarray]
    watching: np.ndarray  # per batch: the trigger judged its signal at that batch's tick

    def predictions(self) -> tuple[np.ndarray, np.ndarray | None]:
        """All served predictions and scores, in row order (scores None unless every batch
        had them)."""
        y_pred = np.concatenate(self.y_pred) if self.y_pred else np.empty(0)
        whole = self.y_score and len(self.y_score) == len(self.y_pred)
        return y_pred, np.concatenate(self.y_score) if whole else None


def serve(
    replay: Replay,
    project: Any,
    controller: Any,
    clock: SimulatedClock,
    *,
    logs: Any | None = None,
    first_batch: int = 0,
    on_batch: Callable[[int, datetime], None] | None = None,
) -> Served:
    """Tick the controller at each batch start, then serve the batch with the champion.

    The predictions of each batch go to ``logs`` (when given) stamped with their rows' times,
    and each label reaches the feedback log when it arrives (row time + label delay): what
    metric and concept-drift triggers read. ``on_batch(b, now)`` runs after each tick.
    """
    from retrainer.engine.state import CHAMPION

    store = project.store
    pipeline = project.pipeline(replay.name)
    bounds = replay.boundaries()
    rows = replay.batch_rows()
    frame = replay.frame
    target = frame[replay.target].to_numpy()
    metrics = {m: pipeline.metrics[m] for m in replay.metric_names}
    nb = replay.n_batches
    n = np.diff(rows).astype(np.int64)
    n[:first_batch] = 0
    values = {m: np.full(nb, np.nan) for m in metrics}
    watching = np.zeros(nb, dtype=bool)
    y_pred_parts: list[np.ndarray] = []
    y_score_parts: list[np.ndarray] = []
    models: dict[int, Any] = {}
    arrival = replay.times + np.timedelta64(int(replay.label_delay.total_seconds() * 1e6), "us")
    fed = int(rows[first_batch])  # feedback is logged for rows the log has predictions for
    ids = np.arange(len(frame)).astype(str)

    def feed(now: datetime, served: int) -> None:
        """Log the labels of the served rows (the first ``served``) arrived by ``now``."""
        nonlocal fed
        if logs is None or fed >= served:
            return
        upto = min(int(np.searchsorted(arrival, utc_datetime64(now), "right")), served)
        if upto > fed:
            logs.append_feedback(
                pd.DataFrame(
                    {
                        "id": ids[fed:upto],
                        "timestamp": arrival[fed:upto],
                        "pipeline": replay.name,
                        "outcome": target[fed:upto],
                    }
                )
            )
            fed = upto

    for b in range(first_batch, nb):
        now = bounds[b]
        clock.set(now)
        feed(now, int(rows[b]))
        report = controller.tick()
        watching[b] = any(d.watching for d in report.decisions)
        if on_batch is not None:
            on_batch(b, now)
        lo, hi = int(rows[b]), int(rows[b + 1])
        champion = store.get_alias(replay.name, CHAMPION)
        if hi <= lo or champion is None:
            continue
        if champion not in models:
            mv = store.get_version(replay.name, champion)
            models = {champion: project.load_version(mv)}
        part = frame.iloc[lo:hi]
        pred = pipeline.predict(models[champion], part)
        y = target[lo:hi]
        for m, metric in metrics.items():
            if metric.needs_proba and pred.y_score is None:
                continue
            values[m][b] = _quiet(metric, y, pred.y_pred, pred.y_score)
        y_pred_parts.append(pred.y_pred)
        if pred.y_score is not None:
            y_score_parts.append(pred.y_score)
        if logs is not None:
            logged = pipeline.features(part).reset_index(drop=True)
            logged.insert(0, "id", ids[lo:hi])
            logged.insert(1, "timestamp", replay.times[lo:hi])
            logged.insert(2, "pipeline", replay.name)
            logged.insert(3, "model_version", int(champion))
            logged.insert(4, "prediction", pred.y_pred)
            if pred.y_score is not None and pred.y_score.ndim == 1:
                logged.insert(5, "score", pred.y_score)
            logs.append_predictions(logged)
    clock.set(bounds[-1])
    feed(bounds[-1], int(rows[-1]))  # the labels arrived by the end: the log is complete then
    return Served(n=n, values=values, y_pred=y_pred_parts, y_score=y_score_parts, watching=watching)


def policy_slug(name: str) -> str:
    """A folder name for a policy: its name in safe characters, and a short hash."""
    import hashlib
    import re

    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()[:60] or "policy"
    return f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:6]}"


def _persist(project: Any, replay: Replay, cfg: Mapping[str, Any], name: str) -> None:
    """Point the policy's project at a fresh SQLite store and artifact folder (``--persist``)."""
    import shutil

    import yaml

    from retrainer.adapters.artifacts import LocalArtifactStore
    from retrainer.adapters.metadata.sql import open_metadata_store

    folder = Path(replay.persist) / policy_slug(name)  # type: ignore[arg-type]
    if folder.exists():
        shutil.rmtree(folder)
    (folder / ".retrainer").mkdir(parents=True)
    project.store = open_metadata_store(f"sqlite:///{folder.resolve()}/.retrainer/retrainer.db")
    project.artifacts = LocalArtifactStore(str(folder / ".retrainer" / "artifacts"))
    spec = copy.deepcopy(dict(cfg))
    source = dict(spec["source"])
    if "url" in source and "://" not in str(source["url"]):
        source["url"] = str((replay.root / str(source["url"])).resolve())
    spec["source"] = source
    document = {
        "storage": {"db_url": "sqlite:///.retrainer/retrainer.db"},
        "serialization": BACKTEST_SERIALIZATION,
        "pipelines": [spec],
    }
    header = f"# the stores of backtest policy {name!r} (written by retrainer backtest --persist)\n"
    (folder / "retrainer.yaml").write_text(header + yaml.safe_dump(document, sort_keys=False))


def _quiet(metric: Any, y: np.ndarray, y_pred: np.ndarray, y_score: np.ndarray | None) -> float:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return float(compute(metric, y, y_pred, y_score))
        except ValueError:
            return float("nan")


def pooled_metric(
    name: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_score: np.ndarray | None,
) -> float:
    """``name`` over all the rows at once (AUC included: not an average of batches)."""
    metric = get_metric(name)
    if not len(y_true) or (metric.needs_proba and y_score is None):
        return float("nan")
    return _quiet(metric, y_true, y_pred, y_score)

"""The backtest: which retraining policy is worth its cost, measured on history.

``retrainer backtest --config backtest.yaml --out DIR`` replays the pipeline's data through
every candidate policy with the production controller (:mod:`retrainer.engine.replay`), in
parallel, then:

- scores each policy prequentially (each model on the batches it served) on the whole period,
  the selection part (before ``select_until``) and the held-out part (after it);
- counts retrains and the training CPU seconds (process time around each fit);
- draws the Pareto front of cost against the metric, and gives the difference between the
  recommended policy and each other one as a 95% bootstrap interval over batches;
- measures the degradation curve: models trained along the stream, kept frozen and scored by
  age, against the always-retrained control (age 0);
- recommends a policy **chosen on the selection part only** and reports its held-out scores,
  and writes it out as a ``retrainer.yaml`` that ``retrainer daemon`` runs as is.

Each policy's replay is cached under ``DIR/.cache`` by a hash of everything it depends on
(the data, the pipeline, the policy, the replay settings, retrainer's version), so a re-run
only computes the policies that changed.
"""

from __future__ import annotations

import concurrent.futures as cf
import copy
import hashlib
import json
import multiprocessing
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from retrainer.adapters._atomic import write_file_atomically
from retrainer.config import (
    BacktestConfig,
    load_backtest_config,
    load_config,
    parse_config,
    project_root,
)
from retrainer.core.backtest import (
    Candidate,
    CostModel,
    degradation_curve,
    paired_bootstrap,
    pareto_front,
    select_policy,
)
from retrainer.core.clock import SimulatedClock
from retrainer.core.metrics import get_metric
from retrainer.core.windows import parse_duration
from retrainer.engine.replay import (
    POLICY_KEYS,
    PolicyRun,
    Replay,
    as_list,
    policy_pipeline,
    pooled_metric,
    run_policy,
)
from retrainer.errors import ConfigError, DataError

Progress = Callable[[int, int, str], None]
CACHE_VERSION = 3  # 2: keyed by each policy's replayed pipeline; 3: runs record watching


# --- the replay setting -----------------------------------------------------------------------


def _duration_or_batches(value: int | float | str, batch: timedelta, what: str) -> timedelta:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ConfigError(f"{what} must be >= 0 batches or a duration; got {value!r}")
        return batch * float(value)
    text = str(value).strip()
    if text.endswith(("batch", "batches")):
        return batch * float(text.split()[0])
    if text in ("0", ""):
        return timedelta(0)
    try:
        return parse_duration(text)
    except ConfigError as exc:
        raise ConfigError(f"{what}: {exc}") from None


def _aware(value: Any) -> datetime:
    ts = pd.Timestamp(value)
    ts = ts.tz_localize(UTC) if ts.tzinfo is None else ts.tz_convert(UTC)
    return ts.to_pydatetime()


def load_replay(cfg: BacktestConfig, file: Path) -> tuple[Replay, dict[str, Any], Path]:
    """The replay a backtest file describes; also the raw project YAML and its path."""
    from retrainer.adapters.environment import git_state
    from retrainer.engine.pipeline import Pipeline

    project_file = (file.parent / cfg.project).resolve()
    project_cfg, project_file = load_config(project_file)
    root = project_root(project_cfg, project_file)
    pcfg = project_cfg.pipeline(cfg.pipeline)
    raw = yaml.safe_load(project_file.read_text(encoding="utf-8"))
    pipeline = Pipeline(pcfg, root)
    frame = pipeline.source.load(None, None)
    if frame.empty:
        raise DataError(f"{pipeline.source.description} has no rows to replay")
    tcol = pcfg.source.time_column
    times = frame[tcol]
    first, last = _aware(times.iloc[0]), _aware(times.iloc[-1])
    batch = parse_duration(cfg.batch)
    if isinstance(cfg.warm_start, str):
        start = first + parse_duration(cfg.warm_start)
    else:
        start = _aware(times.iloc[int(len(frame) * cfg.warm_start)])
    # batches start on whole multiples of the batch since the first day (midnight)
    origin = first.replace(hour=0, minute=0, second=0, microsecond=0)
    start = origin + -(-(start - origin) // batch) * batch
    if start >= last:
        raise ConfigError(
            f"{file}: warm_start {cfg.warm_start!r} leaves nothing to replay (data end "
            f"{last:%Y-%m-%d})"
        )
    n = (last - start) // batch + 1
    end = start + n * batch
    if isinstance(cfg.select_until, str):
        until = _aware(cfg.select_until)
        if not start < until < end:
            raise ConfigError(
                f"{file}: select_until {cfg.select_until!r} must fall inside the replayed "
                f"period {start:%Y-%m-%d} .. {end:%Y-%m-%d}"
            )
        until = start + ((until - start) // batch) * batch
    else:
        until = start + round(n * cfg.select_until) * batch
    metric = cfg.metric or pcfg.metric_names()[0]
    if metric not in pcfg.metric_names():
        raise ConfigError(
            f"{file}: metric {metric!r} is not one of the pipeline's metrics "
            f"({', '.join(pcfg.metric_names())})"
        )
    delay = _duration_or_batches(cfg.label_delay, batch, "label_delay")
    if first + delay > start:
        raise ConfigError(
            f"{file}: label_delay {cfg.label_delay!r} ({_fmt_td(delay)}) leaves no label "
            f"arrived when the first model is trained at {start:%Y-%m-%d %H:%M} (the first row "
            f"is from {first:%Y-%m-%d %H:%M}): shorten label_delay or lengthen warm_start"
        )
    replay = Replay(
        frame=frame,
        pipeline=pcfg.model_dump(mode="json", exclude_none=True),
        batch=batch,
        start=start,
        end=end,
        select_until=until,
        root=root,
        label_delay=delay,
        metric=metric,
        git=git_state(root),
    )
    return replay, raw, project_file


# --- policies ---------------------------------------------------------------------------------


def _dur(text: str) -> str:
    return text.replace(" ", "")


def describe_window(window: Mapping[str, Any] | None) -> str:
    if not window or window.get("kind", "full") == "full":
        return "all history"
    if window.get("kind") == "new":
        return "new rows (online)"
    if window.get("kind") == "since_change":
        cap = f", at most {_dur(str(window['max']))}" if window.get("max") else ""
        return f"since the change (at least {_dur(str(window.get('min')))}{cap})"
    if window.get("rows"):
        return f"last {window['rows']} rows"
    return f"last {_dur(str(window.get('duration')))}"


def describe_trigger(spec: Mapping[str, Any]) -> str:
    """The trigger's own :meth:`~retrainer.core.triggers.Trigger.describe` (a spec that does
    not build is shown as written: the policy's validation names its problem)."""
    from retrainer.core.triggers import build_trigger

    try:
        return build_trigger(spec).describe()
    except ConfigError:
        return json.dumps(spec, sort_keys=True, default=str)


def describe_policy(policy: Mapping[str, Any]) -> str:
    """A short readable name for a policy without one."""
    triggers = policy.get("triggers") or []
    if not triggers:
        base = "never retrain"
        return base if "window" not in policy else f"{base} · {describe_window(policy['window'])}"
    from retrainer.core.triggers import build_guard

    text = " or ".join(describe_trigger(t) for t in triggers)
    if policy.get("monitor", {}).get("concept_drift", {}).get("method"):
        text = text.replace("concept drift", policy["monitor"]["concept_drift"]["method"])
    text += f" · {describe_window(policy.get('window'))}"
    for guard in policy.get("guards") or []:
        try:
            text += f" · {build_guard(guard).describe()}"
        except ConfigError:
            continue  # named by the policy's validation
    if "model" in policy:
        text += f" · {str(policy['model'].get('estimator', '')).rsplit(':', 1)[-1]}"
    return text


def _every(k: int, batch: timedelta) -> dict[str, Any]:
    if batch == timedelta(days=1) and k in (1, 7):
        return {"schedule": "0 0 * * *" if k == 1 else "0 0 * * MON"}
    days = (batch * k).total_seconds() / 86400
    return {"schedule": f"every {days:g}d" if days == int(days) else f"every {batch * k}"}


def default_policies(replay: Replay) -> list[dict[str, Any]]:
    """The default grid: cadences x windows, metric and drift triggers, online learning."""
    b = replay.batch
    days = b.total_seconds() / 86400
    delay = replay.label_delay.total_seconds() / 86400

    def win(k: int | None) -> dict[str, Any]:
        # a window ends at "now", and its newest ``label_delay`` holds no labels yet: widen it
        # by the delay, so "last 7 batches" trains on 7 batches of labelled rows
        if k is None:
            return {"kind": "full"}
        return {"kind": "sliding", "duration": f"{k * days + delay:g}d"}

    def since(shortest: int, longest: int) -> dict[str, Any]:
        return {
            "kind": "since_change",
            "min": f"{shortest * days + delay:g}d",
            "max": f"{longest * days + delay:g}d",
        }

    metric = replay.metric or "accuracy"
    greater = get_metric(metric).greater_is_better
    out: list[dict[str, Any]] = [{"name": "never retrain", "triggers": [], "window": win(None)}]
    # the always-retrain oracle, then cadences x windows (the window moves accuracy most)
    out.append({"triggers": [_every(1, b)], "window": win(7)})
    for k, windows in ((7, (7, 30, 90)), (30, (30, 90, None))):
        for w in windows:
            out.append({"triggers": [_every(k, b)], "window": win(w)})
    out.append(
        {
            "triggers": [
                {
                    "metric": metric,
                    "drop" if greater else "rise": 0.02,
                    "over": f"{3 * days + delay:g}d",  # labels of 3 batches
                    "min_samples": 30,
                }
            ],
            "window": win(30),
            "guards": [{"cooldown": f"{7 * days:g}d"}],
        }
    )
    out.append(
        {
            # data drift of the features (and of the model's output) over the last 7 batches:
            # features need no label, so the window is not widened by the delay
            "triggers": [{"drift": {}}],
            "window": win(30),
            "monitor": {"every": f"{days:g}d", "window": f"{7 * days:g}d"},
            "guards": [{"cooldown": f"{7 * days:g}d"}],
        }
    )
    out.append(
        {
            "triggers": [{"concept_drift": {}}],
            "window": win(90),
            "monitor": {
                "every": f"{days:g}d",
                "window": f"{days + delay:g}d",  # a batch of labels
                "concept_drift": {"method": "page_hinkley"},
            },
            "guards": [{"cooldown": f"{7 * days:g}d"}],
        }
    )
    # the same detector, retraining on the rows since the change it detected
    out.append({**copy.deepcopy(out[-1]), "window": since(30, 90)})
    if _is_classifier(replay):
        # each online checkpoint is kept (a floor of 0): judged on one batch's holdout (a few
        # rows), the pipeline's floors rejected a third of elec2's updates on noise, and each
        # rejected update is learned again from the older champion at the next batch
        rules = [{"metric": metric, "min" if greater else "max": 0.0 if greater else 1e300}]
        out.append(
            {
                "name": "online: River logistic regression · learns each batch",
                "triggers": [_every(1, b)],
                "window": {"kind": "new"},
                "model": {
                    "estimator": "retrainer.integrations.river:RiverClassifier",
                    "params": {"model": "linear_model.LogisticRegression", "scale": True},
                },
                "blessing": {"rules": rules},
            }
        )
    return out


def _is_classifier(replay: Replay) -> bool:
    task = replay.pipeline.get("task", "auto")
    if task != "auto":
        return bool(task == "classification")
    return not pd.api.types.is_float_dtype(replay.frame[replay.target])


def expand_policies(cfg: BacktestConfig, replay: Replay) -> list[dict[str, Any]]:
    """The policies of a backtest: the listed ones, then every combination of each grid."""
    import itertools

    out = [dict(p) for p in cfg.policies]
    for i, grid in enumerate(cfg.grid):
        keys = list(grid)
        bad = [k for k in keys if k not in (*POLICY_KEYS, "name")]
        if bad:
            raise ConfigError(
                f"grid[{i}] has unknown key(s) {', '.join(bad)}; it varies {', '.join(POLICY_KEYS)}"
            )
        for combo in itertools.product(*(grid[k] for k in keys)):
            out.append(dict(zip(keys, copy.deepcopy(combo), strict=True)))
    if not out:
        out = default_policies(replay)
    seen: set[str] = set()
    problems: list[str] = []
    for i, policy in enumerate(out):
        policy.setdefault("name", describe_policy(policy))
        name = str(policy["name"])
        if name in seen:
            raise ConfigError(
                f"two policies are called {name!r} (policy {i}); give one a distinct name"
            )
        seen.add(name)
        # the whole pipeline the policy replays, checked as retrainer.yaml is: a bad window or
        # trigger is a configuration error naming the policy, before anything runs
        spec = policy_pipeline(replay.pipeline, policy)  # names an unknown key itself
        try:
            parse_config({"pipelines": [spec]})
        except ConfigError as exc:
            problems += [
                f"policy {name!r}: {p.removeprefix('pipelines[0].')}" for p in exc.problems
            ]
    if problems:
        raise ConfigError(
            f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in the policies:\n"
            + "\n".join(f"  {p}" for p in problems),
            problems,
        )
    return out


# --- running ----------------------------------------------------------------------------------


def _fingerprint(replay: Replay) -> str:
    from retrainer import __version__
    from retrainer.adapters.sources import snapshot_of

    h = hashlib.sha256()
    h.update(snapshot_of(replay.frame, replay.time_column).fingerprint.encode())

    settings = [
        CACHE_VERSION,
        __version__,
        replay.batch.total_seconds(),
        replay.start.isoformat(),
        str(replay.end),
        replay.label_delay.total_seconds(),
    ]
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _policy_key(fingerprint: str, replay: Replay, policy: Mapping[str, Any]) -> str:
    """The cache key of one policy: the data and settings, and the pipeline it replays.

    The pipeline is the project's with the policy's keys in place (its definition hash covers
    the config and the user code it names), so a change to the project's triggers, guards or
    window, which every policy replaces, recomputes nothing.
    """
    from retrainer.config import PipelineConfig
    from retrainer.engine.pipeline import Pipeline

    spec = PipelineConfig.model_validate(policy_pipeline(replay.pipeline, policy))
    code = Pipeline(spec, replay.root).definition_hash
    return hashlib.sha256((fingerprint + code).encode()).hexdigest()[:24]


_WORKER_REPLAY: Replay | None = None


def _init_worker(replay: Replay) -> None:
    global _WORKER_REPLAY
    _WORKER_REPLAY = replay


def _run_in_worker(policy: Mapping[str, Any]) -> PolicyRun:
    assert _WORKER_REPLAY is not None
    return run_policy(_WORKER_REPLAY, policy)


def _degradation_in_worker(spec: Mapping[str, Any]) -> dict[str, Any]:
    assert _WORKER_REPLAY is not None
    return frozen_model_scores(_WORKER_REPLAY, **spec)


def run_policies(
    replay: Replay,
    policies: Sequence[Mapping[str, Any]],
    *,
    executor: str = "process",
    max_workers: int | None = None,
    address: str | None = None,
    cache_dir: Path | None = None,
    degradation: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> tuple[list[PolicyRun], dict[str, Any] | None, int]:
    """Run every policy (and the degradation scoring); return (runs, scores, cached count)."""
    import joblib

    fingerprint = _fingerprint(replay) if cache_dir is not None else ""
    results: dict[int, PolicyRun] = {}
    todo: list[int] = []
    for i, policy in enumerate(policies):
        path = (
            cache_dir / f"{_policy_key(fingerprint, replay, policy)}.joblib" if cache_dir else None
        )
        if path is not None and path.is_file():
            try:
                hit: PolicyRun = joblib.load(path)
                hit.name = str(policy["name"])
                results[i] = hit
                continue
            except Exception:  # a damaged cache entry is recomputed
                path.unlink(missing_ok=True)
        todo.append(i)
    total = len(policies) + (1 if degradation else 0)
    done: int = len(results)
    if progress:
        progress(done, total, f"{done} cached" if done else "starting")

    def store(i: int, run: PolicyRun) -> None:
        nonlocal done
        results[i] = run
        if cache_dir is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)
            import io

            buffer = io.BytesIO()
            joblib.dump(run, buffer)
            write_file_atomically(
                cache_dir / f"{_policy_key(fingerprint, replay, policies[i])}.joblib",
                buffer.getvalue(),
            )
        done += 1
        if progress:
            progress(done, total, run.name)

    scores: dict[str, Any] | None = None
    workers = max_workers or max(1, min(os.cpu_count() or 1, len(todo) + 1))
    if executor == "inline" or (workers == 1 and executor == "process"):
        for i in todo:
            store(i, run_policy(replay, policies[i]))
        if degradation:
            scores = frozen_model_scores(replay, **degradation)
            done += 1
            if progress:
                progress(done, total, "degradation curve")
    elif executor == "dask":
        from distributed import Client, LocalCluster

        cluster = None
        if address is None:
            cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            )
        client = Client(address or cluster)
        try:
            shared = client.scatter(replay, broadcast=True)
            futures = {client.submit(run_policy, shared, policies[i], pure=False): i for i in todo}
            deg = client.submit(frozen_model_scores, shared, **degradation) if degradation else None
            from distributed import as_completed

            for fut in as_completed(list(futures)):
                store(futures[fut], fut.result())
            if deg is not None:
                scores = deg.result()
                done += 1
                if progress:
                    progress(done, total, "degradation curve")
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    else:
        # spawn, not the forkserver: the sanity checks of this process own the forkserver
        # (and its preloaded imports), which a pool started first would take over
        ctx = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(replay,)
        ) as pool:
            pending: dict[cf.Future[Any], int] = {}
            if degradation:  # the longest single task: first
                pending[pool.submit(_degradation_in_worker, dict(degradation))] = -1
            # the costliest policies first (most frequent retrains) to balance the workers
            for i in sorted(todo, key=lambda j: -_expected_cost(policies[j])):
                pending[pool.submit(_run_in_worker, policies[i])] = i
            for fut in cf.as_completed(pending):
                i = pending[fut]
                if i < 0:
                    scores = fut.result()
                    done += 1
                    if progress:
                        progress(done, total, "degradation curve")
                else:
                    store(i, fut.result())
    cached = len(policies) - len(todo)
    return [results[i] for i in range(len(policies))], scores, cached


def _expected_cost(policy: Mapping[str, Any]) -> float:
    """A rough rank of a policy's replay time, to start the longest first: a retrain at every
    batch, then a log query (metric triggers) or a monitor run (drift) at every batch."""
    from retrainer.core.triggers import Needs
    from retrainer.engine.controller import policy_needs

    triggers = policy.get("triggers") or []
    try:
        needs = policy_needs(triggers)
    except ConfigError:
        needs = Needs()
    if needs.cadence is not None and needs.cadence <= timedelta(days=1):
        return 10.0
    for read, cost in ((bool(needs.metrics), 9.0), (needs.profiles, 8.0), (needs.monitor, 5.0)):
        if read:
            return cost
    return 1.0 if triggers else 0.0


def frozen_model_scores(
    replay: Replay,
    *,
    every: int,
    max_age: int,
    window: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train a model every ``every`` batches, keep it frozen, score it on the next batches.

    Returns flat lists (model, age, value, rows) of the primary metric, age 0 being the first
    batch after training: what :func:`~retrainer.core.backtest.degradation_curve` takes.
    """
    from threadpoolctl import threadpool_limits

    from retrainer.config import PipelineConfig
    from retrainer.engine.pipeline import Pipeline

    spec = {**replay.pipeline, "unlabelled": "skip"}  # labels not arrived yet are hidden
    if window is not None:
        spec["window"] = dict(window)
    clock = SimulatedClock(replay.start)
    source = replay.source(clock)
    pipeline = Pipeline(PipelineConfig.model_validate(spec), replay.root, source)
    metric = pipeline.metrics[replay.metric or pipeline.config.metric_names()[0]]
    bounds, rows = replay.boundaries(), replay.batch_rows()
    target = replay.frame[replay.target].to_numpy()
    models: list[int] = []
    ages: list[int] = []
    values: list[float] = []
    weights: list[int] = []
    from retrainer.engine.replay import _quiet

    with threadpool_limits(1):
        for k in range(0, replay.n_batches, every):
            clock.set(bounds[k])
            train, _, _ = pipeline.load(bounds[k])
            try:  # the rows whose label has arrived
                train, _ = pipeline.labelled(train, f"at {bounds[k]:%Y-%m-%d %H:%M}")
            except DataError:  # none yet
                continue
            if len(train) < 2 or train[replay.target].nunique() < 2:
                continue
            model = pipeline.fit(train)
            last = min(k + max_age, replay.n_batches)
            lo, hi = int(rows[k]), int(rows[last])
            if hi <= lo:
                continue
            pred = pipeline.predict(model, replay.frame.iloc[lo:hi])
            for age, b in enumerate(range(k, last)):
                a, z = int(rows[b]) - lo, int(rows[b + 1]) - lo
                if z <= a:
                    continue
                ys = pred.y_score[a:z] if pred.y_score is not None else None
                models.append(k)
                ages.append(age)
                values.append(_quiet(metric, target[lo + a : lo + z], pred.y_pred[a:z], ys))
                weights.append(z - a)
    return {"model": models, "age": ages, "value": values, "n": weights, "every": every}


# --- the answer -------------------------------------------------------------------------------


@dataclass
class BacktestResult:
    """What ``retrainer backtest`` produced."""

    results: dict[str, Any]
    out_dir: Path
    report: Path
    png: Path
    json_path: Path
    yaml_path: Path
    cached: int


def _part(run: PolicyRun, rows: slice, metrics: Sequence[str]) -> dict[str, float | None]:
    y_score = run.y_score[rows] if run.y_score is not None else None
    out = {}
    for m in metrics:
        v = pooled_metric(m, run.y_true[rows], run.y_pred[rows], y_score)
        out[m] = None if v != v else round(v, 6)
    return out


def summarize(
    replay: Replay,
    runs: Sequence[PolicyRun],
    policies: Sequence[Mapping[str, Any]],
    *,
    cost: CostModel,
    tolerance: float,
    deg_scores: Mapping[str, Any] | None,
    cpu_tolerance: float = 0.25,
    deg_window: Mapping[str, Any] | None = None,
    recommend_baselines: bool = False,
) -> dict[str, Any]:
    """The results document (results.json) from the policies' runs."""
    metric = replay.metric or replay.metric_names[0]
    greater = get_metric(metric).greater_is_better
    failed_policies = [{"name": r.name, "error": r.error} for r in runs if r.error is not None]
    kept = [(r, p) for r, p in zip(runs, policies, strict=True) if r.error is None]
    if not kept:
        # each error names its policy; the first in full, the others by name
        others = [f["name"] for f in failed_policies[1:]]
        shown = ", ".join(repr(n) for n in others[:5]) + (", ..." if len(others) > 5 else "")
        raise DataError(
            f"no policy could run on this data: {failed_policies[0]['error']}"
            + (f" (and {len(others)} other policies failed: {shown})" if others else "")
        )
    runs, policies = [r for r, _ in kept], [p for _, p in kept]
    k = replay.selection_batches()
    rows = replay.batch_rows()
    sel_rows = int(rows[k] - rows[0])
    until = replay.select_until
    bounds = replay.boundaries()
    ends = [t.isoformat() for t in bounds[1:]]
    out_policies: list[dict[str, Any]] = []
    for run, policy in zip(runs, policies, strict=True):
        whole = _part(run, slice(None), replay.metric_names)
        first = _part(run, slice(0, sel_rows), replay.metric_names)
        rest = _part(run, slice(sel_rows, None), replay.metric_names)
        late = [t >= until for t in run.retrained_at]
        cpu_held = sum(c for c, is_late in zip(run.train_cpu, late, strict=True) if is_late)
        value = rest[metric]
        watched = int(np.count_nonzero(run.watching[:k])) if run.watching is not None else 0
        out_policies.append(
            {
                "name": run.name,
                "params": {k2: v for k2, v in policy.items() if k2 != "name"},
                "metric": whole,
                "selection": first,
                "held_out": rest,
                "retrains": len(run.retrained_at),
                "promotions": len(run.promoted_at),
                "train_cpu_s": round(sum(run.train_cpu), 4),
                "retrains_held_out": sum(late),
                "train_cpu_s_held_out": round(cpu_held, 4),
                "retrains_selection": len(late) - sum(late),
                "train_cpu_s_selection": round(sum(run.train_cpu) - cpu_held, 4),
                "watched_selection": watched,
                "wall_s": round(run.wall_s, 3),
                "failed_runs": run.failed[:20],
                "cost": (
                    round(cost.net_value(value, sum(late), cpu_held, greater_is_better=greater), 4)
                    if cost.is_set and value is not None
                    else None
                ),
                "series": {
                    "end": ends,
                    "n": [int(x) for x in run.n],
                    **{m: as_list([round(float(v), 6) for v in run.values[m]]) for m in run.values},
                },
                "retrained_at": [t.isoformat() for t in run.retrained_at],
                "promoted_at": [t.isoformat() for t in run.promoted_at],
            }
        )
    nan = float("nan")

    def score(p: Mapping[str, Any], part: str) -> float:
        v = p[part][metric]
        return nan if v is None else float(v)

    front = pareto_front(
        [p["train_cpu_s_held_out"] for p in out_policies],
        [score(p, "held_out") for p in out_policies],
        greater_is_better=greater,
    )
    for i, p in enumerate(out_policies):
        p["pareto"] = i in front
    # policies without triggers are baselines: they cannot react to a shift the selection
    # part did not contain, so they are recommended only when asked (or when alone); so is a
    # policy whose trigger never judged its signal on the selection part (a metric or
    # concept-drift trigger whose look-back holds no label yet under the delay): what was
    # measured there is its first model, not the policy. A trigger that watched (at least
    # half the selection part) and did not fire was tested: it judged that nothing called
    # for a retrain.
    for p in out_policies:
        if recommend_baselines:
            p["excluded"] = None
        elif not p["params"].get("triggers"):
            p["excluded"] = "baseline"
        elif p["retrains_selection"] == 0 and 2 * p["watched_selection"] < k:
            p["excluded"] = "untested"
        else:
            p["excluded"] = None
    eligible = [p for p in out_policies if p["excluded"] is None]
    selection = select_policy(
        [
            Candidate(
                name=p["name"],
                score=score(p, "selection"),
                retrains=p["retrains_selection"],
                cpu_s=p["train_cpu_s_selection"],
            )
            for p in eligible or out_policies
        ],
        greater_is_better=greater,
        tolerance=tolerance,
        cost=cost if cost.is_set else None,
        cpu_tolerance=cpu_tolerance,
    )
    by_name = {p["name"]: i for i, p in enumerate(out_policies)}
    rec_i = by_name[selection.name]
    rec = out_policies[rec_i]
    reason = selection.reason
    if rec["params"].get("triggers") and rec["retrains_selection"] == 0:
        reason += (
            f"; its trigger watched {rec['watched_selection']} of the {k} selection batches "
            "and never fired there, so its score there is its first model's"
        )
    # the always-retrain control: the batch policy retraining most often (online ones aside)
    batch_policies = [
        p for p in out_policies if (p["params"].get("window") or {}).get("kind") != "new"
    ] or out_policies
    oracle = max(
        batch_policies,
        key=lambda p: (p["retrains"], score(p, "metric") if greater else -score(p, "metric")),
    )
    comparisons = []
    held = slice(k, None)
    for i, other in enumerate(out_policies):
        if i == rec_i:
            continue
        diff = paired_bootstrap(
            runs[rec_i].values[metric][held],
            runs[i].values[metric][held],
            runs[rec_i].n[held],
        )
        comparisons.append(
            {
                "a": rec["name"],
                "b": other["name"],
                "part": "held_out",
                "mean": round(diff.mean, 6),
                "low": None if diff.low != diff.low else round(diff.low, 6),
                "high": None if diff.high != diff.high else round(diff.high, 6),
                "significant": diff.significant,
                "text": diff.describe(rec["name"], other["name"], greater_is_better=greater),
            }
        )
    degradation = None
    if deg_scores is not None and deg_scores.get("age"):
        curve = degradation_curve(
            np.asarray(deg_scores["model"]),
            np.asarray(deg_scores["age"]),
            np.asarray(deg_scores["value"], dtype=float),
            np.asarray(deg_scores["n"], dtype=float),
        )
        degradation = {
            "ages": list(curve.ages),
            "mean": as_list([round(v, 6) for v in curve.mean]),
            "low": as_list([round(v, 6) for v in curve.low]),
            "high": as_list([round(v, 6) for v in curve.high]),
            "n_models": list(curve.n_models),
            "control": round(curve.control, 6),
            "age_at_loss": {
                f"{pts:g}": curve.age_at_loss(pts, greater_is_better=greater)
                for pts in (0.5, 1.0, 2.0, 5.0)
            },
            "window": dict(deg_window or replay.pipeline.get("window", {})),
            "every": deg_scores.get("every"),
        }
    spec = {k2: v for k2, v in policies[rec_i].items() if k2 != "name"}
    snippet = yaml.safe_dump(_policy_block(spec), sort_keys=False).rstrip()
    return {
        "version": 1,
        "title": f"{replay.name} backtest",
        "dataset": {
            "pipeline": replay.name,
            "source": str(replay.pipeline["source"].get("url", replay.pipeline["source"])),
            "rows": len(replay.frame),
            "start": _iso(replay.times[0]),
            "end": _iso(replay.times[-1]),
            "batch": _fmt_td(replay.batch),
            "batches": replay.n_batches,
            "warm_start_end": replay.start.isoformat(),
            "label_delay": _fmt_td(replay.label_delay),
            "select_until": until.isoformat(),
            "selection_batches": k,
            "held_out_batches": replay.n_batches - k,
        },
        "metric": metric,
        "greater_is_better": greater,
        "metrics": replay.metric_names,
        "cost_model": {
            "per_retrain": cost.per_retrain,
            "per_cpu_second": cost.per_cpu_second,
            "per_metric_point": cost.per_metric_point,
        },
        "tolerance": tolerance,
        "cpu_tolerance": cpu_tolerance,
        "policies": out_policies,
        "failed_policies": failed_policies,
        "comparisons": comparisons,
        "degradation": degradation,
        "recommended": {
            "name": rec["name"],
            "rule": selection.rule,
            "reason": reason,
            "params": spec,
            "selection": rec["selection"],
            "held_out": rec["held_out"],
            "retrains_held_out": rec["retrains_held_out"],
            "train_cpu_s_held_out": rec["train_cpu_s_held_out"],
            "yaml_path": "recommended.yaml",
            "snippet": snippet,
        },
        "oracle": oracle["name"],
    }


def _iso(value: np.datetime64) -> str:
    return pd.Timestamp(value).tz_localize(UTC).isoformat()


def _fmt_td(value: timedelta) -> str:
    secs = int(value.total_seconds())
    if secs == 0:
        return "0"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs % size == 0:
            return f"{secs // size}{unit}"
    return f"{secs}s"


def _policy_block(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The pipeline keys the recommended policy sets, in retrainer.yaml's words."""
    block: dict[str, Any] = {}
    for key in POLICY_KEYS:
        if key in spec:
            block[key] = copy.deepcopy(spec[key])
    block.setdefault("triggers", [])
    return block


def recommended_config(
    raw: Mapping[str, Any], pipeline: str, block: Mapping[str, Any]
) -> dict[str, Any]:
    """The project's retrainer.yaml with the recommended policy in the replayed pipeline."""
    out = copy.deepcopy(dict(raw))
    for p in out.get("pipelines", []):
        if p.get("name") == pipeline:
            for key, value in block.items():
                if key in ("monitor", "blessing") and isinstance(p.get(key), dict):
                    p[key] = _merge(p[key], value)
                else:
                    p[key] = copy.deepcopy(value)
            if "model" in block:
                p.pop("train", None)
            if "train" in block:
                p.pop("model", None)
    return out


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def run_backtest(
    config: str | os.PathLike[str] | BacktestConfig,
    out_dir: str | os.PathLike[str],
    *,
    file: Path | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
    persist: bool = False,
) -> BacktestResult:
    """Run the backtest a ``backtest.yaml`` describes and write its report into ``out_dir``.

    With ``persist``, each policy's stores are kept in ``out_dir/persist/<policy>/`` (SQLite
    and artifacts; the cache is not used, so every policy runs).
    """
    from retrainer.engine.backtest_report import write_backtest_report

    t0 = time.perf_counter()
    if isinstance(config, BacktestConfig):
        cfg, path = config, (file or Path.cwd() / "backtest.yaml")
    else:
        cfg, path = load_backtest_config(config)
    replay, raw, project_file = load_replay(cfg, path)
    policies = expand_policies(cfg, replay)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if persist:
        replay.persist = (out / "persist").resolve()
    deg = cfg.degradation
    deg_spec: dict[str, Any] | None = None
    if deg.enabled:
        deg_spec = {
            "every": deg.every,
            "max_age": deg.max_age,
            "window": deg.window.model_dump(exclude_none=True) if deg.window else None,
        }
    runs, scores, cached = run_policies(
        replay,
        policies,
        executor=cfg.executor.kind,
        max_workers=workers or cfg.executor.max_workers,
        address=cfg.executor.address,
        cache_dir=out / ".cache" if cfg.cache and not persist else None,
        degradation=deg_spec,
        progress=progress,
    )
    cost = CostModel(
        per_retrain=cfg.cost.per_retrain,
        per_cpu_second=cfg.cost.per_cpu_second,
        per_metric_point=cfg.cost.per_metric_point,
    )
    results = summarize(
        replay,
        runs,
        policies,
        cost=cost,
        tolerance=cfg.tolerance,
        cpu_tolerance=cfg.cpu_tolerance,
        deg_scores=scores,
        deg_window=deg_spec["window"] if deg_spec else None,
        recommend_baselines=cfg.recommend_baselines,
    )
    results["seconds"] = round(time.perf_counter() - t0, 2)
    results["cached_policies"] = cached
    results["project"] = str(project_file)
    rec_spec = results["recommended"]["params"]
    recommended = recommended_config(raw, replay.name, _policy_block(rec_spec))
    # root: the project's folder, so the file runs as is from here (its paths are relative)
    recommended = {
        "root": str(replay.root),
        **{k: v for k, v in recommended.items() if k != "root"},
    }
    header = (
        f"# retrainer.yaml with the policy the backtest recommends for {replay.name}:\n"
        f"# {results['recommended']['name']}\n"
        f"# {results['recommended']['reason']}\n"
        f"# 'retrainer daemon -c {out / 'recommended.yaml'}' runs it as is on the project's\n"
        "# files and stores (root: below); put in place of your retrainer.yaml, it needs no root.\n"
    )
    yaml_path = out / "recommended.yaml"
    write_file_atomically(
        yaml_path, (header + yaml.safe_dump(recommended, sort_keys=False)).encode()
    )
    json_path = out / "results.json"
    write_file_atomically(json_path, json.dumps(results, indent=1, allow_nan=False).encode())
    report, png = write_backtest_report(results, out)
    return BacktestResult(
        results=results,
        out_dir=out,
        report=report,
        png=png,
        json_path=json_path,
        yaml_path=yaml_path,
        cached=cached,
    )

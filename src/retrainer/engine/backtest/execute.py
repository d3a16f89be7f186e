"""Running the backtest's policies: each replayed (or taken from the cache), in parallel.

One path for every executor (:func:`~retrainer.adapters.executors.task_pool`: inline, spawned
processes or a Dask cluster); the replayed data set is sent to each worker once.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from retrainer.adapters.executors import task_pool
from retrainer.core.clock import SimulatedClock
from retrainer.engine.backtest.cache import PolicyCache
from retrainer.engine.backtest.replay import PolicyRun, Replay, one_thread, run_policy
from retrainer.errors import ConfigError, DataError

Progress = Callable[[int, int, str], None]


def _replay_policy(replay: Replay, policy: Mapping[str, Any]) -> PolicyRun:
    # looked up at call time, so a test can count the replays by patching run_policy here
    return run_policy(replay, policy)


def _degradation(replay: Replay, spec: Mapping[str, Any]) -> dict[str, Any]:
    return frozen_model_scores(replay, **spec)


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
    cache = PolicyCache(cache_dir, replay) if cache_dir is not None else None
    results: dict[int, PolicyRun] = {}
    todo: list[int] = []
    for i, policy in enumerate(policies):
        hit = cache.get(policy) if cache is not None else None
        if hit is not None:
            results[i] = hit
        else:
            todo.append(i)
    # the policies only: the degradation curve is reported by name, not counted, so the count
    # ends at the policies the summary lists (failed ones included, and said so there)
    total = len(policies)
    done = len(results)
    if progress:
        progress(done, total, f"{done} cached" if done else "starting")
    scores: dict[str, Any] | None = None
    workers = max_workers or max(1, min(os.cpu_count() or 1, len(todo) + 1))
    pending: dict[cf.Future[Any], int] = {}

    def finish(fut: cf.Future[Any]) -> None:
        nonlocal done, scores
        i = pending.pop(fut)
        if i < 0:
            scores = fut.result()
            if progress:
                progress(done, total, "degradation curve")
            return
        run = results[i] = fut.result()
        if cache is not None:
            cache.put(policies[i], run)
        name = run.name if run.error is None else f"{run.name} (failed)"
        done += 1
        if progress:
            progress(done, total, name)

    def submit(i: int, fut: cf.Future[Any]) -> None:
        pending[fut] = i
        for ready in [f for f in pending if f.done()]:  # inline: each call as it ends
            finish(ready)

    with task_pool(executor, shared=replay, max_workers=workers, address=address) as pool:
        parallel = pool.workers > 1
        if degradation and parallel:  # the longest single task: first
            submit(-1, pool.submit(_degradation, dict(degradation)))
        # in parallel, the costliest policies first (most frequent retrains) to balance workers
        order = sorted(todo, key=lambda j: -_expected_cost(policies[j])) if parallel else todo
        for i in order:
            submit(i, pool.submit(_replay_policy, policies[i]))
        if degradation and not parallel:
            submit(-1, pool.submit(_degradation, dict(degradation)))
        for fut in cf.as_completed(list(pending)):
            finish(fut)
    cached = len(policies) - len(todo)
    return [results[i] for i in range(len(policies))], scores, cached


def _expected_cost(policy: Mapping[str, Any]) -> float:
    """A rough rank of a policy's replay time, to start the longest first: a retrain at every
    batch, then a log query (metric triggers) or a monitor run (drift) at every batch."""
    from retrainer.core.triggers import Needs
    from retrainer.engine.control.policy import policy_needs

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
    from retrainer.engine.backtest.replay import _quiet

    with one_thread():
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

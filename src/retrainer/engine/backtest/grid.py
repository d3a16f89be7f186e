"""The backtest's grid: the replay a backtest.yaml describes and the policies it compares.

:func:`load_replay` reads the project's data and fixes the batches, the selection part and
the label delay; :func:`expand_policies` lists the policies (the listed ones, each grid's
combinations, or :func:`default_policies`), each checked as ``retrainer.yaml`` is.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from retrainer.backtest_config import BacktestConfig
from retrainer.config import load_config, parse_config, project_root
from retrainer.core.metrics import get_metric, in_points
from retrainer.core.windows import parse_duration
from retrainer.engine.backtest.replay import POLICY_KEYS, Replay, policy_pipeline
from retrainer.errors import ConfigError, DataError

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
    if not project_file.exists():  # the hint is the backtest file's key, not --config
        raise ConfigError(
            f"{file}: project: {cfg.project!r} names no file ({project_file}); it is the "
            "project's retrainer.yaml, relative to the backtest file"
        )
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
            f"{file}: label_delay {cfg.label_delay!r} ({fmt_duration(delay)}) leaves no label "
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
    """The default grid: cadences x windows, metric, cost-aware and drift triggers, online
    learning."""
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
    # the always-retrain reference: every batch, the better of two windows (one fixed window
    # can be the worst policy of the grid: NOAA's last 7 batches), then cadences x windows
    for last in (7, 30):
        out.append({"triggers": [_every(1, b)], "window": win(last)})
    for k, windows in ((7, (7, 30, 90)), (30, (30, 90, None))):
        for w in windows:
            out.append({"triggers": [_every(k, b)], "window": win(w)})
    # 2 points of a share (accuracy, AUC); 10% of a loss in the target's units (MAE, RMSE)
    # or unbounded (log loss), where 0.02 would mean nothing
    change: dict[str, Any] = (
        {"drop" if greater else "rise": 0.02}
        if in_points(metric)
        else {"drop" if greater else "rise": 0.1, "relative": True}
    )
    out.append(
        {
            "triggers": [
                {
                    "metric": metric,
                    **change,
                    "over": f"{3 * days + delay:g}d",  # labels of 3 batches
                    "min_samples": 30,
                }
            ],
            "window": win(30),
            "guards": [{"cooldown": f"{7 * days:g}d"}],
        }
    )
    # cost-aware: a retrain costs 1 (CPU priced at 0, so a decision does not depend on the
    # machine's timing noise) and a point lost for k batches pays for one, k = 3, 10, 30
    for k in (3, 10, 30):
        out.append(
            {
                "triggers": [
                    {
                        "cost_aware": {
                            "value_per_point": round(1 / (k * days), 6),
                            "deploy_cost": 1.0,
                            "metric": metric,
                            "over": f"{3 * days + delay:g}d",
                        }
                    }
                ],
                "window": win(30),
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
    return dedupe_windows(replay, out)


def _holds_all_history(window: Mapping[str, Any] | None, replay: Replay) -> bool:
    """Whether ``window`` holds every row up to "now" at any time of the replay: a sliding
    window longer than the whole data set (from its first row to the replay's end)."""
    window = window or {}
    kind = window.get("kind", "full")
    if kind == "full":
        return True
    if kind != "sliding":
        return False
    if window.get("rows"):
        return int(window["rows"]) >= len(replay.frame)
    span = replay.end - pd.Timestamp(replay.times[0]).to_pydatetime().replace(tzinfo=UTC)  # type: ignore[operator]
    return bool(window.get("duration")) and parse_duration(str(window["duration"])) >= span


def dedupe_windows(replay: Replay, policies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``policies`` without those that replay exactly as an earlier one: on a history shorter
    than their windows, "last 30d", "last 90d" and "all history" all train on every row, so a
    grid's cadence x window pairs coincide. The first of each kept (in the default grid, the
    shortest window: in production it keeps a bounded cost as the history grows).

    Examples
    --------
    >>> from datetime import timedelta
    >>> from retrainer.testing import pipeline_spec
    >>> frame = pd.DataFrame({"ts": pd.date_range("2024-01-01", periods=40, freq="D"),
    ...                       "x1": 0.0, "x2": 0.0, "y": [0, 1] * 20})
    >>> replay = Replay(frame=frame, pipeline=pipeline_spec(), batch=timedelta(days=1),
    ...                 start=datetime(2024, 1, 20, tzinfo=UTC),
    ...                 select_until=datetime(2024, 1, 30, tzinfo=UTC), root=Path("."))
    >>> weekly = [{"schedule": "0 0 * * MON"}]
    >>> [p["window"] for p in dedupe_windows(replay, [
    ...     {"triggers": weekly, "window": {"kind": "sliding", "duration": "30d"}},
    ...     {"triggers": weekly, "window": {"kind": "sliding", "duration": "90d"}},
    ...     {"triggers": weekly, "window": {"kind": "full"}},
    ... ])]
    [{'kind': 'sliding', 'duration': '30d'}, {'kind': 'sliding', 'duration': '90d'}]
    """
    kept: list[dict[str, Any]] = []
    seen: set[str] = set()
    for policy in policies:
        window = policy.get("window")
        rest = {k: v for k, v in policy.items() if k not in ("name", "window")}
        effective = {"kind": "full"} if _holds_all_history(window, replay) else window
        key = json.dumps({**rest, "window": effective}, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            kept.append(policy)
    return kept


def _is_classifier(replay: Replay) -> bool:
    task = replay.pipeline.get("task", "auto")
    if task != "auto":
        return bool(task == "classification")
    return not pd.api.types.is_float_dtype(replay.frame[replay.target])


def _missing_curve(name: str, spec: Mapping[str, Any], root: Path) -> list[str]:
    """The cost-aware trigger's curve file, when it names one that does not exist: said once,
    before the replay, rather than as a warning at every batch."""
    from retrainer.engine.control.policy import policy_needs

    curve = policy_needs(spec.get("triggers") or [], spec.get("guards") or []).curve
    if curve is None or (root / curve).is_file():
        return []
    return [
        f"policy {name!r}: cost_aware.curve: no file {str(root / curve)!r} (a backtest's "
        "results.json, relative to the project folder; leave curve out in a backtest of the "
        "same data: its curve was measured on the replay's future)"
    ]


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
    elif cfg.grid:  # a grid's combinations, not the policies listed one by one
        out = out[: len(cfg.policies)] + dedupe_windows(replay, out[len(cfg.policies) :])
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
            continue
        problems += _missing_curve(name, spec, replay.root)
    if problems:
        raise ConfigError(
            f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in the policies:\n"
            + "\n".join(f"  {p}" for p in problems),
            problems,
        )
    return out


def fmt_duration(value: timedelta) -> str:
    """A duration as the backtest's documents write it: ``1d``, ``6h``, ``90s``, ``0``.

    Examples
    --------
    >>> fmt_duration(timedelta(hours=6)), fmt_duration(timedelta(0))
    ('6h', '0')
    """
    secs = int(value.total_seconds())
    if secs == 0:
        return "0"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs % size == 0:
            return f"{secs // size}{unit}"
    return f"{secs}s"

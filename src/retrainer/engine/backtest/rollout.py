"""Replay a rollout on recorded data: what an A/B, shadow or canary would have decided, and when.

The daemon's rollout (:mod:`retrainer.engine.rollout`) splits live traffic between the
champion and a candidate and advances the pure state machine of :mod:`retrainer.core.rollout`
on each tick. :func:`replay_rollout` runs **the same policy objects and the same**
:func:`~retrainer.core.rollout.advance` on a recorded stream instead of live traffic:

1. each row is a request: its key (a key column, else its position in the stream) is routed
   with :func:`~retrainer.core.rollout.route`'s rule (``bucket(key, salt) < share``), so the
   split is the one the server would make; ``shadow``: the champion answers every row and the
   candidate scores the sampled copy (the paired test);
2. each model scores the rows it may answer once, vectorised (a canary's rows are scored for
   its largest share, then assigned at the share of the moment);
3. each row's label is its feedback, arriving ``label_delay`` after the row;
4. at every ``tick`` of data time, :class:`~retrainer.core.rollout.Observations` are built from
   the rows so far (requests per arm, no errors, each arm's per-prediction metric from prefix
   sums, the drift of the candidate's outputs against the champion's) and the state advances.

The replay stops at the first decision (promote, reject, rollback) or at the end of the data;
the watch period after a promotion is not replayed. :func:`replay_project_rollout` does the
same for a project's pipeline: its source rows, models from the registry (or trained on a
window on the fly) and its ``rollout:`` policy.

Examples
--------
A candidate right 85% of the time against a champion right 75%, one row a minute:

>>> import numpy as np, pandas as pd
>>> from datetime import UTC, datetime
>>> from retrainer.core.deploy import build_policy
>>> rng = np.random.default_rng(0)
>>> n = 6000
>>> stream = pd.DataFrame({"ts": pd.date_range("2024-01-01", periods=n, freq="min"),
...                        "y": rng.integers(0, 2, n)})
>>> right_a, right_b = rng.random(n) < 0.75, rng.random(n) < 0.85
>>> def model(right):
...     return lambda rows: (np.where(right[rows.index], rows["y"], 1 - rows["y"]), None)
>>> policy = build_policy({"strategy": "ab", "metric": "accuracy", "min_effect": 0.02,
...                        "min_samples": 200})
>>> result = replay_rollout(stream, policy, champion=model(right_a),
...                         candidate=model(right_b), time_column="ts", target="y")
>>> result.outcome, result.decided_at < datetime(2024, 1, 4, tzinfo=UTC)
('promote', True)
>>> result.ticks[-1].low > 0
True
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from retrainer.core.clock import utc_datetime64
from retrainer.core.deploy import RolloutPolicy, build_policy
from retrainer.core.rollout import (
    ArmStats,
    Observations,
    RolloutParams,
    RolloutState,
    VariantHealth,
    advance,
    bucket,
    metric_values,
    output_drift,
    start_rollout,
)
from retrainer.core.types import CHAMPION
from retrainer.errors import ConfigError, DataError

if TYPE_CHECKING:
    from retrainer.engine.project import Project

__all__ = [
    "RolloutReplay",
    "RolloutTick",
    "Scorer",
    "TrainWindow",
    "replay_project_rollout",
    "replay_rollout",
    "rollout_policy_for_replay",
    "write_rollout_chart",
]

Scorer = Callable[[pd.DataFrame], Any]
"""A model's answer on rows: an object with ``y_pred`` and ``y_score`` (the pipeline's
``Prediction``) or a ``(y_pred, y_score)`` pair; ``y_score`` may be None."""

_DECISIVE = frozenset({"promote", "reject", "rollback"})


@dataclass(frozen=True, slots=True, kw_only=True)
class RolloutTick:
    """One tick of a replayed rollout: what the test and guards saw, and what they did.

    ``requests_*`` are rows routed to each arm so far (``shadow``: the champion answers
    every row); ``n_*`` the labelled ones the test used; ``difference``, ``low`` and ``high``
    are in the metric's units, candidate minus champion (None before the first look).
    """

    at: datetime
    share: float
    requests_champion: int
    requests_candidate: int
    n_champion: int
    n_candidate: int
    mean_champion: float | None
    mean_candidate: float | None
    difference: float | None
    low: float | None
    high: float | None
    p_value: float
    output_drift: float | None
    action: str

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "share": self.share,
            "requests": {"champion": self.requests_champion, "candidate": self.requests_candidate},
            "n": {"champion": self.n_champion, "candidate": self.n_candidate},
            "mean": {"champion": self.mean_champion, "candidate": self.mean_candidate},
            "difference": self.difference,
            "low": self.low,
            "high": self.high,
            "p_value": self.p_value,
            "output_drift": self.output_drift,
            "action": self.action,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RolloutReplay:
    """What a replayed rollout decided, when, on how many rows, and its trajectory.

    ``outcome`` is ``promote``, ``reject``, ``rollback`` (a guard), ``inconclusive`` (the
    test reached the horizon; ``action`` then says what ``on_inconclusive`` did) or
    ``undecided`` (the data ended first: the rollout would still be running).
    """

    pipeline: str
    strategy: str
    metric: str | None
    policy: Mapping[str, Any]
    champion: str
    candidate: str
    start: datetime
    end: datetime
    tick: timedelta
    label_delay: timedelta
    rows: int
    outcome: str
    action: str
    reason: str
    decided_at: datetime | None
    requests: Mapping[str, int]
    labelled: Mapping[str, int]
    state: RolloutState
    ticks: tuple[RolloutTick, ...] = ()
    seconds: float = 0.0
    key: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def elapsed(self) -> timedelta | None:
        """Data time from the rollout's start to its decision (None: undecided)."""
        return None if self.decided_at is None else self.decided_at - self.start

    def summary(self) -> str:
        """One line: the outcome, when and on how many rows."""
        if self.decided_at is None:
            return (
                f"{self.outcome}: no decision by {self.end:%Y-%m-%d %H:%M} "
                f"({self.requests['champion']:,} + {self.requests['candidate']:,} rows)"
            )
        days = (self.elapsed or timedelta(0)) / timedelta(days=1)
        return (
            f"{self.outcome} at {self.decided_at:%Y-%m-%d %H:%M} ({days:.1f} days of data; "
            f"{self.requests['champion']:,} champion / {self.requests['candidate']:,} candidate "
            f"rows, {self.labelled['champion']:,} / {self.labelled['candidate']:,} labelled)"
        )

    def to_json(self) -> dict[str, Any]:
        """The ``rollout.json`` document (JSON-safe)."""
        return {
            "kind": "rollout replay",
            "version": 1,
            "pipeline": self.pipeline,
            "strategy": self.strategy,
            "metric": self.metric,
            "policy": dict(self.policy),
            "champion": self.champion,
            "candidate": self.candidate,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "tick_seconds": self.tick.total_seconds(),
            "label_delay_seconds": self.label_delay.total_seconds(),
            "key": self.key,
            "rows": self.rows,
            "outcome": self.outcome,
            "action": self.action,
            "reason": self.reason,
            "decided_at": None if self.decided_at is None else self.decided_at.isoformat(),
            "elapsed_days": None if self.elapsed is None else self.elapsed / timedelta(days=1),
            "requests": dict(self.requests),
            "labelled": dict(self.labelled),
            "seconds": self.seconds,
            "state": self.state.to_dict(),
            "ticks": [t.to_json() for t in self.ticks],
            **dict(self.extra),
        }


# --- the replay ------------------------------------------------------------------------------


def _answer(scorer: Scorer, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    out = scorer(rows)
    if isinstance(out, tuple):
        y_pred, y_score = out
    else:
        y_pred, y_score = out.y_pred, out.y_score
    pred = np.asarray(y_pred).ravel()
    score = None if y_score is None else np.asarray(y_score, dtype=float)
    if score is not None and (score.ndim != 1 or len(score) != len(pred)):
        score = None  # class probabilities of a multiclass model: the label is its output
    if len(pred) != len(rows):
        raise DataError(f"a model answered {len(pred)} predictions for {len(rows)} rows")
    return pred, score


def _shares(policy: RolloutParams) -> list[float]:
    shares = [policy.initial_share()]
    while (nxt := policy.next_share(len(shares) - 1)) is not None:
        shares.append(nxt)
    return shares


def _aware(t: Any) -> datetime:
    moment = pd.Timestamp(t).to_pydatetime()
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _opt(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def replay_rollout(
    stream: pd.DataFrame,
    policy: RolloutPolicy | Mapping[str, Any],
    *,
    champion: Scorer,
    candidate: Scorer,
    time_column: str,
    target: str,
    start: datetime | None = None,
    end: datetime | None = None,
    tick: timedelta = timedelta(hours=1),
    label_delay: timedelta = timedelta(0),
    key: str | None = None,
    pipeline: str = "pipeline",
    versions: tuple[int, int] = (1, 2),
    names: tuple[str, str] | None = None,
    reference: Callable[[Any], float | None] | None = None,
) -> RolloutReplay:
    """Replay ``policy`` on ``stream`` with ``champion`` and ``candidate`` (see the module doc).

    Parameters
    ----------
    stream
        The recorded rows (features, ``target``, ``time_column``); sorted by time here. Rows
        outside ``[start, end)`` are ignored; ``start`` defaults to the first row's time,
        ``end`` to just after the last row's.
    policy
        A rollout policy (``ShadowPolicy``, ``CanaryPolicy``, ``ABPolicy``) or its mapping.
    champion, candidate
        Each model's :data:`Scorer`, called once on the rows it may answer.
    tick
        Data time between two reads of the evidence (the controller's tick).
    label_delay
        A row's label (its feedback) arrives this long after the row.
    key
        The column whose value routes a row (a user id); default: the row's position.
    pipeline, versions
        Name the rollout as the daemon would (the split's salt is ``pipeline:v<candidate>``).
    reference
        The candidate's live outputs -> their distance from its outputs on its training rows
        (the output-drift guard's second reference; None: the champion's outputs only).
    """
    t0 = time.perf_counter()
    spec = build_policy(policy)
    if not isinstance(spec, RolloutPolicy):
        raise ConfigError(
            f"a rollout replay needs a shadow, canary or ab strategy; got {spec.strategy!r}"
        )
    if tick <= timedelta(0):
        raise ConfigError(f"tick must be a positive duration; got {tick}")
    if label_delay < timedelta(0):
        raise ConfigError(f"label_delay must be >= 0; got {label_delay}")
    for column in (time_column, target, *([key] if key else [])):
        if column not in stream.columns:
            raise DataError(
                f"column {column!r} not in the replayed rows; columns are: "
                f"{', '.join(map(str, stream.columns))}"
            )
    frame = stream.sort_values(time_column, kind="stable").reset_index(drop=True)
    raw_times = pd.to_datetime(frame[time_column], utc=True).dt.tz_localize(None)
    times = raw_times.to_numpy().astype("datetime64[ns]")
    if start is None:
        if not len(times):
            raise DataError("no rows to replay")
        start = _aware(times[0])
    if end is None:
        end = _aware(times[-1]) + timedelta(microseconds=1) if len(times) else start
    start, end = _aware(start), _aware(end)
    if end <= start:
        raise ConfigError(f"the replay must end after it starts; got {start} .. {end}")
    lo = int(np.searchsorted(times, utc_datetime64(start), "left"))
    hi = int(np.searchsorted(times, utc_datetime64(end), "left"))
    frame, times = frame.iloc[lo:hi].reset_index(drop=True), times[lo:hi]
    n = len(frame)
    if n == 0:
        raise DataError(f"no rows between {start:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M}")

    champion_v, candidate_v = versions
    state = start_rollout(
        spec, pipeline=pipeline, candidate=candidate_v, champion=champion_v, now=start
    )
    salt = f"{state.pipeline}:v{state.candidate}"  # route()'s salt
    keys = frame[key].astype(str).tolist() if key else [str(i) for i in range(n)]
    place = np.fromiter((bucket(k, salt) for k in keys), dtype=float, count=n)
    shares = _shares(spec)
    shadow = spec.strategy == "shadow"

    # each model scores, once, every row it may answer at some share of the policy
    may_a = np.ones(n, bool) if shadow else place >= min(shares)
    may_b = place < max(shares)
    y = frame[target]
    has_label = y.notna().to_numpy()
    metric = spec.metric
    pred: list[np.ndarray] = []
    out: list[np.ndarray] = []
    val: list[np.ndarray] = []
    for scorer, may in ((champion, may_a), (candidate, may_b)):
        idx = np.flatnonzero(may)
        p, s = _answer(scorer, frame.iloc[idx]) if len(idx) else (np.zeros(0), None)
        full_pred = np.empty(n, dtype=object)
        full_pred[idx] = p
        pred.append(full_pred)
        full_out: np.ndarray
        if s is not None:
            full_out = np.full(n, np.nan)
            full_out[idx] = s
        else:
            full_out = full_pred
        out.append(full_out)
        values = np.full(n, np.nan)
        known = idx[has_label[idx]]
        if metric is not None and len(known):
            pos = np.searchsorted(idx, known)
            values[known] = metric_values(
                metric,
                predictions=p[pos],
                outcomes=y.to_numpy()[known],
                scores=None if s is None else s[pos],
            )
        val.append(values)

    # per row, once assigned: which arm answered, and what it adds to each sum
    arm_b = np.zeros(n, bool)  # the candidate answered (ab, canary) or scored a copy (shadow)
    # prefix sums over rows 0..i-1: labelled n, sum and sum of squares per arm (+ paired diff)
    sums = np.zeros((9, n + 1))
    label_at = (times + np.timedelta64(int(label_delay.total_seconds() * 1e6), "us")).astype(
        "datetime64[ns]"
    )
    limits = spec.guard_limits()
    drift_on = limits.max_output_drift is not None

    ticks: list[RolloutTick] = []
    done = 0  # rows assigned so far
    step_action, reason, decided_at = "none", "", None
    final_decision = None
    k = 0
    while True:
        k += 1
        now = min(start + k * tick, end)
        upto = int(np.searchsorted(times, utc_datetime64(now), "left"))
        if upto > done:
            chunk = slice(done, upto)
            inside = (
                place[chunk] < state.share
                if state.status == "running"
                else np.zeros(upto - done, bool)
            )
            arm_b[chunk] = inside
            va, vb = val[0][chunk], val[1][chunk]
            labelled = has_label[chunk]
            if shadow:
                in_a = labelled & inside  # the paired test: the sampled rows, both models
                in_b = in_a
            else:
                in_a, in_b = labelled & ~inside, labelled & inside
            a = np.where(in_a, np.nan_to_num(va), 0.0)
            b = np.where(in_b, np.nan_to_num(vb), 0.0)
            d = np.where(in_a & shadow, b - a, 0.0)
            parts = (in_a, a, a * a, in_b, b, b * b, in_a & shadow, d, d * d)
            for j, part in enumerate(parts):
                sums[j, done + 1 : upto + 1] = sums[j, done] + np.cumsum(part)
            done = upto
        ready = min(int(np.searchsorted(label_at, utc_datetime64(now), "right")), done)
        served_b = int(arm_b[:done].sum())
        served_a = done if shadow else done - served_b
        s = sums[:, ready]
        champion_metric = ArmStats.from_sums(n=int(s[0]), total=s[1], total_sq=s[2])
        candidate_metric = ArmStats.from_sums(n=int(s[3]), total=s[4], total_sq=s[5])
        difference = ArmStats.from_sums(n=int(s[6]), total=s[7], total_sq=s[8]) if shadow else None
        drift = own = None
        if drift_on and served_b and served_a:
            seen = np.arange(done)
            rows_a = seen if shadow else seen[~arm_b[:done]]
            live = out[1][seen[arm_b[:done]]]
            drift = output_drift(out[0][rows_a], live)
            own = reference(live) if reference is not None else None
        obs = Observations(
            champion=VariantHealth(requests=served_a, errors=0),
            candidate=VariantHealth(requests=served_b, errors=0),
            champion_metric=champion_metric,
            candidate_metric=candidate_metric,
            difference=difference,
            output_drift=drift,
            output_rows=served_b,
            reference_drift=own,
        )
        share = state.share
        step = advance(spec, state, obs, now=now)
        dec = step.decision
        ticks.append(
            RolloutTick(
                at=now,
                share=share,
                requests_champion=served_a,
                requests_candidate=served_b,
                n_champion=champion_metric.n,
                n_candidate=candidate_metric.n,
                mean_champion=champion_metric.mean if champion_metric.n else None,
                mean_candidate=candidate_metric.mean if candidate_metric.n else None,
                difference=dec.difference if dec else None,
                low=_opt(dec.low) if dec else None,
                high=_opt(dec.high) if dec else None,
                p_value=step.state.test.p_value,
                output_drift=drift,
                action=step.action,
            )
        )
        state = step.state
        if step.action in _DECISIVE:
            step_action, reason, decided_at, final_decision = step.action, step.reason, now, dec
            break
        if now >= end:
            reason = f"the data ended at {end:%Y-%m-%d %H:%M} before a decision"
            break

    at_horizon = decided_at is not None and decided_at - start >= spec.max_duration_()
    if step_action == "rollback":
        outcome = "rollback"
    elif step_action in ("promote", "reject"):
        inconclusive = final_decision is not None and final_decision.outcome == "inconclusive"
        # without a test, the horizon is what ends it (advance's "maximum duration" branch)
        untested = final_decision is None and at_horizon and reason.startswith("maximum")
        outcome = "inconclusive" if inconclusive or untested else step_action
    else:
        outcome = "undecided"
    last = ticks[-1]
    return RolloutReplay(
        pipeline=pipeline,
        strategy=spec.strategy,
        metric=metric,
        policy=spec.to_spec(),
        champion=names[0] if names else f"v{champion_v}",
        candidate=names[1] if names else f"v{candidate_v}",
        start=start,
        end=end,
        tick=tick,
        label_delay=label_delay,
        rows=n,
        outcome=outcome,
        action=step_action,
        reason=reason,
        decided_at=decided_at,
        requests={"champion": last.requests_champion, "candidate": last.requests_candidate},
        labelled={"champion": last.n_champion, "candidate": last.n_candidate},
        state=state,
        ticks=tuple(ticks),
        seconds=round(time.perf_counter() - t0, 3),
        key=key,
    )


# --- on a project's pipeline -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainWindow:
    """Train a model on the fly on the pipeline's labelled rows of ``[start, end)``."""

    start: datetime | None
    end: datetime

    def describe(self) -> str:
        since = "the start" if self.start is None else f"{self.start:%Y-%m-%d}"
        return f"trained on {since} .. {self.end:%Y-%m-%d}"


def rollout_policy_for_replay(
    configured: Any, overrides: Mapping[str, Any] | None = None
) -> RolloutPolicy:
    """The policy a replay runs: the pipeline's ``rollout:`` with ``overrides`` on top.

    A different ``strategy`` in ``overrides`` keeps the configured keys it also has.

    Examples
    --------
    >>> rollout_policy_for_replay({"strategy": "ab", "metric": "accuracy", "tau": 0.01},
    ...                           {"strategy": "shadow"}).describe()  # doctest: +ELLIPSIS
    'shadow (metric=accuracy, tau=0.01): the candidate scores a copy of the traffic...'
    """
    base = build_policy(configured)
    spec: dict[str, Any] = base.to_spec() if isinstance(base, RolloutPolicy) else {}
    extra = {k: v for k, v in (overrides or {}).items() if v is not None}
    if "strategy" in extra and extra["strategy"] != spec.get("strategy"):
        from retrainer.core.deploy import policy_class

        fields = policy_class(str(extra["strategy"])).model_fields
        spec = {k: v for k, v in spec.items() if k in fields}
    spec.update(extra)
    if spec.get("strategy") in (None, "replace"):
        raise ConfigError(
            "the pipeline has no rollout strategy (rollout: is replace); give one to replay, "
            "e.g. --strategy ab --metric accuracy --tau 0.01, or set rollout: in its config"
        )
    policy = build_policy(spec)
    assert isinstance(policy, RolloutPolicy)
    return policy


def replay_project_rollout(
    project: Project,
    pipeline: str | None = None,
    *,
    start: datetime,
    end: datetime,
    champion: int | TrainWindow | None = None,
    candidate: int | TrainWindow | None = None,
    policy: Mapping[str, Any] | None = None,
    tick: timedelta = timedelta(hours=1),
    label_delay: timedelta = timedelta(0),
    key: str | None = None,
) -> RolloutReplay:
    """Replay a rollout of ``pipeline`` over its source rows of ``[start, end)``.

    ``champion``/``candidate``: a registry version, a :class:`TrainWindow` to train one on the
    fly, or None: the ``champion`` alias, and the ``challenger`` alias else the newest blessed
    version after the champion. ``policy``: overrides of the pipeline's ``rollout:``.
    """
    from retrainer.core.rollout import CHALLENGER, profile_drift
    from retrainer.engine.runs.profiles import PREDICTION_COLUMN, model_output

    pipe = project.pipeline(pipeline)
    name = pipe.name
    spec = rollout_policy_for_replay(pipe.config.rollout, policy)
    store = project.store

    def resolve(
        which: int | TrainWindow | None, role: str
    ) -> tuple[int, str, Any, Callable[[Any], float | None]]:
        if isinstance(which, TrainWindow):
            frame = pipe.source.load(which.start, which.end)
            train, _ = pipe.labelled(frame, which.describe())
            if len(train) < 2:
                raise DataError(
                    f"{name}: no labelled rows to train the {role} ({which.describe()})"
                )
            model = pipe.fit(train)
            own = model_output(pipe, model, train).to_numpy()
            return (
                (1 if role == "champion" else 2),
                which.describe(),
                model,
                lambda live: output_drift(own, live),
            )
        version = which
        if version is None and role == "champion":
            version = store.get_alias(name, CHAMPION)
            if version is None:
                raise DataError(f"{name} has no champion; give a version or a training window")
        if version is None:
            version = store.get_alias(name, CHALLENGER)
        if version is None:
            champ = store.get_alias(name, CHAMPION) or 0
            blessed = [
                mv.version
                for mv in store.list_versions(name, profiles=False)
                if mv.blessing.passed and mv.version > champ
            ]
            if not blessed:
                raise DataError(
                    f"{name} has no challenger and no blessed version newer than the champion "
                    f"v{champ}; give --candidate VERSION or a training window"
                )
            version = max(blessed)
        mv = store.get_version(name, version)
        profile = (mv.profile or {}).get("features", {}).get(PREDICTION_COLUMN)
        return (
            version,
            f"v{version}",
            project.load_version(mv),
            lambda live: profile_drift(profile, live),
        )

    a_version, a_name, a_model, _ = resolve(champion, "champion")
    b_version, b_name, b_model, b_reference = resolve(candidate, "candidate")
    stream = pipe.source.load(start, end)
    result = replay_rollout(
        stream,
        spec,
        champion=lambda rows: pipe.predict(a_model, rows),
        candidate=lambda rows: pipe.predict(b_model, rows),
        time_column=pipe.time_column,
        target=pipe.config.target,
        start=start,
        end=end,
        tick=tick,
        label_delay=label_delay,
        key=key,
        pipeline=name,
        versions=(a_version, b_version),
        names=(a_name, b_name),
        reference=b_reference,
    )
    return replace(result, extra={"project": str(project.root)})


# --- the chart ------------------------------------------------------------------------------


def write_rollout_chart(result: RolloutReplay, path: str | Path) -> Path:
    """A PNG of the confidence sequence for the improvement, tick by tick, with the decision."""
    import warnings

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
    from matplotlib.figure import Figure

    from retrainer.adapters._atomic import write_file_atomically

    ticks = [t for t in result.ticks if t.difference is not None]
    fig = Figure(figsize=(10, 4.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.08, 0.13, 0.9, 0.75))
    if ticks:
        x = date2num([t.at.replace(tzinfo=None) for t in ticks])
        nan = float("nan")
        low = [nan if t.low is None else t.low for t in ticks]
        high = [nan if t.high is None else t.high for t in ticks]
        ax.fill_between(x, low, high, color="#1f77b4", alpha=0.2, label="confidence sequence")
        ax.plot(
            x,
            [nan if t.difference is None else t.difference for t in ticks],
            color="#1f77b4",
            label="candidate - champion",
        )
        min_effect = float(result.policy.get("min_effect") or 0.0)
        ax.axhline(0.0, color="#5b6773", linewidth=1.0)
        if min_effect:
            ax.axhline(min_effect, color="#5b6773", linestyle="--", linewidth=0.8,
                       label="min_effect")  # fmt: skip
        if result.decided_at is not None:
            ax.axvline(float(date2num(result.decided_at.replace(tzinfo=None))), color="#d9480f",
                       linewidth=1.2, label=result.outcome)  # fmt: skip
        ax.legend(loc="upper right", fontsize=8, frameon=False)
        locator = AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.set_ylabel(f"{result.metric or 'metric'}: candidate - champion")
    ax.grid(True, color="#eef1f4", linewidth=0.8)
    title = (
        f"{result.pipeline}: {result.strategy} {result.candidate} vs {result.champion}"
        f" -> {result.outcome}"
    )
    ax.set_title(title.replace("$", r"\$"), loc="left", fontsize=10)
    import io

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from", category=UserWarning)
        fig.savefig(buffer, format="png")
    fig.clear()
    target = Path(path).resolve()
    write_file_atomically(target, buffer.getvalue())
    return target

"""Rollouts on live traffic: start one, read what it needs, advance it, apply its decisions.

The state machine is pure (:mod:`retrainer.core.rollout`); this module is its I/O:

- :func:`begin_rollout` (the run's deploy step, when the pipeline's ``rollout:`` strategy is
  ``shadow``, ``canary`` or ``ab`` and a champion serves): stores the starting
  :class:`~retrainer.core.rollout.RolloutState` under the pipeline's state key ``rollout`` with
  a ``rollout.started`` event (one transaction). A rollout still active for an earlier
  candidate is superseded (``rollout.cancelled``).
- :func:`observe` gathers the :class:`~retrainer.core.rollout.Observations`: each variant's
  requests, errors and p99 latency as the servers published them (:class:`ServingStats`), each
  arm's per-prediction metric from the prediction and feedback log, and the drift of the
  candidate's outputs against the champion's.
- :func:`advance_rollout` (the controller, once per tick and pipeline): reconciles the state
  with the champion alias (repairs a crash between an alias move and the state write, cancels
  a rollout whose champion someone else moved), advances it, and applies the step: alias moves
  first (compare-and-set), then the state with its event, so a crash in between is repaired by
  the next tick.
- :class:`ServingStats`: the counters a server worker keeps per version and variant and
  publishes to the store (state key ``serving/<worker>``), where the controller sums them.

Examples
--------
>>> from datetime import UTC, datetime
>>> stats = ServingStats(worker="host-1-42")
>>> stats.record("churn", 3, "challenger", ok=True, seconds=0.004)
>>> stats.record("churn", 3, "challenger", ok=False, seconds=0.120)
>>> value = stats.snapshot("churn", now=datetime(2024, 5, 1, tzinfo=UTC))
>>> health = health_of([value], version=3)
>>> health.requests, health.errors, health.p99_ms
(2, 1, 200.0)
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from retrainer.core.deploy import RolloutPolicy, build_policy
from retrainer.core.rollout import (
    CHALLENGER,
    ROLLOUT_KEY,
    ArmStats,
    Observations,
    RolloutState,
    RolloutStep,
    VariantHealth,
    advance,
    metric_values,
    output_drift,
    profile_drift,
    reconcile,
    start_rollout,
)
from retrainer.core.types import CHAMPION, Event
from retrainer.engine.faults import fault_point
from retrainer.errors import ConcurrencyError, DataError

if TYPE_CHECKING:
    from retrainer.engine.project import Project

__all__ = [
    "LATENCY_BUCKETS_MS",
    "SERVING_KEY_PREFIX",
    "ServingStats",
    "advance_rollout",
    "begin_rollout",
    "current_rollout",
    "health_of",
    "observe",
    "rollout_policy",
]

_log = logging.getLogger(__name__)

SERVING_KEY_PREFIX = "serving/"
"""State keys under which each server worker publishes its :class:`ServingStats`."""
LATENCY_BUCKETS_MS: tuple[float, ...] = (
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, float("inf"),
)  # fmt: skip
"""Upper bounds of the latency histogram the workers publish (the p99 is a bucket's bound)."""


def rollout_policy(project: Project, pipeline: str) -> RolloutPolicy | None:
    """The pipeline's rollout strategy, or None when it replaces (no rollout)."""
    policy = build_policy(project.pipeline(pipeline).config.rollout)
    return policy if isinstance(policy, RolloutPolicy) else None


class _Unread(enum.Enum):
    UNREAD = "unread"


UNREAD = _Unread.UNREAD
"""The default of :func:`advance_rollout`'s pre-read values: read them from the store."""


def current_rollout(
    project: Project,
    pipeline: str,
    stored: tuple[dict[str, Any], int] | _Unread | None = UNREAD,
) -> tuple[RolloutState, int] | None:
    """The pipeline's last rollout (active or ended) and its state revision, or None;
    ``stored``: its ``rollout`` state as the store gave it, when the caller read it already."""
    if stored is UNREAD:
        stored = project.store.get_state(pipeline, ROLLOUT_KEY)
    if stored is None:
        return None
    value, revision = stored
    return RolloutState.from_dict(value), revision


# --- starting -------------------------------------------------------------------------------


def begin_rollout(
    project: Project,
    pipeline: str,
    *,
    candidate: int,
    champion: int,
    now: datetime,
    run_id: int | None = None,
) -> RolloutState:
    """Store the start of a rollout of ``candidate`` against ``champion`` (see module doc)."""
    policy = rollout_policy(project, pipeline)
    if policy is None:
        raise DataError(f"{pipeline}: its rollout strategy is replace; no rollout to begin")
    state = start_rollout(
        policy, pipeline=pipeline, candidate=candidate, champion=champion, now=now, run_id=run_id
    )
    store = project.store
    previous = current_rollout(project, pipeline)
    expected = previous[1] if previous else None
    if previous is not None and previous[0].active:
        old = previous[0]
        store.append_event(
            Event(
                kind="rollout.cancelled",
                at=now,
                message=f"{pipeline}: the {old.strategy} rollout of v{old.candidate} is "
                f"superseded by v{candidate}",
                pipeline=pipeline,
                run_id=run_id,
                version=old.candidate,
                data={"strategy": old.strategy, "superseded_by": candidate},
            )
        )
    store.put_state(
        pipeline,
        ROLLOUT_KEY,
        state.to_dict(),
        at=now,
        expected_revision=expected,
        event=Event(
            kind="rollout.started",
            at=now,
            message=f"{pipeline}: {policy.strategy} rollout of v{candidate} against "
            f"v{champion} started ({state.share:.0%} of traffic)",
            pipeline=pipeline,
            run_id=run_id,
            version=candidate,
            data={"policy": policy.to_spec(), "champion": champion, "share": state.share},
        ),
    )
    return state


# --- observing ------------------------------------------------------------------------------


class ServingStats:
    """Requests, errors and a latency histogram per pipeline, version and variant, kept by one
    server worker since it started (thread-safe) and published with :meth:`publish`."""

    def __init__(self, worker: str | None = None) -> None:
        host = os.uname().nodename if hasattr(os, "uname") else "host"
        self.worker = worker or f"{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._lock = threading.Lock()
        # (pipeline, version, variant) -> [requests, errors, *bucket counts]
        self._counts: dict[tuple[str, int, str], list[int]] = {}

    @property
    def key(self) -> str:
        return f"{SERVING_KEY_PREFIX}{self.worker}"[:255]

    def record(
        self, pipeline: str, version: int, variant: str, *, ok: bool, seconds: float
    ) -> None:
        ms = seconds * 1000.0
        slot = next(i for i, b in enumerate(LATENCY_BUCKETS_MS) if ms <= b)
        with self._lock:
            row = self._counts.setdefault(
                (pipeline, version, variant), [0, 0] + [0] * len(LATENCY_BUCKETS_MS)
            )
            row[0] += 1
            row[1] += 0 if ok else 1
            row[2 + slot] += 1

    def pipelines(self) -> set[str]:
        with self._lock:
            return {p for p, _, _ in self._counts}

    def snapshot(self, pipeline: str, *, now: datetime) -> dict[str, Any]:
        """The published value for ``pipeline``: JSON, cumulative since the worker started."""
        with self._lock:
            rows = [
                {
                    "version": v,
                    "variant": variant,
                    "requests": c[0],
                    "errors": c[1],
                    "latency_ms": c[2:],
                }
                for (p, v, variant), c in sorted(self._counts.items())
                if p == pipeline
            ]
        return {"worker": self.worker, "at": now.isoformat(), "stats": rows}

    def publish(self, project: Project, *, now: datetime) -> None:
        """Write this worker's counters of every pipeline it served to the store."""
        for pipeline in sorted(self.pipelines()):
            project.store.put_state(pipeline, self.key, self.snapshot(pipeline, now=now), at=now)


def health_of(
    published: Iterable[Mapping[str, Any]], *, version: int, variants: Iterable[str] | None = None
) -> VariantHealth:
    """One version's requests, errors and p99 summed over every worker's published stats."""
    wanted = None if variants is None else set(variants)
    requests = errors = 0
    buckets = np.zeros(len(LATENCY_BUCKETS_MS), dtype=np.int64)
    for value in published:
        for row in value.get("stats", []):
            if row.get("version") != version or (wanted and row.get("variant") not in wanted):
                continue
            requests += int(row["requests"])
            errors += int(row["errors"])
            counts = list(row.get("latency_ms", []))[: len(LATENCY_BUCKETS_MS)]
            buckets[: len(counts)] += np.asarray(counts, dtype=np.int64)
    p99 = None
    total = int(buckets.sum())
    if total:
        cumulative = np.cumsum(buckets)
        p99 = float(LATENCY_BUCKETS_MS[int(np.searchsorted(cumulative, 0.99 * total))])
    return VariantHealth(requests=requests, errors=errors, p99_ms=p99)


def _naive(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t


def _outputs(frame: pd.DataFrame) -> pd.Series:
    score = frame.get("score")
    if score is not None and score.notna().all() and len(score):
        return score.astype(float)
    return frame["prediction"]


def observe(project: Project, state: RolloutState, *, now: datetime) -> Observations:
    """What the rollout ``state`` is judged on at ``now`` (see the module docstring)."""
    published = [
        value
        for key, value in project.store.list_state(state.pipeline).items()
        if key.startswith(SERVING_KEY_PREFIX)
    ]
    watching = state.status == "watching"
    candidate_health = health_of(published, version=state.candidate)
    champion_health = health_of(published, version=state.champion, variants=[CHAMPION])
    policy = rollout_policy(project, state.pipeline)
    metric = policy.metric if policy is not None else None
    if not project.has_log_store:
        return Observations(champion=champion_health, candidate=candidate_health)
    since = state.promoted_at if watching and state.promoted_at else state.started_at
    log = project.log_store()
    # only the columns the arms need: the features would be most of the bytes read each tick
    wanted = ["id", "model_version", "prediction", "score", "variant"]
    if state.strategy == "shadow":
        wanted.append("shadow_of")
    frame = None
    while frame is None:
        try:
            frame = log.joined(
                state.pipeline,
                _naive(since),
                None,
                feedback_until=_naive(now),
                columns=wanted,
                include_unlabelled=True,
            )
        except DataError:  # a log written by hand (retrainer log) may lack the server's columns
            if len(wanted) == 4:
                raise
            wanted = wanted[:-1]  # shadow_of first, then variant
    if frame.empty:
        return Observations(champion=champion_health, candidate=candidate_health)
    variant = frame["variant"] if "variant" in frame else pd.Series("champion", frame.index)
    version = frame["model_version"]
    champ = frame[(version == state.champion) & (variant == CHAMPION)]
    if watching:
        cand = frame[version == state.candidate]
    else:
        cand = frame[(version == state.candidate) & variant.isin([CHALLENGER, "shadow"])]
    labelled_a = champ[champ["outcome"].notna()]
    drift = own = None
    if not watching and len(cand):
        drift = output_drift(_outputs(champ), _outputs(cand))
        own = profile_drift(_output_profile(project, state), _outputs(cand))
    if state.strategy == "shadow" and "shadow_of" in frame and not watching:
        # the shadow's outcome is its champion twin's: feedback names the answered prediction
        twins = cand.dropna(subset=["shadow_of"]).merge(
            labelled_a[["id", "outcome", "prediction", "score"]],
            left_on="shadow_of",
            right_on="id",
            suffixes=("", "_champion"),
        )
        a_vals = b_vals = np.zeros(0)
        if metric is not None and len(twins):
            a_vals = metric_values(
                metric,
                predictions=twins["prediction_champion"],
                outcomes=twins["outcome_champion"],
                scores=twins["score_champion"],
            )
            b_vals = metric_values(
                metric,
                predictions=twins["prediction"],
                outcomes=twins["outcome_champion"],
                scores=twins["score"],
            )
        return Observations(
            champion=champion_health,
            candidate=candidate_health,
            champion_metric=ArmStats.of(a_vals),
            candidate_metric=ArmStats.of(b_vals),
            difference=ArmStats.of(b_vals - a_vals),
            output_drift=drift,
            output_rows=len(cand),
            reference_drift=own,
        )
    labelled_b = cand[cand["outcome"].notna()]
    arms = []
    for part in (labelled_a, labelled_b):
        if metric is None or part.empty:
            arms.append(ArmStats())
            continue
        arms.append(
            ArmStats.of(
                metric_values(
                    metric,
                    predictions=part["prediction"],
                    outcomes=part["outcome"],
                    scores=part.get("score", None),
                )
            )
        )
    return Observations(
        champion=champion_health,
        candidate=candidate_health,
        champion_metric=arms[0],
        candidate_metric=arms[1],
        output_drift=drift,
        output_rows=len(cand),
        reference_drift=own,
    )


def _output_profile(project: Project, state: RolloutState) -> Mapping[str, Any] | None:
    """The candidate's outputs on its training rows, from its version's reference profile."""
    from retrainer.engine.runs.profiles import PREDICTION_COLUMN

    profile = project.store.get_version(state.pipeline, state.candidate).profile
    features = profile.get("features", {}) if isinstance(profile, Mapping) else {}
    entry = features.get(PREDICTION_COLUMN)
    return entry if isinstance(entry, Mapping) else None


# --- advancing ------------------------------------------------------------------------------

_KINDS: Mapping[str, Any] = {
    "step": "rollout.step",
    "promote": "rollout.promoted",
    "reject": "rollout.rejected",
    "rollback": "rollout.rolled_back",
    "finish": "rollout.completed",
    "cancel": "rollout.cancelled",
    "none": "rollout.evaluated",
}


def advance_rollout(
    project: Project,
    pipeline: str,
    *,
    now: datetime,
    actor: str = "retrainer daemon",
    stored: tuple[dict[str, Any], int] | _Unread | None = UNREAD,
    challenger: int | _Unread | None = UNREAD,
) -> RolloutStep | None:
    """Advance ``pipeline``'s active rollout by one tick and apply what it decides.

    Returns the step (None when the pipeline has no active rollout). Ended rollouts only get
    their ``challenger`` alias cleared if a crash left it set. ``stored`` (the ``rollout``
    state and its revision) and ``challenger`` (the alias's version) are what the controller
    read for every pipeline at once; by default they are read here. A stale value is safe:
    every write is a compare-and-set on them.
    """
    current = current_rollout(project, pipeline, stored)
    if current is None:
        return None
    state, revision = current
    store = project.store
    if not state.active:
        if challenger is UNREAD:
            challenger = store.get_alias(pipeline, CHALLENGER)
        if challenger == state.candidate:
            _clear_challenger(project, state, now=now, actor=actor)
        return None
    policy = rollout_policy(project, pipeline)
    champion = store.get_alias(pipeline, CHAMPION)
    step = reconcile(state, champion, now=now)
    if step.action == "none":
        if policy is None:  # the config went back to replace: end the rollout, keep champion
            step = RolloutStep(
                state=replace(
                    state,
                    status="cancelled",
                    share=0.0,
                    ended_at=now,
                    reason="the pipeline's rollout strategy is now replace",
                ),
                action="cancel",
                reason="rollout strategy changed to replace",
            )
        else:
            step = advance(policy, state, observe(project, state, now=now), now=now)
    else:
        _log.warning("%s: rollout repaired: %s", pipeline, step.state.reason)
    try:
        _apply(project, state, step, revision, now=now, actor=actor)
    except ConcurrencyError as exc:  # another controller advanced it meanwhile
        _log.info("%s: rollout advanced elsewhere (%s)", pipeline, exc)
        return None
    return step


def _apply(
    project: Project,
    before: RolloutState,
    step: RolloutStep,
    revision: int,
    *,
    now: datetime,
    actor: str,
) -> None:
    store = project.store
    state = step.state
    name = state.pipeline
    recovered = step.recovered
    if step.action == "promote" and not recovered:
        from retrainer.engine.runs.registry import verify_artifact

        verify_artifact(project, store.get_version(name, state.candidate), alias=CHAMPION, at=now)
        _move_champion(
            project, before, state.candidate, "model.promoted",
            f"{name} v{state.candidate} promoted to champion by its {state.strategy} rollout "
            f"(was v{before.champion})",
            reason=f"{state.strategy} rollout: {step.reason}", data={"policy": state.strategy},
            now=now, actor=actor,
        )  # fmt: skip
    if step.action == "rollback" and before.status == "watching" and not recovered:
        _move_champion(
            project, before, before.champion, "model.rolled_back",
            f"{name} champion rolled back from v{before.candidate} to v{before.champion}: "
            f"{step.reason}",
            reason=f"rollout guard: {step.reason}", data={"guard": step.reason},
            now=now, actor=actor,
        )  # fmt: skip
    if step.action in ("promote", "rollback") and not recovered:
        fault_point("rollout_after_alias")  # the crash reconcile() repairs
    if step.action == "none" and before.test.looks == state.test.looks:
        store.put_state(name, ROLLOUT_KEY, state.to_dict(), at=now, expected_revision=revision)
        return
    kind = _KINDS[step.action]
    store.put_state(
        name,
        ROLLOUT_KEY,
        state.to_dict(),
        at=now,
        expected_revision=revision,
        event=Event(
            kind=kind,
            at=now,
            message=f"{name}: {state.strategy} rollout of v{state.candidate}: "
            + (state.reason if step.action != "none" else step.reason),
            pipeline=name,
            version=state.candidate,
            data={
                "status": state.status,
                "share": state.share,
                "champion": state.champion,
                **dict(state.evidence),
            },
        ),
    )
    if not state.active or step.action == "promote":
        _clear_challenger(project, state, now=now, actor=actor)


def _move_champion(
    project: Project,
    before: RolloutState,
    to: int,
    kind: Any,
    message: str,
    *,
    reason: str,
    data: Mapping[str, Any],
    now: datetime,
    actor: str,
) -> None:
    """Move the champion between the rollout's two versions (compare-and-set), with its event."""
    current = before.candidate if to == before.champion else before.champion
    project.store.move_alias(
        before.pipeline,
        CHAMPION,
        to,
        at=now,
        reason=reason,
        actor=actor,
        expected=current,
        event=Event(
            kind=kind,
            at=now,
            message=message,
            pipeline=before.pipeline,
            version=to,
            data={"alias": CHAMPION, "previous": current, **data},
        ),
    )


def _clear_challenger(project: Project, state: RolloutState, *, now: datetime, actor: str) -> None:
    with contextlib.suppress(ConcurrencyError):  # a newer candidate holds it now
        project.store.move_alias(
            state.pipeline,
            CHALLENGER,
            None,
            at=now,
            reason=f"{state.strategy} rollout {state.status}",
            actor=actor,
            expected=state.candidate,
        )

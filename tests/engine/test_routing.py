"""Routing by the stored rollout: the holder loads and drops the candidate as the state changes,
picks a variant per request key (sticky, in the configured share), falls back to the champion
when the challenger raises, scores shadows off the path, and publishes its serving stats."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import fsspec
import pytest
from scipy.stats import binom

from retrainer.core.clock import SimulatedClock
from retrainer.core.rollout import ROLLOUT_KEY, RolloutState
from retrainer.engine.project import Project
from retrainer.engine.rollout import (
    SERVING_KEY_PREFIX,
    begin_rollout,
    current_rollout,
    health_of,
    observe,
)
from retrainer.engine.routing import ShadowScorer, answer
from retrainer.engine.runs.run import execute_run
from retrainer.engine.serving import ModelHolder, ServedModel, rows_frame
from retrainer.testing import in_memory_project

T = datetime(2024, 1, 20, tzinfo=UTC)
ROW = {"x1": 0.5, "x2": -1.0}


def rollout_project(strategy: str = "ab", **policy: Any) -> Project:
    """Champion v1 and a blessed v2 whose deploy step started a ``strategy`` rollout."""
    project = in_memory_project(
        clock=SimulatedClock(T),
        rollout={"strategy": strategy, "metric": "accuracy", "min_effect": 0.01, **policy},
    )
    for day in (11, 15):
        execute_run(project, clock=SimulatedClock(datetime(2024, 1, day, tzinfo=UTC)))
    return project


def keys(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.getrandbits(64):016x}" for _ in range(n)]


def set_state(project: Project, **changes: Any) -> RolloutState:
    stored = current_rollout(project, "toy")
    assert stored is not None
    state = replace(stored[0], **changes)
    project.store.put_state("toy", ROLLOUT_KEY, state.to_dict(), at=T)
    return state


class Broken:
    """A model that loaded and warmed but raises on every later prediction."""

    classes_ = [0, 1]

    def predict(self, X: Any) -> Any:
        raise RuntimeError("candidate exploded")

    def predict_proba(self, X: Any) -> Any:
        raise RuntimeError("candidate exploded")


def breaking_holder(project: Project, version: int = 2, **kwargs: Any) -> ModelHolder:
    """A holder whose load of ``version`` gives a model that raises once served."""
    holder = ModelHolder(project, **kwargs)
    load = holder.load

    def load_then_break(pipeline: str, v: int, *, variant: str = "champion") -> ServedModel:
        served = load(pipeline, v, variant=variant)
        return replace(served, model=Broken()) if v == version else served

    holder.load = load_then_break  # type: ignore[method-assign]
    return holder


def test_the_holder_loads_the_candidate_while_the_rollout_runs_and_drops_it_when_it_ends():
    project = rollout_project("ab")
    holder = ModelHolder(project)
    swapped = holder.refresh()
    assert [(s.version, s.variant) for s in swapped] == [(1, "champion"), (2, "challenger")]
    assert holder.candidates()["toy"].version == 2
    assert holder.rollout("toy").status == "running"
    # a step of the share reaches the routing without a reload
    candidate = holder.candidates()["toy"]
    set_state(project, share=0.25, step=1)
    assert holder.refresh() == []
    assert holder.rollout("toy").share == 0.25
    assert holder.candidates()["toy"] is candidate
    # the rollout ends: only the champion answers, whatever the key
    set_state(project, status="rejected", share=0.0, ended_at=T)
    holder.refresh()
    assert holder.candidates() == {}
    assert {holder.pick("toy", k)[0].variant for k in keys(200)} == {"champion"}
    # a new rollout of the same version loads it again
    set_state(project, status="running", share=0.5, ended_at=None)
    assert [(s.version, s.variant) for s in holder.refresh()] == [(2, "challenger")]


def test_a_holder_without_a_rollout_reads_its_state_once_per_pipeline_and_serves_the_champion():
    project = in_memory_project(clock=SimulatedClock(T))
    execute_run(project, clock=SimulatedClock(datetime(2024, 1, 11, tzinfo=UTC)))
    calls: list[tuple[str, str]] = []
    get_state = project.store.get_state

    def counted(pipeline: str, key: str) -> Any:
        calls.append((pipeline, key))
        return get_state(pipeline, key)

    project.store.get_state = counted  # type: ignore[method-assign]
    holder = ModelHolder(project)
    holder.refresh()
    assert calls == [("toy", ROLLOUT_KEY)]
    assert holder.rollout("toy") is None and holder.candidates() == {}
    assert holder.pick("toy", "anyone") == (holder.get("toy"), None)


@pytest.mark.parametrize(("strategy", "share"), [("ab", 0.5), ("canary", 0.05)])
def test_routing_is_sticky_and_splits_within_binomial_bounds(strategy: str, share: float):
    project = rollout_project(strategy)
    holder = ModelHolder(project)
    holder.refresh()
    assert holder.rollout("toy").share == share
    sample = keys(20_000)
    picks = [holder.pick("toy", k) for k in sample]
    variants = [served.variant for served, shadow in picks]
    assert all(shadow is None for _, shadow in picks)
    n = variants.count("challenger")
    low, high = binom.interval(0.999, len(sample), share)
    assert low <= n <= high, (n, low, high)
    assert {s.version for s, _ in picks if s.variant == "challenger"} == {2}
    # the same key always gets the same variant, in this holder and in another worker's
    other = ModelHolder(project)
    other.refresh()
    for k, v in zip(sample[:500], variants[:500], strict=True):
        assert holder.pick("toy", k)[0].variant == v
        assert other.pick("toy", k)[0].variant == v


def test_shadow_the_champion_answers_and_the_candidate_is_the_shadow():
    project = rollout_project("shadow", sample=0.5)
    holder = ModelHolder(project)
    holder.refresh()
    assert holder.candidates()["toy"].variant == "shadow"
    picks = [holder.pick("toy", k) for k in keys(2_000)]
    assert {s.variant for s, _ in picks} == {"champion"}
    shadows = [shadow for _, shadow in picks if shadow is not None]
    low, high = binom.interval(0.999, 2_000, 0.5)
    assert low <= len(shadows) <= high
    assert {(s.version, s.variant) for s in shadows} == {(2, "shadow")}


def test_a_candidate_that_fails_to_load_leaves_the_champion_serving_alone():
    project = rollout_project("ab")
    v2 = project.store.get_version("toy", 2)
    with fsspec.open(project.artifacts.url(v2.artifact_sha256), "wb") as f:
        f.write(b"not a model")
    holder = ModelHolder(project, retry_interval=0.0)
    holder.refresh()
    holder.refresh()  # retried: one event per version
    assert holder.candidates() == {}
    assert {holder.pick("toy", k)[0].version for k in keys(200)} == {1}
    assert holder.ready() == {"toy": True}  # the champion is loaded: ready
    (event,) = [e for e in project.store.list_events("toy") if e.kind == "model.load_failed"]
    assert event.version == 2
    assert event.data["alias"] == "challenger" and event.data["serving"] == 1
    assert "('challenger') failed to load" in event.message
    assert "v1 keeps serving alone" in event.message


def test_a_challenger_that_raises_is_answered_by_the_champion_and_counted_as_its_error():
    project = rollout_project("ab")
    holder = breaking_holder(project)
    holder.refresh()
    assert holder.candidates()["toy"].version == 2
    to_challenger = [k for k in keys(400) if holder.pick("toy", k)[0].variant == "challenger"]
    to_champion = [k for k in keys(400) if holder.pick("toy", k)[0].variant == "champion"]
    for k in to_challenger:
        result = answer(holder, "toy", [ROW], k)
        assert (result.served.version, result.served.variant) == (1, "champion")
        assert result.failed is not None and result.failed.version == 2
        assert result.answers[0]["prediction"] in (0, 1)
    for k in to_champion[:10]:
        assert answer(holder, "toy", [ROW], k).failed is None
    value = holder.stats.snapshot("toy", now=T)
    candidate = health_of([value], version=2)
    assert (candidate.requests, candidate.errors) == (len(to_challenger), len(to_challenger))
    champion = health_of([value], version=1, variants=["champion"])
    assert (champion.requests, champion.errors) == (len(to_challenger) + 10, 0)


def test_serving_stats_are_published_by_the_poll_thread_and_at_stop():
    project = rollout_project("ab")
    holder = ModelHolder(project, poll_interval=0.02, stats_interval=0.05)
    holder.refresh()
    assert holder.publish_stats() is False  # nothing recorded: nothing written
    sample = keys(300)
    for k in sample:
        answer(holder, "toy", [ROW], k)
    holder.start()
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            published = project.store.list_state("toy")
            if any(k.startswith(SERVING_KEY_PREFIX) for k in published):
                break
            time.sleep(0.02)
        answer(holder, "toy", [ROW], "one-more")
    finally:
        holder.stop()  # publishes the last request too
    values = [v for k, v in project.store.list_state("toy").items() if k.startswith("serving/")]
    assert len(values) == 1 and values[0]["worker"] == holder.stats.worker
    challenger = health_of(values, version=2)
    champion = health_of(values, version=1, variants=["champion"])
    assert challenger.requests + champion.requests == 301
    assert challenger.requests > 0 and challenger.errors == 0 and challenger.p99_ms is not None
    # the controller reads the same figures
    state, _ = current_rollout(project, "toy")
    seen = observe(project, state, now=T)
    assert (seen.candidate.requests, seen.champion.requests) == (
        challenger.requests,
        champion.requests,
    )


def test_begin_rollout_by_hand_is_followed_too():
    # a replace pipeline with two versions: the rollout is written with begin_rollout
    project = rollout_project("canary", steps=[0.5, 1.0])
    set_state(project, status="cancelled", share=0.0)
    holder = ModelHolder(project)
    holder.refresh()
    assert holder.candidates() == {}
    begin_rollout(project, "toy", candidate=2, champion=1, now=T)
    holder.refresh()
    assert holder.rollout("toy").share == 0.5
    assert holder.candidates()["toy"].variant == "challenger"


class _Slow:
    """A shadow model that blocks until released (to fill the scorer's queue)."""

    def __init__(self, model: Any, gate: threading.Event) -> None:
        self.model, self.gate = model, gate
        self.classes_ = model.classes_

    def predict(self, X: Any) -> Any:
        self.gate.wait()
        return self.model.predict(X)

    def predict_proba(self, X: Any) -> Any:
        return self.model.predict_proba(X)


def test_the_shadow_scorer_logs_pairs_and_drops_copies_when_it_is_behind():
    project = rollout_project("shadow")
    holder = ModelHolder(project)
    holder.refresh()
    champion, shadow = holder.get("toy"), holder.candidates()["toy"]
    gate = threading.Event()
    slow = replace(shadow, model=_Slow(shadow.model, gate))
    logged: list[dict[str, Any]] = []
    scorer = ShadowScorer(holder, log=lambda rows: logged.extend(rows) or True, max_jobs=2)
    frame = rows_frame(champion.features, [ROW, ROW])
    accepted = [
        scorer.submit(
            slow,
            champion,
            [ROW, ROW],
            frame,
            [f"c{i}a", f"c{i}b"],
            request_key="u",
            now=datetime(2024, 1, 20),
        )
        for i in range(6)
    ]
    # one is being scored (blocked), two wait, the rest are dropped
    assert accepted[:1] == [True] and accepted.count(True) in (2, 3)
    assert scorer.dropped == accepted.count(False) >= 3
    gate.set()
    scorer.close()
    assert scorer.scored == accepted.count(True)
    pairs = {(r["shadow_of"], r["variant"], r["model_version"]) for r in logged}
    assert ("c0a", "shadow", 2) in pairs and ("c0b", "shadow", 2) in pairs
    assert len({r["id"] for r in logged}) == len(logged) == 2 * scorer.scored
    assert not {r["id"] for r in logged} & {f"c{i}{s}" for i in range(6) for s in "ab"}
    shadow_health = health_of([holder.stats.snapshot("toy", now=T)], version=2)
    assert (shadow_health.requests, shadow_health.errors) == (scorer.scored, 0)

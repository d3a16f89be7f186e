"""The rollout demo: an A/B test decided on live traffic, then a broken candidate rolled back.

On the elec2 example project, with an ``ab`` rollout configured (``rollout:`` in its
``retrainer.yaml``), on a simulated clock and the project's real stores:

1. a stale champion (trained in 1996) serves; a retrain requested in 1997 is run by the
   daemon's controller, blessed, and becomes the ``challenger``: an A/B test starts;
2. the recorded stream replays through the real server app (``retrainer serve``'s routes, in
   process): each half hour's row is a request from one of a few hundred users
   (``X-Request-Key``, so each user sticks to a variant) and its label comes back as feedback;
   every few hours the controller ticks and the sequential test looks at the evidence, until it
   promotes the challenger;
3. a second retrain starts a new A/B, but this candidate is broken on purpose (the demo's
   server flips the sign of its weights when it loads it: a bug the holdout did not see). Its
   outputs drift from the champion's on the same traffic; the output-drift guard stops the
   rollout at the next tick, traffic goes back to the champion, and an alert is raised.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from retrainer.core.clock import SimulatedClock
from retrainer.core.types import Event
from retrainer.engine.demo import prepare_demo_dir

STALE = datetime(1996, 7, 8, tzinfo=UTC)
"""When the champion was trained (its 60-day window is May-July 1996)."""
START = datetime(1998, 1, 5, tzinfo=UTC)
"""When the first retrain is requested and the replay starts (a winter of drift later)."""
USERS = 500
SECRET = "demo-secret"  # the in-process server's only token: nothing listens on a port
ROLLOUT_YAML = """    rollout:                       # added by `retrainer demo --rollout`
      strategy: ab
      split: 0.5
      metric: accuracy
      min_effect: 0.02             # two points of accuracy are worth serving
      tau: 0.05                    # the size of effect expected (retrains here gain ~5 points)
      min_samples: 100             # labelled predictions per arm before the first look
      max_duration: 21d
      watch: 1d
      guards:                      # the defaults, written out
        max_error_rate: 0.05
        max_output_drift: 0.5
        min_requests: 100
"""
SHOWN = (
    "run.succeeded",
    "blessing.passed",
    "blessing.rejected",
    "rollout.started",
    "rollout.promoted",
    "rollout.rejected",
    "rollout.rolled_back",
    "rollout.completed",
    "alert.sent",
)


@dataclass
class RolloutDemoResult:
    """What the demo saw: each A/B's outcome, when, and the requests it took."""

    outcomes: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    feedback: int = 0
    ticks: int = 0


class _Token:
    def allows(self, scope: str) -> bool:
        return True


def _with_rollout(target: Path) -> None:
    path = target / "retrainer.yaml"
    text = path.read_text(encoding="utf-8")
    anchor = "    metrics: [accuracy, roc_auc, log_loss]\n"
    if anchor not in text:  # pragma: no cover - the example's file is ours
        raise RuntimeError(f"{path}: the elec2 example changed; cannot add the rollout")
    text = text.replace(anchor, anchor + ROLLOUT_YAML)
    text += "\nalerts:                            # added by `retrainer demo --rollout`\n"
    text += "  notifiers: [{kind: log}]         # alerts as log lines (and alert.* events)\n"
    text += "  kinds: [rollout.rolled_back]\n"
    path.write_text(text, encoding="utf-8")


def _user(i: int) -> str:
    digest = hashlib.blake2b(str(i).encode(), digest_size=4).hexdigest()
    return f"user-{int(digest, 16) % USERS}"


def run_rollout_demo(
    target: Path,
    *,
    say: Callable[[str], None] = print,
    days: int = 70,
    tick_hours: int = 6,
) -> RolloutDemoResult:
    """Run the demo in ``target`` (recreated); ``say`` gets a line per thing that happened."""
    import pandas as pd
    from fastapi.testclient import TestClient

    from retrainer.config import ServeConfig
    from retrainer.engine.control.controller import request_run
    from retrainer.engine.control.daemon import start_controller
    from retrainer.engine.project import Project
    from retrainer.engine.rollout import current_rollout
    from retrainer.engine.runs.run import execute_run
    from retrainer.engine.serving import ModelHolder
    from retrainer.server import create_app

    prepare_demo_dir(target)
    _with_rollout(target)
    clock = SimulatedClock(STALE)
    result = RolloutDemoResult()
    broken: set[int] = set()

    class DemoHolder(ModelHolder):
        """The server's model holder, but a version in ``broken`` loads with its weights
        negated: a candidate that passed its holdout and fails on live traffic."""

        def load(self, pipeline: str, version: int, **kw: Any) -> Any:
            served = super().load(pipeline, version, **kw)
            if version not in broken:
                return served
            model = copy.deepcopy(served.model)
            final = model[-1] if hasattr(model, "steps") else model
            final.coef_ = -final.coef_
            final.intercept_ = -final.intercept_
            return dataclasses.replace(served, model=model)

    with Project.open(target) as opened:
        project = dataclasses.replace(opened, clock=clock)
        name = project.config.pipelines[0].name
        first = execute_run(project, clock=clock, actor="retrainer demo")
        say(f"{STALE:%Y-%m-%d}  v{first.version.version if first.version else '?'} is the "
            "champion (trained on May-July 1996)")  # fmt: skip
        clock.set(START)
        seen = max((e.id or 0 for e in project.store.list_events(limit=1)), default=0)
        controller = start_controller(project, clock=clock, executor="inline")

        def show() -> None:
            nonlocal seen
            for e in project.store.list_events(name, limit=200):
                if (e.id or 0) <= seen:
                    continue
                seen = e.id or seen
                if e.kind in SHOWN or e.kind.startswith("model."):
                    say(f"{e.at:%Y-%m-%d %H:%M}  {e.kind:<20} {e.message}")

        holder = DemoHolder(project, poll_interval=3600.0, stats_interval=3600.0, clock=clock)
        settings = ServeConfig(poll_interval=3600.0, flush_interval=3600.0, stats_interval=3600.0)
        app = create_app(project, authenticate=lambda s: _Token() if s == SECRET else None,
                         settings=settings, holder=holder)  # fmt: skip
        data = pd.read_parquet(target / "data" / "elec2.parquet")
        cfg = project.config.pipelines[0]
        auth = {"Authorization": f"Bearer {SECRET}"}

        def tick() -> None:
            for writer in app.state.writers.values():
                writer.flush()
            holder.stats.publish(project, now=clock.now())
            controller.tick()
            result.ticks += 1
            holder.refresh()
            show()

        def retrain(why: str) -> None:
            request_run(project, name, now=clock.now(), by=why)
            tick()

        with TestClient(app) as client:
            retrain("retrainer demo")
            end = START + timedelta(days=days)
            next_retrain: datetime | None = None
            decided: set[int] = set()
            step = timedelta(hours=tick_hours)
            while clock.now() < end:
                lo = clock.now().replace(tzinfo=None)
                hi = lo + step
                rows = data[
                    (data[cfg.source.time_column] >= lo) & (data[cfg.source.time_column] < hi)
                ]
                for i, row in zip(rows.index.tolist(), rows.to_dict("records"), strict=True):
                    features = {f: float(row[f]) for f in cfg.features}
                    r = client.post(f"/v1/{name}/predict", json=features,
                                    headers={**auth, "X-Request-Key": _user(int(i))})  # fmt: skip
                    r.raise_for_status()
                    pid = r.json()["predictions"][0]["prediction_id"]
                    result.requests += 1
                    label = int(row[cfg.target])
                    fb = client.post(f"/v1/{name}/feedback", headers=auth,
                                     json={"feedback": [{"prediction_id": pid,
                                                         "outcome": label}]})  # fmt: skip
                    fb.raise_for_status()
                    result.feedback += 1
                clock.set(clock.now() + step)
                tick()
                state = current_rollout(project, name)
                if state is None:
                    continue
                rollout = state[0]
                if rollout.status == "watching" and rollout.candidate not in decided:
                    decided.add(rollout.candidate)
                    result.outcomes.append(_outcome(rollout))
                if rollout.status == "promoted" and next_retrain is None and not broken:
                    next_retrain = clock.now()
                if next_retrain is not None and clock.now() >= next_retrain:
                    version = len(project.store.list_versions(name, profiles=False)) + 1
                    broken.add(version)
                    say(
                        f"{clock.now():%Y-%m-%d %H:%M}  another retrain (v{version}); the demo "
                        "breaks it on purpose: the server negates its weights when it loads it"
                    )
                    retrain("retrainer demo (broken candidate)")
                    blessed = project.store.get_version(name, version).blessing.passed
                    next_retrain = None if blessed else clock.now() + timedelta(days=7)
                    if not blessed:
                        broken.discard(version)
                        say(f"{clock.now():%Y-%m-%d %H:%M}  v{version} was not blessed; "
                            "the demo retrains again in 7 days")  # fmt: skip
                    continue
                if rollout.candidate in broken and not rollout.active:
                    result.outcomes.append(_outcome(rollout))
                    break
        show()
    return result


def _outcome(state: Any) -> dict[str, Any]:
    test = (state.evidence or {}).get("test") or {}
    return {
        "candidate": state.candidate,
        "champion": state.champion,
        "status": "promoted" if state.status == "watching" else state.status,
        "started_at": state.started_at.isoformat(),
        "decided_at": (state.promoted_at or state.ended_at or state.started_at).isoformat(),
        "n_candidate": test.get("n_candidate"),
        "n_champion": test.get("n_champion"),
        "reason": state.reason,
    }


__all__ = ["RolloutDemoResult", "run_rollout_demo"]
_ = Event  # the events shown are read back from the store

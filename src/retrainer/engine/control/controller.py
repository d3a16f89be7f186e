"""The controller: a level-triggered reconciliation loop that retrains by itself.

Each :meth:`Controller.tick` reads the state from the store and converges it:

1. **repair**: runs whose worker died or whose lease expired are queued again with backoff
   (up to ``controller.max_attempts``) or marked failed;
2. **observe**: pipelines with drift or concept-drift triggers (and, with
   ``monitor_configured``, those with a ``monitor:`` section) get a monitor run when the last
   one is older than ``monitor.every``;
   only monitor results whose window ends by the tick's time count: on a simulated clock, a
   result recorded for a later window (a run at the real now, say) is in the replay's future;
3. **decide**: each pipeline's triggers (any of them) and guards are evaluated on a context of
   plain values; an evaluation that fires or changes state is recorded as an event with its
   evidence, and the trigger state is saved with a compare-and-set;
4. **queue**: a firing creates a run whose key is ``run_key(pipeline, trigger, slot)``; the
   unique index on the key makes a restart, a burst of evaluations or a second controller
   create it once;
5. **execute**: queued runs are claimed (a compare-and-set on their epoch: two controllers
   never both get one) and handed to the executor, which trains, blesses and promotes;
   executor results that the worker could not record itself (a crash, a timeout, a kill)
   are recorded here;
6. **alert**: the events of the tick go to the notifiers.

Every step is idempotent, so a crash anywhere is repaired by the next tick.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from retrainer.adapters.environment import process_owner
from retrainer.adapters.executors import Executor, InlineExecutor, Job, JobResult, worker_argv
from retrainer.adapters.metadata.outage import unavailable
from retrainer.core.clock import Clock, SimulatedClock, check_time
from retrainer.core.performance import get_online_metric
from retrainer.core.rollout import ACTIVE, CHALLENGER, ROLLOUT_KEY
from retrainer.core.triggers import (
    Decision,
    MetricNeed,
    MetricValue,
    Needs,
    TriggerContext,
    apply_guards,
    run_key,
)
from retrainer.core.types import AliasMove, Event, Run
from retrainer.core.windows import parse_duration
from retrainer.engine.control.policy import (
    TriggerPolicy,
    build_policy,
    fired_by,
    requested_decision,
)
from retrainer.engine.control.source_feed import labelled_rows_since, source_metric
from retrainer.engine.monitoring.estimate import estimated_metrics
from retrainer.engine.pipeline import Pipeline
from retrainer.engine.project import Project
from retrainer.engine.runs.claims import claim_run, new_run, reap_stale_runs, retry_or_fail
from retrainer.engine.runs.run import execute_claimed_run
from retrainer.engine.state import CHAMPION, MANUAL_STATE_KEY, POLICY_STATE_KEY
from retrainer.errors import ConcurrencyError, RetrainerError

_log = logging.getLogger(__name__)


def request_run(project: Project, pipeline: str, *, now: datetime, by: str) -> str:
    """Ask the daemon for a run (a manual trigger): append a request it will queue."""
    import uuid

    store = project.store
    check_time(now, "the request's time (--as-of)")
    store.ensure_pipeline(pipeline, project.pipeline(pipeline).definition_hash, now)
    for _ in range(10):
        stored = store.get_state(pipeline, MANUAL_STATE_KEY)
        state, revision = stored if stored is not None else ({"requests": []}, None)
        request = {"id": uuid.uuid4().hex[:12], "at": now.isoformat(), "by": by}
        try:
            store.put_state(
                pipeline,
                MANUAL_STATE_KEY,
                {"requests": [*state.get("requests", []), request]},
                at=now,
                expected_revision=revision,
            )
        except ConcurrencyError:
            continue
        store.append_event(
            Event(
                kind="run.requested",
                at=now,
                message=f"{pipeline}: run requested by {by} (request {request['id']})",
                pipeline=pipeline,
                data=request,
            )
        )
        return str(request["id"])
    raise ConcurrencyError(f"could not record the run request for {pipeline}: too much contention")


@dataclass
class TickReport:
    """What one tick did."""

    at: datetime
    decisions: list[Decision] = field(default_factory=list)
    queued: list[Run] = field(default_factory=list)
    started: list[Run] = field(default_factory=list)
    finished: list[JobResult] = field(default_factory=list)
    repaired: list[Run] = field(default_factory=list)
    monitored: list[str] = field(default_factory=list)
    rollouts: list[str] = field(default_factory=list)
    """A line per rollout that moved (a step, a promotion, a rejection, a rollback)."""
    events: list[Event] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class TickReads:
    """What a tick reads for every pipeline at once, a store query each (a query per pipeline
    costs a round trip and a transaction apiece: most of a tick at 1,000 pipelines).

    Values can be a tick old when used; that is safe: every write made from them is a
    compare-and-set (a stale one fails, and the next tick reads again).
    """

    states: dict[str, dict[str, tuple[dict[str, Any], int]]]
    """``get_states`` of the manual-request, rollout and trigger keys."""
    champions: dict[str, AliasMove]
    """The champion alias's last move, by pipeline."""
    challengers: dict[str, AliasMove]
    """The challenger alias's last move, by pipeline."""
    stale: set[str] = field(default_factory=set)
    """Pipelines whose aliases this tick may have moved (a rollout): read them again."""

    KEYS = (MANUAL_STATE_KEY, ROLLOUT_KEY, POLICY_STATE_KEY)

    @classmethod
    def read(cls, store: Any, pipelines: Sequence[str]) -> TickReads:
        return cls(
            states=store.get_states(cls.KEYS, pipelines),
            champions=store.alias_heads(CHAMPION, pipelines),
            challengers=store.alias_heads(CHALLENGER, pipelines),
        )

    def state(self, pipeline: str, key: str) -> tuple[dict[str, Any], int] | None:
        return self.states.get(pipeline, {}).get(key)

    def champion(self, pipeline: str) -> int | None:
        move = self.champions.get(pipeline)
        return move.version if move is not None else None


class Controller:
    """Drives every pipeline of a project; see the module docstring for one tick.

    Parameters
    ----------
    project
        The opened project (its stores are shared by every controller on the database).
    clock
        Where time comes from: ``WallClock`` in production, ``SimulatedClock`` in tests and
        scripted runs.
    executor
        Where claimed runs execute; default: in this process (``InlineExecutor``).
    monitor_configured
        Also run the monitor every ``monitor.every`` for each pipeline whose configuration
        sets a ``monitor:`` section, when no trigger reads it (``retrainer daemon`` does, so
        dashboards and alerts get drift and online performance over time; a backtest's replay
        does not: it would be slower and record figures nobody reads).
    """

    def __init__(
        self,
        project: Project,
        *,
        clock: Clock,
        executor: Executor | None = None,
        alerter: Any | None = None,
        owner: str | None = None,
        monitor_configured: bool = False,
    ) -> None:
        self.project = project
        self.monitor_configured = monitor_configured
        self.clock = clock
        self.owner = owner or process_owner()
        self.executor = executor or InlineExecutor(self._execute_inline)
        self.alerter = alerter
        self._policies: dict[str, TriggerPolicy | None] = {}
        self._ensured: dict[str, str] = {}
        self._versions: dict[tuple[str, int], Any] = {}
        self._metrics: dict[tuple[str, MetricNeed], MetricValue] = {}
        self._rollout_errors: dict[str, str] = {}  # pipeline -> the error last recorded
        self._monitor_errors: dict[str, str] = {}  # pipeline -> the monitor's last error
        self._champion_models: dict[str, tuple[int, Any]] = {}
        # a cost-aware trigger's curve file -> its mtime and curve (read again once changed)
        self._curves: dict[Any, tuple[float | str, list[tuple[float, float]]]] = {}
        # alerts cover events from now on, not the history before this controller started
        latest = project.store.list_events(limit=1)
        self._last_event_id = latest[0].id or 0 if latest else 0
        self._last_event_at = latest[0].at if latest else None
        self._git = project.code_state()
        cfg = project.config.controller
        self.max_attempts = cfg.max_attempts
        self.retry_backoff = parse_duration(cfg.retry_backoff)
        self.outage_backoff = 1.0
        """Seconds before the first retry of a tick that found the database away."""
        self.outage_backoff_max = 60.0
        """The cap of that wait, which doubles at each failed tick."""

    # -- helpers ------------------------------------------------------------------------
    def policy(self, name: str) -> TriggerPolicy | None:
        if name not in self._policies:
            self._policies[name] = build_policy(self.project.pipeline(name))
        return self._policies[name]

    def _monitors(self, pipeline: Pipeline) -> bool:
        """Whether the pipeline is monitored because its configuration asks for it (an
        explicit ``monitor:`` section), whatever its triggers read."""
        return self.monitor_configured and "monitor" in pipeline.config.model_fields_set

    def _event(self, report: TickReport, event: Event) -> None:
        report.events.append(self.project.store.append_event(event))

    def _execute_inline(self, job: Job) -> None:
        run = self.project.store.get_run(job.run_id)
        execute_claimed_run(self.project, run, clock=self.clock, actor="retrainer daemon")

    # -- the tick -----------------------------------------------------------------------
    def tick(self) -> TickReport:
        t0 = time.perf_counter()
        # a simulated clock stepped past the range: stop before any work, not mid-tick
        now = check_time(self.clock.now(), "the controller's clock")
        report = TickReport(at=now)
        store = self.project.store
        self._collect(now, report)  # first: an ended worker's exit status beats "process gone"
        report.repaired = reap_stale_runs(
            self.project, now, max_attempts=self.max_attempts, backoff=self.retry_backoff
        )
        configs = self.project.config.pipelines
        reads = TickReads.read(store, [cfg.name for cfg in configs])
        self._metrics = self._online_metrics(now, reads)
        for cfg in configs:
            pipeline = self.project.pipeline(cfg.name)
            if self._ensured.get(pipeline.name) != pipeline.definition_hash:
                store.ensure_pipeline(pipeline.name, pipeline.definition_hash, now)
                self._ensured[pipeline.name] = pipeline.definition_hash
            self._manual(pipeline, now, report, reads)
            self._rollout(pipeline, now, report, reads)
            policy = self.policy(cfg.name)
            if (policy is not None and policy.watches_monitor) or self._monitors(pipeline):
                self._observe(pipeline, now, report)
            if policy is not None:
                self._decide(pipeline, policy, now, report, reads)
        self._collect(now, report)
        self._dispatch(now, report)
        self._collect(now, report)
        self._alert(now, report)
        report.seconds = time.perf_counter() - t0
        return report

    def _online_metrics(
        self,
        now: datetime,
        reads: TickReads | None = None,
        names: Sequence[str] | None = None,
    ) -> dict[tuple[str, MetricNeed], MetricValue]:
        """Every metric the triggers need, read from the log in one query per window length.

        A metric whose window holds no logged prediction (no log, or nothing logged for the
        pipeline) is measured as the backtest's replay does: the champion's predictions on
        the rows of the source labelled since its training (see :func:`source_metric`), so a
        metric trigger the backtest recommends can fire without a prediction log.
        """
        wanted: list[tuple[str, MetricNeed]] = []
        for cfg in self.project.config.pipelines:
            if names is not None and cfg.name not in names:
                continue
            policy = self.policy(cfg.name)
            if policy is not None:  # an estimate is read from the monitor result (_context)
                wanted += [(cfg.name, n) for n in policy.needs.metrics if n.source == "realized"]
        if not wanted:
            return {}
        from retrainer.core.performance import WindowPerformance
        from retrainer.engine.monitoring.online import recent_performance_many

        windows: dict[tuple[str, str, timedelta, int], WindowPerformance] = {}
        if self.project.has_log_store:
            windows = recent_performance_many(
                self.project.log_store(),
                [(name, n.metric, n.over, n.min_samples) for name, n in wanted],
                now=now,
            )
        out = {}
        for name, need in wanted:
            window = windows.get(
                (name, get_online_metric(need.metric).name, need.over, need.min_samples)
            )
            if window is None or window.n_rows == 0:
                window = self._source_metric(name, need, now, reads)
            result = window.result(need.metric)
            out[(name, need)] = MetricValue(value=result.value, n=result.n, status=result.status)
        return out

    def _source_metric(
        self, name: str, need: MetricNeed, now: datetime, reads: TickReads | None = None
    ) -> Any:
        """:func:`source_metric` of the current champion (its model loaded once)."""
        store = self.project.store
        champion = reads.champion(name) if reads is not None else store.get_alias(name, CHAMPION)
        mv = model = None
        if champion is not None:
            key = (name, champion)
            if key not in self._versions:
                self._versions[key] = store.get_version(name, champion)
            mv = self._versions[key]
            if self._champion_models.get(name, (None, None))[0] != champion:
                self._champion_models[name] = (champion, self.project.load_version(mv))
            model = self._champion_models[name][1]
        return source_metric(self.project.pipeline(name), mv, model, need, now)

    def _rollout(
        self, pipeline: Pipeline, now: datetime, report: TickReport, reads: TickReads | None = None
    ) -> None:
        """Advance the pipeline's rollout, if one is active (a failure is an event, not a
        stopped daemon: the next tick tries again)."""
        from retrainer.engine.rollout import UNREAD, advance_rollout

        stored: Any = UNREAD
        challenger: Any = UNREAD
        if reads is not None:
            stored = reads.state(pipeline.name, ROLLOUT_KEY)
            if stored is None:  # never rolled out
                self._rollout_errors.pop(pipeline.name, None)
                return
            head = reads.challengers.get(pipeline.name)
            challenger = head.version if head is not None else None
            if stored[0].get("status") in ACTIVE:
                reads.stale.add(pipeline.name)  # it may move the champion: _decide reads it
        try:
            step = advance_rollout(
                self.project, pipeline.name, now=now, stored=stored, challenger=challenger
            )
        except Exception as exc:
            if unavailable(exc) is not None:
                raise  # the database is away: the loop backs off and ticks again
            error = f"{type(exc).__name__}: {exc}"
            _log.exception("%s: the rollout could not be advanced", pipeline.name)
            if self._rollout_errors.get(pipeline.name) != error:  # once, not every tick
                self._rollout_errors[pipeline.name] = error
                self._event(
                    report,
                    Event(
                        kind="rollout.evaluated",
                        at=now,
                        message=f"{pipeline.name}: the rollout could not be advanced: {error}",
                        pipeline=pipeline.name,
                        data={"error": error},
                    ),
                )
            return
        self._rollout_errors.pop(pipeline.name, None)
        if step is not None and step.changed:
            report.rollouts.append(f"{pipeline.name}: {step.state.reason}")

    def _observe(self, pipeline: Pipeline, now: datetime, report: TickReport) -> None:
        from retrainer.engine.monitoring.monitor import run_monitor

        every = parse_duration(pipeline.config.monitor.every)
        store = self.project.store
        last = store.list_monitor_results(pipeline.name, until=now, limit=1)
        if last and last[0].window_end + every > now:
            return
        if store.alias_at(pipeline.name, CHAMPION, now) is None:
            return  # no champion yet at ``now`` (the monitor judges the champion at its end)
        # the estimate before the labels costs a model fit: only for a trigger that reads it,
        # or a daemon's configured monitor (the dashboard shows it); a backtest replay skips it
        policy = self.policy(pipeline.name)
        estimate = self._monitors(pipeline) or (
            policy is not None and any(n.source == "estimated" for n in policy.needs.metrics)
        )
        try:
            run_monitor(
                self.project,
                pipeline.name,
                clock=self.clock,
                end=now,
                report=False,
                estimate=estimate,
            )
            report.monitored.append(pipeline.name)
            self._monitor_errors.pop(pipeline.name, None)
        except RetrainerError as exc:
            # retried each tick until it works: one event per distinct error, not one a tick
            if self._monitor_errors.get(pipeline.name) == str(exc):
                return
            self._monitor_errors[pipeline.name] = str(exc)
            self._event(
                report,
                Event(
                    kind="monitor.failed",
                    at=now,
                    message=f"{pipeline.name}: monitor failed: {exc}",
                    pipeline=pipeline.name,
                    data={"error": str(exc)},
                ),
            )

    def _context(
        self,
        pipeline: Pipeline,
        policy: TriggerPolicy,
        now: datetime,
        reads: TickReads | None = None,
    ) -> tuple[TriggerContext, int | None]:
        store = self.project.store
        # the last move of the alias is both the champion and its promotion time; a tick reads
        # them for every pipeline at once (``reads``), but again after a rollout could move it
        moves: list[AliasMove]
        if reads is not None and pipeline.name not in reads.stale:
            stored = reads.state(pipeline.name, POLICY_STATE_KEY)
            head = reads.champions.get(pipeline.name)
            moves = [head] if head is not None else []
        else:
            stored = store.get_state(pipeline.name, POLICY_STATE_KEY)
            moves = store.alias_history(pipeline.name, CHAMPION, limit=1)
        state, revision = stored if stored is not None else ({}, None)
        champion = moves[-1].version if moves else None
        champ = None
        if champion is not None:  # versions are immutable: cache them
            cache_key = (pipeline.name, champion)
            if cache_key not in self._versions:
                self._versions[cache_key] = store.get_version(pipeline.name, champion)
            champ = self._versions[cache_key]
        last_training = champ.snapshot.window_end if champ else None
        rows_since = training_rows = None
        if policy.needs_rows:
            training_rows = champ.snapshot.rows if champ else None
            rows_since = labelled_rows_since(pipeline, champ.snapshot if champ else None, now)
        metrics = {
            need: self._metrics[(pipeline.name, need)]
            for need in policy.needs.metrics
            if (pipeline.name, need) in self._metrics
        }
        latest = (
            store.list_monitor_results(pipeline.name, until=now, limit=1)
            if policy.watches_monitor
            else []
        )
        drift = concept = None
        if latest:
            summary = latest[0].summary
            window_end = latest[0].window_end.isoformat()
            if summary.get("drift"):
                drift = {**summary["drift"], "window_end": window_end}
            else:  # an empty window, or a version without a profile: no column was tested
                drift = {"n_tested": 0, "n_cur": summary.get("rows"), "window_end": window_end}
            concept = summary.get("concept_drift")
            metrics.update(estimated_metrics(policy.needs.metrics, latest[0], now))
        recent = (
            [r.created_at for r in store.list_runs(pipeline.name, limit=100)]
            if policy.guards
            else []
        )
        ctx = TriggerContext(
            now=now,
            pipeline=pipeline.name,
            state=state,
            last_training=last_training,
            last_promotion=moves[-1].at if moves else None,
            rows_since_training=rows_since,
            training_rows=training_rows,
            metrics=metrics,
            metric_at_promotion=dict(champ.metrics) if champ else {},
            drift=drift,
            concept_drift=concept,
            code={"pipeline_hash": pipeline.definition_hash, "git_commit": self._git[0]},
            champion_code=(
                {"pipeline_hash": champ.code.pipeline_hash, "git_commit": champ.code.git_commit}
                if champ
                else None
            ),
            manual_requests=(),
            recent_runs=recent,
            **(self._costs(pipeline.name, policy.needs.curve) if policy.needs.costs else {}),
        )
        return ctx, revision

    def _costs(self, name: str, curve: str | None) -> dict[str, Any]:
        """What the cost-aware trigger reads: the latest retrains' training CPU seconds (newest
        first) and the degradation curve of the backtest ``results.json`` it names."""
        runs = self.project.store.list_runs(name, status="succeeded", limit=10)
        cpu = [float(r.timings["train_cpu"]) for r in runs if "train_cpu" in r.timings]
        points: list[tuple[float, float]] = []
        if curve is not None:
            import json

            from retrainer.engine.backtest.results import degradation_points

            path = self.project.root / curve
            try:  # read again only when the file changed: a daemon ticks every few seconds
                mtime = path.stat().st_mtime
                if self._curves.get(path, (None,))[0] != mtime:
                    document = json.loads(path.read_text(encoding="utf-8"))
                    self._curves[path] = (mtime, degradation_points(document))
                points = self._curves[path][1]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                # once per distinct problem, not every tick; the trigger goes on without a prior
                if self._curves.get(path, (None,))[0] != str(exc):
                    self._curves[path] = (str(exc), [])
                    _log.warning("cost-aware trigger of %s: no curve from %s (%s)", name, path, exc)
        return {"retrain_cpu_s": tuple(cpu), "degradation": tuple(points)}

    def decide_once(self, name: str, now: datetime, *, exclude_schedules: bool = False) -> Decision:
        """One pipeline's decision at ``now``, observed and recorded as a tick does: the
        orchestrators' decide task (see :func:`retrainer.engine.runs.stages.decide`).

        A firing queues its run before the trigger state is saved, as a tick does, so a
        process that dies after deciding loses nothing: the next call returns the run still
        queued (oldest first) before evaluating anything, then pending manual requests.
        """
        pipeline = self.project.pipeline(name)
        self.project.store.ensure_pipeline(name, pipeline.definition_hash, now)
        report = TickReport(at=now)
        waiting = self._waiting(pipeline) or self._take_request(pipeline, now, report)
        if waiting is not None:
            return waiting
        policy = build_policy(pipeline, exclude_schedules=exclude_schedules)
        if policy is None:
            return Decision(
                fire=False, trigger="none", slot=None, reason=f"{name} has no trigger to evaluate"
            )
        self._policies[name] = policy
        self._metrics = self._online_metrics(now, names=[name])
        if policy.watches_monitor or self._monitors(pipeline):
            self._observe(pipeline, now, report)
        decision = self._decide(pipeline, policy, now, report)
        if decision is None:  # another evaluation saved the state first: it acts on it
            return Decision(
                fire=False, trigger="none", slot=None, reason="evaluated concurrently elsewhere"
            )
        return decision

    def admit_once(
        self, name: str, now: datetime, *, trigger: str, slot: str, reason: str
    ) -> Decision:
        """An orchestrator's scheduled firing of ``(trigger, slot)`` through the pipeline's
        guards (cooldown, max retrains, min new rows) at ``now``, recorded as a tick records
        a firing (``trigger.fired``) or a held one (``trigger.evaluated``): see
        :func:`retrainer.engine.runs.stages.admit`."""
        pipeline = self.project.pipeline(name)
        fired = Decision(fire=True, trigger=trigger, slot=slot, reason=reason)
        full = build_policy(pipeline)
        if full is None or not full.guards:
            return fired
        key = run_key(name, trigger, slot)
        if any(r.key == key for r in self.project.store.list_runs(name, limit=100)):
            # admitted before: a retried task or a cleared DAG run continues (or finds) its
            # run, which the guards would otherwise count against itself
            return dataclasses.replace(fired, reason=f"{reason}: its run exists")
        self.project.store.ensure_pipeline(name, pipeline.definition_hash, now)
        needs = Needs.union([g.needs() for g in full.guards])
        policy = TriggerPolicy(
            trigger=full.trigger, guards=full.guards, needs=needs, watches_monitor=False
        )
        if needs.metrics:
            self._metrics = self._online_metrics(now, names=[name])
        ctx, _ = self._context(pipeline, policy, now)
        decision = apply_guards(ctx, fired, policy.guards)
        report = TickReport(at=now)
        self._event(
            report,
            Event(
                kind="trigger.fired" if decision.fire else "trigger.evaluated",
                at=now,
                message=f"{name}: {decision.reason}",
                pipeline=name,
                data={
                    "trigger": trigger,
                    "fired_by": fired_by(decision) if decision.fire else None,
                    "slot": decision.slot,
                    "fire": decision.fire,
                    "reason": decision.reason,
                    "evidence": decision.evidence,
                },
            ),
        )
        return decision

    def _waiting(self, pipeline: Pipeline) -> Decision | None:
        """The oldest queued run of the pipeline as the decision that queued it."""
        store = self.project.store
        queued = store.list_runs(pipeline.name, status="queued", limit=None)
        if not queued:
            return None
        run = min(queued, key=lambda r: r.id or 0)
        event = next(
            (
                e
                for e in store.list_events(pipeline.name, kinds=["run.queued"])
                if e.run_id == run.id
            ),
            None,
        )
        data = event.data if event is not None else {}
        return Decision(
            fire=True,
            trigger=str(data.get("trigger") or run.cause),
            slot=str(data.get("slot") or run.created_at.isoformat()),
            reason=f"run {run.id} was queued by an earlier decision and not started yet",
            evidence=dict(run.evidence),
        )

    def _take_request(
        self, pipeline: Pipeline, now: datetime, report: TickReport
    ) -> Decision | None:
        """The oldest pending manual request as a firing decision: its run queued first, then
        the request removed (a crash between the two queues nothing twice: the key)."""
        store = self.project.store
        for _ in range(10):
            stored = store.get_state(pipeline.name, MANUAL_STATE_KEY)
            if stored is None or not stored[0].get("requests"):
                return None
            (request, *rest), revision = stored[0]["requests"], stored[1]
            decision = requested_decision(request)
            self._queue(pipeline, decision, now, report)
            try:
                store.put_state(
                    pipeline.name,
                    MANUAL_STATE_KEY,
                    {"requests": rest},
                    at=now,
                    expected_revision=revision,
                )
            except ConcurrencyError:
                continue  # a request was added or taken meanwhile: read again
            return decision
        return None

    def _decide(
        self,
        pipeline: Pipeline,
        policy: TriggerPolicy,
        now: datetime,
        report: TickReport,
        reads: TickReads | None = None,
    ) -> Decision | None:
        ctx, revision = self._context(pipeline, policy, now, reads)
        decision = apply_guards(ctx, policy.trigger.evaluate(ctx), policy.guards)
        report.decisions.append(decision)
        if decision.fire:
            # the run first: its key makes a repeat harmless, so a crash before the state is
            # saved re-creates nothing, and no slot is lost
            self._queue(pipeline, decision, now, report)
        event = None
        if decision.fire or decision.changed:
            event = Event(
                kind="trigger.fired" if decision.fire else "trigger.evaluated",
                at=now,
                message=f"{pipeline.name}: {decision.reason}",
                pipeline=pipeline.name,
                data={
                    "trigger": decision.trigger,
                    "fired_by": fired_by(decision) if decision.fire else None,
                    "slot": decision.slot,
                    "fire": decision.fire,
                    "reason": decision.reason,
                    "evidence": decision.evidence,
                },
            )
        if decision.fire or dict(decision.state) != dict(ctx.state):  # idle ticks write nothing
            try:
                # the state and its event in one transaction: a database lost between the
                # two would keep the state and lose the event (the tick is not re-decided)
                self.project.store.put_state(
                    pipeline.name,
                    POLICY_STATE_KEY,
                    dict(decision.state),
                    at=now,
                    expected_revision=revision,
                    event=event,
                )
            except ConcurrencyError:
                return None  # another controller evaluated this pipeline at the same time
            if event is not None:
                report.events.append(event)
        elif event is not None:
            self._event(report, event)
        return decision

    def _manual(
        self, pipeline: Pipeline, now: datetime, report: TickReport, reads: TickReads | None = None
    ) -> None:
        """Queue a run for each pending manual request (``retrainer run --queue``)."""
        store = self.project.store
        stored = (
            reads.state(pipeline.name, MANUAL_STATE_KEY)
            if reads is not None
            else store.get_state(pipeline.name, MANUAL_STATE_KEY)
        )
        if stored is None or not stored[0].get("requests"):
            return
        state, revision = stored
        for request in state["requests"]:
            decision = requested_decision(request)
            self._queue(pipeline, decision, now, report)
        with contextlib.suppress(ConcurrencyError):  # a new request arrived: next tick
            store.put_state(
                pipeline.name,
                MANUAL_STATE_KEY,
                {"requests": []},
                at=now,
                expected_revision=revision,
            )

    def _queue(
        self, pipeline: Pipeline, decision: Decision, now: datetime, report: TickReport
    ) -> None:
        key = run_key(pipeline.name, decision.trigger, decision.slot or now.isoformat())

        def queued(run: Run) -> Event:
            return Event(
                kind="run.queued",
                at=now,
                message=f"run {run.id} of {pipeline.name} queued by {fired_by(decision)}",
                pipeline=pipeline.name,
                run_id=run.id,
                data={"key": key, "trigger": decision.trigger, "slot": decision.slot},
            )

        # the run and its event in one transaction: a retried tick finds the run, adds nothing
        run, created = new_run(
            self.project,
            pipeline,
            now=now,
            cause=fired_by(decision),
            evidence={"reason": decision.reason, **decision.evidence},
            key=key,
            event=queued,
        )
        if created:
            report.queued.append(run)
            report.events.append(queued(run))

    def _dispatch(self, now: datetime, report: TickReport) -> None:
        free = self.executor.capacity - self.executor.busy()
        if free <= 0:
            return
        queued = sorted(
            self.project.store.list_runs(status="queued", limit=None), key=lambda r: r.id or 0
        )
        for run in queued:
            if free <= 0:
                break
            if run.lease_expires_at is not None and run.lease_expires_at > now:
                continue  # backing off before a retry
            try:
                claimed = claim_run(self.project, run, now=now, owner=self.owner)
            except ConcurrencyError:
                continue  # another controller took it
            report.started.append(claimed)
            free -= 1
            self.executor.submit(self._job(claimed, now))

    def _job(self, run: Run, now: datetime) -> Job:
        cfg = self.project.pipeline(run.pipeline).config.run
        argv: tuple[str, ...] = ()
        if self.project.config_path is not None:
            extra = ["--as-of", now.isoformat()] if isinstance(self.clock, SimulatedClock) else []
            argv = worker_argv(self.project.config_path, run.id, run.epoch, extra)  # type: ignore[arg-type]
        return Job(
            run_id=run.id,  # type: ignore[arg-type]
            epoch=run.epoch,
            pipeline=run.pipeline,
            argv=argv,
            timeout_s=cfg.timeout,
            memory_mb=cfg.memory_mb,
        )

    def _collect(self, now: datetime, report: TickReport) -> None:
        for result in self.executor.poll():
            report.finished.append(result)
            if result.ok or result.exit_code == 3:
                continue
            self._record_crash(result, now, report)

    def _record_crash(self, result: JobResult, now: datetime, report: TickReport) -> None:
        """The worker could not record its run (crash, timeout, kill): record it here.

        A crash is retried (with backoff, up to ``max_attempts``); a timeout is not: a
        training that hangs would hang again.
        """
        run = self.project.store.get_run(result.job.run_id)
        if run.epoch != result.job.epoch or run.status != "running":
            return  # already repaired or recorded by someone else
        done = retry_or_fail(
            self.project,
            run,
            now=now,
            why=result.reason or "the worker ended without recording the run",
            retry="timed out" not in (result.reason or ""),
            max_attempts=self.max_attempts,
            backoff=self.retry_backoff,
            data={"exit_code": result.exit_code, "seconds": result.seconds},
        )
        if done is not None:
            report.events.append(done[1])

    def _alert(self, now: datetime, report: TickReport) -> None:
        if self.alerter is None:
            return
        events = [
            e
            for e in self.project.store.list_events(since=self._last_event_at)
            if (e.id or 0) > self._last_event_id
        ]
        if events:
            self._last_event_id = max(e.id or 0 for e in events)
            self._last_event_at = max(e.at for e in events)
            self.alerter.handle(events, now)

    # -- the loop -----------------------------------------------------------------------
    def run(
        self,
        *,
        tick_s: float,
        max_ticks: int | None = None,
        stop: threading.Event | None = None,
        on_tick: Callable[[TickReport], None] | None = None,
        advance: Callable[[], None] | None = None,
        on_outage: Callable[[str], None] | None = None,
    ) -> int:
        """Tick until ``stop`` is set or ``max_ticks`` ticks have run; return the tick count.

        ``advance`` moves a simulated clock between ticks (instead of sleeping). A tick that
        finds the metadata database away (unreachable, or locked past its busy timeout) is
        retried after a wait that doubles from ``outage_backoff`` up to
        ``outage_backoff_max`` seconds (real time); ``on_outage`` (default: the log) gets one
        line when an outage starts and one when it ends, not one per failed tick.
        """
        stop = stop or threading.Event()
        ticks = 0
        outage = _Outage(self.outage_backoff, self.outage_backoff_max, on_outage or _log.warning)
        while not stop.is_set() and (max_ticks is None or ticks < max_ticks):
            try:
                report = self.tick()
                if on_tick is not None:
                    on_tick(report)
            except Exception as exc:
                reason = unavailable(exc)
                if reason is None:
                    raise
                # the tick is tried again at the same (simulated) time: nothing is skipped, and
                # every step is idempotent, so what it did before failing is not done twice
                stop.wait(outage.failed(reason))
                continue
            outage.ended()
            ticks += 1
            if max_ticks is not None and ticks >= max_ticks:
                break
            if advance is not None:
                # simulated time: work takes no simulated time, so let the runs in hand end
                # before the clock moves (their outcome is collected at the next tick)
                while self.executor.busy_running():
                    time.sleep(0.02)
                advance()
            else:
                stop.wait(tick_s)
        return ticks

    def shutdown(self, grace_s: float) -> list[Run]:
        """Stop the executor: wait up to ``grace_s`` for runs in hand, release the others."""
        left = self.executor.shutdown(grace_s)
        now = self.clock.now()
        released = []
        for job in left:
            run = self.project.store.get_run(job.run_id)
            if run.status != "running" or run.epoch != job.epoch:
                continue
            try:
                released.append(
                    self.project.store.update_run(
                        dataclasses.replace(
                            run,
                            status="queued",
                            owner=None,
                            epoch=run.epoch + 1,
                            attempts=max(run.attempts - 1, 0),
                            lease_expires_at=None,
                            error="released at shutdown",
                        ),
                        expected_epoch=run.epoch,
                    )
                )
            except ConcurrencyError:
                continue
            self.project.store.append_event(
                Event(
                    kind="run.released",
                    at=now,
                    message=f"run {run.id} of {run.pipeline} released at shutdown; queued again",
                    pipeline=run.pipeline,
                    run_id=run.id,
                )
            )
        return released


class _Outage:
    """Back-off and one log line per outage of the metadata database (not one per tick)."""

    def __init__(self, first: float, cap: float, say: Callable[[str], None]) -> None:
        self.first, self.cap, self.say = first, cap, say
        self.failures = 0
        self.started = 0.0

    def failed(self, reason: str) -> float:
        """Record a failed tick; return how long to wait before the next try."""
        if self.failures == 0:
            self.started = time.monotonic()
            self.say(
                f"metadata database unavailable: {reason}; retrying with backoff "
                f"(from {self.first:g} s up to {self.cap:g} s)"
            )
        wait = min(self.cap, self.first * 2**self.failures)
        self.failures += 1
        return wait

    def ended(self) -> None:
        if self.failures:
            self.say(
                f"metadata database back after {time.monotonic() - self.started:.1f} s "
                f"({self.failures} tick(s) retried)"
            )
            self.failures = 0


def metric_feed_notes(project: Project, name: str, now: datetime) -> list[str]:
    """A line when a pipeline's metric triggers read no logged prediction: what the daemon
    measures instead (see :func:`source_metric`)."""
    policy = build_policy(project.pipeline(name))
    needs = sorted(policy.needs.metrics, key=lambda n: (n.metric, n.over)) if policy else []
    if not needs:
        return []
    longest = max(n.over for n in needs)
    if project.has_log_store:
        logged = project.log_store().predictions(name, now - longest, now, columns=["timestamp"])
        if len(logged):
            return []
    what = ", ".join(f"{n.metric} over {_duration_text(n.over)}" for n in needs)
    return [
        f"pipeline {name}: no predictions logged for its metric trigger(s) ({what}): the daemon "
        "measures the champion on the rows of the source labelled since its training, as the "
        "backtest's replay does (log predictions and feedback to measure what was served)"
    ]


def _duration_text(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"

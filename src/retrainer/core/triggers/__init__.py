"""Triggers and guards: when should a pipeline retrain?

A trigger reads a :class:`TriggerContext` (the clock, the monitor's latest figures, the row
counts, the code version, its own state from the previous evaluation: plain values gathered by
the engine) and returns a :class:`Decision`: whether it fires, the fire *slot* that identifies
this firing, one line of reason, the evidence it saw and the state to keep for next time. A
guard (:class:`Cooldown`, :class:`MaxRetrains`, :class:`MinNewRows`) may then hold a firing
back. Nothing here reads the clock, the store or the network, so the daemon, the tests and the
backtest run the same decisions.

Edges, levels and slots
-----------------------
Every decision carries two flags. ``active`` says the trigger's condition holds now (a due
cron slot, a metric past its threshold, a drifted monitor window, enough new rows, code that
differs from the champion's, a pending request). ``fire`` is the edge: a condition the trigger
has not acted on yet. A trigger fires once per *slot*, a stable string naming what it acts on,
and the run key is ``run_key(pipeline, trigger, slot)``: evaluating again after a crash gives
the same slot, hence the same key, and the store's unique index drops the duplicate.

================================  =============================================================
trigger                           slot (one run per ...)
================================  =============================================================
:class:`ScheduleTrigger`          the latest due cron slot, UTC ISO (per slot; after downtime
                                  one run for the latest missed slot)
:class:`MetricTrigger`            the evaluation time floored to ``over`` on a UTC grid from
                                  1970-01-01 (per breach per window: see the class)
:class:`DriftTrigger`             the monitor window's end (per monitor result)
:class:`ConceptDriftTrigger`      the latest detection's time (per detection)
:class:`NewDataTrigger`           ``<last training>#<k>``: the k-th batch of new rows since
                                  the champion's training
:class:`CodeChangeTrigger`        ``<pipeline hash>@<git commit>`` (per code version)
:class:`ManualTrigger`            the request id (per request)
:class:`CostAwareTrigger`         ``<last training>#<k>``: the gain since the champion's
                                  training passed k times a retrain's cost
:class:`AnyOf`                    ``<child>:<child slot>`` of the first firing child
:class:`AllOf`                    ``<child>:<child slot>`` of each firing child, joined by ``+``
================================  =============================================================

State and ``changed``
---------------------
A decision's ``state`` is a JSON-safe dict the engine stores and hands back as
``TriggerContext.state`` next time (``{}`` at first). It always holds ``status``, a coarse
label of the trigger's condition (``"breach"``, ``"ok"``, ``"insufficient_data"``,
``"drifted"``, ``"blocked:cooldown"``...); ``changed`` is True when the status differs from
the previous evaluation's (and at the first evaluation), so the engine records an event when a
decision fires or changes, not at every tick. The engine should persist the state only after
the run of a firing decision exists: a crash in between then re-fires the same slot, and the
run key makes that harmless.

A guard that holds a firing back returns the *previous* state (with the status
``blocked:<guard>``): nothing was consumed, so the trigger fires when the guard allows it if
its condition still holds (a schedule fires once for its latest slot, a drift trigger for the
monitor window it had not acted on). Guards never touch a decision that does not fire.

Configuration
-------------
:func:`build_trigger` and :func:`build_guard` read the mappings of ``retrainer.yaml``
through the registries :data:`TRIGGERS` and :data:`GUARDS`; ``to_spec()`` writes them back,
so ``build_trigger(t.to_spec()) == t``. A class's parameters are declared once, as the fields
of a :class:`~retrainer.core._spec.Spec` (:class:`~retrainer.core.triggers.base.TriggerSpec`):
the keys, their validation, the JSON schema, ``get_params()`` and ``to_spec()`` come from
them. ``needs()`` says what a trigger reads, and ``describe()`` is one human line.

Modules: ``base`` (values, protocols, the parameters' base class, run keys), ``cron``
(the cron schedule and its daylight-saving rules), ``schedule``, ``metric``, ``drift``,
``events`` (new data, code change, manual), ``combinators``, ``guards``, ``spec`` (the
registries and the builders).
"""

from retrainer.core.triggers.base import (
    Decision,
    Guard,
    MetricNeed,
    MetricValue,
    Needs,
    Trigger,
    TriggerContext,
    run_key,
)
from retrainer.core.triggers.combinators import AllOf, AnyOf
from retrainer.core.triggers.cost import CostAwareTrigger
from retrainer.core.triggers.cron import CronSchedule
from retrainer.core.triggers.drift import ConceptDriftTrigger, DriftTrigger
from retrainer.core.triggers.events import CodeChangeTrigger, ManualTrigger, NewDataTrigger
from retrainer.core.triggers.guards import Cooldown, MaxRetrains, MinNewRows, apply_guards
from retrainer.core.triggers.metric import MetricTrigger
from retrainer.core.triggers.schedule import ScheduleTrigger
from retrainer.core.triggers.spec import GUARDS, TRIGGERS, build_guard, build_trigger

__all__ = [
    "GUARDS",
    "TRIGGERS",
    "AllOf",
    "AnyOf",
    "CodeChangeTrigger",
    "ConceptDriftTrigger",
    "Cooldown",
    "CostAwareTrigger",
    "CronSchedule",
    "Decision",
    "DriftTrigger",
    "Guard",
    "ManualTrigger",
    "MaxRetrains",
    "MetricNeed",
    "MetricTrigger",
    "MetricValue",
    "MinNewRows",
    "Needs",
    "NewDataTrigger",
    "ScheduleTrigger",
    "Trigger",
    "TriggerContext",
    "apply_guards",
    "build_guard",
    "build_trigger",
    "run_key",
]

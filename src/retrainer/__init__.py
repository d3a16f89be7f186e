"""retrainer: continuous training for machine-learning models.

Retrain on a schedule or a trigger, bless each candidate against the champion on the same
fresh data, promote it, and record every decision with its lineage.

The names below are the public API. They are imported lazily, so ``import retrainer`` stays
cheap (the fresh-process sanity check and the CLI start faster).

Examples
--------
>>> import retrainer
>>> retrainer.SimulatedClock  # doctest: +ELLIPSIS
<class 'retrainer.core.clock.SimulatedClock'>
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "AbsoluteRule": "retrainer.core.blessing",
    "Alert": "retrainer.adapters.notifiers",
    "Alerter": "retrainer.engine.control.alerts",
    "AliasMove": "retrainer.core.types",
    "AllOf": "retrainer.core.triggers",
    "AnyOf": "retrainer.core.triggers",
    "ArtifactIntegrityError": "retrainer.errors",
    "ArtifactStore": "retrainer.adapters.artifacts",
    "CallableSource": "retrainer.adapters.sources",
    "ChangeRule": "retrainer.core.blessing",
    "Clock": "retrainer.core.clock",
    "ConceptDriftTrigger": "retrainer.core.triggers",
    "ConfigError": "retrainer.errors",
    "Controller": "retrainer.engine.control.controller",
    "Cooldown": "retrainer.core.triggers",
    "DataError": "retrainer.errors",
    "DriftCheck": "retrainer.core.drift",
    "DriftReport": "retrainer.core.drift",
    "DriftTrigger": "retrainer.core.triggers",
    "Event": "retrainer.core.types",
    "EvidenceRow": "retrainer.core.types",
    "FileSource": "retrainer.adapters.sources",
    "FsspecArtifactStore": "retrainer.adapters.artifacts",
    "FullHistory": "retrainer.core.windows",
    "Gate": "retrainer.core.blessing",
    "InMemoryArtifactStore": "retrainer.adapters.artifacts",
    "InMemoryLogStore": "retrainer.adapters.logstore",
    "InMemoryMetadataStore": "retrainer.adapters.metadata.memory",
    "InlineExecutor": "retrainer.adapters.executors",
    "LocalArtifactStore": "retrainer.adapters.artifacts",
    "LogStore": "retrainer.adapters.logstore",
    "MaxRetrains": "retrainer.core.triggers",
    "MetadataStore": "retrainer.adapters.metadata.protocol",
    "Metric": "retrainer.core.metrics",
    "MetricTrigger": "retrainer.core.triggers",
    "ModelNotFoundError": "retrainer.errors",
    "ModelVersion": "retrainer.core.types",
    "MonitorRecord": "retrainer.core.types",
    "NewDataTrigger": "retrainer.core.triggers",
    "ParquetLogStore": "retrainer.adapters.logstore",
    "Pipeline": "retrainer.engine.pipeline",
    "ProcessExecutor": "retrainer.adapters.executors",
    "Profile": "retrainer.core.profile",
    "Project": "retrainer.engine.project",
    "RecordingNotifier": "retrainer.adapters.notifiers",
    "RetrainerError": "retrainer.errors",
    "Run": "retrainer.core.types",
    "RunResult": "retrainer.engine.runs.run",
    "SQLMetadataStore": "retrainer.adapters.metadata.sql",
    "SQLSource": "retrainer.adapters.sources",
    "ScheduleTrigger": "retrainer.core.triggers",
    "ScoreCard": "retrainer.core.blessing",
    "SimulatedClock": "retrainer.core.clock",
    "SliceRule": "retrainer.core.blessing",
    "SlidingWindow": "retrainer.core.windows",
    "Snapshot": "retrainer.core.types",
    "Source": "retrainer.adapters.sources",
    "UntrustedArtifactError": "retrainer.errors",
    "Verdict": "retrainer.core.types",
    "WallClock": "retrainer.adapters.clock",
    "check_drift": "retrainer.core.drift",
    "compute_profile": "retrainer.core.profile",
    "execute_run": "retrainer.engine.runs.run",
    "get_metric": "retrainer.core.metrics",
    "list_models": "retrainer.engine.runs.registry",
    "load_config": "retrainer.config",
    "make_metric": "retrainer.core.metrics",
    "parse_config": "retrainer.config",
    "promote": "retrainer.engine.runs.registry",
    "rollback": "retrainer.engine.runs.registry",
    "run_monitor": "retrainer.engine.monitoring.monitor",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'retrainer' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__

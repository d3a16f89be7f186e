"""retrainer: continuous training for machine-learning models.

Retrain on a schedule or a trigger, bless each candidate against the champion on the same
fresh data, promote it, and record every decision with its lineage.

The names below are the public API. They are imported lazily, so ``import retrainer`` stays
cheap (the fresh-process sanity check and the CLI start faster); the ``TYPE_CHECKING`` block
gives type checkers and editors the same names with their real types. ``_EXPORTS`` is the one
list of the public names: ``__all__`` and the lazy lookup read it, and a test checks that the
``TYPE_CHECKING`` imports match it.

Examples
--------
>>> import retrainer
>>> retrainer.SimulatedClock  # doctest: +ELLIPSIS
<class 'retrainer.core.clock.SimulatedClock'>
>>> "Project" in retrainer.__all__ and "Trigger" in retrainer.__all__
True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "ABPolicy": "retrainer.core.deploy",
    "AbsoluteRule": "retrainer.core.blessing",
    "Alert": "retrainer.adapters.notifiers",
    "Alerter": "retrainer.engine.control.alerts",
    "AliasMove": "retrainer.core.types",
    "AllOf": "retrainer.core.triggers",
    "AnyOf": "retrainer.core.triggers",
    "ArmStats": "retrainer.core.sequential",
    "ArtifactIntegrityError": "retrainer.errors",
    "ArtifactRef": "retrainer.adapters.artifacts",
    "ArtifactStore": "retrainer.adapters.artifacts",
    "BacktestConfig": "retrainer.backtest_config",
    "BacktestResult": "retrainer.engine.backtest",
    "BacktestSummary": "retrainer.engine.backtest",
    "CHALLENGER": "retrainer.core.rollout",
    "CallableSource": "retrainer.adapters.sources",
    "CanaryPolicy": "retrainer.core.deploy",
    "ChangeRule": "retrainer.core.blessing",
    "Clock": "retrainer.core.clock",
    "CodeChangeTrigger": "retrainer.core.triggers",
    "CodeVersion": "retrainer.core.types",
    "Comparison": "retrainer.engine.backtest",
    "ConceptDriftTrigger": "retrainer.core.triggers",
    "ConcurrencyError": "retrainer.errors",
    "ConfigError": "retrainer.errors",
    "Controller": "retrainer.engine.control.controller",
    "Cooldown": "retrainer.core.triggers",
    "CostAwareTrigger": "retrainer.core.triggers",
    "CronSchedule": "retrainer.core.triggers",
    "DataError": "retrainer.errors",
    "Decision": "retrainer.core.triggers",
    "DeployContext": "retrainer.core.deploy",
    "DeployDecision": "retrainer.core.deploy",
    "DeploymentPolicy": "retrainer.core.deploy",
    "DriftCheck": "retrainer.core.drift",
    "DriftReport": "retrainer.core.drift",
    "DriftTrigger": "retrainer.core.triggers",
    "Event": "retrainer.core.types",
    "EventStore": "retrainer.adapters.metadata.protocol",
    "EvidenceRow": "retrainer.core.types",
    "Executor": "retrainer.adapters.executors",
    "FileSource": "retrainer.adapters.sources",
    "FsspecArtifactStore": "retrainer.adapters.artifacts",
    "FullHistory": "retrainer.core.windows",
    "Gate": "retrainer.core.blessing",
    "Guard": "retrainer.core.triggers",
    "Guards": "retrainer.core.deploy",
    "HoldoutRows": "retrainer.core.significance",
    "InMemoryArtifactStore": "retrainer.adapters.artifacts",
    "InMemoryLogStore": "retrainer.adapters.logstore",
    "InMemoryMetadataStore": "retrainer.adapters.metadata.memory",
    "InlineExecutor": "retrainer.adapters.executors",
    "LocalArtifactStore": "retrainer.adapters.artifacts",
    "LogNotifier": "retrainer.adapters.notifiers",
    "LogStore": "retrainer.adapters.logstore",
    "ManualTrigger": "retrainer.core.triggers",
    "MaxRetrains": "retrainer.core.triggers",
    "MetadataStore": "retrainer.adapters.metadata.protocol",
    "Metric": "retrainer.core.metrics",
    "MetricNeed": "retrainer.core.triggers",
    "MetricTrigger": "retrainer.core.triggers",
    "MetricValue": "retrainer.core.triggers",
    "MinNewRows": "retrainer.core.triggers",
    "ModelNotFoundError": "retrainer.errors",
    "ModelVersion": "retrainer.core.types",
    "MonitorRecord": "retrainer.core.types",
    "MonitorResult": "retrainer.engine.monitoring.monitor",
    "MonitorStore": "retrainer.adapters.metadata.protocol",
    "MonitorSummary": "retrainer.engine.monitoring.results",
    "Needs": "retrainer.core.triggers",
    "NewDataTrigger": "retrainer.core.triggers",
    "NewRows": "retrainer.core.windows",
    "Notifier": "retrainer.adapters.notifiers",
    "NotifierError": "retrainer.errors",
    "Observations": "retrainer.core.rollout",
    "ParquetLogStore": "retrainer.adapters.logstore",
    "Pipeline": "retrainer.engine.pipeline",
    "PipelineConfig": "retrainer.config",
    "PipelineRecord": "retrainer.core.types",
    "PipelineStatus": "retrainer.engine.runs.registry",
    "PolicyResult": "retrainer.engine.backtest",
    "ProcessExecutor": "retrainer.adapters.executors",
    "Profile": "retrainer.core.profile",
    "Project": "retrainer.engine.project",
    "ProjectConfig": "retrainer.config",
    "PromotionError": "retrainer.engine.runs.registry",
    "RecommendedPolicy": "retrainer.engine.backtest",
    "RecordingNotifier": "retrainer.adapters.notifiers",
    "RegistryStore": "retrainer.adapters.metadata.protocol",
    "ReplacePolicy": "retrainer.core.deploy",
    "RetrainerError": "retrainer.errors",
    "RolloutPolicy": "retrainer.core.deploy",
    "RolloutState": "retrainer.core.rollout",
    "RolloutStep": "retrainer.core.rollout",
    "Rule": "retrainer.core.blessing",
    "Run": "retrainer.core.types",
    "RunResult": "retrainer.engine.runs.run",
    "RunStore": "retrainer.adapters.metadata.protocol",
    "SMTPNotifier": "retrainer.adapters.notifiers",
    "SQLMetadataStore": "retrainer.adapters.metadata.sql",
    "SQLSource": "retrainer.adapters.sources",
    "ScheduleTrigger": "retrainer.core.triggers",
    "SchemaVersionError": "retrainer.errors",
    "ScoreCard": "retrainer.core.blessing",
    "SequentialDecision": "retrainer.core.sequential",
    "SequentialState": "retrainer.core.sequential",
    "SequentialTest": "retrainer.core.sequential",
    "ServingStats": "retrainer.engine.rollout",
    "ShadowPolicy": "retrainer.core.deploy",
    "SignificanceRule": "retrainer.core.blessing_significance",
    "SimulatedClock": "retrainer.core.clock",
    "SinceChange": "retrainer.core.windows",
    "SlackNotifier": "retrainer.adapters.notifiers",
    "SliceRule": "retrainer.core.blessing",
    "SliceScore": "retrainer.core.blessing",
    "SlidingWindow": "retrainer.core.windows",
    "Snapshot": "retrainer.core.types",
    "Source": "retrainer.adapters.sources",
    "SourceError": "retrainer.errors",
    "StateStore": "retrainer.adapters.metadata.protocol",
    "StorageError": "retrainer.errors",
    "TickReport": "retrainer.engine.control.controller",
    "Token": "retrainer.engine.tokens",
    "TokenNotFoundError": "retrainer.errors",
    "TokenStore": "retrainer.adapters.metadata.protocol",
    "TrainingError": "retrainer.errors",
    "Trigger": "retrainer.core.triggers",
    "TriggerContext": "retrainer.core.triggers",
    "UntrustedArtifactError": "retrainer.errors",
    "VariantHealth": "retrainer.core.rollout",
    "Verdict": "retrainer.core.types",
    "WallClock": "retrainer.adapters.clock",
    "WebhookNotifier": "retrainer.adapters.notifiers",
    "Window": "retrainer.core.windows",
    "advance_rollout": "retrainer.engine.rollout",
    "check_drift": "retrainer.core.drift",
    "compute": "retrainer.core.metrics",
    "compute_profile": "retrainer.core.profile",
    "create_token": "retrainer.engine.tokens",
    "execute_run": "retrainer.engine.runs.run",
    "get_metric": "retrainer.core.metrics",
    "list_models": "retrainer.engine.runs.registry",
    "list_tokens": "retrainer.engine.tokens",
    "load_config": "retrainer.config",
    "log_feedback": "retrainer.engine.monitoring.online",
    "log_predictions": "retrainer.engine.monitoring.online",
    "make_metric": "retrainer.core.metrics",
    "metric_names": "retrainer.core.metrics",
    "open_log_store": "retrainer.adapters.logstore",
    "parse_config": "retrainer.config",
    "promote": "retrainer.engine.runs.registry",
    "revoke_token": "retrainer.engine.tokens",
    "rollback": "retrainer.engine.runs.registry",
    "run_backtest": "retrainer.engine.backtest",
    "run_monitor": "retrainer.engine.monitoring.monitor",
    "verify_token": "retrainer.engine.tokens",
}

if TYPE_CHECKING:
    from retrainer.adapters.artifacts import ArtifactRef as ArtifactRef
    from retrainer.adapters.artifacts import ArtifactStore as ArtifactStore
    from retrainer.adapters.artifacts import FsspecArtifactStore as FsspecArtifactStore
    from retrainer.adapters.artifacts import InMemoryArtifactStore as InMemoryArtifactStore
    from retrainer.adapters.artifacts import LocalArtifactStore as LocalArtifactStore
    from retrainer.adapters.clock import WallClock as WallClock
    from retrainer.adapters.executors import Executor as Executor
    from retrainer.adapters.executors import InlineExecutor as InlineExecutor
    from retrainer.adapters.executors import ProcessExecutor as ProcessExecutor
    from retrainer.adapters.logstore import InMemoryLogStore as InMemoryLogStore
    from retrainer.adapters.logstore import LogStore as LogStore
    from retrainer.adapters.logstore import ParquetLogStore as ParquetLogStore
    from retrainer.adapters.logstore import open_log_store as open_log_store
    from retrainer.adapters.metadata.memory import InMemoryMetadataStore as InMemoryMetadataStore
    from retrainer.adapters.metadata.protocol import EventStore as EventStore
    from retrainer.adapters.metadata.protocol import MetadataStore as MetadataStore
    from retrainer.adapters.metadata.protocol import MonitorStore as MonitorStore
    from retrainer.adapters.metadata.protocol import RegistryStore as RegistryStore
    from retrainer.adapters.metadata.protocol import RunStore as RunStore
    from retrainer.adapters.metadata.protocol import StateStore as StateStore
    from retrainer.adapters.metadata.protocol import TokenStore as TokenStore
    from retrainer.adapters.metadata.sql import SQLMetadataStore as SQLMetadataStore
    from retrainer.adapters.notifiers import Alert as Alert
    from retrainer.adapters.notifiers import LogNotifier as LogNotifier
    from retrainer.adapters.notifiers import Notifier as Notifier
    from retrainer.adapters.notifiers import RecordingNotifier as RecordingNotifier
    from retrainer.adapters.notifiers import SlackNotifier as SlackNotifier
    from retrainer.adapters.notifiers import SMTPNotifier as SMTPNotifier
    from retrainer.adapters.notifiers import WebhookNotifier as WebhookNotifier
    from retrainer.adapters.sources import CallableSource as CallableSource
    from retrainer.adapters.sources import FileSource as FileSource
    from retrainer.adapters.sources import Source as Source
    from retrainer.adapters.sources import SQLSource as SQLSource
    from retrainer.backtest_config import BacktestConfig as BacktestConfig
    from retrainer.config import PipelineConfig as PipelineConfig
    from retrainer.config import ProjectConfig as ProjectConfig
    from retrainer.config import load_config as load_config
    from retrainer.config import parse_config as parse_config
    from retrainer.core.blessing import AbsoluteRule as AbsoluteRule
    from retrainer.core.blessing import ChangeRule as ChangeRule
    from retrainer.core.blessing import Gate as Gate
    from retrainer.core.blessing import Rule as Rule
    from retrainer.core.blessing import ScoreCard as ScoreCard
    from retrainer.core.blessing import SliceRule as SliceRule
    from retrainer.core.blessing import SliceScore as SliceScore
    from retrainer.core.blessing_significance import SignificanceRule as SignificanceRule
    from retrainer.core.clock import Clock as Clock
    from retrainer.core.clock import SimulatedClock as SimulatedClock
    from retrainer.core.deploy import ABPolicy as ABPolicy
    from retrainer.core.deploy import CanaryPolicy as CanaryPolicy
    from retrainer.core.deploy import DeployContext as DeployContext
    from retrainer.core.deploy import DeployDecision as DeployDecision
    from retrainer.core.deploy import DeploymentPolicy as DeploymentPolicy
    from retrainer.core.deploy import Guards as Guards
    from retrainer.core.deploy import ReplacePolicy as ReplacePolicy
    from retrainer.core.deploy import RolloutPolicy as RolloutPolicy
    from retrainer.core.deploy import ShadowPolicy as ShadowPolicy
    from retrainer.core.drift import DriftCheck as DriftCheck
    from retrainer.core.drift import DriftReport as DriftReport
    from retrainer.core.drift import check_drift as check_drift
    from retrainer.core.metrics import Metric as Metric
    from retrainer.core.metrics import compute as compute
    from retrainer.core.metrics import get_metric as get_metric
    from retrainer.core.metrics import make_metric as make_metric
    from retrainer.core.metrics import metric_names as metric_names
    from retrainer.core.profile import Profile as Profile
    from retrainer.core.profile import compute_profile as compute_profile
    from retrainer.core.rollout import CHALLENGER as CHALLENGER
    from retrainer.core.rollout import Observations as Observations
    from retrainer.core.rollout import RolloutState as RolloutState
    from retrainer.core.rollout import RolloutStep as RolloutStep
    from retrainer.core.rollout import VariantHealth as VariantHealth
    from retrainer.core.sequential import ArmStats as ArmStats
    from retrainer.core.sequential import SequentialDecision as SequentialDecision
    from retrainer.core.sequential import SequentialState as SequentialState
    from retrainer.core.sequential import SequentialTest as SequentialTest
    from retrainer.core.significance import HoldoutRows as HoldoutRows
    from retrainer.core.triggers import AllOf as AllOf
    from retrainer.core.triggers import AnyOf as AnyOf
    from retrainer.core.triggers import CodeChangeTrigger as CodeChangeTrigger
    from retrainer.core.triggers import ConceptDriftTrigger as ConceptDriftTrigger
    from retrainer.core.triggers import Cooldown as Cooldown
    from retrainer.core.triggers import CostAwareTrigger as CostAwareTrigger
    from retrainer.core.triggers import CronSchedule as CronSchedule
    from retrainer.core.triggers import Decision as Decision
    from retrainer.core.triggers import DriftTrigger as DriftTrigger
    from retrainer.core.triggers import Guard as Guard
    from retrainer.core.triggers import ManualTrigger as ManualTrigger
    from retrainer.core.triggers import MaxRetrains as MaxRetrains
    from retrainer.core.triggers import MetricNeed as MetricNeed
    from retrainer.core.triggers import MetricTrigger as MetricTrigger
    from retrainer.core.triggers import MetricValue as MetricValue
    from retrainer.core.triggers import MinNewRows as MinNewRows
    from retrainer.core.triggers import Needs as Needs
    from retrainer.core.triggers import NewDataTrigger as NewDataTrigger
    from retrainer.core.triggers import ScheduleTrigger as ScheduleTrigger
    from retrainer.core.triggers import Trigger as Trigger
    from retrainer.core.triggers import TriggerContext as TriggerContext
    from retrainer.core.types import AliasMove as AliasMove
    from retrainer.core.types import CodeVersion as CodeVersion
    from retrainer.core.types import Event as Event
    from retrainer.core.types import EvidenceRow as EvidenceRow
    from retrainer.core.types import ModelVersion as ModelVersion
    from retrainer.core.types import MonitorRecord as MonitorRecord
    from retrainer.core.types import PipelineRecord as PipelineRecord
    from retrainer.core.types import Run as Run
    from retrainer.core.types import Snapshot as Snapshot
    from retrainer.core.types import Verdict as Verdict
    from retrainer.core.windows import FullHistory as FullHistory
    from retrainer.core.windows import NewRows as NewRows
    from retrainer.core.windows import SinceChange as SinceChange
    from retrainer.core.windows import SlidingWindow as SlidingWindow
    from retrainer.core.windows import Window as Window
    from retrainer.engine.backtest import BacktestResult as BacktestResult
    from retrainer.engine.backtest import BacktestSummary as BacktestSummary
    from retrainer.engine.backtest import Comparison as Comparison
    from retrainer.engine.backtest import PolicyResult as PolicyResult
    from retrainer.engine.backtest import RecommendedPolicy as RecommendedPolicy
    from retrainer.engine.backtest import run_backtest as run_backtest
    from retrainer.engine.control.alerts import Alerter as Alerter
    from retrainer.engine.control.controller import Controller as Controller
    from retrainer.engine.control.controller import TickReport as TickReport
    from retrainer.engine.monitoring.monitor import MonitorResult as MonitorResult
    from retrainer.engine.monitoring.monitor import run_monitor as run_monitor
    from retrainer.engine.monitoring.online import log_feedback as log_feedback
    from retrainer.engine.monitoring.online import log_predictions as log_predictions
    from retrainer.engine.monitoring.results import MonitorSummary as MonitorSummary
    from retrainer.engine.pipeline import Pipeline as Pipeline
    from retrainer.engine.project import Project as Project
    from retrainer.engine.rollout import ServingStats as ServingStats
    from retrainer.engine.rollout import advance_rollout as advance_rollout
    from retrainer.engine.runs.registry import PipelineStatus as PipelineStatus
    from retrainer.engine.runs.registry import PromotionError as PromotionError
    from retrainer.engine.runs.registry import list_models as list_models
    from retrainer.engine.runs.registry import promote as promote
    from retrainer.engine.runs.registry import rollback as rollback
    from retrainer.engine.runs.run import RunResult as RunResult
    from retrainer.engine.runs.run import execute_run as execute_run
    from retrainer.engine.tokens import Token as Token
    from retrainer.engine.tokens import create_token as create_token
    from retrainer.engine.tokens import list_tokens as list_tokens
    from retrainer.engine.tokens import revoke_token as revoke_token
    from retrainer.engine.tokens import verify_token as verify_token
    from retrainer.errors import ArtifactIntegrityError as ArtifactIntegrityError
    from retrainer.errors import ConcurrencyError as ConcurrencyError
    from retrainer.errors import ConfigError as ConfigError
    from retrainer.errors import DataError as DataError
    from retrainer.errors import ModelNotFoundError as ModelNotFoundError
    from retrainer.errors import NotifierError as NotifierError
    from retrainer.errors import RetrainerError as RetrainerError
    from retrainer.errors import SchemaVersionError as SchemaVersionError
    from retrainer.errors import SourceError as SourceError
    from retrainer.errors import StorageError as StorageError
    from retrainer.errors import TokenNotFoundError as TokenNotFoundError
    from retrainer.errors import TrainingError as TrainingError
    from retrainer.errors import UntrustedArtifactError as UntrustedArtifactError

__all__ = sorted([*_EXPORTS, "__version__"])

if not TYPE_CHECKING:  # hidden from type checkers: a misspelt name must be an error, not Any

    def __getattr__(name: str) -> Any:
        module = _EXPORTS.get(name)
        if module is None:
            raise AttributeError(f"module 'retrainer' has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return __all__

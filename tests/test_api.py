"""The public API: what ``import retrainer`` exports, typed for type checkers and cheap to import."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import retrainer
from retrainer import errors

SRC = Path(retrainer.__file__).parent

# Names in a module's ``__all__`` that ``retrainer`` does not re-export: helpers of one layer,
# constants, and building blocks reached through an exported object. A new public name goes
# into ``retrainer._EXPORTS`` or here, on purpose.
INTERNAL = {
    # optional dependencies (retrainer.extras): their one-line error
    "EXTRAS",
    "MissingExtraError",
    "missing_extra",
    "require",
    # MLflow interop: an optional extra, used as retrainer.integrations.mlflow.<name>
    "MlflowConfig",
    "MlflowModelUri",
    "MlflowTemplate",
    "SyncReport",
    "check_model_uri",
    "mlflow_client",
    "sync_mlflow",
    # the dashboard: health rules, the pages' data, the monitor's brief (the server renders them)
    "HEALTH_SEVERITIES",
    "Backtest",
    "DECLINE",
    "Health",
    "KEEP",
    "Level",
    "MARKERS",
    "MONITOR_STATE_KEY",
    "MetricStatus",
    "PipelineRow",
    "RESOLVED_BY",
    "assess",
    "backtests",
    "events_page",
    "find_backtest",
    "format_metric",
    "headline_metric",
    "metric_thresholds",
    "open_alerts",
    "overview",
    "pipeline_page",
    "projected_decision",
    "recent",
    "remember",
    "run_page",
    "threshold_lines",
    "alerting_events",
    "leaf_triggers",
    "next_fire",
    # the daemon's start checks and the monitor's window checks and concept-drift detector
    "WARM_MAX",
    "check_window",
    "drift_start",
    "drift_text",
    "errors_of",
    "feed_detector",
    "labels_of",
    "log_task",
    "logged_target",
    "start_warnings",
    "warm_from",
    # rollouts: the state machine's parts (the policies and RolloutState are exported)
    "ACTIVE",
    "ROLLOUT_KEY",
    "ROLLOUT_METRICS",
    "TERMINAL",
    "GuardCheck",
    "GuardLimits",
    "RolloutParams",
    "advance",
    "bucket",
    "check_guards",
    "check_rollout_metric",
    "metric_values",
    "output_drift",
    "reconcile",
    "route",
    "start_rollout",
    "LATENCY_BUCKETS_MS",
    "RolloutDemoResult",
    "run_rollout_demo",
    "profile_drift",
    "FAULT_ENV",
    "fault_point",
    "SERVING_KEY_PREFIX",
    "begin_rollout",
    "current_rollout",
    "health_of",
    "observe",
    "rollout_policy",
    # adapters
    "ANY",
    "Appended",
    "FEEDBACK_COLUMNS",
    "FORMATS",
    "MIGRATIONS_DIR",
    "PREDICTION_COLUMNS",
    "RECORDED_TYPES_KEY",
    "SCHEMA_HEAD",
    "SEVERITIES",
    "SanityResult",
    "Severity",
    "TRUSTED_PACKAGES",
    "artifact_types",
    "build_notifier",
    "dump_model",
    "is_trusted_type",
    "load_model",
    "open_artifact_store",
    "open_metadata_store",
    "predict_in_fresh_process",
    "read_log_file",
    "recorded_types",
    "types_record",
    "upgrade_schema",
    "verify_sha256",
    "StoredFile",  # what retrainer gc lists
    "integrity_problem",
    # core: statistics and spec parsing behind the exported objects
    "TriggerSpec",
    "guard_spec_type",
    "trigger_spec_type",
    "CATEGORICAL_METHODS",
    "Candidate",
    "Categorical",
    "CategoricalProfile",
    "Columns",
    "CostModel",
    "DEFAULT_THRESHOLDS",
    "DegradationCurve",
    "Difference",
    "FINDING_KINDS",
    "FeatureDrift",
    "FeatureProfile",
    "FeatureTest",
    "Finding",
    "MetricFn",
    "MetricResult",
    "NUMERIC_METHODS",
    "NumericProfile",
    "Selection",
    "StatResult",
    "Status",
    "TEST_METHODS",
    "WindowPerformance",
    "adjust_p_values",
    "apply_guards",
    "build_guard",
    "build_rule",
    "build_trigger",
    "chi_square",
    "curve_area",
    "curve_at",
    "degradation_curve",
    "evaluate_window",
    "get_online_metric",
    "holdout_mask",
    "improvement",
    "in_points",
    "is_better",
    "is_rate_metric",
    "jensen_shannon",
    "ks_binned",
    "ks_exact",
    "l_infinity",
    "make_rate_metric",
    "merge",
    "paired_bootstrap",
    "pareto_front",
    "parse_duration",
    "performance_over_time",
    "pooled",
    "psi",
    "run_key",
    "select_policy",
    "wasserstein",
    "wasserstein_binned",
    "window_from_spec",
    "msprt_likelihood_ratio",  # the formula behind SequentialTest (the benchmark vectorizes it)
    "msprt_radius",
    # engine
    "DEFAULT_GRACE",  # retrainer gc, a command rather than an API
    "GcReport",
    "collect_garbage",
    "AlertOutcome",
    "AlertStatus",
    "DEFAULT_SEVERITIES",
    "STATE_KEY",
    "online_performance",
    "recent_performance",
    "to_columns",
    "AliasChange",
    "CACHE_VERSION",
    "CHAMPION",
    "DEPLOYMENT_POLICIES",
    "Dataset",
    "Degradation",
    "DeploySpec",
    "FailedPolicy",
    "Kind",
    "NOTIFIERS",
    "NotifierSpec",
    "PolicyCache",
    "PolicyFigures",
    "Progress",
    "RULES",
    "Recommendation",
    "RuleSpec",
    "Series",
    "WINDOWS",
    "WindowSpec",
    "ALERTS_STATE_KEY",
    "CONCEPT_STATE_KEY",
    "MANUAL_STATE_KEY",
    "POLICY_STATE_KEY",
    "alias_move_view",
    "build_policy",
    # the controller's trigger policy (engine.control.policy)
    "TriggerPolicy",
    "fired_by",
    "policy_needs",
    "requested_decision",
    "watches_monitor",
    "cache_key",
    "decide",
    "default_policies",
    "describe_policy",
    "describe_trigger",
    "describe_window",
    "dumps",
    "event_view",
    "exclusion",
    "expand_policies",
    "frozen_model_scores",
    "json_safe",
    "last_change",
    "load_replay",
    "policy_class",
    "recommend",
    "recommended_config",
    # the gate's paired tests (issue 20): the rule is public, the statistics internal
    "TESTS",
    "TestResult",
    "delong",
    "delong_components",
    "mcnemar",
    "paired_t",
    "tango_z",
    # the backtest's pooled bootstrap and fold selection (issue 17)
    "BatchStatistic",
    "FoldCandidate",
    "FoldSelection",
    "RATE_METRICS",
    "batch_statistic",
    "pooled_difference",
    "reference",
    "regret",
    "select_on_folds",
    "run_policies",
    "run_view",
    "summarize",
    "version_view",
    "start_fresh_process_server",
    "resolve_url",
    "CategoricalHistogram",
    "ConceptDrift",
    # performance estimated before the labels (CBPE, DLE): reached through the monitor
    "CLASSIFICATION_METRICS",
    "REGRESSION_METRICS",
    "Calibrator",
    "Estimate",
    "Estimation",
    "LossModel",
    "estimate_classification",
    "estimate_regression",
    "estimate_window",
    "estimated_metrics",
    "expected_accuracy",
    "expected_f1",
    "expected_roc_auc",
    "reference_rows",
    "try_estimate",
    "Histogram",
    "MonitorWindow",
    "NumericHistogram",
    "TRIGGERS",
    "GUARDS",
    "LAST_USED_EVERY",  # engine.tokens: what the server and the CLI read
    "SCOPES",
    "TokenCache",  # for the server's hot path
    # serving: what retrainer serve / retrainer predict use (the server is an interface)
    "BatchWriter",
    "FeatureSpec",
    "ModelHolder",
    "Predicted",
    "RowError",
    "ServedModel",
    "feature_specs",
    "frame_of",
    "log_records",
    "log_rows",
    "predict_arrays",
    "predict_frame",
    "rows_frame",
    "score_file",
    "table_frame",
    # routing during a rollout (engine.routing): the server's parts
    "Answer",
    "ModelFailedError",
    "ShadowScorer",
    "answer",
    # engine.backtest.rollout: what `retrainer backtest rollout` and the benchmark use
    "RolloutReplay",
    "RolloutTick",
    "Scorer",
    "TrainWindow",
    "replay_project_rollout",
    "replay_rollout",
    "rollout_policy_for_replay",
    "write_rollout_chart",
}


# Interfaces (the CLI, the server) and private modules (a ``_name`` part) are not API: not
# checked.
def _not_api(name: str) -> bool:
    parts = name.split(".")
    return (
        parts[1] in ("cli", "server")
        or any(p.startswith("_") for p in parts[1:])
        or name in {"retrainer.adapters.report"}
    )


# Public modules of their own (as numpy.testing): their names are used as ``module.name``.
# used by their path: the orchestrators' stages, and the optional integrations (their extra
# may be absent)
PUBLIC_MODULES = {
    "retrainer.testing",
    "retrainer.engine.runs.stages",
    "retrainer.extras",
    "retrainer.integrations.prefect",
}


def _modules() -> list[str]:
    """Every module of the package but the migrations (Alembic scripts) and ``__main__``."""
    names = []
    for info in pkgutil.walk_packages(retrainer.__path__, "retrainer."):
        if ".migrations" in info.name or info.name.endswith("__main__") or _not_api(info.name):
            continue
        names.append(info.name)
    return sorted(names)


MODULES = _modules()


def _isort_key(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 keeps ``__all__`` in: CONSTANTS, then Classes, then the rest."""
    if name.isupper() and len(name) > 1:
        return 0, name
    return (1, name) if name[:1].isupper() else (2, name)


def test_the_modules_are_found():
    assert {"retrainer.engine.project", "retrainer.core.triggers", "retrainer.testing"} <= set(
        MODULES
    )


@pytest.mark.parametrize("name", MODULES)
def test_every_name_of_a_module_all_is_exported_or_internal(name: str):
    module = importlib.import_module(name)
    public = getattr(module, "__all__", None)
    if public is None:
        return
    assert list(public) == sorted(public, key=_isort_key), f"{name}.__all__ is not sorted"
    absent = [n for n in public if not hasattr(module, n)]
    assert not absent, f"{name}.__all__ names what the module does not have: {absent}"
    if name in PUBLIC_MODULES:
        return
    unclassified = sorted(set(public) - set(retrainer.__all__) - INTERNAL)
    assert not unclassified, (
        f"{name}.__all__ has {unclassified}: export them from retrainer (retrainer._EXPORTS) "
        "or list them in INTERNAL"
    )


def test_internal_names_are_not_also_exported():
    assert not INTERNAL & set(retrainer.__all__)


def test_the_public_api_is_one_sorted_table():
    assert retrainer.__all__ == sorted([*retrainer._EXPORTS, "__version__"])
    for name, module in retrainer._EXPORTS.items():
        value = getattr(retrainer, name)
        assert value is getattr(importlib.import_module(module), name), name
    assert set(dir(retrainer)) >= set(retrainer.__all__)


def test_a_misspelt_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="Projct"):
        retrainer.Projct  # type: ignore[attr-defined]  # noqa: B018


@pytest.mark.parametrize(
    "name",
    [
        "Trigger",
        "Guard",
        "Rule",
        "Window",
        "TriggerContext",
        "Decision",
        "run_backtest",
        "ProjectConfig",
        "PipelineConfig",
        "Notifier",
        "ManualTrigger",
        "CodeChangeTrigger",
        "MinNewRows",
        "PromotionError",
        "NotifierError",
    ],
)
def test_the_protocols_configs_and_entry_points_are_exported(name: str):
    assert name in retrainer.__all__


def test_every_error_is_exported():
    for name, cls in inspect.getmembers(errors, inspect.isclass):
        if issubclass(cls, BaseException):
            assert name in retrainer.__all__, name


def _type_checking_imports() -> dict[str, str]:
    """``name -> module`` of the imports in ``retrainer/__init__.py``'s TYPE_CHECKING block."""
    tree = ast.parse((SRC / "__init__.py").read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.module, ast.unparse(stmt)
                for alias in stmt.names:
                    # "X as X" marks an explicit re-export for mypy's no_implicit_reexport
                    assert alias.asname == alias.name, ast.unparse(stmt)
                    found[alias.name] = stmt.module
    return found


def test_type_checkers_see_every_export_with_its_module():
    assert _type_checking_imports() == retrainer._EXPORTS


def test_the_lazy_lookup_is_hidden_from_type_checkers():
    # a module __getattr__ visible to mypy types every unknown name as Any: a typo would pass
    tree = ast.parse((SRC / "__init__.py").read_text(encoding="utf-8"))
    top = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert "__getattr__" not in top
    hidden = [
        n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "not TYPE_CHECKING"
    ]
    assert any(
        isinstance(s, ast.FunctionDef) and s.name == "__getattr__" for n in hidden for s in n.body
    )


def test_import_retrainer_stays_cheap():
    code = (
        "import sys, retrainer; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'sklearn', 'scipy', 'pandas', 'pyarrow', 'sqlalchemy', 'pydantic'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_mypy_sees_the_types_of_the_exports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    mypy_api = pytest.importorskip("mypy.api")
    monkeypatch.chdir(tmp_path)  # no project config: mypy's defaults
    monkeypatch.setenv("MYPYPATH", str(SRC.parent))  # these sources, not an installed copy
    snippet = tmp_path / "snippet.py"
    snippet.write_text(
        textwrap.dedent(
            """
            from retrainer import Project, Trigger, run_backtest
            from retrainer import Projct
            reveal_type(Project)
            reveal_type(Trigger)
            reveal_type(run_backtest)
            """
        )
    )
    stdout, _, _ = mypy_api.run(
        [
            "--no-incremental",
            "--follow-imports=silent",
            "--ignore-missing-imports",
            "--no-implicit-reexport",
            "--cache-dir",
            str(tmp_path / "cache"),
            str(snippet),
        ]
    )
    assert 'Module "retrainer" has no attribute "Projct"' in stdout, stdout
    assert "retrainer.engine.project.Project" in stdout, stdout
    assert "retrainer.core.triggers.base.Trigger" in stdout, stdout
    assert "retrainer.engine.backtest.results.BacktestResult" in stdout, stdout
    revealed = [line for line in stdout.splitlines() if "Revealed type" in line]
    assert len(revealed) == 3 and not any('"Any"' in line for line in revealed), stdout

"""``run_backtest``: a backtest.yaml in, its report, results.json and recommended.yaml out."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import yaml

from retrainer.adapters._atomic import write_file_atomically
from retrainer.backtest_config import BACKTEST_FILE, BacktestConfig, load_backtest_config
from retrainer.core.backtest import CostModel
from retrainer.core.jsonsafe import dumps
from retrainer.engine.backtest.execute import Progress, run_policies
from retrainer.engine.backtest.grid import expand_policies, load_replay
from retrainer.engine.backtest.results import BacktestResult
from retrainer.engine.backtest.summary import policy_block, recommended_config, summarize
from retrainer.errors import ConfigError


def load_checked(path: str | os.PathLike[str]) -> tuple[BacktestConfig, Path]:
    """:func:`~retrainer.backtest_config.load_backtest_config`; when the file's own keys have
    problems, its policies are checked too, so that one round names them all.

    The policies are checked against the project with the file's sound keys (a misspelt
    ``label_dealy`` and a policy's misspelt trigger key are both named); if the project
    cannot be read that way, the keys' problems alone are raised.
    """
    try:
        return load_backtest_config(path)
    except ConfigError as exc:
        first = exc
    from retrainer.config import _read_yaml

    file = Path(path)
    file = file / BACKTEST_FILE if file.is_dir() else file
    problems = list(first.problems)
    try:
        data = dict(_read_yaml(file) or {})
        # the keys a problem line starts with ("label_dealy: ...", "cost.per_retrain: ...")
        bad = {p.split(":", 1)[0].split(".", 1)[0].split("[", 1)[0] for p in problems}
        cfg = BacktestConfig.model_validate({k: v for k, v in data.items() if k not in bad})
        expand_policies(cfg, load_replay(cfg, file)[0])
    except ConfigError as more:
        problems += [p for p in more.problems if p not in problems]
    except Exception:  # the file's own problems are still the answer
        pass
    if len(problems) == len(first.problems):
        raise first
    raise ConfigError(
        f"{file} has {len(problems)} problems:\n" + "\n".join(f"  {p}" for p in problems),
        problems,
    ) from None


def run_backtest(
    config: str | os.PathLike[str] | BacktestConfig,
    out_dir: str | os.PathLike[str],
    *,
    file: Path | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
    persist: bool = False,
) -> BacktestResult:
    """Run the backtest a ``backtest.yaml`` describes and write its report into ``out_dir``.

    With ``persist``, each policy's stores are kept in ``out_dir/persist/<policy>/`` (SQLite
    and artifacts; the cache is not used, so every policy runs).

    Examples
    --------
    Twenty days of hourly data, never retraining against retraining every Monday:

    >>> import tempfile
    >>> import numpy as np, pandas as pd
    >>> root = Path(tempfile.mkdtemp())
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=24 * 20)
    >>> pd.DataFrame({"ts": pd.date_range("2024-01-01", periods=len(x), freq="h"), "x": x,
    ...               "y": (x > 0).astype(int)}).to_parquet(root / "data.parquet")
    >>> _ = (root / "retrainer.yaml").write_text(yaml.safe_dump({"pipelines": [{
    ...     "name": "toy", "target": "y", "features": ["x"], "metrics": ["accuracy"],
    ...     "source": {"kind": "parquet", "url": "data.parquet", "time_column": "ts"},
    ...     "model": {"estimator": "sklearn.linear_model:LogisticRegression"},
    ...     "blessing": {"holdout": 0.25, "rules": [{"metric": "accuracy", "min": 0.5}],
    ...                  "sanity": {"enabled": False}}}]}))
    >>> _ = (root / "backtest.yaml").write_text(yaml.safe_dump({
    ...     "project": "retrainer.yaml", "warm_start": 0.5, "select_until": 0.5,
    ...     "executor": {"kind": "inline"}, "degradation": {"enabled": False},
    ...     "policies": [{"name": "never"},
    ...                  {"name": "weekly", "triggers": [{"schedule": "0 0 * * MON"}]}]}))
    >>> result = run_backtest(root / "backtest.yaml", root / "out")
    >>> [p.name for p in result.results.policies]
    ['never', 'weekly']
    >>> result.json_path.name, result.report.exists()
    ('results.json', True)
    """
    from retrainer.engine.backtest.report import write_backtest_report

    t0 = time.perf_counter()
    if isinstance(config, BacktestConfig):
        cfg, path = config, (file or Path.cwd() / "backtest.yaml")
    else:
        cfg, path = load_checked(config)
    replay, raw, project_file = load_replay(cfg, path)
    policies = expand_policies(cfg, replay)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if persist:
        replay.persist = (out / "persist").resolve()
    deg = cfg.degradation
    deg_spec: dict[str, Any] | None = None
    if deg.enabled:
        deg_spec = {
            "every": deg.every,
            "max_age": deg.max_age,
            "window": deg.window.model_dump(exclude_none=True) if deg.window else None,
        }
    runs, scores, cached = run_policies(
        replay,
        policies,
        executor=cfg.executor.kind,
        max_workers=workers or cfg.executor.max_workers,
        address=cfg.executor.address,
        cache_dir=out / ".cache" if cfg.cache and not persist else None,
        degradation=deg_spec,
        progress=progress,
    )
    cost = CostModel(
        per_retrain=cfg.cost.per_retrain,
        per_cpu_second=cfg.cost.per_cpu_second,
        per_metric_point=cfg.cost.per_metric_point,
    )
    summary = summarize(
        replay,
        runs,
        policies,
        cost=cost,
        tolerance=cfg.tolerance,
        cpu_tolerance=cfg.cpu_tolerance,
        deg_scores=scores,
        deg_window=deg_spec["window"] if deg_spec else None,
        recommend_baselines=cfg.recommend_baselines,
    )
    results = dataclasses.replace(
        summary,
        seconds=round(time.perf_counter() - t0, 2),
        cached_policies=cached,
        project=str(project_file),
    )
    recommended = recommended_config(raw, replay.name, policy_block(results.recommended.params))
    # root: the project's folder, so the file runs as is from here (its paths are relative)
    recommended = {
        "root": str(replay.root),
        **{k: v for k, v in recommended.items() if k != "root"},
    }
    header = (
        f"# retrainer.yaml with the policy the backtest recommends for {replay.name}:\n"
        f"# {results.recommended.name}\n"
        f"# {results.recommended.reason}\n"
        f"# 'retrainer daemon -c {out / 'recommended.yaml'}' runs it as is on the project's\n"
        "# files and stores (root: below); put in place of your retrainer.yaml, it needs no root.\n"
    )
    yaml_path = out / "recommended.yaml"
    write_file_atomically(
        yaml_path, (header + yaml.safe_dump(recommended, sort_keys=False)).encode()
    )
    json_path = out / "results.json"
    write_file_atomically(json_path, dumps(results.to_json(), indent=1).encode())
    report, png = write_backtest_report(results, out)
    return BacktestResult(
        results=results,
        out_dir=out,
        report=report,
        png=png,
        json_path=json_path,
        yaml_path=yaml_path,
        cached=cached,
    )

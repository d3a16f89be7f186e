"""The backtest: which retraining policy is worth its cost, measured on history.

``retrainer backtest --config backtest.yaml --out DIR`` replays the pipeline's data through
every candidate policy with the production controller (:mod:`retrainer.engine.backtest.replay`), in
parallel, then:

- scores each policy prequentially (each model on the batches it served) on the whole period,
  the selection part (before ``select_until``) and the held-out part (after it);
- counts retrains and the training CPU seconds (process time around each fit);
- draws the Pareto front of cost against the metric, and gives the difference between the
  recommended policy and each other one as a 95% bootstrap interval over batches;
- measures the degradation curve: models trained along the stream, kept frozen and scored by
  age, against the always-retrained control (age 0);
- recommends a policy **chosen on the selection part only** and reports its held-out scores,
  and writes it out as a ``retrainer.yaml`` that ``retrainer daemon`` runs as is.

Each policy's replay is cached under ``DIR/.cache`` by a hash of everything it depends on
(the data, the pipeline, the policy, the replay settings, retrainer's version), so a re-run
only computes the policies that changed.

=================  =============================================================================
module             what it holds
=================  =============================================================================
``grid``           the replay a backtest.yaml describes, the policies (listed, grids, defaults)
``execute``        the policies run (cached or replayed) on one executor path
``cache``          the cache key (one hash) and the on-disk cache
``summary``        the runs measured into the summary (the rules that choose are in core)
``results``        the typed results (``results.json``'s content)
``report``         the HTML report and the PNG chart
``run``            :func:`run_backtest`, which does all of it
=================  =============================================================================
"""

from retrainer.engine.backtest.cache import CACHE_VERSION, PolicyCache, cache_key
from retrainer.engine.backtest.execute import Progress, frozen_model_scores, run_policies
from retrainer.engine.backtest.grid import (
    default_policies,
    describe_policy,
    describe_trigger,
    describe_window,
    expand_policies,
    load_replay,
)
from retrainer.engine.backtest.results import (
    BacktestResult,
    BacktestSummary,
    Comparison,
    Dataset,
    Degradation,
    FailedPolicy,
    PolicyResult,
    RecommendedPolicy,
    Series,
)
from retrainer.engine.backtest.run import run_backtest
from retrainer.engine.backtest.summary import recommended_config, summarize

__all__ = [
    "CACHE_VERSION",
    "BacktestResult",
    "BacktestSummary",
    "Comparison",
    "Dataset",
    "Degradation",
    "FailedPolicy",
    "PolicyCache",
    "PolicyResult",
    "Progress",
    "RecommendedPolicy",
    "Series",
    "cache_key",
    "default_policies",
    "describe_policy",
    "describe_trigger",
    "describe_window",
    "expand_policies",
    "frozen_model_scores",
    "load_replay",
    "recommended_config",
    "run_backtest",
    "run_policies",
    "summarize",
]

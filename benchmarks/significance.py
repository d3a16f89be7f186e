"""The gate's paired tests against reference implementations, and their time (issue 20).

For each test of :mod:`retrainer.core.significance`, on seeded synthetic holdouts (a candidate
and a champion scoring the same rows, with a small real difference), over ``--repeat`` data sets:

- McNemar exact vs ``scipy.stats.binomtest(b, b + c, 1/2, alternative="greater")``;
- DeLong (midrank, Sun & Xu) vs the textbook structural components (every positive-negative
  pair, O(m n): on 10k rows only, it needs 2.4e9 pairs at 100k) and ``sklearn`` for the AUCs;
- paired t vs ``scipy.stats.ttest_rel(alternative="greater")``;
- paired bootstrap (2,000 resamples) vs ``scipy.stats.bootstrap(paired, percentile)``: the
  interval's bounds (different random draws: the difference is Monte-Carlo noise), and its
  p-value vs the t-test's (the same null for a mean).

It prints a Markdown table: the largest absolute difference from the reference and the median
time of one test on 10k and 100k rows. DeLong's time grows as n log n; the bootstrap's as
n x resamples, and a bootstrap of a metric without a vectorised form (F1, custom metrics)
calls the metric once per resample. statsmodels is not used (not in the environment).
Tango's score test (McNemar with a margin) has no reference here: it is checked against a
numerical constrained maximum likelihood in ``tests/core/test_significance.py``.

Usage (from the repository root)::

    .venv/bin/python benchmarks/significance.py
    .venv/bin/python benchmarks/significance.py --repeat 10
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score

from retrainer.core.significance import delong, mcnemar, paired_bootstrap, paired_t

SIZES = (10_000, 100_000)


def _timed(fn: Callable[[], Any], repeat: int = 3) -> tuple[Any, float]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return out, statistics.median(times)


def _textbook_delong(positive: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """The one-sided p-value from DeLong's components by their definition, in blocks."""
    comps = []
    for s in (a, b):
        x, y = s[positive], s[~positive]
        v10 = np.empty(len(x))
        v01 = np.zeros(len(y))
        for i in range(0, len(x), 500):
            block = x[i : i + 500, None]
            psi = (block > y[None, :]) + 0.5 * (block == y[None, :])
            v10[i : i + 500] = psi.mean(axis=1)
            v01 += psi.sum(axis=0)
        comps.append((v10, v01 / len(x)))
    m, n = len(comps[0][0]), len(comps[0][1])
    s10 = np.cov(np.vstack([comps[0][0], comps[1][0]]))
    s01 = np.cov(np.vstack([comps[0][1], comps[1][1]]))
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / n
    diff = roc_auc_score(positive, a) - roc_auc_score(positive, b)
    return float(stats.norm.sf(diff / np.sqrt(var)))


def _data(seed: int, n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    shared = rng.normal(0, 1, n)
    a = y * 1.0 + shared + rng.normal(0, 0.6, n)
    b = y * 1.0 + shared + rng.normal(0, 0.65, n)
    loss_b = rng.exponential(1.0, n)
    return {
        "y": y,
        "a": a,
        "b": b,
        "correct_a": (a > 0.5) == y,
        "correct_b": (b > 0.5) == y,
        "improvement": loss_b - loss_b * rng.normal(0.997, 0.2, n),
    }


def _mean_of(values: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    def statistic(index: np.ndarray) -> np.ndarray:
        return np.asarray(values[index].mean(axis=1))

    return statistic


def _runs(d: dict[str, np.ndarray]) -> dict[str, Callable[[], Any]]:
    imp = d["improvement"]
    return {
        "McNemar exact": lambda: mcnemar(d["correct_a"], d["correct_b"]),
        "Tango score (margin 0.01)": lambda: mcnemar(d["correct_a"], d["correct_b"], margin=0.01),
        "DeLong": lambda: delong(d["y"], d["a"], d["b"]),
        "paired t": lambda: paired_t(imp),
        "paired bootstrap": lambda: paired_bootstrap(_mean_of(imp), len(imp)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="seeded data sets per test")
    args = parser.parse_args()

    diffs: dict[str, list[float]] = {}
    times: dict[tuple[str, int], float] = {}
    for seed in range(args.repeat):
        d = _data(seed, SIZES[0])
        r = mcnemar(d["correct_a"], d["correct_b"])
        b = int(np.sum(d["correct_a"] & ~d["correct_b"]))
        c = int(np.sum(~d["correct_a"] & d["correct_b"]))
        ref = stats.binomtest(b, b + c, 0.5, alternative="greater").pvalue
        diffs.setdefault("McNemar exact", []).append(abs(r.p_value - ref))
        r = delong(d["y"], d["a"], d["b"])
        ref = _textbook_delong(d["y"], d["a"], d["b"])
        diffs.setdefault("DeLong", []).append(abs(r.p_value - ref))
        r = paired_t(d["improvement"])
        ref = stats.ttest_rel(d["improvement"], np.zeros(len(d["y"])), alternative="greater").pvalue
        diffs.setdefault("paired t", []).append(abs(r.p_value - ref))
        imp = d["improvement"]
        r = paired_bootstrap(_mean_of(imp), len(imp), seed=seed)
        ref_ci = stats.bootstrap(
            (imp,), np.mean, n_resamples=2000, confidence_level=0.9, method="percentile",
            random_state=np.random.default_rng(1000 + seed),
        ).confidence_interval  # fmt: skip
        diffs.setdefault("paired bootstrap", []).append(
            max(abs(r.low - ref_ci.low), abs(r.high - ref_ci.high))
        )
        diffs.setdefault("paired bootstrap p vs t", []).append(
            abs(r.p_value - paired_t(imp).p_value)
        )

    for n in SIZES:
        for name, fn in _runs(_data(99, n)).items():
            times[(name, n)] = _timed(fn)[1]

    print(f"{args.repeat} seeded data sets of {SIZES[0]:,} rows for the reference comparison\n")
    print("| test | reference | max abs difference | 10k rows | 100k rows |")
    print("|---|---|---:|---:|---:|")
    references = {
        "McNemar exact": ("scipy binomtest, p-value", "McNemar exact"),
        "Tango score (margin 0.01)": ("numerical constrained MLE (tests)", None),
        "DeLong": ("textbook O(mn) components, p-value", "DeLong"),
        "paired t": ("scipy ttest_rel, p-value", "paired t"),
        "paired bootstrap": ("scipy bootstrap, 90% CI bounds", "paired bootstrap"),
    }
    for name, (ref, key) in references.items():
        worst = f"{max(diffs[key]):.1e}" if key else "see tests"
        cells = " | ".join(f"{times[(name, n)] * 1000:.1f} ms" for n in SIZES)
        print(f"| {name} | {ref} | {worst} | {cells} |")
    worst = max(diffs["paired bootstrap p vs t"])
    print(f"\npaired bootstrap p-value vs the t-test's (same null): max abs difference {worst:.3f}")


if __name__ == "__main__":
    main()

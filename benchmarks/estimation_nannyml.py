"""NannyML's side of benchmarks/estimation.py; runs in the bench venv (.venv-bench: NannyML 0.13.1
needs pandas < 3). Not meant to be run by hand: estimation.py calls it.

For each data set it writes ``<out>/<name>.reference.parquet`` and ``<out>/<name>.analysis.parquet``
(features, the model's ``y_pred``/``y_pred_proba`` and ``y_true``: the same rows and predictions
retrainer is given) and runs NannyML's CBPE or DLE on chunks of ``chunk_size`` rows; the
estimates per chunk and the time go to ``<out>/nannyml.json``.

    .venv-bench/bin/python benchmarks/estimation_nannyml.py OUT_DIR CAR_LOAN_PARQUET CHUNK_SIZE
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import nannyml as nml
import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")

CBPE_METRICS = ["accuracy", "f1", "roc_auc"]
DLE_METRICS = ["mae", "rmse"]
REPEAT = 10


def _joined(loader, target: str):
    ref, ana, targets = loader()
    ana = ana.merge(targets, on="id")
    return ref.rename(columns={target: "y_true"}), ana.rename(columns={target: "y_true"})


def _car_loan_file(path: str):
    """The shipped car_loan rows without predictions: a model trained on rows 0..40k, the
    reference is rows 40k..50k, the analysis rows 50k..100k (covariate shift at 75k)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    frame = pd.read_parquet(path).rename(columns={"repaid": "y_true"})
    features = [c for c in frame.columns if c not in ("id", "y_true", "timestamp")]
    X = frame[features].copy()
    for c in ("salary_range", "size_of_downpayment"):
        X[c] = X[c].astype("category")
    X["repaid_loan_on_prev_car"] = X["repaid_loan_on_prev_car"].astype(int)
    model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0)
    model.fit(X.iloc[:40_000], frame["y_true"].iloc[:40_000])
    proba = model.predict_proba(X)[:, 1]
    frame["y_pred_proba"] = proba
    frame["y_pred"] = (proba >= 0.5).astype(int)
    return frame.iloc[40_000:50_000].reset_index(drop=True), frame.iloc[50_000:].reset_index(
        drop=True
    )


def main(out: Path, car_loan: str, chunk_size: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    sets = {
        "synthetic_binary": (
            "cbpe",
            *_joined(nml.datasets.load_synthetic_binary_classification_dataset, "work_home_actual"),
        ),
        "synthetic_car_loan": (
            "cbpe",
            *_joined(nml.datasets.load_synthetic_car_loan_dataset, "repaid"),
        ),
        "car_loan_parquet": ("cbpe", *_car_loan_file(car_loan)),
        "synthetic_car_price": (
            "dle",
            *_joined(nml.datasets.load_synthetic_car_price_dataset, "y_true"),
        ),
    }
    results = {}
    for name, (kind, ref, ana) in sets.items():
        ref.to_parquet(out / f"{name}.reference.parquet")
        ana.to_parquet(out / f"{name}.analysis.parquet")
        features = [
            c
            for c in ref.columns
            if c not in ("id", "y_true", "y_pred", "y_pred_proba", "timestamp", "period")
        ]
        if kind == "cbpe":
            calc = nml.CBPE(
                y_pred_proba="y_pred_proba",
                y_pred="y_pred",
                y_true="y_true",
                metrics=CBPE_METRICS,
                chunk_size=chunk_size,
                problem_type="classification_binary",
            )
            metrics = CBPE_METRICS
        else:
            calc = nml.DLE(
                feature_column_names=features,
                y_pred="y_pred",
                y_true="y_true",
                metrics=DLE_METRICS,
                chunk_size=chunk_size,
            )
            metrics = DLE_METRICS
        t0 = time.perf_counter()
        calc.fit(ref)
        fit_s = time.perf_counter() - t0
        analysis = ana.drop(columns=["y_true"])
        calc.estimate(analysis.iloc[:chunk_size])  # warm-up (lazy imports), as for retrainer
        times = []
        for _ in range(REPEAT):  # the fastest pass: the machine is shared
            t0 = time.perf_counter()
            est = calc.estimate(analysis).filter(period="analysis").to_df()
            times.append(time.perf_counter() - t0)
        estimate_s = min(times)
        chunks = []
        for _, row in est.iterrows():
            chunks.append(
                {
                    "start": int(row[("chunk", "start_index")]),
                    "end": int(row[("chunk", "end_index")]) + 1,
                    **{
                        m: {
                            "value": float(row[(m, "value")]),
                            "low": float(row[(m, "lower_confidence_boundary")]),
                            "high": float(row[(m, "upper_confidence_boundary")]),
                        }
                        for m in metrics
                    },
                }
            )
        results[name] = {
            "kind": kind,
            "metrics": metrics,
            "features": features,
            "fit_s": fit_s,
            "estimate_s": estimate_s,
            "chunks": chunks,
        }
        print(
            f"{name}: {len(chunks)} chunks, fit {fit_s:.2f}s, estimate {estimate_s:.2f}s",
            file=sys.stderr,
        )
    (out / "nannyml.json").write_text(
        json.dumps({"nannyml": nml.__version__, "numpy": np.__version__, "sets": results}, indent=1)
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]))

"""Performance estimated before the labels arrive: retrainer's CBPE/DLE against NannyML 0.13.1.

On NannyML's own synthetic data sets (binary classification, car loan, car price) and on the
shipped car_loan data (covariate shift at row 75,000; a model trained here on rows 0..40k,
reference rows 40k..50k, analysis rows 50k..100k), per chunk of 5,000 rows: the absolute error
of the estimate against the realized metric (mean over chunks), whether the realized metric
falls in the tool's interval, and the time per chunk. Both tools get the same rows, predictions
and chunks; NannyML runs in the bench venv (``bash benchmarks/setup.sh``) as a subprocess.

    PYTHONPATH=src .venv/bin/python benchmarks/estimation.py [--bench-python .venv-bench/bin/python]

Timing: "fit" is the calibration / loss models on the reference; "per chunk" is the estimate of
every metric with its interval on one chunk (NannyML: ``estimate()`` over the analysis set
divided by its chunks, so its chunking overhead is counted; retrainer: the core functions on
each chunk's arrays, plus the calibration map or the loss models' prediction). Each tool
estimates one chunk first, untimed (lazy imports), and the fastest of 10 passes is kept (the
machine is shared: fewer passes left the figures 2x apart between runs).

Error is the mean over chunks of |estimated - realized|; "in interval" is the share of chunks
whose realized value lies in the tool's interval. The intervals differ in kind: retrainer's is
sampling noise only (what the realized metric would scatter by if the calibration held),
NannyML's is three standard errors over reference chunks; so retrainer's is narrower and
covers less when the calibration is off.

The estimators: CBPE is NannyML's (isotonic calibration, expected confusion matrix, expected
ROC curve). Per chunk it is one sort of the scores (the calibration map is monotone and the
predictions are a threshold on the score, so the predicted positives are a suffix of the
sorted scores), then a handful of sums. DLE's loss models are two scikit-learn
HistGradientBoostingRegressors of 10 trees of up to 255 leaves (NannyML: LightGBM, 100 x 31);
that shape was picked on the car price data, and the good shapes differ by less than the
chunks' noise. Their prediction costs about 0.27 ms per tree per 5,000 rows on one thread,
nearly whatever the tree's size (10 x 31 costs what 10 x 255 does), so the number of trees
sets DLE's time per chunk. At 060d92a, of DLE's ~6-7 ms per chunk: 0.3 ms the chunk's column
selection, 0.4 ms the float matrix (text codes by Arrow's lookup), 0.03 ms the estimate and
5.2-5.4 ms the two loss models' prediction on one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from retrainer.core.estimation import estimate_classification, estimate_regression
from retrainer.engine.monitoring.estimate import Calibrator, LossModel

HERE = Path(__file__).resolve().parent
CAR_LOAN = Path("/work/shared/datasets/car_loan.parquet")
CHUNK = 5000
REPEAT = 10


def _realized(kind: str, chunk: pd.DataFrame) -> dict[str, float]:
    y, yhat = chunk["y_true"].to_numpy(dtype=float), chunk["y_pred"].to_numpy(dtype=float)
    if kind == "dle":
        err = y - yhat
        return {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err**2)))}
    tp = float(y @ yhat)
    return {
        "accuracy": float(np.mean(y == yhat)),
        "f1": 2 * tp / float(y.sum() + yhat.sum()),
        "roc_auc": float(roc_auc_score(y, chunk["y_pred_proba"])),
    }


def _retrainer(kind: str, ref: pd.DataFrame, ana: pd.DataFrame, features: list[str], spans):
    t0 = time.perf_counter()
    if kind == "cbpe":
        cal = Calibrator.fit(ref["y_pred_proba"].to_numpy(), ref["y_true"].to_numpy())
    else:
        loss = LossModel.fit(ref[features], ref["y_pred"].to_numpy(), ref["y_true"].to_numpy())
    fit_s = time.perf_counter() - t0
    # the chunk's columns as numpy arrays, sliced per chunk (views): no pandas per chunk
    score_all = ana["y_pred_proba"].to_numpy(dtype=float) if kind == "cbpe" else None
    pred_all = ana["y_pred"].to_numpy()
    passes = []
    for _ in range(REPEAT):  # the fastest pass: the machine is shared
        out, spent = [], 0.0
        for i, (start, end) in enumerate([spans[0], *spans]):  # the first, untimed: a warm-up
            t0 = time.perf_counter()
            if kind == "cbpe":
                score = score_all[start:end]
                est = estimate_classification(
                    score=score, calibration=cal, y_pred=pred_all[start:end]
                )
            else:
                abs_err, sq_err = loss.predict(ana.iloc[start:end][features], pred_all[start:end])
                est = estimate_regression(abs_err, sq_err)
            if i:
                spent += time.perf_counter() - t0
                out.append({m: e.to_dict() for m, e in est.items()})
        passes.append(spent)
    spent = min(passes)
    return fit_s, spent / len(spans), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bench-python", default=str(HERE.parent / ".venv-bench/bin/python"))
    parser.add_argument("--car-loan", default=str(CAR_LOAN))
    parser.add_argument(
        "--nannyml-out", help="a directory estimation_nannyml.py wrote: reuse it, skip NannyML"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.nannyml_out or tmp)
        env = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"}
        if not args.nannyml_out:
            subprocess.run(
                [args.bench_python, str(HERE / "estimation_nannyml.py"), tmp, args.car_loan,
                 str(CHUNK)],
                check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        nml = json.loads((work / "nannyml.json").read_text())
        rows = []
        for name, res in nml["sets"].items():
            kind, metrics = res["kind"], res["metrics"]
            ref = pd.read_parquet(work / f"{name}.reference.parquet")
            ana = pd.read_parquet(work / f"{name}.analysis.parquet")
            spans = [(c["start"], c["end"]) for c in res["chunks"]]
            fit_s, per_chunk, ours = _retrainer(kind, ref, ana, res["features"], spans)
            realized = [_realized(kind, ana.iloc[s:e]) for s, e in spans]
            for m in metrics:
                truth = np.array([r[m] for r in realized])
                for tool, chunks, fit, chunk_s in (
                    ("retrainer", ours, fit_s, per_chunk),
                    ("nannyml", res["chunks"], res["fit_s"], res["estimate_s"] / len(spans)),
                ):
                    value = np.array([c[m]["value"] for c in chunks], dtype=float)
                    low = np.array([c[m]["low"] for c in chunks], dtype=float)
                    high = np.array([c[m]["high"] for c in chunks], dtype=float)
                    rows.append(
                        {
                            "data": name,
                            "metric": m,
                            "tool": tool,
                            "chunks": len(spans),
                            "mean_abs_error": float(np.mean(np.abs(value - truth))),
                            "in_interval": float(np.mean((low <= truth) & (truth <= high))),
                            "fit_s": fit,
                            "ms_per_chunk": chunk_s * 1000,
                        }
                    )
    table = pd.DataFrame(rows)
    wide = table.pivot_table(
        index=["data", "metric"],
        columns="tool",
        values=["mean_abs_error", "in_interval", "ms_per_chunk"],
        sort=False,
    )
    pd.set_option("display.width", 200)
    print(wide.round(4).to_string())
    speed = table.pivot_table(index="data", columns="tool", values="ms_per_chunk", sort=False)
    fit = table.pivot_table(index="data", columns="tool", values="fit_s", sort=False)
    print("\nms per chunk (all metrics with intervals), and fit seconds:")
    print(pd.concat({"ms_per_chunk": speed, "fit_s": fit}, axis=1).round(3).to_string())
    print(f"\nnannyml {nml['nannyml']}; chunks of {CHUNK} rows; python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()

"""NOAA weather with the season as features: the benchmark's logistic regression on the 8
readings plus the day of the year as a point on the unit circle (``season_sin``,
``season_cos``), derived in the source since a model cannot read a timestamp.

A variant of ``../noaa_weather`` that ``benchmarks/policies.py --datasets
noaa_weather_seasonal`` runs to see whether seasonal features close the gap to the oracle
under a 7-batch label delay (docs/benchmarks.md).
"""

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

DATA = Path(__file__).resolve().parents[2] / "data" / "noaa_weather.parquet"


def load(start, end):
    """The rows with ``start <= timestamp < end`` (None: unbounded), with the season."""
    frame = pd.read_parquet(DATA)
    keep = np.ones(len(frame), dtype=bool)
    if start is not None:
        keep &= (frame["timestamp"] >= start).to_numpy()
    if end is not None:
        keep &= (frame["timestamp"] < end).to_numpy()
    frame = frame[keep]
    angle = 2 * np.pi * frame["timestamp"].dt.dayofyear.to_numpy() / 365.25
    return frame.assign(season_sin=np.sin(angle), season_cos=np.cos(angle))


def train(data, params):
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(data[params["features"]], data[params["target"]])
    return model

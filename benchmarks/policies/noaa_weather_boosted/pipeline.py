"""NOAA weather with a gradient-boosted model: scikit-learn's HistGradientBoostingClassifier
(its defaults, a fixed seed) on the 8 readings instead of the benchmark's logistic regression.

A variant of ``../noaa_weather`` that ``benchmarks/policies.py --datasets
noaa_weather_boosted`` runs to see whether a model that learns interactions (the readings'
meaning changes with the season) closes the gap to the oracle under a 7-batch label delay
(docs/benchmarks.md).
"""

from sklearn.ensemble import HistGradientBoostingClassifier


def train(data, params):
    model = HistGradientBoostingClassifier(random_state=0)
    model.fit(data[params["features"]], data[params["target"]])
    return model

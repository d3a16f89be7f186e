"""The NOAA weather benchmark pipeline: a scaled logistic regression on the 8 readings.

retrainer calls ``train(data, params)`` with the training rows of the window (all columns)
and ``params`` = the pipeline's ``params`` plus ``features`` and ``target``.
"""

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def train(data, params):
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(data[params["features"]], data[params["target"]])
    return model

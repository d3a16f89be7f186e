"""The elec2 example pipeline: a scaled logistic regression.

retrainer calls ``train(data, params)`` with the training rows of the window (all columns)
and ``params`` = the pipeline's ``params`` from retrainer.yaml plus ``features`` and ``target``.
It must return a fitted model with ``predict`` (and ``predict_proba`` for roc_auc/log_loss).
"""

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def train(data, params):
    model = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=params["C"], class_weight=params["class_weight"], max_iter=1000),
    )
    model.fit(data[params["features"]], data[params["target"]])
    return model

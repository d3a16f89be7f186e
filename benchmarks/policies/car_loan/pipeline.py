"""The car-loan benchmark pipeline: a scaled logistic regression.

retrainer calls ``train(data, params)`` with the training rows of the window (all columns)
and ``params`` = the pipeline's ``params`` plus ``features`` and ``target``. The features are
the numeric and boolean columns (see retrainer.yaml): the two string columns are left out.
"""

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def train(data, params):
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(data[params["features"]], data[params["target"]])
    return model

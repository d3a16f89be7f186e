"""The ``mlflow:`` section of ``retrainer.yaml`` and the ``model: {mlflow: ...}`` key.

Kept apart from :mod:`retrainer.integrations.mlflow` so that validating a config never imports
MLflow (an optional extra: ``pip install 'retrainer[mlflow]'``).

Examples
--------
>>> MlflowConfig(tracking_uri="sqlite:///mlflow.db").experiment
'retrainer'
>>> check_model_uri("models:/churn@champion")
'models:/churn@champion'
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

__all__ = ["MlflowConfig", "MlflowModelUri", "check_model_uri"]

# what mlflow.pyfunc/sklearn load_model take: a registry URI (by alias or by version), a run's
# artifact, or any artifact location (file:, s3:, ...)
_MODEL_URI = re.compile(r"^(models:/[^/@]+(@[^/]+|/[^/]+)|runs:/[^/]+/.+|[a-z][a-z0-9+.-]*://.+)$")

_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/@]*:[^/@]*@")


def check_model_uri(value: str) -> str:
    """``value`` if it is an MLflow model URI, else ``ValueError`` saying what is expected."""
    if not isinstance(value, str) or not _MODEL_URI.match(value):
        raise ValueError(
            "must be an MLflow model URI: 'models:/<name>@<alias>', 'models:/<name>/<version>' "
            "or 'runs:/<run_id>/<path>'"
        )
    return value


MlflowModelUri = Annotated[str, AfterValidator(check_model_uri)]
"""The type of ``model.mlflow`` in a pipeline: a string :func:`check_model_uri` accepts."""


class MlflowConfig(BaseModel):
    """Mirror what retrainer does to an MLflow tracking server (``retrainer mlflow sync``, and
    the daemon each tick): runs, model versions with their lineage, and alias moves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tracking_uri: str | None = None
    """``http://host:5000``, ``sqlite:///mlflow.db``...; unset: MLflow's own
    ``MLFLOW_TRACKING_URI``. Credentials come from MLflow's environment variables
    (``MLFLOW_TRACKING_TOKEN``, ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``), never from here."""
    experiment: str = Field(default="retrainer", min_length=1)
    """The MLflow experiment the runs go to (created when missing)."""
    artifact_location: str | None = None
    """Where a created experiment keeps its artifacts (the runs' evidence files); the tracking
    server's default when unset."""
    model_prefix: str = ""
    """Registered models are named ``<model_prefix><pipeline>``."""
    pipelines: list[str] | None = None
    """Mirror only these pipelines (all when unset)."""
    timeout: float = Field(default=10.0, gt=0)
    """Seconds per HTTP request to the tracking server (``MLFLOW_HTTP_REQUEST_TIMEOUT``)."""
    max_retries: int = Field(default=1, ge=0)
    """HTTP retries per request (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``): low, so that a server
    that is down costs the daemon's tick seconds, not minutes; the next sync retries."""

    @field_validator("tracking_uri")
    @classmethod
    def _no_secret(cls, v: str | None) -> str | None:
        if v is not None and _USERINFO.match(v):
            raise PydanticCustomError(  # the value is a secret: never repeated
                "retrainer_secret",
                "the tracking URI must not carry credentials (user:secret@); set "
                "MLFLOW_TRACKING_URI (or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD) "
                "in the environment",
            )
        return v

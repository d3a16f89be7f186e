"""Tests of the optional integrations.

The heavy ones (airflow, prefect, mlflow) live in a folder each and run in a virtualenv of
their own (``bash .ci/integration.sh <name>``); in the project's .venv they skip.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def require(module: str, integration: str) -> ModuleType:
    """``module`` imported, or the calling test module skipped: unless the tests run in that
    integration's own venv (``RETRAINER_INTEGRATION=<integration>``), where a missing library
    is a failure, not a silent skip."""
    try:
        return importlib.import_module(module)
    except ImportError:
        if os.environ.get("RETRAINER_INTEGRATION") == integration:
            raise
        pytest.skip(
            f"{module} is not installed: run `bash .ci/integration.sh {integration}`",
            allow_module_level=True,
        )

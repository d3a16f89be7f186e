"""Shared fixtures: small drifting data and project configs on in-memory or file stores.

Thin wrappers of :mod:`retrainer.testing`, kept for the many tests that import them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from retrainer import testing
from retrainer.testing import drifting_frame, pipeline_spec

ELEC2 = Path(__file__).resolve().parents[1] / "src/retrainer/examples/elec2/data/elec2.parquet"


def make_frame(n: int = 600, seed: int = 0, start: str = "2024-01-01") -> pd.DataFrame:
    """A binary problem over hourly rows; the label depends on x1 + x2 with noise."""
    return drifting_frame(n, seed, start)


def pipeline_config(**overrides: Any) -> dict[str, Any]:
    """The pipeline mapping of the tests (``retrainer.testing.pipeline_spec``)."""
    return pipeline_spec(**overrides)


def write_project(root: Path, frame: pd.DataFrame | None = None, **overrides: Any) -> Path:
    """A project folder with data.parquet and retrainer.yaml; returns the folder."""
    return testing.write_project(root, frame, **overrides)


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    return write_project(tmp_path / "proj")

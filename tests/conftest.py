"""Shared fixtures: small drifting data and project configs on in-memory or file stores.

Thin wrappers of :mod:`retrainer.testing`, kept for the many tests that import them.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from retrainer import testing
from retrainer.testing import drifting_frame, pipeline_spec

# pytest-xdist's workers start with COLUMNS=80, which makes the CLI's Rich consoles (built at
# import) wrap at 80 columns instead of their 120 off a terminal: run as a single process does
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.pop("COLUMNS", None)

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


_WATCHED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@pytest.fixture(autouse=True)
def _signal_handlers_restored() -> Iterator[None]:
    """Fail a test that leaves SIGINT/SIGTERM handlers changed (pytest would then ignore
    Ctrl-C, as after an in-process ``daemon`` did), after putting them back so the tests
    after it are not affected."""
    before = {sig: signal.getsignal(sig) for sig in _WATCHED_SIGNALS}
    yield
    changed = [sig.name for sig in _WATCHED_SIGNALS if signal.getsignal(sig) is not before[sig]]
    for sig, handler in before.items():
        signal.signal(sig, handler)
    if changed:
        pytest.fail(f"the test left the {' and '.join(changed)} handler(s) changed")


from tests.s3 import s3_bucket, s3_endpoint  # noqa: E402, F401  (the moto S3 fixtures)

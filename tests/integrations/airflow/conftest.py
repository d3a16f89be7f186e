"""Airflow's home (config, SQLite metadata DB, dags folder) in a temporary folder.

Airflow reads its configuration when it is first imported, so the environment is set here,
before the test modules import it.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator

import pytest

if importlib.util.find_spec("airflow") is not None and "AIRFLOW_HOME" not in os.environ:
    _home = tempfile.mkdtemp(prefix="retrainer-airflow-")
    atexit.register(shutil.rmtree, _home, ignore_errors=True)
    os.environ.update(
        {
            "AIRFLOW_HOME": _home,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": f"{_home}/dags",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_home}/airflow.db",
        }
    )


@pytest.fixture(autouse=True)
def _airflow_sigterm_handler_undone() -> Iterator[None]:
    """``dag.test()`` runs tasks in this process, and Airflow's task runner installs its own
    SIGTERM handler (to kill a task on request): put pytest's back after each test."""
    before = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, before)

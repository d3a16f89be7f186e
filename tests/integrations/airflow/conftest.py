"""Airflow's home (config, SQLite metadata DB, dags folder) in a temporary folder.

Airflow reads its configuration when it is first imported, so the environment is set here,
before the test modules import it.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import tempfile

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

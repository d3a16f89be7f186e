"""Without Airflow, the integration imports and says in one line which extra to install."""

from __future__ import annotations

import sys

import pytest

from retrainer.extras import MissingExtraError


def test_build_dags_without_airflow_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path):
    from retrainer.integrations import airflow

    for name in [m for m in sys.modules if m == "airflow" or m.startswith("airflow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "airflow", None)  # import airflow -> ImportError
    with pytest.raises(MissingExtraError) as info:
        airflow.build_dags(tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert "pip install 'retrainer[airflow]'" in message

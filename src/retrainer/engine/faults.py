"""Fault points: where a test or the chaos campaign makes a process die as ``kill -9`` would.

``RETRAINER_FAULT=<point>`` in the environment makes :func:`fault_point` ``<point>`` exit at
once with status 137, without cleanup. The run's steps are listed in
``retrainer.engine.runs.run.FAULT_POINTS``; a rollout's promotion or rollback has
``rollout_after_alias`` (between the alias move and the state write).
"""

from __future__ import annotations

import os

__all__ = ["FAULT_ENV", "fault_point"]

FAULT_ENV = "RETRAINER_FAULT"


def fault_point(name: str) -> None:
    """Die abruptly (like ``kill -9``) when ``RETRAINER_FAULT`` names this point."""
    if os.environ.get(FAULT_ENV) == name:
        os._exit(137)

"""The names the engine's use cases share in the metadata store: aliases and state keys.

One module so that a run, the monitor, the controller and the registry agree on them without
importing one another (the run reads the monitor's concept-change record, the monitor reads
the alias a run moves).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from retrainer.core.clock import as_utc
from retrainer.core.types import CHAMPION

__all__ = [
    "ALERTS_STATE_KEY",
    "CHAMPION",
    "CONCEPT_STATE_KEY",
    "MANUAL_STATE_KEY",
    "MONITOR_STATE_KEY",
    "POLICY_STATE_KEY",
    "last_change",
]

CONCEPT_STATE_KEY = "concept_drift"
"""The monitor's concept-drift detector, what it has fed and its last detection."""
POLICY_STATE_KEY = "policy"
"""The controller's trigger and guard states."""
MANUAL_STATE_KEY = "manual"
"""Run requests waiting for the controller (``retrainer run --queue``)."""
ALERTS_STATE_KEY = "alerts"
"""What the alerter sent, for de-duplication and rate limits."""
MONITOR_STATE_KEY = "monitor/recent"
"""The monitor's last windows in brief (metrics, drift verdict): what the dashboard's overview
reads in one small row instead of parsing every stored window."""


def last_change(store: Any, pipeline: str) -> datetime | None:
    """The newest concept change the monitor detected for ``pipeline`` (None: none yet).

    What a ``since_change`` window starts from; kept across model versions (a new champion
    restarts the detector, not the record of the change).

    Examples
    --------
    >>> from retrainer.adapters.metadata.memory import InMemoryMetadataStore
    >>> store = InMemoryMetadataStore()
    >>> last_change(store, "churn") is None
    True
    >>> at = datetime.fromisoformat("2024-03-01T00:00:00+00:00")
    >>> _ = store.ensure_pipeline("churn", "hash", at)
    >>> _ = store.put_state("churn", CONCEPT_STATE_KEY,
    ...                     {"last_detection": "2024-02-27T13:00:00+00:00"}, at=at)
    >>> last_change(store, "churn")
    datetime.datetime(2024, 2, 27, 13, 0, tzinfo=datetime.timezone.utc)
    """
    stored = store.get_state(pipeline, CONCEPT_STATE_KEY)
    value = stored[0].get("last_detection") if stored is not None else None
    if not value:
        return None
    import pandas as pd  # parses every ISO form the monitor wrote; imported only when needed

    return as_utc(pd.Timestamp(value).to_pydatetime())

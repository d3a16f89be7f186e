"""The monitor's last windows in brief, kept in the pipeline's state for the dashboard.

The overview shows, for every pipeline, its online metric over the last days and whether the
last window drifted. Reading that from the stored monitor windows would parse each window's
whole summary (drift rows, histograms) for every pipeline on every refresh; instead each
monitor run folds its figures into one small state value (:data:`MONITOR_STATE_KEY`): the
performance windows by start (a later run, with more labels arrived, replaces an earlier
figure) and the drift verdict of each run, the newest :data:`KEEP` of each.

Examples
--------
>>> from retrainer.adapters.metadata.memory import InMemoryMetadataStore
>>> from datetime import UTC, datetime
>>> store = InMemoryMetadataStore()
>>> at = datetime(2024, 1, 8, tzinfo=UTC)
>>> _ = store.ensure_pipeline("p", "h", at)
>>> remember(store, "p", at=at, performance=[{"start": "2024-01-07T00:00:00+00:00",
...     "end": "2024-01-08T00:00:00+00:00", "n_rows": 90, "n_labelled": 80, "status": "ok",
...     "metrics": [{"name": "accuracy", "value": 0.75, "n": 80, "status": "ok"}]}],
...     drift={"end": at.isoformat(), "drifted": False, "columns": [], "share": 0.0})
>>> recent(store, "p")["windows"][0]["metrics"]
{'accuracy': 0.75}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from retrainer.engine.state import MONITOR_STATE_KEY

__all__ = ["KEEP", "recent", "remember"]

KEEP = 90
"""How many performance windows and drift verdicts the brief keeps."""


def recent(store: Any, pipeline: str) -> dict[str, list[dict[str, Any]]]:
    """The brief of ``pipeline``: ``{"windows": [...], "drift": [...]}``, oldest first (both
    empty when the monitor never ran since this brief exists)."""
    stored = store.get_state(pipeline, MONITOR_STATE_KEY)
    value = stored[0] if stored is not None else {}
    return {"windows": list(value.get("windows", [])), "drift": list(value.get("drift", []))}


def remember(
    store: Any,
    pipeline: str,
    *,
    at: datetime,
    performance: Sequence[Mapping[str, Any]],
    drift: Mapping[str, Any] | None,
) -> None:
    """Fold one monitor run into the brief: ``performance`` as ``WindowPerformance.to_dict()``
    gives them, ``drift`` as ``{"end", "drifted", "columns", "share"}`` (None: not checked)."""
    brief = recent(store, pipeline)
    windows = {w["start"]: w for w in brief["windows"]}
    for w in performance:
        windows[w["start"]] = {
            "start": w["start"],
            "end": w["end"],
            "n": w["n_rows"],
            "labelled": w["n_labelled"],
            "metrics": {
                m["name"]: m["value"]
                for m in w["metrics"]
                if m.get("status") == "ok" and m.get("value") is not None
            },
        }
    kept = sorted(windows.values(), key=lambda w: w["start"])[-KEEP:]
    verdicts = brief["drift"] + ([dict(drift)] if drift is not None else [])
    store.put_state(
        pipeline, MONITOR_STATE_KEY, {"windows": kept, "drift": verdicts[-KEEP:]}, at=at
    )

"""What a starting daemon tells its user: pipelines it will never retrain, and a clock behind
the store's state (a replay on a store a wall-clock daemon armed), one line each.

A daemon that says nothing and does nothing looks like a daemon waiting for its next slot; these
checks run once, before the first tick, and never stop the daemon.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from retrainer.core.clock import as_utc
from retrainer.engine.project import Project
from retrainer.engine.state import POLICY_STATE_KEY

__all__ = ["start_warnings"]


def _times(value: Any) -> Iterator[datetime]:
    """The ISO 8601 times (with a date and a time) anywhere in a stored trigger state."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _times(item)
    elif isinstance(value, list):
        for item in value:
            yield from _times(item)
    elif isinstance(value, str) and len(value) >= 16 and value[10:11] == "T":
        try:
            yield as_utc(datetime.fromisoformat(value))
        except ValueError:
            return


def _fmt(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M}"


def start_warnings(project: Project, now: datetime, *, simulated: bool) -> list[str]:
    """One line per reason the daemon starting at ``now`` may do nothing.

    - a pipeline without triggers: the daemon never retrains it by itself;
    - a trigger state written for a later time than ``now`` (a schedule armed by a daemon on the
      wall clock, then a replay with ``--as-of`` on the same store): its slots up to that time
      will not fire;
    - otherwise, a store whose newest event is after ``now``: the replay runs behind its state.

    Examples
    --------
    >>> import tempfile
    >>> from datetime import UTC
    >>> from pathlib import Path
    >>> from retrainer.testing import in_memory_project
    >>> project = in_memory_project(root=Path(tempfile.mkdtemp()))
    >>> [line] = start_warnings(project, datetime(2024, 1, 1, tzinfo=UTC), simulated=True)
    >>> line[:59]
    'pipeline toy has no trigger: this daemon will never retrain'
    """
    from retrainer.engine.control.controller import metric_feed_notes

    now = as_utc(now)
    store = project.store
    clock = f"this daemon's clock ({'--as-of ' if simulated else ''}{_fmt(now)})"
    out: list[str] = []
    ahead = False
    for cfg in project.config.pipelines:
        if not cfg.triggers:
            out.append(
                f"pipeline {cfg.name} has no trigger: this daemon will never retrain it by itself "
                "(only runs asked with 'retrainer run --queue'); add triggers: to its "
                "retrainer.yaml, e.g. - schedule: '@daily'"
            )
            continue
        stored = store.get_state(cfg.name, POLICY_STATE_KEY)
        latest = max(_times(stored[0]), default=None) if stored is not None else None
        if latest is not None and latest > now:
            ahead = True
            out.append(
                f"pipeline {cfg.name}: its triggers were armed for {_fmt(latest)} by a daemon on "
                f"a later clock, after {clock}: what they wait for will not happen before "
                f"{_fmt(latest)}; replay history on a fresh store (another storage.db_url, or "
                "RETRAINER_DB_URL)"
            )
        out += metric_feed_notes(project, cfg.name, now)
    if not ahead:
        newest = store.list_events(limit=1)
        if newest and as_utc(newest[0].at) > now:
            out.append(
                f"the store holds events up to {_fmt(as_utc(newest[0].at))}, after {clock}: this "
                "daemon runs behind the store's state (its runs, models and trigger states); "
                "replay history on a fresh store (another storage.db_url, or RETRAINER_DB_URL)"
            )
    return out

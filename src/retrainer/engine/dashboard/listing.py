"""The events page (the audit trail, filtered and paginated) and the backtests of a project.

Examples
--------
>>> from retrainer.testing import in_memory_project
>>> page = events_page(in_memory_project())
>>> page["items"], page["next_before"]
([], None)
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from retrainer.engine.project import Project
from retrainer.engine.runs.views import event_view

__all__ = ["Backtest", "backtests", "events_page", "find_backtest"]

_SKIP = {".git", ".retrainer", ".venv", "node_modules", "__pycache__", ".cache", "data"}


def events_page(
    project: Project,
    *,
    pipeline: str | None = None,
    kinds: list[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: int | None = None,
    limit: int = 50,
) -> dict[str, Any]:
    """The newest ``limit`` events matching the filters (newest first), with the cursor of
    the next, older page (``before``; None on the last page)."""
    found = project.store.list_events(
        pipeline, since=since, kinds=kinds or None, limit=limit, until=until, before=before
    )
    found.reverse()
    return {
        "items": [event_view(e) for e in found],
        "next_before": found[-1].id if len(found) == limit and found else None,
    }


Backtest = dict[str, Any]


def _backtest(path: Path, root: Path) -> Backtest | None:
    try:
        with path.open(encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or "policies" not in data or "recommended" not in data:
        return None
    folder = path.parent
    rec = data.get("recommended") or {}
    return {
        "id": folder.relative_to(root).as_posix(),
        "path": str(folder),
        "title": data.get("title") or folder.name,
        "dataset": data.get("dataset"),
        "metric": data.get("metric"),
        "policies": len(data.get("policies") or []),
        "recommended": rec.get("name"),
        "reason": rec.get("reason"),
        "seconds": data.get("seconds"),
        "written": datetime.fromtimestamp(path.stat().st_mtime).astimezone().isoformat(),
        "report": (folder / "report.html").is_file(),
    }


def backtests(project: Project, *, depth: int = 3) -> list[Backtest]:
    """The backtest outputs under the project's folder (a ``results.json`` a backtest wrote,
    at most ``depth`` folders down), newest first."""
    root = project.root.resolve()
    out = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        level = len(here.relative_to(root).parts)
        dirs[:] = [d for d in dirs if d not in _SKIP and not d.startswith(".") and level < depth]
        if "results.json" in files and here != root:
            found = _backtest(here / "results.json", root)
            if found is not None:
                out.append(found)
    return sorted(out, key=lambda b: b["written"], reverse=True)


def find_backtest(project: Project, backtest_id: str) -> Backtest | None:
    """The backtest ``backtest_id`` (its folder relative to the project) among those
    :func:`backtests` lists; None for anything else (no path outside them is served)."""
    return next((b for b in backtests(project) if b["id"] == backtest_id), None)

"""The data of the dashboard's pages, JSON-ready, read from the project's stores.

The server (:mod:`retrainer.server.dashboard`) renders them; nothing here knows HTML.

- :mod:`.overview`: one row per pipeline (health, champion, metric, drift, runs, alerts);
- :mod:`.pipeline`: one pipeline's history (metric over time, drift, triggers, runs, versions,
  rollout);
- :mod:`.listing`: the events page and the backtests known to the project.
"""

from __future__ import annotations

from retrainer.engine.dashboard.listing import backtests, events_page
from retrainer.engine.dashboard.overview import PipelineRow, overview
from retrainer.engine.dashboard.pipeline import pipeline_page, run_page

__all__ = ["PipelineRow", "backtests", "events_page", "overview", "pipeline_page", "run_page"]

"""The HTTP server: prediction and feedback API, health and metrics over the engine.

An interface layer like the CLI: it parses requests, calls the engine (``engine.serving``
holds, swaps and runs the models) and renders answers. ``create_app(project)`` builds the
FastAPI app; ``retrainer serve`` runs it with uvicorn. See docs/serving.md.

FastAPI, uvicorn and prometheus-client are the ``serve`` extra:
``pip install 'retrainer[serve]'``.
"""

from __future__ import annotations

from retrainer.server.app import create_app
from retrainer.server.auth import route_scopes

__all__ = ["create_app", "route_scopes"]

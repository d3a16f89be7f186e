"""Fixtures of the server tests: a project with a champion, tokens by scope, a client."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from retrainer.config import ServeConfig
from retrainer.core.clock import SimulatedClock
from retrainer.engine.project import Project
from retrainer.engine.runs.run import execute_run
from retrainer.server import create_app
from retrainer.testing import in_memory_project


@dataclass(frozen=True)
class FakeToken:
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


TOKENS = {
    "predict-secret": FakeToken(frozenset({"predict"})),
    "feedback-secret": FakeToken(frozenset({"feedback"})),
    "read-secret": FakeToken(frozenset({"read"})),
    "admin-secret": FakeToken(frozenset({"admin"})),
}


def authenticate(secret: str) -> FakeToken | None:
    return TOKENS.get(secret)


def bearer(scope: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {scope}-secret"}


def trained_project(runs: tuple[int, ...] = (11,)) -> Project:
    """The toy pipeline on in-memory stores, one run (one version) per day of January 2024."""
    project = in_memory_project(clock=SimulatedClock(datetime(2024, 1, 20, tzinfo=UTC)))
    for day in runs:
        execute_run(project, clock=SimulatedClock(datetime(2024, 1, day, tzinfo=UTC)))
    return project


FAST = ServeConfig(poll_interval=0.05, flush_interval=0.05)


@pytest.fixture
def project() -> Iterator[Project]:
    p = trained_project()
    yield p
    p.close()


@pytest.fixture
def client(project: Project) -> Iterator[TestClient]:
    with TestClient(create_app(project, authenticate=authenticate, settings=FAST)) as c:
        yield c

"""A run's deploy step reads the candidate's artifact back before moving an alias onto it."""

from __future__ import annotations

from datetime import UTC, datetime

import fsspec

from retrainer.adapters.artifacts import ArtifactRef, InMemoryArtifactStore
from retrainer.core.clock import SimulatedClock
from retrainer.engine.runs.run import execute_run
from retrainer.testing import in_memory_project


class _AppendingStore(InMemoryArtifactStore):
    """Stores each blob, then adds a byte to it behind its back (a bad disk, a tamperer)."""

    def put(self, data: bytes) -> ArtifactRef:
        ref = super().put(data)
        with fsspec.open(ref.url, "wb") as f:
            f.write(data + b"!")
        return ref


def test_a_candidate_whose_blob_changed_after_training_is_registered_not_promoted():
    project = in_memory_project(name="churn")
    project.artifacts = _AppendingStore()
    result = execute_run(project, clock=SimulatedClock(datetime(2024, 1, 20, tzinfo=UTC)))
    assert result.version is not None and result.verdict is not None and result.verdict.passed
    assert not result.promoted
    assert project.store.get_alias("churn", "champion") is None
    [skipped] = project.store.list_events("churn", kinds=["promotion.skipped"])
    size = result.version.artifact_size
    assert skipped.message.startswith("refusing to point churn 'champion' at v1: its artifact ")
    assert f"size differs (expected {size} bytes, found {size + 1})" in skipped.message


def test_an_intact_candidate_is_promoted():
    project = in_memory_project(name="churn")
    result = execute_run(project, clock=SimulatedClock(datetime(2024, 1, 20, tzinfo=UTC)))
    assert result.promoted and project.store.get_alias("churn", "champion") == 1

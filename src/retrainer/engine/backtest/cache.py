"""The backtest's cache: each policy's replay, kept under ``OUT/.cache`` between runs.

A policy's replay is a pure function of the data, the replay settings and the pipeline it
replays (the project's pipeline with the policy's keys in place), so its key is one hash of
those (:func:`cache_key`); the policy's name is not part of it. A change to the data, the
batch, the warm start, the label delay, retrainer's version, the pipeline's config or the
user code it names (through the pipeline's definition hash) gives another key, and the policy
is replayed again. A damaged entry is recomputed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from retrainer.adapters._atomic import write_file_atomically
from retrainer.engine.backtest.replay import PolicyRun, Replay, policy_pipeline

CACHE_VERSION = 4
"""2: keyed by each policy's replayed pipeline; 3: runs record watching; 4: one key function."""


def cache_key(*parts: Any) -> str:
    """The one hash of the cache: sha256 of the parts as canonical JSON, 24 hex digits.

    Examples
    --------
    >>> cache_key({"b": 1, "a": [2]}) == cache_key({"a": [2], "b": 1})
    True
    >>> len(cache_key("x"))
    24
    """
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ReplayFingerprint:
    """What every policy's replay depends on besides its pipeline."""

    cache_version: int
    retrainer: str
    data: str
    """The content fingerprint of the replayed rows."""
    batch_s: float
    start: str
    end: str
    label_delay_s: float

    @classmethod
    def of(cls, replay: Replay) -> ReplayFingerprint:
        from retrainer import __version__
        from retrainer.adapters.sources import snapshot_of

        return cls(
            cache_version=CACHE_VERSION,
            retrainer=__version__,
            data=snapshot_of(replay.frame, replay.time_column).fingerprint,
            batch_s=replay.batch.total_seconds(),
            start=replay.start.isoformat(),
            end=str(replay.end),  # None: to the data's end
            label_delay_s=replay.label_delay.total_seconds(),
        )


class PolicyCache:
    """Policy runs on disk, under ``folder``, keyed by :func:`cache_key`."""

    def __init__(self, folder: Path, replay: Replay) -> None:
        self.folder = folder
        self.replay = replay
        self._fingerprint = dataclasses.asdict(ReplayFingerprint.of(replay))
        self._keys: dict[str, str] = {}

    def key(self, policy: Mapping[str, Any]) -> str:
        """The key of ``policy``: the replay's fingerprint and the pipeline it replays."""
        from retrainer.config import PipelineConfig
        from retrainer.engine.pipeline import Pipeline

        memo = cache_key(policy)
        if memo in self._keys:
            return self._keys[memo]
        spec = PipelineConfig.model_validate(policy_pipeline(self.replay.pipeline, policy))
        # the definition hash covers the config and the user code it names
        code = Pipeline(spec, self.replay.root).definition_hash
        self._keys[memo] = cache_key(self._fingerprint, code)
        return self._keys[memo]

    def _path(self, policy: Mapping[str, Any]) -> Path:
        return self.folder / f"{self.key(policy)}.joblib"

    def get(self, policy: Mapping[str, Any]) -> PolicyRun | None:
        """The cached run of ``policy`` (named as ``policy`` is), or None."""
        import joblib

        path = self._path(policy)
        if not path.is_file():
            return None
        try:
            hit: PolicyRun = joblib.load(path)
        except Exception:  # a damaged entry is recomputed
            path.unlink(missing_ok=True)
            return None
        hit.name = str(policy["name"])
        return hit

    def put(self, policy: Mapping[str, Any], run: PolicyRun) -> None:
        """Keep ``run`` as the run of ``policy`` (written atomically)."""
        import joblib

        self.folder.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        joblib.dump(run, buffer)
        write_file_atomically(self._path(policy), buffer.getvalue())

"""Streaming concept-drift detectors (River) on a model's error stream, with saved state.

River's ADWIN, PageHinkley and KSWIN watch the serving model's per-row errors (0/1
misclassification, or the absolute error for regression); a detected change is concept drift.
Their state is carried between monitor runs: :meth:`ConceptDriftDetector.state` returns a
JSON-safe dict (the detector pickled, base64-encoded, with the River version) that the engine
stores in the metadata store, and :meth:`ConceptDriftDetector.from_state` restores it. The
state comes from retrainer's own metadata store, which is trusted like the rest of the
database; a state from another River version, or one that cannot be read, is discarded and
the detector starts fresh (the caller is told, so it can record a finding).

Examples
--------
>>> import numpy as np
>>> det = ConceptDriftDetector("adwin")
>>> rng = np.random.default_rng(0)
>>> errors = np.r_[rng.random(500) < 0.1, rng.random(500) < 0.6].astype(float)
>>> det.update(errors)  # the error rate jumps from 10% to 60% at row 500
[543]
>>> again = ConceptDriftDetector.from_state(det.state())
>>> again.n_seen_
1000
"""

from __future__ import annotations

import base64
import pickle
from collections.abc import Mapping
from typing import Any

import numpy as np

from retrainer.errors import ConfigError

DETECTORS = {
    "adwin": "ADWIN",
    "page_hinkley": "PageHinkley",
    "kswin": "KSWIN",
}


def _river() -> Any:
    try:
        from river import drift
    except ImportError as exc:  # pragma: no cover - river is a dependency
        raise ConfigError(
            "concept-drift detectors need the 'river' package. Install it with: pip install river"
        ) from exc
    return drift


class ConceptDriftDetector:
    """A River drift detector fed with per-row errors.

    Parameters
    ----------
    method
        ``adwin`` (default; adapts its window, few parameters), ``page_hinkley`` (a cumulative
        mean-shift test) or ``kswin`` (a Kolmogorov-Smirnov test over a sliding window).
    params
        Keyword parameters of the River class (e.g. ``{"delta": 0.002}`` for ADWIN).
    """

    def __init__(self, method: str = "adwin", params: Mapping[str, Any] | None = None) -> None:
        self.method = method
        self.params = dict(params or {})
        self.n_seen_ = 0
        self.detector_ = self._make()

    def _make(self) -> Any:
        if self.method not in DETECTORS:
            raise ConfigError(
                f"concept_drift.method must be one of {', '.join(DETECTORS)}; got {self.method!r}"
            )
        cls = getattr(_river(), DETECTORS[self.method])
        try:
            return cls(**self.params)
        except TypeError as exc:
            raise ConfigError(f"concept_drift.params for {self.method}: {exc}") from None

    def update(self, errors: np.ndarray) -> list[int]:
        """Feed errors in time order; return the positions (in this batch) where drift fired."""
        hits = []
        det = self.detector_
        for i, value in enumerate(np.asarray(errors, dtype=float)):
            if value != value:  # NaN: no label for this row
                continue
            det.update(float(value))
            if det.drift_detected:
                hits.append(i)
        self.n_seen_ += len(errors)
        return hits

    def state(self) -> dict[str, Any]:
        """A JSON-safe snapshot of the detector, for the metadata store."""
        import river

        return {
            "method": self.method,
            "params": self.params,
            "n_seen": self.n_seen_,
            "river": river.__version__,
            "pickle": base64.b64encode(pickle.dumps(self.detector_)).decode("ascii"),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ConceptDriftDetector:
        """Restore a detector saved by :meth:`state` (raise ValueError if it cannot be)."""
        import river

        if state.get("river") != river.__version__:
            raise ValueError(
                f"detector state was saved by river {state.get('river')}, "
                f"this is river {river.__version__}"
            )
        out = cls(str(state["method"]), state.get("params") or {})
        try:
            out.detector_ = pickle.loads(base64.b64decode(state["pickle"]))
        except Exception as exc:
            raise ValueError(f"detector state cannot be read: {exc}") from None
        out.n_seen_ = int(state.get("n_seen", 0))
        return out

"""The monitor's results, typed: what a monitor record stores, the report draws and the CLI shows.

Each class is a frozen value whose fields are named as the keys of the stored
``MonitorRecord.summary`` document, in the same order; :meth:`MonitorSummary.to_json` gives
that document (and ``retrainer monitor --json`` prints it, without the histograms) and
:meth:`MonitorSummary.from_json` reads a stored one back.

Examples
--------
>>> MonitorWindow(start="2024-01-01T00:00:00+00:00", end="2024-01-02T00:00:00+00:00").to_json()
{'start': '2024-01-01T00:00:00+00:00', 'end': '2024-01-02T00:00:00+00:00'}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from retrainer.core.drift import DriftReport
from retrainer.core.estimation import Estimate
from retrainer.core.jsonsafe import json_safe
from retrainer.core.performance import WindowPerformance
from retrainer.core.profile import Finding

__all__ = [
    "CategoricalHistogram",
    "ConceptDrift",
    "Estimation",
    "Histogram",
    "MonitorSummary",
    "MonitorWindow",
    "NumericHistogram",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorWindow:
    """The window checked, ``[start, end)``, as ISO 8601 strings."""

    start: str
    end: str
    drift_start: str | None = None
    """Where the drift check started, when not at ``start`` (it reads whole weeks: see
    ``monitor.drift.window``)."""

    def to_json(self) -> dict[str, Any]:
        out = {"start": self.start, "end": self.end}
        if self.drift_start is not None:
            out["drift_start"] = self.drift_start
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class ConceptDrift:
    """What the concept-drift detector saw of the model's error stream in this run.

    Examples
    --------
    >>> c = ConceptDrift(method="adwin", version=1, rows_fed=24, rows_seen=48, detections=(),
    ...                  drift_detected=False, error_rate=0.25)
    >>> c.to_json()["rows_fed"], ConceptDrift.from_json(c.to_json()) == c
    (24, True)
    """

    method: str
    version: int
    rows_fed: int
    """Rows fed in this run (rows fed before, or inside the training window, are not)."""
    rows_seen: int
    """Rows the detector has seen since it started (it restarts with a new champion)."""
    detections: tuple[str, ...]
    """The row times (ISO 8601) at which it detected a change, in this run."""
    drift_detected: bool
    error_rate: float | None
    """The mean error of the rows fed in this run (None: none fed)."""
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = json_safe(
            {
                "method": self.method,
                "version": self.version,
                "rows_fed": self.rows_fed,
                "rows_seen": self.rows_seen,
                "detections": self.detections,
                "drift_detected": self.drift_detected,
                "error_rate": self.error_rate,
                "note": self.note,
            }
        )
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConceptDrift:
        return cls(**{**data, "detections": tuple(data["detections"])})


@dataclass(frozen=True, slots=True, kw_only=True)
class Estimation:
    """The champion's performance estimated on the window (CBPE or DLE), beside the realized
    metric on the rows labelled so far (see :mod:`retrainer.engine.monitoring.estimate`).

    Examples
    --------
    >>> e = Estimation(method="cbpe", rows=10, unlabelled=10, reference_rows=200,
    ...                estimates=(Estimate(metric="accuracy", value=0.8, low=0.6, high=1.0,
    ...                                    n=10),))
    >>> Estimation.from_json(e.to_json()) == e, e.get("accuracy").value
    (True, 0.8)
    """

    method: str
    rows: int
    """Rows estimated on: every row of the window."""
    unlabelled: int
    """Rows of the window without a label yet."""
    reference_rows: int
    estimates: tuple[Estimate, ...]
    realized: Mapping[str, float | None] = field(default_factory=dict)
    """The same metrics on the window's labelled rows (empty: none labelled)."""

    def get(self, metric: str) -> Estimate | None:
        """The estimate of ``metric``, if estimated."""
        return next((e for e in self.estimates if e.metric == metric), None)

    def outside(self) -> list[str]:
        """The metrics whose realized value lies outside the estimate's interval: the
        calibration the estimate rests on does not hold on this window (concept drift?).

        Examples
        --------
        >>> e = Estimation(method="cbpe", rows=10, unlabelled=0, reference_rows=200,
        ...                estimates=(Estimate(metric="accuracy", value=0.9, low=0.85,
        ...                                    high=0.95, n=10),), realized={"accuracy": 0.6})
        >>> e.outside()
        ['accuracy']
        """
        return [
            x.metric
            for x in self.estimates
            if x.low is not None
            and x.high is not None
            and (r := self.realized.get(x.metric)) is not None
            and not x.low <= r <= x.high
        ]

    def warning(self) -> str | None:
        """What :meth:`outside` means for a reader, or None when every realized value is in."""
        off = self.outside()
        if not off:
            return None
        # the estimate assumes the relation of inputs to labels holds: say when it visibly
        # does not, rather than let a confident interval stand unchallenged
        return (
            f"the realized {' and '.join(off)} {'lies' if len(off) == 1 else 'lie'} outside the "
            "estimate's interval: the champion's calibration does not hold on this window "
            "(concept drift?); trust the realized metric (docs/monitoring.md, 'When it fails')"
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = json_safe(
            {
                "method": self.method,
                "rows": self.rows,
                "unlabelled": self.unlabelled,
                "reference_rows": self.reference_rows,
                "estimates": [e.to_dict() for e in self.estimates],
                "realized": dict(self.realized),
            }
        )
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Estimation:
        return cls(**{**data, "estimates": tuple(Estimate.from_dict(e) for e in data["estimates"])})


@dataclass(frozen=True, slots=True, kw_only=True)
class NumericHistogram:
    """A numeric column's counts on its reference profile's bins (``len(edges) + 1`` bins)."""

    kind: Literal["numeric"] = "numeric"
    edges: tuple[float, ...]
    reference: tuple[int, ...]
    current: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = json_safe(
            {
                "kind": self.kind,
                "edges": self.edges,
                "reference": self.reference,
                "current": self.current,
            }
        )
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class CategoricalHistogram:
    """A categorical column's counts per label, reference labels first."""

    kind: Literal["categorical"] = "categorical"
    labels: tuple[str, ...]
    reference: tuple[int, ...]
    current: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = json_safe(
            {
                "kind": self.kind,
                "labels": self.labels,
                "reference": self.reference,
                "current": self.current,
            }
        )
        return out


Histogram: TypeAlias = NumericHistogram | CategoricalHistogram
"""Reference vs current counts of one column, for the report."""


def _histogram(data: Mapping[str, Any]) -> Histogram:
    if data["kind"] == "numeric":
        return NumericHistogram(
            edges=tuple(data["edges"]),
            reference=tuple(data["reference"]),
            current=tuple(data["current"]),
        )
    return CategoricalHistogram(
        labels=tuple(data["labels"]),
        reference=tuple(data["reference"]),
        current=tuple(data["current"]),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorSummary:
    """What one monitor run computed over its window.

    ``drift`` is None for an empty window or a model without a reference profile;
    ``findings`` holds the monitor's own findings (an empty window, a skipped prediction, no
    labels...) then the drift check's; ``performance`` is empty when the window has no labels;
    ``concept_drift`` is None when the detector is off or was not fed.

    Examples
    --------
    >>> s = MonitorSummary(
    ...     pipeline="churn", version=3, rows=0, data="source",
    ...     window=MonitorWindow(start="2024-01-01T00:00:00+00:00",
    ...                          end="2024-01-02T00:00:00+00:00"),
    ...     findings=(Finding(kind="empty_window", column=None, message="no rows", value=0),))
    >>> s.to_json()["findings"]
    [{'kind': 'empty_window', 'column': None, 'message': 'no rows', 'value': 0}]
    >>> MonitorSummary.from_json(s.to_json()) == s
    True
    """

    pipeline: str
    version: int
    window: MonitorWindow
    rows: int
    data: str
    """Where the rows came from: ``"source"`` or ``"log"``."""
    drift: DriftReport | None = None
    findings: tuple[Finding, ...] = ()
    performance: tuple[WindowPerformance, ...] = ()
    concept_drift: ConceptDrift | None = None
    histograms: Mapping[str, Histogram] = field(default_factory=dict)
    """Column name to its reference vs current counts (for the report)."""
    estimated: Estimation | None = None
    """The performance estimated before the labels arrive (None: not estimated)."""

    def to_json(self) -> dict[str, Any]:
        """The stored document: strict JSON data, keys in field order."""
        out: dict[str, Any] = json_safe(
            {
                "pipeline": self.pipeline,
                "version": self.version,
                "window": self.window.to_json(),
                "rows": self.rows,
                "data": self.data,
                "drift": self.drift.to_dict() if self.drift is not None else None,
                "findings": [f.to_dict() for f in self.findings],
                "performance": [w.to_dict() for w in self.performance],
                "concept_drift": (
                    self.concept_drift.to_json() if self.concept_drift is not None else None
                ),
                "histograms": {n: h.to_json() for n, h in self.histograms.items()},
            }
        )
        if self.estimated is not None:  # absent, not null: documents before it stay as they were
            out["estimated"] = self.estimated.to_json()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MonitorSummary:
        """Read back a stored document (e.g. ``MonitorRecord.summary``)."""
        drift, concept = data.get("drift"), data.get("concept_drift")
        return cls(
            pipeline=data["pipeline"],
            version=data["version"],
            window=MonitorWindow(**data["window"]),
            rows=data["rows"],
            data=data["data"],
            drift=DriftReport.from_dict(drift) if drift is not None else None,
            findings=tuple(Finding.from_dict(f) for f in data.get("findings") or ()),
            performance=tuple(
                WindowPerformance.from_dict(w) for w in data.get("performance") or ()
            ),
            concept_drift=ConceptDrift.from_json(concept) if concept is not None else None,
            histograms={n: _histogram(h) for n, h in (data.get("histograms") or {}).items()},
            estimated=Estimation.from_json(data["estimated"]) if data.get("estimated") else None,
        )

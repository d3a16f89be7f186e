"""The server's Prometheus metrics, in a registry of its own (one per app).

- ``retrainer_requests_total{endpoint,pipeline,variant,status}`` and
  ``retrainer_request_seconds{endpoint,pipeline,variant}`` (histogram): every API request;
  errors are the non-2xx statuses.
- ``retrainer_predictions_total{pipeline,variant}``: rows answered (``shadow``: rows the
  rollout's candidate scored off the request path).
- ``retrainer_model_errors_total{pipeline,variant}``: requests a rollout's candidate failed
  (a ``challenger``'s were answered by the champion instead; a ``shadow``'s answered nobody).
- ``retrainer_shadow_dropped_total``, ``retrainer_shadow_queue``: shadow copies dropped
  because the scorer was behind, and waiting.
- ``retrainer_log_rows_total{kind}``, ``retrainer_log_rejected_rows_total{kind}``,
  ``retrainer_log_flush_failures_total{kind}``, ``retrainer_log_queue_rows{kind}``: the
  prediction and feedback log writers.
- ``retrainer_model_version{pipeline,variant}``: the version served (the champion, and the
  candidate of a running rollout as ``challenger`` or ``shadow``);
  ``retrainer_model_swaps_total``, ``retrainer_model_load_failures_total``.

With several worker processes each has its own figures (scrape each, or aggregate upstream).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _State(Collector):
    """Figures read at scrape time from the holder and the writers."""

    def __init__(self, read: Callable[[], dict[str, Any]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        state = self._read()
        writers = state.get("writers", {})
        logged = CounterMetricFamily(
            "retrainer_log_rows", "Rows written to the logs", labels=["kind"]
        )
        rejected = CounterMetricFamily(
            "retrainer_log_rejected_rows",
            "Rows refused because the log queue stayed full (their requests got a 503)",
            labels=["kind"],
        )
        failures = CounterMetricFamily(
            "retrainer_log_flush_failures", "Failed log flushes (retried)", labels=["kind"]
        )
        depth = GaugeMetricFamily("retrainer_log_queue_rows", "Rows waiting", labels=["kind"])
        for kind, w in writers.items():
            logged.add_metric([kind], w.written_rows)
            rejected.add_metric([kind], w.rejected_rows)
            failures.add_metric([kind], w.failed_flushes)
            depth.add_metric([kind], w.depth)
        yield from (logged, rejected, failures, depth)
        version = GaugeMetricFamily(
            "retrainer_model_version", "Model version served", labels=["pipeline", "variant"]
        )
        for served in [*state.get("served", {}).values(), *state.get("candidates", {}).values()]:
            version.add_metric([served.pipeline, served.variant], served.version)
        yield version
        shadow = state.get("shadow")
        if shadow is not None:
            yield CounterMetricFamily(
                "retrainer_shadow_dropped",
                "Shadow copies not scored because the scorer was behind",
                value=shadow.dropped,
            )
            yield GaugeMetricFamily(
                "retrainer_shadow_queue", "Shadow copies waiting", value=shadow.depth
            )
        holder = state.get("holder")
        if holder is not None:
            yield CounterMetricFamily(
                "retrainer_model_swaps", "Models swapped in", value=holder.swaps
            )
            yield CounterMetricFamily(
                "retrainer_model_load_failures",
                "Versions that failed to load",
                value=holder.load_failures,
            )


class ServerMetrics:
    """The metrics of one app (see the module docstring)."""

    def __init__(self, read_state: Callable[[], dict[str, Any]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "retrainer_requests",
            "API requests",
            ["endpoint", "pipeline", "variant", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "retrainer_request_seconds",
            "API request latency in seconds",
            ["endpoint", "pipeline", "variant"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "retrainer_predictions",
            "Rows answered",
            ["pipeline", "variant"],
            registry=self.registry,
        )
        self.model_errors = Counter(
            "retrainer_model_errors",
            "Requests a rollout's candidate failed (the champion answered a challenger's)",
            ["pipeline", "variant"],
            registry=self.registry,
        )
        self.registry.register(_State(read_state))

    def observe(
        self, endpoint: str, pipeline: str, variant: str, status: int, seconds: float
    ) -> None:
        self.requests.labels(endpoint, pipeline, variant, str(status)).inc()
        self.latency.labels(endpoint, pipeline, variant).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)

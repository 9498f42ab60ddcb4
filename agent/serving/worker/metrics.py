"""Prometheus metrics of the serving worker, served at ``/metrics`` on its port.

A private registry keeps the process-wide default collectors out. The
hot path caches each labelled child, because ``labels()`` takes a lock
and builds a key on every call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

# A small tabular model's forward pass takes well under a millisecond, so
# the upper buckets are there for queueing under load.
LATENCY_BUCKETS_SECONDS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)


class ServingMetrics:
    """Every serving metric, in one private registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "rigdeck_serving_requests",
            "Inference requests by model, answering version ('' when none was "
            "chosen) and HTTP status.",
            ["model", "version", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "rigdeck_serving_request_duration_seconds",
            "Seconds from reading an inference request to sending its response.",
            ["model", "version"],
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=self.registry,
        )
        self.canary_weight = Gauge(
            "rigdeck_serving_canary_weight",
            "Share of requests the canary version answers; 0 without a canary.",
            ["model"],
            registry=self.registry,
        )
        self.nonfinite_rows = Counter(
            "rigdeck_serving_nonfinite_output_rows",
            "Rows whose outputs were NaN or infinite, answered with nulls.",
            ["model", "version"],
            registry=self.registry,
        )
        self.swaps = Counter(
            "rigdeck_serving_swaps",
            "Times the worker switched a model to a new stable, canary or weight.",
            ["model"],
            registry=self.registry,
        )
        self.load_failures = Counter(
            "rigdeck_serving_load_failures",
            "Versions that failed verification or loading and took no traffic.",
            ["model"],
            registry=self.registry,
        )
        self.feedback_labels = Counter(
            "rigdeck_serving_feedback_labels",
            "Feedback labels stored.",
            ["model"],
            registry=self.registry,
        )
        self._children: dict[tuple, tuple] = {}

    def observe(self, model: str, version: str, status: int, seconds: float) -> None:
        """Count one request and, when a version served it, record its latency."""
        key = (model, version, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(model, version, str(status)),
                self.latency.labels(model, version) if version else None,
            )
            self._children[key] = children
        children[0].inc()
        if children[1] is not None:
            children[1].observe(seconds)


class PredictionLogCollector(Collector):
    """Exports the prediction log's counts, kept outside the registry."""

    def __init__(
        self, written_rows: Callable[[], int], dropped_requests: Callable[[], int]
    ) -> None:
        self._written_rows = written_rows
        self._dropped_requests = dropped_requests

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "rigdeck_serving_logged_rows",
            "Prediction rows written to the store.",
            value=self._written_rows(),
        )
        yield CounterMetricFamily(
            "rigdeck_serving_log_dropped_requests",
            "Answered requests dropped from a full logging queue, never written.",
            value=self._dropped_requests(),
        )

"""Prometheus text for ``/metrics``, built from the sampler's latest sample.

Metric names are the sampler's (``sampler.METRICS``) with the ``rigdeck_``
prefix, plus three that exist only here: ``rigdeck_gpu_info`` (1 per GPU,
with its name), ``rigdeck_nvml_up`` (0 with a ``reason`` label when GPU
telemetry is unavailable) and
``rigdeck_telemetry_last_sample_timestamp_seconds``. A value the hardware
does not report is left out, never exported as 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agent.telemetry.gpu import STATUS_OK
from agent.telemetry.sampler import METRICS, gpu_labels, points

PREFIX = "rigdeck_"

# The classic text format. prometheus_client 0.26 sets CONTENT_TYPE_LATEST
# to version=1.0.0, yet its own HTTP handler responds with 0.0.4 unless the
# scraper asks for 1.0.0. The body is the same for names like ours, which
# need no UTF-8 escaping.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _HasLatest(Protocol):
    @property
    def latest(self) -> dict[str, Any] | None: ...


class TelemetryCollector(Collector):
    """Exports ``sampler.latest`` as Prometheus metrics on each scrape."""

    def __init__(self, sampler: _HasLatest) -> None:
        self._sampler = sampler

    def collect(self) -> Iterator[Metric]:
        latest = self._sampler.latest
        if latest is None:
            return
        yield from _point_families(latest)
        yield from _gpu_section_families(latest["gpu"])
        timestamp = GaugeMetricFamily(
            f"{PREFIX}telemetry_last_sample_timestamp_seconds",
            "When the latest telemetry sample was taken, in seconds since the epoch.",
        )
        timestamp.add_metric([], latest["ts"])
        yield timestamp


def render_metrics(
    sampler: _HasLatest, extra_collectors: Iterable[Collector] = ()
) -> tuple[bytes, str]:
    """Render the telemetry (and any extra collectors) in Prometheus text format.

    A private registry is built per call, so the process-wide default
    registry and its Python runtime metrics are never included. Errors
    raised by ``extra_collectors`` propagate.

    Returns:
        The body and its ``Content-Type`` header value.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TelemetryCollector(sampler))
    for collector in extra_collectors:
        registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE


def _point_families(latest: dict[str, Any]) -> list[Metric]:
    families: dict[str, Metric] = {}
    for point in points(latest):
        family = families.get(point.metric)
        if family is None:
            family = _new_family(point.metric, list(point.labels))
            families[point.metric] = family
        family.add_metric(list(point.labels.values()), point.value)
    return list(families.values())


def _new_family(metric: str, label_names: list[str]) -> Metric:
    spec = METRICS[metric]
    family_class = CounterMetricFamily if spec.kind == "counter" else GaugeMetricFamily
    return family_class(PREFIX + metric, spec.help, labels=label_names)


def _gpu_section_families(section: dict[str, Any]) -> list[Metric]:
    nvml_up = GaugeMetricFamily(
        f"{PREFIX}nvml_up",
        "1 when NVML answers, 0 when GPU telemetry is unavailable (see reason).",
        labels=["reason"],
    )
    up = section["status"] == STATUS_OK
    nvml_up.add_metric([section["reason"] or ""], 1 if up else 0)
    info = GaugeMetricFamily(
        f"{PREFIX}gpu_info",
        "1 for every GPU, with its name as a label.",
        labels=["gpu", "uuid", "name"],
    )
    for gpu in section["gpus"]:
        labels = gpu_labels(gpu)
        info.add_metric([labels["gpu"], labels["uuid"], gpu["name"] or ""], 1)
    return [nvml_up, info]

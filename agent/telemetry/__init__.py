"""Host and GPU telemetry: psutil and NVML probes, the sampler and /metrics.

``Sampler`` runs the probes in a daemon thread, keeps the latest sample for
the API and writes batched samples to the store. ``render_metrics`` turns
the latest sample into Prometheus text. ``GpuProbe`` also reports to the run
scheduler which GPUs may take a run (``placeable_gpus``) and why none may
(``refusal_reason``).
"""

from agent.telemetry.gpu import GPU_FIELDS, GpuLost, GpuProbe, GpuRefusal
from agent.telemetry.host import HostProbe
from agent.telemetry.metrics import TelemetryCollector, render_metrics
from agent.telemetry.sampler import METRICS, MetricPoint, MetricSpec, Sampler, points

__all__ = [
    "GPU_FIELDS",
    "METRICS",
    "GpuLost",
    "GpuProbe",
    "GpuRefusal",
    "HostProbe",
    "MetricPoint",
    "MetricSpec",
    "Sampler",
    "TelemetryCollector",
    "points",
    "render_metrics",
]

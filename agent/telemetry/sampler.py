"""The telemetry sampler: a thread that samples the host and GPUs and stores it.

Each sample replaces ``Sampler.latest`` and is turned into metric points
(``points()``). Points are buffered and written in one transaction every
``flush_seconds``. Once a minute, that transaction also rolls completed
minutes up and prunes what is past retention.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from agent.telemetry.gpu import GPU_FIELDS, GPU_OK, STATUS_OK, GpuLost, GpuProbe
from agent.telemetry.host import HostProbe
from store import Store, StoreError
from store.telemetry import Sample, encode_labels, insert_samples, prune, roll_up

if TYPE_CHECKING:
    from agent.config import TelemetrySection

logger = logging.getLogger(__name__)

MAINTENANCE_INTERVAL_SECONDS = 60.0

# Bounds the memory a store that stays locked can cost. A buffered sample
# takes about 275 bytes (tracemalloc, 8 fake GPUs), so the cap is about
# 14 MB: some 8 minutes of a 64-core, 8-GPU host at the default 2 s.
MAX_BUFFERED_SAMPLES = 50_000

STOP_TIMEOUT_SECONDS = 10.0


class MetricSpec(NamedTuple):
    """The Prometheus type (``gauge`` or ``counter``) and help of a metric."""

    kind: str
    help: str


def _gpu_metric_specs() -> dict[str, MetricSpec]:
    helps = {
        "utilization_ratio": "Share of time a kernel ran on the GPU, 0..1.",
        "memory_utilization_ratio": "Share of time GPU memory was busy, 0..1.",
        "memory_used_bytes": "GPU memory in use, in bytes.",
        "memory_total_bytes": "GPU memory installed, in bytes.",
        "temperature_celsius": "GPU core temperature, in degrees Celsius.",
        "power_watts": "GPU power draw, in watts.",
        "power_limit_watts": "GPU power limit in force, in watts.",
        "fan_ratio": "GPU fan speed as a share of its maximum, 0..1.",
        "sm_clock_hertz": "GPU streaming multiprocessor clock, in hertz.",
        "memory_clock_hertz": "GPU memory clock, in hertz.",
        "ecc_corrected_errors_total": "Corrected ECC errors since driver load.",
        "ecc_uncorrected_errors_total": "Uncorrected ECC errors since driver load.",
    }
    return {
        f"gpu_{field}": MetricSpec(
            "counter" if field.endswith("_total") else "gauge", helps[field]
        )
        for field in GPU_FIELDS
    }


# Every metric the sampler stores, without the ``rigdeck_`` prefix that
# /metrics adds. Host metrics carry no host label: one agent runs per host.
METRICS: dict[str, MetricSpec] = {
    "cpu_utilization_ratio": MetricSpec("gauge", "Share of CPU time not idle, 0..1."),
    "cpu_core_utilization_ratio": MetricSpec(
        "gauge", "Share of one core's time not idle, 0..1."
    ),
    "load_average_1m": MetricSpec("gauge", "Load average over 1 minute."),
    "load_average_5m": MetricSpec("gauge", "Load average over 5 minutes."),
    "load_average_15m": MetricSpec("gauge", "Load average over 15 minutes."),
    "memory_total_bytes": MetricSpec("gauge", "Physical memory, in bytes."),
    "memory_used_bytes": MetricSpec("gauge", "Memory in use, in bytes."),
    "memory_available_bytes": MetricSpec(
        "gauge", "Memory available to new processes without swapping, in bytes."
    ),
    "swap_total_bytes": MetricSpec("gauge", "Swap space, in bytes."),
    "swap_used_bytes": MetricSpec("gauge", "Swap in use, in bytes."),
    "disk_total_bytes": MetricSpec("gauge", "Size of a file system, in bytes."),
    "disk_used_bytes": MetricSpec("gauge", "Space used on a file system, in bytes."),
    "disk_free_bytes": MetricSpec(
        "gauge", "Space free on a file system for unprivileged users, in bytes."
    ),
    "network_received_bytes_total": MetricSpec(
        "counter", "Bytes received on an interface since boot."
    ),
    "network_sent_bytes_total": MetricSpec(
        "counter", "Bytes sent on an interface since boot."
    ),
    "gpu_up": MetricSpec("gauge", "1 when the GPU is readable, 0 when it is not."),
    **_gpu_metric_specs(),
    "gpu_processes": MetricSpec("gauge", "Processes using the GPU."),
}


class MetricPoint(NamedTuple):
    metric: str
    labels: dict[str, str]
    value: float


def points(latest: dict[str, Any]) -> list[MetricPoint]:
    """Turn a sample (``Sampler.latest``) into metric points, leaving out None."""
    found: list[MetricPoint] = []
    found += _cpu_points(latest["cpu"])
    for window, value in latest["load"].items():
        found.append(MetricPoint(f"load_average_{window}", {}, value))
    for prefix in ("memory", "swap"):
        for key, value in latest[prefix].items():
            found.append(MetricPoint(f"{prefix}_{key}", {}, value))
    for disk in latest["disks"]:
        labels = {"mountpoint": disk["mountpoint"]}
        for key in ("total_bytes", "used_bytes", "free_bytes"):
            found.append(MetricPoint(f"disk_{key}", labels, disk[key]))
    for interface in latest["network"]:
        labels = {"interface": interface["interface"]}
        for key in ("received_bytes_total", "sent_bytes_total"):
            found.append(MetricPoint(f"network_{key}", labels, interface[key]))
    found += gpu_points(latest["gpu"])
    return [point for point in found if point.value is not None]


def _cpu_points(cpu: dict[str, Any]) -> list[MetricPoint]:
    found = [MetricPoint("cpu_utilization_ratio", {}, cpu["utilization_ratio"])]
    for core, ratio in enumerate(cpu["core_utilization_ratios"] or ()):
        found.append(
            MetricPoint("cpu_core_utilization_ratio", {"core": str(core)}, ratio)
        )
    return found


def gpu_labels(gpu: dict[str, Any]) -> dict[str, str]:
    """Labels of one GPU's metrics: its index and UUID ('' when unknown)."""
    return {"gpu": str(gpu["index"]), "uuid": gpu["uuid"] or ""}


def gpu_points(section: dict[str, Any]) -> list[MetricPoint]:
    """Turn the GPU section of a sample into points; None values are left out."""
    if section["status"] != STATUS_OK:
        return []
    found = []
    for gpu in section["gpus"]:
        labels = gpu_labels(gpu)
        found.append(MetricPoint("gpu_up", labels, 1 if gpu["state"] == GPU_OK else 0))
        for field in GPU_FIELDS:
            if gpu[field] is not None:
                found.append(MetricPoint(f"gpu_{field}", labels, gpu[field]))
        if gpu["processes"] is not None:
            found.append(MetricPoint("gpu_processes", labels, len(gpu["processes"])))
    return found


class Sampler:
    """Samples host and GPU telemetry in a daemon thread and stores it.

    Args:
        store: the agent's store; samples go to its telemetry tables.
        config: the ``[telemetry]`` section: interval, flush period,
            retention and NVML settings.
        hostname: the agent's name, copied into ``latest``.
        host_probe: default ``HostProbe()``.
        gpu_probe: default ``GpuProbe.from_config(config, on_gpu_lost=...)``.
        on_gpu_lost: passed to the default GPU probe; called in the sampler
            thread once per GPU that becomes lost. Give it to your own
            ``gpu_probe`` instead when you pass one.
        clock: wall clock in seconds since the epoch, for sample timestamps
            and retention. Default ``time.time``.

    ``sample_once()``, ``flush()`` and ``maintain()`` are what the thread
    runs; tests call them directly.
    """

    def __init__(
        self,
        store: Store,
        config: TelemetrySection,
        hostname: str,
        *,
        host_probe: HostProbe | None = None,
        gpu_probe: GpuProbe | None = None,
        on_gpu_lost: Callable[[GpuLost], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if gpu_probe is not None and on_gpu_lost is not None:
            raise ValueError(
                "Pass on_gpu_lost to GpuProbe(...) when you give the Sampler a "
                "gpu_probe; the Sampler only passes it to the probe it builds."
            )
        self.store = store
        self.config = config
        self.hostname = hostname
        self.host = host_probe or HostProbe()
        self.gpu = gpu_probe or GpuProbe.from_config(config, on_gpu_lost=on_gpu_lost)
        self.samples_written = 0
        self.samples_dropped = 0
        self._clock = clock
        self._latest: dict[str, Any] | None = None
        self._buffer: list[Sample] = []
        self._buffer_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures: dict[str, int] = {}

    @property
    def latest(self) -> dict[str, Any] | None:
        """The last sample, or None before the first one.

        ``{"ts", "hostname", "cpu", "load", "memory", "swap", "disks",
        "network", "gpu"}``; see ``HostProbe.sample()`` and
        ``GpuProbe.sample()`` for the sections. Treat it as read-only: the
        sampler replaces it whole and never changes one in place.
        """
        return self._latest

    def start(self) -> None:
        """Start the sampling thread; the first sample is taken at once."""
        if self._thread is not None:
            raise RuntimeError("This Sampler was already started; build a new one.")
        self._thread = threading.Thread(
            target=self._run, name="rigdeck-telemetry", daemon=True
        )
        self._thread.start()
        logger.info(
            "telemetry sampler started: a sample every %s s, written every %s s",
            self.config.interval_seconds,
            self.config.flush_seconds,
        )

    def stop(self, timeout_seconds: float = STOP_TIMEOUT_SECONDS) -> None:
        """Stop the thread, write the buffered samples and shut NVML down."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout_seconds)
            if thread.is_alive():
                logger.warning(
                    "telemetry sampler did not stop within %s s; "
                    "leaving NVML initialised",
                    timeout_seconds,
                )
                return
        else:
            self._run_step("flush", self.flush)
        self.gpu.close()
        logger.info(
            "telemetry sampler stopped: %s samples written, %s dropped",
            self.samples_written,
            self.samples_dropped,
        )

    def sample_once(self) -> dict[str, Any]:
        """Take one sample, publish it as ``latest`` and buffer its points."""
        ts = self._clock()
        latest = {"ts": ts, "hostname": self.hostname}
        latest.update(self.host.sample())
        latest["gpu"] = self.gpu.sample()
        samples = [
            Sample(ts, point.metric, encode_labels(point.labels), float(point.value))
            for point in points(latest)
        ]
        self._latest = latest
        with self._buffer_lock:
            self._buffer.extend(samples)
            self._trim_buffer()
        return latest

    def flush(self) -> int:
        """Write the buffered samples in one transaction; return how many.

        On a store error the samples go back into the buffer and the error
        is raised.
        """
        return self._write(maintenance_now=None)

    def maintain(self, now: float | None = None) -> int:
        """Write the buffer, roll completed minutes up and prune, in one transaction.

        The buffer is written first so that no sample of a minute lands after
        that minute was rolled up. Returns the number of samples written.

        Args:
            now: the time retention is measured from, in seconds since the
                epoch. Default: the sampler's clock.
        """
        return self._write(maintenance_now=self._clock() if now is None else now)

    def _write(self, maintenance_now: float | None) -> int:
        with self._buffer_lock:
            batch, self._buffer = self._buffer, []
        if not batch and maintenance_now is None:
            return 0
        try:
            with self.store.write() as db:
                written = insert_samples(db, batch)
                if maintenance_now is not None:
                    self._roll_up_and_prune(db, maintenance_now)
        except (StoreError, sqlite3.Error):
            with self._buffer_lock:
                self._buffer[:0] = batch
                self._trim_buffer()
            raise
        self.samples_written += written
        return written

    def _roll_up_and_prune(self, db: Any, now: float) -> None:
        rollups = roll_up(db, now)
        raw_deleted, rollups_deleted = prune(
            db, now, self.config.raw_retention_hours, self.config.rollup_retention_days
        )
        logger.debug(
            "telemetry maintenance: %s rollup rows written, %s raw samples and "
            "%s rollup rows pruned",
            rollups,
            raw_deleted,
            rollups_deleted,
        )

    def _trim_buffer(self) -> None:
        excess = len(self._buffer) - MAX_BUFFERED_SAMPLES
        if excess <= 0:
            return
        del self._buffer[:excess]
        self.samples_dropped += excess
        logger.warning(
            "telemetry buffer full: dropped the %s oldest samples "
            "(%s dropped since start); is the store writable?",
            excess,
            self.samples_dropped,
        )

    def _run(self) -> None:
        interval = self.config.interval_seconds
        next_sample = time.monotonic()
        next_flush = next_sample + self.config.flush_seconds
        next_maintenance = next_sample + MAINTENANCE_INTERVAL_SECONDS
        while True:
            self._run_step("sample", self.sample_once)
            now = time.monotonic()
            if now >= next_maintenance:
                self._run_step("maintenance", self.maintain)
                next_maintenance = now + MAINTENANCE_INTERVAL_SECONDS
                next_flush = now + self.config.flush_seconds
            elif now >= next_flush:
                self._run_step("flush", self.flush)
                next_flush = now + self.config.flush_seconds
            next_sample += interval
            if next_sample <= now:
                # A step took longer than the interval: skip the missed
                # samples instead of taking them back to back.
                next_sample = now + interval
            if self._stop.wait(max(0.0, next_sample - time.monotonic())):
                break
        self._run_step("flush", self.flush)

    def _run_step(self, step: str, function: Callable[[], Any]) -> None:
        # The thread must outlive any error in one step. The first failure of
        # a streak is logged with its traceback and the repeats at debug, so
        # a lasting fault does not write a traceback every interval.
        try:
            function()
        except Exception:
            failures = self._failures.get(step, 0) + 1
            self._failures[step] = failures
            if failures == 1:
                logger.exception("telemetry %s failed; retrying every interval", step)
            else:
                logger.debug("telemetry %s failed %s times in a row", step, failures)
            return
        failures = self._failures.pop(step, 0)
        if failures:
            logger.info("telemetry %s works again after %s failures", step, failures)

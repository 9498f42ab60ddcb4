"""Host telemetry through psutil: CPU, load, memory, swap, disks and network."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import psutil

logger = logging.getLogger(__name__)

# psutil computes CPU utilization from the change in /proc/stat since its
# previous call, which the kernel counts in 10 ms ticks. Over a shorter
# window the figure is mostly noise, and right after the priming call it
# is exactly 0.0, so a reading is taken only this long after the last one.
MIN_CPU_INTERVAL_SECONDS = 0.5

PARTITIONS_REFRESH_SECONDS = 60.0

# Read-only images (snap packages, live and installer media) are always
# full, so their usage carries no information.
_SKIPPED_FSTYPES = frozenset({"squashfs", "iso9660", "udf"})
_SKIPPED_MOUNT_PREFIXES = ("/snap/", "/var/lib/snapd/")
_SKIPPED_INTERFACES = frozenset({"lo"})


class HostProbe:
    """Reads the host's CPU, load, memory, swap, disk and network figures.

    CPU utilization is primed when the probe is built, because psutil's
    first ``cpu_percent()`` call has nothing to compare with and returns
    0.0. A ``sample()`` less than ``min_cpu_interval_seconds`` after the
    previous CPU reading reports the CPU figures as None, never 0.0.

    Args:
        psutil_module: the psutil module, or a stand-in with the same
            functions (tests use one). Default ``psutil``.
        clock: monotonic clock in seconds. Default ``time.monotonic``.
        min_cpu_interval_seconds: the shortest window a CPU reading covers.
            Default 0.5.
        partitions_refresh_seconds: how often the list of mounted file
            systems is read again. Default 60.
    """

    def __init__(
        self,
        *,
        psutil_module: ModuleType | Any = psutil,
        clock: Callable[[], float] = time.monotonic,
        min_cpu_interval_seconds: float = MIN_CPU_INTERVAL_SECONDS,
        partitions_refresh_seconds: float = PARTITIONS_REFRESH_SECONDS,
    ) -> None:
        self._psutil = psutil_module
        self._clock = clock
        self._min_cpu_interval_seconds = min_cpu_interval_seconds
        self._partitions_refresh_seconds = partitions_refresh_seconds
        self._partitions: list[Any] = []
        self._partitions_read_at: float | None = None
        self._unreadable_mounts: set[str] = set()
        self._prime_cpu()

    def _prime_cpu(self) -> None:
        # psutil (7.x) keeps the cpu_percent() baseline per calling thread,
        # so a probe built on one thread and sampled on another must prime
        # again there, or its first reading is a fake 0.0.
        self._psutil.cpu_percent(interval=None)
        self._psutil.cpu_percent(interval=None, percpu=True)
        self._cpu_thread = threading.get_ident()
        self._cpu_read_at = self._clock()

    def sample(self) -> dict[str, Any]:
        """Read every host figure once and return them as JSON-ready data.

        Returns ``{"cpu", "load", "memory", "swap", "disks", "network"}``.
        Ratios are 0..1, sizes are bytes and network counters are bytes
        since boot, per interface (loopback excluded).
        """
        return {
            "cpu": self._read_cpu(),
            "load": self._read_load(),
            "memory": self._read_memory(),
            "swap": self._read_swap(),
            "disks": self._read_disks(),
            "network": self._read_network(),
        }

    def _read_cpu(self) -> dict[str, Any]:
        if threading.get_ident() != self._cpu_thread:
            self._prime_cpu()
            return {"utilization_ratio": None, "core_utilization_ratios": None}
        now = self._clock()
        if now - self._cpu_read_at < self._min_cpu_interval_seconds:
            return {"utilization_ratio": None, "core_utilization_ratios": None}
        self._cpu_read_at = now
        total = self._psutil.cpu_percent(interval=None)
        cores = self._psutil.cpu_percent(interval=None, percpu=True)
        return {
            "utilization_ratio": total / 100,
            "core_utilization_ratios": [percent / 100 for percent in cores],
        }

    def _read_load(self) -> dict[str, float]:
        one, five, fifteen = self._psutil.getloadavg()
        return {"1m": one, "5m": five, "15m": fifteen}

    def _read_memory(self) -> dict[str, int]:
        memory = self._psutil.virtual_memory()
        return {
            "total_bytes": memory.total,
            "used_bytes": memory.used,
            "available_bytes": memory.available,
        }

    def _read_swap(self) -> dict[str, int]:
        swap = self._psutil.swap_memory()
        return {"total_bytes": swap.total, "used_bytes": swap.used}

    def _read_disks(self) -> list[dict[str, Any]]:
        disks = []
        for partition in self._local_partitions():
            try:
                usage = self._psutil.disk_usage(partition.mountpoint)
            except OSError as error:
                self._log_unreadable_mount(partition.mountpoint, error)
                continue
            disks.append(
                {
                    "mountpoint": partition.mountpoint,
                    "device": partition.device,
                    "fstype": partition.fstype,
                    "total_bytes": usage.total,
                    "used_bytes": usage.used,
                    "free_bytes": usage.free,
                }
            )
        return disks

    def _local_partitions(self) -> list[Any]:
        now = self._clock()
        read_at = self._partitions_read_at
        if read_at is None or now - read_at >= self._partitions_refresh_seconds:
            self._partitions = _local_partitions(
                self._psutil.disk_partitions(all=False)
            )
            self._partitions_read_at = now
        return self._partitions

    def _log_unreadable_mount(self, mountpoint: str, error: OSError) -> None:
        if mountpoint in self._unreadable_mounts:
            return
        self._unreadable_mounts.add(mountpoint)
        logger.info("skipping disk usage of %s: %s", mountpoint, error)

    def _read_network(self) -> list[dict[str, Any]]:
        counters = self._psutil.net_io_counters(pernic=True)
        return [
            {
                "interface": interface,
                "received_bytes_total": counter.bytes_recv,
                "sent_bytes_total": counter.bytes_sent,
            }
            for interface, counter in sorted(counters.items())
            if interface not in _SKIPPED_INTERFACES
        ]


def _local_partitions(partitions: list[Any]) -> list[Any]:
    """Keep one mountpoint per device: the shortest, as bind mounts repeat it.

    ``disk_partitions(all=False)`` already leaves out pseudo file systems
    (proc, sysfs, tmpfs, overlay and the like) on Linux.
    """
    by_device: dict[str, Any] = {}
    for partition in partitions:
        if partition.fstype in _SKIPPED_FSTYPES:
            continue
        if partition.mountpoint.startswith(_SKIPPED_MOUNT_PREFIXES):
            continue
        kept = by_device.get(partition.device)
        if kept is None or len(partition.mountpoint) < len(kept.mountpoint):
            by_device[partition.device] = partition
    return sorted(by_device.values(), key=lambda partition: partition.mountpoint)

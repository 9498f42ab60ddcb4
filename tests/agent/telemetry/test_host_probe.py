"""HostProbe: primed CPU readings, local disks only, per-interface counters."""

import logging
import threading
from types import SimpleNamespace

import psutil

from agent.telemetry import HostProbe


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakePsutil:
    """psutil with scripted CPU, disk and network figures.

    ``cpu_percent`` behaves like psutil's: 0.0 on the first call of each kind
    (total and per core), because it has nothing to compare with yet.
    """

    def __init__(self) -> None:
        self.cpu_calls: list[bool] = []
        self.partitions = [
            SimpleNamespace(device="/dev/sda1", mountpoint="/", fstype="ext4"),
            SimpleNamespace(device="/dev/sda1", mountpoint="/etc/hosts", fstype="ext4"),
            SimpleNamespace(device="/dev/nvme0n1", mountpoint="/data", fstype="xfs"),
            SimpleNamespace(
                device="/dev/loop3", mountpoint="/snap/core/1", fstype="squashfs"
            ),
            SimpleNamespace(
                device="/dev/sdb1", mountpoint="/mnt/locked", fstype="ext4"
            ),
        ]
        self.partition_reads = 0

    def __getattr__(self, name):
        return getattr(psutil, name)

    def cpu_percent(self, interval=None, percpu=False):
        first = percpu not in self.cpu_calls
        self.cpu_calls.append(percpu)
        if percpu:
            return [0.0, 0.0] if first else [20.0, 30.0]
        return 0.0 if first else 25.0

    def getloadavg(self):
        return (0.5, 0.25, 0.125)

    def disk_partitions(self, all=False):
        assert all is False
        self.partition_reads += 1
        return self.partitions

    def disk_usage(self, path):
        if path == "/mnt/locked":
            raise PermissionError(13, "Permission denied", path)
        sizes = {"/": (100, 40, 55), "/data": (1000, 100, 900)}
        total, used, free = sizes[path]
        return SimpleNamespace(total=total, used=used, free=free, percent=0.0)

    def net_io_counters(self, pernic=False):
        assert pernic is True
        return {
            "lo": SimpleNamespace(bytes_recv=9, bytes_sent=9),
            "eth0": SimpleNamespace(bytes_recv=1500, bytes_sent=700),
            "eno2": SimpleNamespace(bytes_recv=10, bytes_sent=20),
        }


def test_first_cpu_reading_is_not_zero():
    fake = FakePsutil()
    clock = FakeClock()
    probe = HostProbe(psutil_module=fake, clock=clock)
    clock.now += 2.0

    cpu = probe.sample()["cpu"]

    assert fake.cpu_calls == [False, True, False, True]
    assert cpu["utilization_ratio"] == 0.25
    assert cpu["core_utilization_ratios"] == [0.2, 0.3]


class PerThreadFakePsutil(FakePsutil):
    """Keeps the cpu_percent() baseline per thread, as psutil 7 does."""

    def __init__(self) -> None:
        super().__init__()
        self.primed_threads: set[tuple[int, bool]] = set()

    def cpu_percent(self, interval=None, percpu=False):
        key = (threading.get_ident(), percpu)
        first = key not in self.primed_threads
        self.primed_threads.add(key)
        self.cpu_calls.append(percpu)
        if percpu:
            return [0.0, 0.0] if first else [20.0, 30.0]
        return 0.0 if first else 25.0


def test_cpu_sampled_on_another_thread_is_primed_there():
    fake = PerThreadFakePsutil()
    clock = FakeClock()
    probe = HostProbe(psutil_module=fake, clock=clock)
    readings = []

    def sample_twice() -> None:
        clock.now += 2.0
        readings.append(probe.sample()["cpu"])
        clock.now += 2.0
        readings.append(probe.sample()["cpu"])

    worker = threading.Thread(target=sample_twice)
    worker.start()
    worker.join()

    assert readings[0] == {"utilization_ratio": None, "core_utilization_ratios": None}
    assert readings[1]["utilization_ratio"] == 0.25
    assert readings[1]["core_utilization_ratios"] == [0.2, 0.3]


def test_cpu_too_soon_after_priming_is_null():
    fake = FakePsutil()
    clock = FakeClock()
    probe = HostProbe(psutil_module=fake, clock=clock)
    clock.now += 0.1

    cpu = probe.sample()["cpu"]

    assert cpu == {"utilization_ratio": None, "core_utilization_ratios": None}
    assert fake.cpu_calls == [False, True]


def test_cpu_window_restarts_after_each_reading():
    fake = FakePsutil()
    clock = FakeClock()
    probe = HostProbe(psutil_module=fake, clock=clock)
    clock.now += 1.0
    probe.sample()

    clock.now += 0.2
    too_soon = probe.sample()["cpu"]
    clock.now += 0.3
    in_time = probe.sample()["cpu"]

    assert too_soon["utilization_ratio"] is None
    assert in_time["utilization_ratio"] == 0.25


def test_load_memory_and_swap_figures():
    probe = HostProbe(psutil_module=FakePsutil(), clock=FakeClock())

    reading = probe.sample()

    assert reading["load"] == {"1m": 0.5, "5m": 0.25, "15m": 0.125}
    assert reading["memory"]["total_bytes"] == psutil.virtual_memory().total
    assert set(reading["memory"]) == {"total_bytes", "used_bytes", "available_bytes"}
    assert reading["swap"]["total_bytes"] == psutil.swap_memory().total


def test_disks_skip_images_binds_and_unreadable(caplog):
    probe = HostProbe(psutil_module=FakePsutil(), clock=FakeClock())

    with caplog.at_level(logging.DEBUG, logger="agent.telemetry.host"):
        probe.sample()
        disks = probe.sample()["disks"]

    assert disks == [
        {
            "mountpoint": "/",
            "device": "/dev/sda1",
            "fstype": "ext4",
            "total_bytes": 100,
            "used_bytes": 40,
            "free_bytes": 55,
        },
        {
            "mountpoint": "/data",
            "device": "/dev/nvme0n1",
            "fstype": "xfs",
            "total_bytes": 1000,
            "used_bytes": 100,
            "free_bytes": 900,
        },
    ]
    locked_logs = [r for r in caplog.records if "/mnt/locked" in r.getMessage()]
    assert len(locked_logs) == 1


def test_partitions_reread_once_a_minute():
    fake = FakePsutil()
    clock = FakeClock()
    probe = HostProbe(psutil_module=fake, clock=clock)

    probe.sample()
    clock.now += 59.0
    probe.sample()
    assert fake.partition_reads == 1

    fake.partitions = fake.partitions[2:3]
    clock.now += 1.0
    disks = probe.sample()["disks"]
    assert fake.partition_reads == 2
    assert [disk["mountpoint"] for disk in disks] == ["/data"]


def test_network_skips_loopback():
    probe = HostProbe(psutil_module=FakePsutil(), clock=FakeClock())

    network = probe.sample()["network"]

    assert network == [
        {"interface": "eno2", "received_bytes_total": 10, "sent_bytes_total": 20},
        {"interface": "eth0", "received_bytes_total": 1500, "sent_bytes_total": 700},
    ]


def test_real_psutil_sample_has_every_section():
    probe = HostProbe()

    reading = probe.sample()

    assert set(reading) == {"cpu", "load", "memory", "swap", "disks", "network"}
    assert reading["cpu"]["utilization_ratio"] is None
    assert reading["memory"]["total_bytes"] > 0
    assert all(disk["total_bytes"] > 0 for disk in reading["disks"])

"""Sampler: batched writes to a real store, rollups and retention, the thread."""

import json
import threading

import pytest

from agent.config import TelemetrySection
from agent.telemetry import GpuProbe, HostProbe, Sampler, points
from store import Store, StoreBusyError
from tests.fakes import fake_nvml

TWO_GPUS = {
    "gpus": [
        {"uuid": "GPU-0", "power_mw": 250_000, "not_supported": ["power"]},
        {"uuid": "GPU-1", "power_mw": 300_500},
    ]
}


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingStore(Store):
    """A real store that counts write transactions and can fail the next ones."""

    def __init__(self, path) -> None:
        super().__init__(path)
        self.writes = 0
        self.failures_left = 0

    def write(self):
        self.writes += 1
        if self.failures_left:
            self.failures_left -= 1
            raise StoreBusyError(str(self.path), self.write_attempts)
        return super().write()


class SignallingGpuProbe(GpuProbe):
    """A GpuProbe that sets ``sampled`` after each sample, to wait on."""

    def __init__(self, nvml) -> None:
        super().__init__(nvml)
        self.sampled = threading.Event()

    def sample(self):
        section = super().sample()
        self.sampled.set()
        return section


@pytest.fixture
def nvml():
    fake_nvml.configure(TWO_GPUS)
    yield fake_nvml
    fake_nvml.configure({})


@pytest.fixture
def store(tmp_path):
    store = CountingStore(tmp_path / "store.db")
    yield store
    store.close()


def make_sampler(store, nvml, clock, **config):
    host_clock = FakeClock(0.0)
    host = HostProbe(clock=host_clock)
    # The host clock runs ahead so that every sample has a CPU reading.
    host_clock.now = 10.0
    return Sampler(
        store,
        TelemetrySection(**config),
        "gpu-01",
        host_probe=host,
        gpu_probe=GpuProbe(nvml),
        clock=clock,
    )


def rows(store, sql, *parameters):
    return store.db.conn.execute(sql, parameters).fetchall()


def test_flush_writes_batch_in_one_transaction(store, nvml):
    clock = FakeClock(6000.0)
    sampler = make_sampler(store, nvml, clock)
    per_sample = []
    for ts in (6000.0, 6002.0, 6004.0):
        clock.now = ts
        per_sample.append(len(points(sampler.sample_once())))

    written = sampler.flush()

    assert written == sum(per_sample)
    assert store.writes == 1
    assert rows(store, "SELECT COUNT(*) FROM telemetry_samples") == [(written,)]
    assert rows(store, "SELECT DISTINCT ts FROM telemetry_samples ORDER BY ts") == [
        (6000.0,),
        (6002.0,),
        (6004.0,),
    ]
    assert sampler.samples_written == written


def test_flush_with_empty_buffer_skips_store(store, nvml):
    sampler = make_sampler(store, nvml, FakeClock(6000.0))

    assert sampler.flush() == 0
    assert store.writes == 0


def test_gpu_samples_skip_unsupported(store, nvml):
    sampler = make_sampler(store, nvml, FakeClock(6000.0))
    sampler.sample_once()
    sampler.flush()

    power = rows(
        store,
        "SELECT labels, value FROM telemetry_samples WHERE metric = 'gpu_power_watts'",
    )
    up = rows(
        store,
        "SELECT labels, value FROM telemetry_samples WHERE metric = 'gpu_up' "
        "ORDER BY labels",
    )

    assert power == [('{"gpu":"1","uuid":"GPU-1"}', 300.5)]
    assert up == [
        ('{"gpu":"0","uuid":"GPU-0"}', 1.0),
        ('{"gpu":"1","uuid":"GPU-1"}', 1.0),
    ]


def test_host_samples_have_expected_names(store, nvml):
    sampler = make_sampler(store, nvml, FakeClock(6000.0))
    latest = sampler.sample_once()
    sampler.flush()

    metrics = {row[0] for row in rows(store, "SELECT metric FROM telemetry_samples")}
    cores = rows(
        store,
        "SELECT labels FROM telemetry_samples "
        "WHERE metric = 'cpu_core_utilization_ratio' ORDER BY labels",
    )

    assert {
        "cpu_utilization_ratio",
        "cpu_core_utilization_ratio",
        "load_average_1m",
        "load_average_5m",
        "load_average_15m",
        "memory_total_bytes",
        "memory_used_bytes",
        "memory_available_bytes",
        "swap_total_bytes",
        "swap_used_bytes",
        "disk_total_bytes",
        "disk_used_bytes",
        "disk_free_bytes",
    } <= metrics
    assert len(cores) == len(latest["cpu"]["core_utilization_ratios"])
    assert json.loads(cores[0][0]) == {"core": "0"}


def test_first_sample_records_no_cpu_zero(store, nvml):
    sampler = Sampler(
        store,
        TelemetrySection(),
        "gpu-01",
        gpu_probe=GpuProbe(nvml),
        clock=FakeClock(6000.0),
    )

    latest = sampler.sample_once()
    sampler.flush()

    assert latest["cpu"]["utilization_ratio"] is None
    assert rows(
        store,
        "SELECT COUNT(*) FROM telemetry_samples WHERE metric LIKE 'cpu_%'",
    ) == [(0,)]


def test_failed_flush_keeps_samples_for_next(store, nvml):
    sampler = make_sampler(store, nvml, FakeClock(6000.0))
    sampler.sample_once()
    first = len(points(sampler.latest))
    store.failures_left = 1

    with pytest.raises(StoreBusyError):
        sampler.flush()
    sampler.sample_once()
    written = sampler.flush()

    assert written == first + len(points(sampler.latest))
    assert rows(store, "SELECT COUNT(*) FROM telemetry_samples") == [(written,)]


def test_maintain_rolls_up_buffered_minute(store, nvml):
    clock = FakeClock(6000.0)
    # 0.01 hours keeps 36 s of raw samples.
    sampler = make_sampler(store, nvml, clock, raw_retention_hours=0.01)
    for ts, power_mw in ((6000.0, 300_000), (6010.0, 301_000), (6020.0, 305_000)):
        clock.now = ts
        nvml.update_gpu(1, power_mw=power_mw)
        sampler.sample_once()

    written = sampler.maintain(now=6200.0)

    assert written > 0
    assert store.writes == 1
    assert rows(store, "SELECT COUNT(*) FROM telemetry_samples") == [(0,)]
    assert rows(
        store,
        "SELECT minute, labels, count, mean, min, max FROM telemetry_rollups "
        "WHERE metric = 'gpu_power_watts'",
    ) == [(6000.0, '{"gpu":"1","uuid":"GPU-1"}', 3, 302.0, 300.0, 305.0)]


def test_maintain_prunes_old_rollups(store, nvml):
    clock = FakeClock(6000.0)
    # 0.001 days keeps 86.4 s of rollups.
    sampler = make_sampler(store, nvml, clock, rollup_retention_days=0.001)
    sampler.sample_once()
    sampler.maintain(now=6070.0)
    assert rows(store, "SELECT COUNT(*) FROM telemetry_rollups")[0][0] > 0

    sampler.maintain(now=6000.0 + 86.4 + 0.1)

    assert rows(store, "SELECT COUNT(*) FROM telemetry_rollups") == [(0,)]


def test_maintain_keeps_recent_raw_samples(store, nvml):
    clock = FakeClock(6000.0)
    sampler = make_sampler(store, nvml, clock)
    sampler.sample_once()
    clock.now = 6070.0
    sampler.sample_once()

    sampler.maintain(now=6075.0)

    raw = rows(store, "SELECT DISTINCT ts FROM telemetry_samples ORDER BY ts")
    minutes = rows(store, "SELECT DISTINCT minute FROM telemetry_rollups")
    assert raw == [(6000.0,), (6070.0,)]
    assert minutes == [(6000.0,)]


def test_thread_samples_and_flushes_on_stop(store, nvml):
    probe = SignallingGpuProbe(nvml)
    sampler = Sampler(
        store,
        TelemetrySection(interval_seconds=3600, flush_seconds=3600),
        "gpu-01",
        gpu_probe=probe,
    )

    sampler.start()
    assert probe.sampled.wait(timeout=30)
    sampler.stop()

    assert sampler.latest["hostname"] == "gpu-01"
    assert sampler.latest["gpu"]["status"] == "ok"
    assert not sampler._thread.is_alive()
    assert rows(store, "SELECT COUNT(*) FROM telemetry_samples") == [
        (len(points(sampler.latest)),)
    ]
    assert nvml.shutdown_calls == 1


def test_start_twice_is_rejected(store, nvml):
    sampler = Sampler(
        store,
        TelemetrySection(interval_seconds=3600),
        "gpu-01",
        gpu_probe=GpuProbe(nvml),
    )
    sampler.start()
    try:
        with pytest.raises(RuntimeError, match="already started"):
            sampler.start()
    finally:
        sampler.stop()


def test_stop_without_start_flushes(store, nvml):
    sampler = make_sampler(store, nvml, FakeClock(6000.0))
    sampler.sample_once()

    sampler.stop()

    assert rows(store, "SELECT COUNT(*) FROM telemetry_samples") == [
        (len(points(sampler.latest)),)
    ]


def test_on_gpu_lost_with_own_probe_is_rejected(store, nvml):
    with pytest.raises(ValueError, match="on_gpu_lost"):
        Sampler(
            store,
            TelemetrySection(),
            "gpu-01",
            gpu_probe=GpuProbe(nvml),
            on_gpu_lost=print,
        )


def test_without_nvml_host_still_stored(store):
    fake_nvml.configure({"init_error": "library_not_found"})
    try:
        sampler = make_sampler(store, fake_nvml, FakeClock(6000.0))
        latest = sampler.sample_once()
        sampler.flush()
    finally:
        fake_nvml.configure({})

    metrics = {row[0] for row in rows(store, "SELECT metric FROM telemetry_samples")}
    assert latest["gpu"]["reason"] == "nvml_not_found"
    assert "memory_used_bytes" in metrics
    assert "cpu_utilization_ratio" in metrics
    assert not any(metric.startswith("gpu_") for metric in metrics)

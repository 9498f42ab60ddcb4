"""/metrics text: names, lost GPUs, unsupported fields and NVML status."""

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from agent.config import TelemetrySection
from agent.telemetry import GpuProbe, HostProbe, Sampler, render_metrics
from store import Store
from tests.fakes import fake_nvml


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def sampled(tmp_path, scenario):
    """A sampler over the fake NVML in ``scenario`` after one sample."""
    fake_nvml.configure(scenario)
    host_clock = FakeClock(0.0)
    host = HostProbe(clock=host_clock)
    host_clock.now = 10.0
    sampler = Sampler(
        Store(tmp_path / "store.db"),
        TelemetrySection(),
        "gpu-01",
        host_probe=host,
        gpu_probe=GpuProbe(fake_nvml),
        clock=FakeClock(6000.0),
    )
    sampler.sample_once()
    fake_nvml.configure({})
    return sampler


def parse(body: bytes) -> dict[tuple[str, tuple], float]:
    """Map (sample name, sorted labels) to value."""
    values = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def names(values) -> set[str]:
    return {name for name, _ in values}


def gpu(index, uuid):
    return (("gpu", str(index)), ("uuid", uuid))


FOUR_GPUS = {
    "gpus": [
        {"uuid": "GPU-0", "util": 0.1, "name": "NVIDIA H100 80GB HBM3"},
        {"uuid": "GPU-1", "util": 0.2},
        {"uuid": "GPU-2", "util": 0.3, "lost": True},
        {"uuid": "GPU-3", "util": 0.4},
    ]
}


def test_content_type_is_prometheus_text(tmp_path):
    sampler = sampled(tmp_path, {})

    _, content_type = render_metrics(sampler)

    assert content_type.startswith("text/plain; version=0.0.4")


def test_metric_names(tmp_path):
    sampler = sampled(tmp_path, {"gpus": [{"uuid": "GPU-0"}]})

    values = parse(render_metrics(sampler)[0])

    expected = {
        "rigdeck_cpu_utilization_ratio",
        "rigdeck_cpu_core_utilization_ratio",
        "rigdeck_load_average_1m",
        "rigdeck_load_average_5m",
        "rigdeck_load_average_15m",
        "rigdeck_memory_total_bytes",
        "rigdeck_memory_used_bytes",
        "rigdeck_memory_available_bytes",
        "rigdeck_swap_total_bytes",
        "rigdeck_swap_used_bytes",
        "rigdeck_disk_total_bytes",
        "rigdeck_disk_used_bytes",
        "rigdeck_disk_free_bytes",
        "rigdeck_gpu_up",
        "rigdeck_gpu_info",
        "rigdeck_gpu_utilization_ratio",
        "rigdeck_gpu_memory_utilization_ratio",
        "rigdeck_gpu_memory_used_bytes",
        "rigdeck_gpu_memory_total_bytes",
        "rigdeck_gpu_temperature_celsius",
        "rigdeck_gpu_power_watts",
        "rigdeck_gpu_power_limit_watts",
        "rigdeck_gpu_fan_ratio",
        "rigdeck_gpu_sm_clock_hertz",
        "rigdeck_gpu_memory_clock_hertz",
        "rigdeck_gpu_ecc_corrected_errors_total",
        "rigdeck_gpu_ecc_uncorrected_errors_total",
        "rigdeck_gpu_processes",
        "rigdeck_nvml_up",
        "rigdeck_telemetry_last_sample_timestamp_seconds",
    }
    # Network counters exist only where the host has a non-loopback interface.
    found = names(values) - {
        "rigdeck_network_received_bytes_total",
        "rigdeck_network_sent_bytes_total",
    }
    assert found == expected


def test_gpu_values_and_labels(tmp_path):
    scenario = {"gpus": [{"uuid": "GPU-0", "name": "NVIDIA L4", "power_mw": 72_250}]}
    sampler = sampled(tmp_path, scenario)

    values = parse(render_metrics(sampler)[0])

    assert values[("rigdeck_gpu_power_watts", gpu(0, "GPU-0"))] == 72.25
    assert values[("rigdeck_gpu_up", gpu(0, "GPU-0"))] == 1
    info_labels = (("gpu", "0"), ("name", "NVIDIA L4"), ("uuid", "GPU-0"))
    assert values[("rigdeck_gpu_info", info_labels)] == 1
    assert values[("rigdeck_nvml_up", (("reason", ""),))] == 1
    assert values[("rigdeck_telemetry_last_sample_timestamp_seconds", ())] == 6000.0


def test_lost_gpu_renders_down_and_siblings_up(tmp_path):
    sampler = sampled(tmp_path, FOUR_GPUS)

    body, _ = render_metrics(sampler)
    values = parse(body)

    assert values[("rigdeck_gpu_up", gpu(0, "GPU-0"))] == 1
    assert values[("rigdeck_gpu_up", gpu(1, "GPU-1"))] == 1
    assert values[("rigdeck_gpu_up", gpu(2, ""))] == 0
    assert values[("rigdeck_gpu_up", gpu(3, "GPU-3"))] == 1
    assert values[("rigdeck_gpu_utilization_ratio", gpu(0, "GPU-0"))] == 0.1
    assert values[("rigdeck_gpu_utilization_ratio", gpu(1, "GPU-1"))] == 0.2
    assert values[("rigdeck_gpu_utilization_ratio", gpu(3, "GPU-3"))] == 0.4
    assert ("rigdeck_gpu_utilization_ratio", gpu(2, "")) not in values
    assert b'rigdeck_gpu_up{gpu="2",uuid=""} 0.0' in body


def test_unsupported_field_is_absent(tmp_path):
    scenario = {
        "gpus": [
            {"uuid": "GPU-0", "not_supported": ["power", "fan"]},
            {"uuid": "GPU-1", "power_mw": 300_000},
        ]
    }
    sampler = sampled(tmp_path, scenario)

    values = parse(render_metrics(sampler)[0])

    assert ("rigdeck_gpu_power_watts", gpu(0, "GPU-0")) not in values
    assert ("rigdeck_gpu_fan_ratio", gpu(0, "GPU-0")) not in values
    assert values[("rigdeck_gpu_power_watts", gpu(1, "GPU-1"))] == 300.0
    assert values[("rigdeck_gpu_temperature_celsius", gpu(0, "GPU-0"))] == 40


def test_nvml_down_with_reason(tmp_path):
    sampler = sampled(tmp_path, {"init_error": "driver_mismatch"})

    values = parse(render_metrics(sampler)[0])

    assert values[("rigdeck_nvml_up", (("reason", "driver_mismatch"),))] == 0
    assert not any(name.startswith("rigdeck_gpu_") for name in names(values))
    assert values[("rigdeck_memory_total_bytes", ())] > 0


def test_before_first_sample_renders_empty(tmp_path):
    sampler = Sampler(
        Store(tmp_path / "store.db"),
        TelemetrySection(nvml=False),
        "gpu-01",
    )

    body, _ = render_metrics(sampler)

    assert parse(body) == {}


def test_extra_collectors_are_rendered(tmp_path):
    class RunsCollector:
        def collect(self):
            family = GaugeMetricFamily("rigdeck_runs_running", "Runs running.")
            family.add_metric([], 2)
            yield family

    sampler = sampled(tmp_path, {})

    values = parse(render_metrics(sampler, extra_collectors=[RunsCollector()])[0])

    assert values[("rigdeck_runs_running", ())] == 2
    assert values[("rigdeck_nvml_up", (("reason", ""),))] == 1


def test_global_registry_not_included(tmp_path):
    sampler = sampled(tmp_path, {})

    values = parse(render_metrics(sampler)[0])

    assert not any(name.startswith("python_") for name in names(values))
    assert not any(name.startswith("process_") for name in names(values))

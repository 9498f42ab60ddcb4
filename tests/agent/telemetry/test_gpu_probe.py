"""GpuProbe against the fake NVML: missing drivers, unsupported fields, lost GPUs."""

import logging
import os
import subprocess
import sys

import psutil
import pytest

from agent.config import TelemetrySection
from agent.telemetry import GPU_FIELDS, GpuLost, GpuProbe, GpuRefusal
from tests.fakes import fake_nvml


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def nvml():
    fake_nvml.configure({})
    yield fake_nvml
    fake_nvml.configure({})


def field_logs(caplog, field):
    return [record for record in caplog.records if field in record.getMessage()]


# No NVIDIA library, or a driver/library mismatch.


def test_library_not_found_is_unavailable(nvml):
    nvml.configure({"init_error": "library_not_found"})
    probe = GpuProbe(nvml, clock=FakeClock())

    section = probe.sample()

    assert section["status"] == "unavailable"
    assert section["reason"] == "nvml_not_found"
    assert "libnvidia-ml.so.1" in section["message"]
    assert section["gpus"] == []
    assert section["driver_version"] is None


def test_driver_mismatch_says_reboot_required(nvml):
    nvml.configure({"init_error": "driver_mismatch", "gpus": [{}]})
    probe = GpuProbe(nvml, clock=FakeClock())

    section = probe.sample()

    assert section["status"] == "unavailable"
    assert section["reason"] == "driver_mismatch"
    assert "reboot required" in section["message"]
    assert section["gpus"] == []


def test_driver_mismatch_refuses_gpu_runs(nvml):
    nvml.configure({"init_error": "driver_mismatch", "gpus": [{}, {}]})
    probe = GpuProbe(nvml, clock=FakeClock())
    probe.sample()

    refusal = probe.refusal_reason()

    assert refusal is not None
    assert refusal.reason == "driver_mismatch"
    assert "reboot required" in refusal.message
    assert probe.placeable_gpus() == []


def test_driver_not_loaded_is_unavailable(nvml):
    nvml.configure({"init_error": "driver_not_loaded"})
    probe = GpuProbe(nvml, clock=FakeClock())

    section = probe.sample()

    assert section["status"] == "unavailable"
    assert section["reason"] == "driver_not_loaded"


def test_unknown_init_error_is_nvml_error(nvml):
    nvml.configure({"init_error": "unknown"})
    probe = GpuProbe(nvml, clock=FakeClock())

    section = probe.sample()

    assert section["reason"] == "nvml_error"
    assert section["message"] == "nvmlInit failed: Unknown Error."


def test_init_retried_at_most_once_per_minute(nvml):
    nvml.configure({"init_error": "driver_mismatch", "gpus": [{}]})
    clock = FakeClock(1000.0)
    probe = GpuProbe(nvml, clock=clock)

    for now in (1000.0, 1002.0, 1030.0, 1059.9):
        clock.now = now
        probe.sample()
    assert nvml.init_calls == 1

    clock.now = 1060.0
    probe.sample()
    assert nvml.init_calls == 2

    nvml.set_init_error(None)
    clock.now = 1119.9
    assert probe.sample()["status"] == "unavailable"
    assert nvml.init_calls == 2

    clock.now = 1120.0
    section = probe.sample()
    assert nvml.init_calls == 3
    assert section["status"] == "ok"
    assert section["driver_version"] == "550.54.15"
    assert len(section["gpus"]) == 1
    assert probe.refusal_reason() is None


def test_init_failure_logged_once(nvml, caplog):
    nvml.configure({"init_error": "library_not_found"})
    clock = FakeClock()
    probe = GpuProbe(nvml, clock=clock)

    with caplog.at_level(logging.DEBUG, logger="agent.telemetry.gpu"):
        for minute in range(5):
            clock.now = 1000.0 + 60 * minute
            probe.sample()

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert nvml.init_calls == 5
    assert len(warnings) == 1
    assert "nvml_not_found" in warnings[0].getMessage()


def test_disabled_by_config_never_touches_nvml(nvml):
    probe = GpuProbe.from_config(TelemetrySection(nvml=False))

    section = probe.sample()

    assert section["status"] == "unavailable"
    assert section["reason"] == "disabled"
    assert nvml.init_calls == 0


def test_missing_nvml_module_is_nvml_not_found():
    probe = GpuProbe.from_config(TelemetrySection(nvml_module="no_such_nvml_module"))

    section = probe.sample()

    assert section["status"] == "unavailable"
    assert section["reason"] == "nvml_not_found"
    assert "'no_such_nvml_module'" in section["message"]


def test_config_module_name_loads_fake(nvml):
    nvml.configure({"gpus": [{"name": "NVIDIA L4"}]})
    probe = GpuProbe.from_config(TelemetrySection(nvml_module="tests.fakes.fake_nvml"))

    section = probe.sample()

    assert section["status"] == "ok"
    assert section["gpus"][0]["name"] == "NVIDIA L4"


# Healthy GPUs and unit conversions.


def test_fields_converted_to_base_units(nvml):
    nvml.configure(
        {
            "driver_version": "560.35.03",
            "gpus": [
                {
                    "name": "NVIDIA A100-SXM4-80GB",
                    "uuid": "GPU-a",
                    "util": 0.37,
                    "memory_util": 0.12,
                    "memory_used": 10 * 1024**3,
                    "memory_total": 80 * 1024**3,
                    "temperature": 61,
                    "power_mw": 251_500,
                    "power_limit_mw": 400_000,
                    "fan": 45,
                    "sm_clock_mhz": 1410,
                    "memory_clock_mhz": 1593,
                    "ecc_corrected": 7,
                    "ecc_uncorrected": 1,
                }
            ],
        }
    )
    probe = GpuProbe(nvml, clock=FakeClock())

    section = probe.sample()
    gpu = section["gpus"][0]

    assert section["status"] == "ok"
    assert section["reason"] is None
    assert section["driver_version"] == "560.35.03"
    assert gpu["index"] == 0
    assert gpu["uuid"] == "GPU-a"
    assert gpu["name"] == "NVIDIA A100-SXM4-80GB"
    assert gpu["state"] == "ok"
    assert gpu["utilization_ratio"] == 0.37
    assert gpu["memory_utilization_ratio"] == 0.12
    assert gpu["memory_used_bytes"] == 10 * 1024**3
    assert gpu["memory_total_bytes"] == 80 * 1024**3
    assert gpu["temperature_celsius"] == 61
    assert gpu["power_watts"] == 251.5
    assert gpu["power_limit_watts"] == 400.0
    assert gpu["fan_ratio"] == 0.45
    assert gpu["sm_clock_hertz"] == 1_410_000_000
    assert gpu["memory_clock_hertz"] == 1_593_000_000
    assert gpu["ecc_corrected_errors_total"] == 7
    assert gpu["ecc_uncorrected_errors_total"] == 1
    assert gpu["processes"] == []
    assert gpu["field_status"] == {}


def test_no_gpu_refuses_with_no_gpu(nvml):
    probe = GpuProbe(nvml, clock=FakeClock())

    refusal = probe.refusal_reason()

    assert refusal == GpuRefusal("no_gpu", "NVML lists no GPU on this host.")


def test_close_shuts_nvml_down_once(nvml):
    nvml.configure({"gpus": [{}]})
    probe = GpuProbe(nvml, clock=FakeClock())
    probe.sample()

    probe.close()
    probe.close()

    assert nvml.shutdown_calls == 1


# A field the GPU does not support.


def test_unsupported_power_is_null_on_gpu0_only(nvml, caplog):
    nvml.configure(
        {
            "gpus": [
                {"uuid": "GPU-0", "power_mw": 250_000, "not_supported": ["power"]},
                {"uuid": "GPU-1", "power_mw": 300_500},
            ]
        }
    )
    probe = GpuProbe(nvml, clock=FakeClock())

    with caplog.at_level(logging.DEBUG, logger="agent.telemetry.gpu"):
        sections = [probe.sample() for _ in range(5)]
    first, second = sections[-1]["gpus"]

    assert first["power_watts"] is None
    assert first["field_status"] == {"power_watts": "not_supported"}
    assert first["power_limit_watts"] == 400.0
    assert first["temperature_celsius"] == 40
    assert first["state"] == "ok"
    assert second["power_watts"] == 300.5
    assert second["field_status"] == {}
    assert len(field_logs(caplog, "power_watts")) == 1


def test_unsupported_fan_and_denied_ecc(nvml, caplog):
    nvml.configure({"gpus": [{"not_supported": ["fan"], "no_permission": ["ecc"]}]})
    probe = GpuProbe(nvml, clock=FakeClock())

    with caplog.at_level(logging.DEBUG, logger="agent.telemetry.gpu"):
        probe.sample()
        gpu = probe.sample()["gpus"][0]

    assert gpu["fan_ratio"] is None
    assert gpu["ecc_corrected_errors_total"] is None
    assert gpu["ecc_uncorrected_errors_total"] is None
    assert gpu["field_status"] == {
        "fan_ratio": "not_supported",
        "ecc_corrected_errors_total": "no_permission",
        "ecc_uncorrected_errors_total": "no_permission",
    }
    assert gpu["utilization_ratio"] == 0.0
    assert len(field_logs(caplog, "fan_ratio")) == 1
    assert len(field_logs(caplog, "ecc_corrected_errors_total")) == 1


def test_unsupported_utilization_nulls_both_fields(nvml):
    nvml.configure({"gpus": [{"not_supported": ["utilization"]}]})
    probe = GpuProbe(nvml, clock=FakeClock())

    gpu = probe.sample()["gpus"][0]

    assert gpu["utilization_ratio"] is None
    assert gpu["memory_utilization_ratio"] is None
    assert gpu["field_status"] == {
        "utilization_ratio": "not_supported",
        "memory_utilization_ratio": "not_supported",
    }


# A GPU that has fallen off the bus.


FOUR_GPUS = {
    "gpus": [
        {"uuid": "GPU-0", "util": 0.1},
        {"uuid": "GPU-1", "util": 0.2},
        {"uuid": "GPU-2", "util": 0.3, "lost": True},
        {"uuid": "GPU-3", "util": 0.4},
    ]
}


def test_lost_gpu_reported_and_siblings_read(nvml):
    nvml.configure(FOUR_GPUS)
    probe = GpuProbe(nvml, clock=FakeClock())

    gpus = probe.sample()["gpus"]

    assert [gpu["state"] for gpu in gpus] == ["ok", "ok", "lost", "ok"]
    assert [gpu["utilization_ratio"] for gpu in gpus] == [0.1, 0.2, None, 0.4]
    assert gpus[2]["uuid"] is None
    assert gpus[2]["processes"] is None
    assert all(gpus[2][field] is None for field in GPU_FIELDS)
    assert gpus[3]["uuid"] == "GPU-3"


def test_lost_gpu_reported_once_as_new(nvml):
    nvml.configure(FOUR_GPUS)
    events: list[GpuLost] = []
    probe = GpuProbe(nvml, clock=FakeClock(), on_gpu_lost=events.append)

    for _ in range(3):
        probe.sample()

    assert events == [
        GpuLost(
            index=2,
            uuid=None,
            name=None,
            message="GPU 2 is lost (NVML: GPU is lost). "
            "Reset it (nvidia-smi -r) or reboot the host.",
        )
    ]
    assert probe.lost_gpus == {2}


def test_lost_gpu_not_placeable(nvml):
    nvml.configure(FOUR_GPUS)
    probe = GpuProbe(nvml, clock=FakeClock())
    probe.sample()

    assert probe.placeable_gpus() == [0, 1, 3]
    assert probe.refusal_reason() is None


def test_gpu_lost_after_start_keeps_identity(nvml):
    nvml.configure(FOUR_GPUS)
    events: list[GpuLost] = []
    probe = GpuProbe(nvml, clock=FakeClock(), on_gpu_lost=events.append)
    probe.sample()

    nvml.update_gpu(1, lost=True)
    gpus = probe.sample()["gpus"]

    assert gpus[1]["state"] == "lost"
    assert gpus[1]["uuid"] == "GPU-1"
    assert [event.index for event in events] == [2, 1]
    assert events[1].uuid == "GPU-1"
    assert probe.lost_gpus == {1, 2}
    assert probe.placeable_gpus() == [0, 3]


def test_recovered_gpu_is_placeable_again(nvml):
    nvml.configure(FOUR_GPUS)
    events: list[GpuLost] = []
    probe = GpuProbe(nvml, clock=FakeClock(), on_gpu_lost=events.append)
    probe.sample()

    nvml.update_gpu(2, lost=False)
    gpus = probe.sample()["gpus"]

    assert gpus[2]["state"] == "ok"
    assert gpus[2]["uuid"] == "GPU-2"
    assert gpus[2]["utilization_ratio"] == 0.3
    assert probe.lost_gpus == set()
    assert probe.placeable_gpus() == [0, 1, 2, 3]
    assert len(events) == 1


def test_every_gpu_lost_refuses_runs(nvml):
    nvml.configure({"gpus": [{"lost": True}, {"lost": True}]})
    probe = GpuProbe(nvml, clock=FakeClock())
    probe.sample()

    refusal = probe.refusal_reason()

    assert refusal is not None
    assert refusal.reason == "no_healthy_gpu"


def test_lost_callback_error_absorbed(nvml, caplog):
    nvml.configure(FOUR_GPUS)

    def fail(event):
        raise RuntimeError("alert store down")

    probe = GpuProbe(nvml, clock=FakeClock(), on_gpu_lost=fail)

    with caplog.at_level(logging.ERROR, logger="agent.telemetry.gpu"):
        section = probe.sample()

    assert [gpu["state"] for gpu in section["gpus"]] == ["ok", "ok", "lost", "ok"]
    assert any("on_gpu_lost callback failed" in r.getMessage() for r in caplog.records)


# Processes that exit or hide between NVML listing them and psutil reading them.


def test_vanished_process_keeps_sample(nvml):
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait(timeout=60)
    nvml.configure(
        {
            "gpus": [
                {
                    "processes": [
                        {"pid": os.getpid(), "used_memory": 1024**3},
                        {"pid": exited.pid, "used_memory": 2 * 1024**3},
                    ],
                    "graphics_processes": [{"pid": os.getpid(), "used_memory": 5}],
                }
            ]
        }
    )
    probe = GpuProbe(nvml, clock=FakeClock())

    gpu = probe.sample()["gpus"][0]

    assert gpu["state"] == "ok"
    assert gpu["processes"] == [
        {
            "pid": os.getpid(),
            "used_memory_bytes": 1024**3,
            "name": psutil.Process().name(),
        },
        {"pid": exited.pid, "used_memory_bytes": 2 * 1024**3, "name": None},
    ]
    assert gpu["utilization_ratio"] == 0.0


def test_process_memory_unknown_is_null(nvml):
    nvml.configure({"gpus": [{"processes": [{"pid": os.getpid()}]}]})
    probe = GpuProbe(nvml, clock=FakeClock())

    processes = probe.sample()["gpus"][0]["processes"]

    assert processes[0]["used_memory_bytes"] is None


def test_unsupported_process_list_is_null(nvml):
    nvml.configure({"gpus": [{"not_supported": ["processes"]}]})
    probe = GpuProbe(nvml, clock=FakeClock())

    gpu = probe.sample()["gpus"][0]

    assert gpu["processes"] is None
    assert gpu["field_status"] == {"processes": "not_supported"}

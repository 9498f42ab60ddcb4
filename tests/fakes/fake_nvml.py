"""A fake of the ``pynvml`` module (package nvidia-ml-py), driven by a scenario.

It provides the functions, error classes and constants that
``agent.telemetry.gpu.GpuProbe`` uses, with the same names and error codes
as pynvml, so the probe can be tested on hosts without a GPU. A test in
``tests/agent/telemetry/test_fake_nvml.py`` checks it against pynvml.

Configure it in-process with ``configure(scenario)``, or for an agent
subprocess (``nvml_module = "tests.fakes.fake_nvml"``) through the
``RIGDECK_FAKE_NVML`` environment variable, read once at import: either a
JSON object or the path of a JSON file. A scenario looks like::

    {
        "init_error": null,            # or "library_not_found",
                                       # "driver_not_loaded", "driver_mismatch"
        "driver_version": "550.54.15",
        "gpus": [
            {"name": "NVIDIA A100-SXM4-80GB", "uuid": "GPU-0000...",
             "util": 0.5, "not_supported": ["power", "fan"], "lost": false},
        ],
    }

Every GPU key is optional; ``GPU_DEFAULTS`` lists them with their units.
Values are given in NVML's own units (percent, milliwatts, MHz), except
``util`` and ``memory_util``, which are ratios like the probe's output. The
names in ``not_supported`` and ``no_permission`` are the keys of
``FIELD_FUNCTIONS``. A ``lost`` GPU raises ``NVMLError_GpuIsLost`` from every
call, including ``nvmlDeviceGetHandleByIndex``.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ENVIRONMENT_VARIABLE = "RIGDECK_FAKE_NVML"

# Constants, with pynvml's values.
NVML_TEMPERATURE_GPU = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_MEMORY_ERROR_TYPE_CORRECTED = 0
NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1
NVML_VOLATILE_ECC = 0


class NVMLError(Exception):
    """Base of every NVML error; ``value`` is NVML's return code."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return _ERROR_STRINGS.get(self.value, f"NVML error {self.value}")


class _CodedError(NVMLError):
    code = 999

    def __init__(self) -> None:
        super().__init__(self.code)


class NVMLError_Uninitialized(_CodedError):
    code = 1


class NVMLError_InvalidArgument(_CodedError):
    code = 2


class NVMLError_NotSupported(_CodedError):
    code = 3


class NVMLError_NoPermission(_CodedError):
    code = 4


class NVMLError_NotFound(_CodedError):
    code = 6


class NVMLError_DriverNotLoaded(_CodedError):
    code = 9


class NVMLError_LibraryNotFound(_CodedError):
    code = 12


class NVMLError_GpuIsLost(_CodedError):
    code = 15


class NVMLError_LibRmVersionMismatch(_CodedError):
    code = 18


class NVMLError_Unknown(_CodedError):
    code = 999


_ERROR_STRINGS = {
    1: "Uninitialized",
    2: "Invalid Argument",
    3: "Not Supported",
    4: "Insufficient Permissions",
    6: "Not Found",
    9: "Driver Not Loaded",
    12: "NVML Shared Library Not Found",
    15: "GPU is lost",
    18: "RM has detected an NVML/RM version mismatch.",
    999: "Unknown Error",
}

INIT_ERRORS: dict[str, type[NVMLError]] = {
    "library_not_found": NVMLError_LibraryNotFound,
    "driver_not_loaded": NVMLError_DriverNotLoaded,
    "driver_mismatch": NVMLError_LibRmVersionMismatch,
    "unknown": NVMLError_Unknown,
}

# The NVML function behind each name that a scenario may put in
# ``not_supported`` or ``no_permission``.
FIELD_FUNCTIONS = {
    "utilization": "nvmlDeviceGetUtilizationRates",
    "memory": "nvmlDeviceGetMemoryInfo",
    "temperature": "nvmlDeviceGetTemperature",
    "power": "nvmlDeviceGetPowerUsage",
    "power_limit": "nvmlDeviceGetEnforcedPowerLimit",
    "fan": "nvmlDeviceGetFanSpeed",
    "sm_clock": "nvmlDeviceGetClockInfo",
    "memory_clock": "nvmlDeviceGetClockInfo",
    "ecc": "nvmlDeviceGetTotalEccErrors",
    "processes": "nvmlDeviceGetComputeRunningProcesses",
}

GPU_DEFAULTS: dict[str, Any] = {
    "name": "NVIDIA Fake GPU",
    "uuid": None,  # derived from the index when missing
    "util": 0.0,  # ratio 0..1
    "memory_util": 0.0,  # ratio 0..1
    "memory_used": 0,  # bytes
    "memory_total": 80 * 1024**3,  # bytes
    "temperature": 40,  # degrees Celsius
    "power_mw": 100_000,  # milliwatts
    "power_limit_mw": 400_000,  # milliwatts
    "fan": 30,  # percent
    "sm_clock_mhz": 1410,
    "memory_clock_mhz": 1593,
    "ecc_corrected": 0,
    "ecc_uncorrected": 0,
    "processes": [],  # [{"pid": int, "used_memory": bytes}]
    "graphics_processes": [],  # same shape
    "not_supported": [],
    "no_permission": [],
    "lost": False,
}

_state: dict[str, Any] = {}

init_calls = 0
shutdown_calls = 0


def configure(scenario: dict[str, Any] | None = None) -> None:
    """Replace the scenario and reset the call counters and the init state."""
    global init_calls, shutdown_calls
    scenario = copy.deepcopy(scenario or {})
    unknown = set(scenario) - {"init_error", "driver_version", "gpus"}
    if unknown:
        raise ValueError(f"Unknown fake NVML scenario keys: {sorted(unknown)}")
    init_error = scenario.get("init_error")
    if init_error is not None and init_error not in INIT_ERRORS:
        raise ValueError(
            f"Unknown fake NVML init_error {init_error!r}; "
            f"use one of {sorted(INIT_ERRORS)} or null."
        )
    gpus = [
        _gpu_with_defaults(index, gpu)
        for index, gpu in enumerate(scenario.get("gpus", []))
    ]
    _state.clear()
    _state.update(
        init_error=init_error,
        driver_version=scenario.get("driver_version", "550.54.15"),
        gpus=gpus,
        initialized=False,
    )
    init_calls = 0
    shutdown_calls = 0


def update_gpu(index: int, **changes: Any) -> None:
    """Change one GPU of the current scenario, e.g. ``update_gpu(2, lost=True)``."""
    gpu = _state["gpus"][index]
    unknown = set(changes) - set(GPU_DEFAULTS)
    if unknown:
        raise ValueError(f"Unknown fake NVML GPU keys: {sorted(unknown)}")
    gpu.update(changes)


def set_init_error(init_error: str | None) -> None:
    """Make the next ``nvmlInit`` fail with ``init_error``, or succeed if None."""
    if init_error is not None and init_error not in INIT_ERRORS:
        raise ValueError(f"Unknown fake NVML init_error {init_error!r}.")
    _state["init_error"] = init_error


def _gpu_with_defaults(index: int, gpu: dict[str, Any]) -> dict[str, Any]:
    unknown = set(gpu) - set(GPU_DEFAULTS)
    if unknown:
        raise ValueError(
            f"Unknown fake NVML GPU keys for GPU {index}: {sorted(unknown)}"
        )
    merged = {**copy.deepcopy(GPU_DEFAULTS), **gpu}
    if merged["uuid"] is None:
        merged["uuid"] = f"GPU-00000000-0000-0000-0000-{index:012d}"
    return merged


def _configure_from_environment() -> None:
    raw = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if not raw:
        configure({})
        return
    text = raw if raw.startswith("{") else Path(raw).read_text()
    configure(json.loads(text))


# Library lifecycle.


def nvmlInit() -> None:
    global init_calls
    init_calls += 1
    init_error = _state["init_error"]
    if init_error is not None:
        raise INIT_ERRORS[init_error]()
    _state["initialized"] = True


def nvmlShutdown() -> None:
    global shutdown_calls
    _require_init()
    shutdown_calls += 1
    _state["initialized"] = False


def nvmlSystemGetDriverVersion() -> str:
    _require_init()
    return _state["driver_version"]


def nvmlDeviceGetCount() -> int:
    _require_init()
    return len(_state["gpus"])


def nvmlDeviceGetHandleByIndex(index: int) -> SimpleNamespace:
    _require_init()
    if not 0 <= index < len(_state["gpus"]):
        raise NVMLError_InvalidArgument()
    _gpu(SimpleNamespace(index=index), None)
    return SimpleNamespace(index=index)


# Device queries.


def nvmlDeviceGetName(handle: SimpleNamespace) -> str:
    return _gpu(handle, None)["name"]


def nvmlDeviceGetUUID(handle: SimpleNamespace) -> str:
    return _gpu(handle, None)["uuid"]


def nvmlDeviceGetUtilizationRates(handle: SimpleNamespace) -> SimpleNamespace:
    gpu = _gpu(handle, "utilization")
    return SimpleNamespace(
        gpu=round(gpu["util"] * 100), memory=round(gpu["memory_util"] * 100)
    )


def nvmlDeviceGetMemoryInfo(handle: SimpleNamespace) -> SimpleNamespace:
    gpu = _gpu(handle, "memory")
    used, total = gpu["memory_used"], gpu["memory_total"]
    return SimpleNamespace(total=total, used=used, free=total - used)


def nvmlDeviceGetTemperature(handle: SimpleNamespace, sensor: int) -> int:
    if sensor != NVML_TEMPERATURE_GPU:
        raise NVMLError_InvalidArgument()
    return _gpu(handle, "temperature")["temperature"]


def nvmlDeviceGetPowerUsage(handle: SimpleNamespace) -> int:
    return _gpu(handle, "power")["power_mw"]


def nvmlDeviceGetEnforcedPowerLimit(handle: SimpleNamespace) -> int:
    return _gpu(handle, "power_limit")["power_limit_mw"]


def nvmlDeviceGetFanSpeed(handle: SimpleNamespace) -> int:
    return _gpu(handle, "fan")["fan"]


def nvmlDeviceGetClockInfo(handle: SimpleNamespace, clock_type: int) -> int:
    if clock_type == NVML_CLOCK_SM:
        return _gpu(handle, "sm_clock")["sm_clock_mhz"]
    if clock_type == NVML_CLOCK_MEM:
        return _gpu(handle, "memory_clock")["memory_clock_mhz"]
    raise NVMLError_InvalidArgument()


def nvmlDeviceGetTotalEccErrors(
    handle: SimpleNamespace, error_type: int, counter_type: int
) -> int:
    gpu = _gpu(handle, "ecc")
    if counter_type != NVML_VOLATILE_ECC:
        raise NVMLError_InvalidArgument()
    if error_type == NVML_MEMORY_ERROR_TYPE_CORRECTED:
        return gpu["ecc_corrected"]
    if error_type == NVML_MEMORY_ERROR_TYPE_UNCORRECTED:
        return gpu["ecc_uncorrected"]
    raise NVMLError_InvalidArgument()


def nvmlDeviceGetComputeRunningProcesses(
    handle: SimpleNamespace,
) -> list[SimpleNamespace]:
    return _processes(_gpu(handle, "processes")["processes"])


def nvmlDeviceGetGraphicsRunningProcesses(
    handle: SimpleNamespace,
) -> list[SimpleNamespace]:
    return _processes(_gpu(handle, "processes")["graphics_processes"])


def _processes(entries: list[dict[str, Any]]) -> list[SimpleNamespace]:
    # pynvml returns objects with these attribute names (nvmlProcessInfo_t).
    return [
        SimpleNamespace(
            pid=entry["pid"],
            usedGpuMemory=entry.get("used_memory"),
            gpuInstanceId=0xFFFFFFFF,
            computeInstanceId=0xFFFFFFFF,
        )
        for entry in entries
    ]


def _require_init() -> None:
    if not _state["initialized"]:
        raise NVMLError_Uninitialized()


def _gpu(handle: SimpleNamespace, field: str | None) -> dict[str, Any]:
    _require_init()
    gpu = _state["gpus"][handle.index]
    if gpu["lost"]:
        raise NVMLError_GpuIsLost()
    if field in gpu["not_supported"]:
        raise NVMLError_NotSupported()
    if field in gpu["no_permission"]:
        raise NVMLError_NoPermission()
    return gpu


_configure_from_environment()

"""NVML calls, unit conversions and error classification for ``GpuProbe``.

Every function takes the NVML module as its first argument, so the same
code runs against ``pynvml`` and against ``tests.fakes.fake_nvml``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import ModuleType
from typing import Any

logger = logging.getLogger(__name__)

# Per-GPU values, in the order they appear in a sample. Units are in the
# names; NVML's percent, milliwatts and MHz are converted on the way in.
GPU_FIELDS = (
    "utilization_ratio",
    "memory_utilization_ratio",
    "memory_used_bytes",
    "memory_total_bytes",
    "temperature_celsius",
    "power_watts",
    "power_limit_watts",
    "fan_ratio",
    "sm_clock_hertz",
    "memory_clock_hertz",
    "ecc_corrected_errors_total",
    "ecc_uncorrected_errors_total",
)

_MHZ = 1_000_000


def read_uuid(nvml: ModuleType, handle: Any) -> tuple[str]:
    return (text(nvml.nvmlDeviceGetUUID(handle)),)


def read_name(nvml: ModuleType, handle: Any) -> tuple[str]:
    return (text(nvml.nvmlDeviceGetName(handle)),)


def _read_utilization(nvml: ModuleType, handle: Any) -> tuple[float, float]:
    rates = nvml.nvmlDeviceGetUtilizationRates(handle)
    return rates.gpu / 100, rates.memory / 100


def _read_memory(nvml: ModuleType, handle: Any) -> tuple[int, int]:
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    return memory.used, memory.total


def _read_temperature(nvml: ModuleType, handle: Any) -> tuple[int]:
    return (nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU),)


def _read_power(nvml: ModuleType, handle: Any) -> tuple[float]:
    return (nvml.nvmlDeviceGetPowerUsage(handle) / 1000,)


def _read_power_limit(nvml: ModuleType, handle: Any) -> tuple[float]:
    return (nvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000,)


def _read_fan(nvml: ModuleType, handle: Any) -> tuple[float]:
    return (nvml.nvmlDeviceGetFanSpeed(handle) / 100,)


def _read_sm_clock(nvml: ModuleType, handle: Any) -> tuple[int]:
    return (nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM) * _MHZ,)


def _read_memory_clock(nvml: ModuleType, handle: Any) -> tuple[int]:
    return (nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_MEM) * _MHZ,)


def _read_ecc(nvml: ModuleType, handle: Any, error_type: int) -> tuple[int]:
    count = nvml.nvmlDeviceGetTotalEccErrors(handle, error_type, nvml.NVML_VOLATILE_ECC)
    return (count,)


def _read_ecc_corrected(nvml: ModuleType, handle: Any) -> tuple[int]:
    return _read_ecc(nvml, handle, nvml.NVML_MEMORY_ERROR_TYPE_CORRECTED)


def _read_ecc_uncorrected(nvml: ModuleType, handle: Any) -> tuple[int]:
    return _read_ecc(nvml, handle, nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED)


# Each NVML call and the fields it fills. One call may fill several fields,
# and when it fails, all of them get the same status.
FIELD_READERS: tuple[
    tuple[tuple[str, ...], Callable[[ModuleType, Any], tuple]], ...
] = (
    (("utilization_ratio", "memory_utilization_ratio"), _read_utilization),
    (("memory_used_bytes", "memory_total_bytes"), _read_memory),
    (("temperature_celsius",), _read_temperature),
    (("power_watts",), _read_power),
    (("power_limit_watts",), _read_power_limit),
    (("fan_ratio",), _read_fan),
    (("sm_clock_hertz",), _read_sm_clock),
    (("memory_clock_hertz",), _read_memory_clock),
    (("ecc_corrected_errors_total",), _read_ecc_corrected),
    (("ecc_uncorrected_errors_total",), _read_ecc_uncorrected),
)


_INIT_ERRORS = (
    (
        "NVMLError_LibraryNotFound",
        "nvml_not_found",
        "The NVML library (libnvidia-ml.so.1) was not found, so GPU telemetry "
        "is off. This is expected on a host without NVIDIA GPUs. On a GPU host, "
        "install the NVIDIA driver.",
    ),
    (
        "NVMLError_DriverNotLoaded",
        "driver_not_loaded",
        "The NVIDIA kernel driver is not loaded, so GPU telemetry is off. "
        "Check `nvidia-smi` and load the driver.",
    ),
    (
        "NVMLError_LibRmVersionMismatch",
        "driver_mismatch",
        "The NVIDIA kernel driver and the NVML library have different versions, "
        "usually because the driver was upgraded without a reboot: reboot "
        "required. No GPU run starts until then.",
    ),
    (
        "NVMLError_NoPermission",
        "no_permission",
        "NVML was denied access to the GPUs. Run the agent as a user that may "
        "open /dev/nvidia*.",
    ),
)


def classify_init_error(nvml: ModuleType, error: Exception) -> tuple[str, str]:
    """Map an ``nvmlInit`` error to a reason code and a message for the user."""
    for class_name, reason, message in _INIT_ERRORS:
        if isinstance(error, getattr(nvml, class_name)):
            return reason, message
    return "nvml_error", f"nvmlInit failed: {error}."


def field_status(nvml: ModuleType, error: Exception) -> str:
    """Map the NVML error of one field to its ``field_status`` value."""
    if isinstance(error, nvml.NVMLError_NotSupported):
        return "not_supported"
    if isinstance(error, nvml.NVMLError_NoPermission):
        return "no_permission"
    return "error"


def shutdown_quietly(nvml: ModuleType) -> None:
    try:
        nvml.nvmlShutdown()
    except nvml.NVMLError as error:
        logger.debug("nvmlShutdown after a failed init failed too: %s", error)


def text(value: str | bytes) -> str:
    # nvidia-ml-py 13 decodes names and UUIDs to str; bytes are accepted too
    # for bindings that do not.
    return value.decode() if isinstance(value, bytes) else value

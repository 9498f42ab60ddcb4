"""GPU telemetry through NVML, for hosts with, without and with broken GPUs.

``GpuProbe`` takes the NVML module as an object (``pynvml`` from the
nvidia-ml-py package, or ``tests.fakes.fake_nvml``) and turns its errors
into plain data where they enter:

- ``nvmlInit`` failing makes the whole section ``unavailable`` with a
  reason code. Init is retried at most once per ``init_retry_seconds``.
- A field that raises ``NVMLError_NotSupported`` (or another NVML error)
  is ``None`` and named in the GPU's ``field_status``; it is never 0.
- A GPU whose handle or any call raises ``NVMLError_GpuIsLost`` is
  reported with ``state: "lost"`` and every field ``None``; the other GPUs
  are still read.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple

import psutil

from agent.telemetry._nvml import (
    FIELD_READERS,
    GPU_FIELDS,
    classify_init_error,
    field_status,
    read_name,
    read_uuid,
    shutdown_quietly,
    text,
)

if TYPE_CHECKING:
    from agent.config import TelemetrySection

logger = logging.getLogger(__name__)

INIT_RETRY_SECONDS = 60.0

STATUS_OK = "ok"
STATUS_UNAVAILABLE = "unavailable"
GPU_OK = "ok"
GPU_LOST = "lost"
GPU_ERROR = "error"


@dataclass(frozen=True)
class GpuLost:
    """A GPU that NVML reports as lost (fallen off the bus) for the first time.

    ``uuid`` and ``name`` are None when the GPU was already lost when the
    probe first read it.
    """

    index: int
    uuid: str | None
    name: str | None
    message: str


class GpuRefusal(NamedTuple):
    """The reason no GPU run may start on this host, e.g. ``driver_mismatch``."""

    reason: str
    message: str


class GpuProbe:
    """Reads every GPU through NVML and reports what it can.

    Args:
        nvml: the module that provides the NVML API, normally ``pynvml``.
        clock: monotonic clock in seconds, used to space init retries.
            Default ``time.monotonic``.
        init_retry_seconds: the shortest time between two ``nvmlInit``
            attempts after a failure. Default 60.
        on_gpu_lost: called with a ``GpuLost`` once each time a GPU goes
            from readable (or never read) to lost. It runs in the thread that
            calls ``sample()``; an exception it raises is logged and ignored.

    ``sample()`` is safe to call from several threads; the other methods
    read the latest sample.
    """

    def __init__(
        self,
        nvml: ModuleType | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        init_retry_seconds: float = INIT_RETRY_SECONDS,
        on_gpu_lost: Callable[[GpuLost], None] | None = None,
    ) -> None:
        self._nvml = nvml
        self._clock = clock
        self._init_retry_seconds = init_retry_seconds
        self._on_gpu_lost = on_gpu_lost
        self._lock = threading.Lock()
        self._initialized = False
        self._next_init_at: float | None = None
        self._reason: str | None = None
        self._message: str | None = None
        self._driver_version: str | None = None
        self._gpu_count = 0
        self._handles: dict[int, Any] = {}
        self._identities: dict[int, dict[str, str | None]] = {}
        self._lost: set[int] = set()
        self._logged_fields: set[tuple[int, str]] = set()
        self._process_names: dict[int, str | None] = {}
        self._latest: dict[str, Any] | None = None
        self.init_attempts = 0

    @classmethod
    def from_config(
        cls,
        config: TelemetrySection,
        *,
        on_gpu_lost: Callable[[GpuLost], None] | None = None,
    ) -> GpuProbe:
        """Build a probe from the ``[telemetry]`` section of ``agent.toml``.

        With ``nvml = false``, or when ``nvml_module`` cannot be imported, the
        probe reports ``unavailable`` and never touches NVML.
        """
        if not config.nvml:
            return cls._without_nvml(
                "disabled", "GPU telemetry is disabled by telemetry.nvml = false."
            )
        try:
            nvml = importlib.import_module(config.nvml_module)
        except ImportError as error:
            return cls._without_nvml(
                "nvml_not_found",
                f"The NVML module {config.nvml_module!r} could not be imported "
                f"({error}). Install nvidia-ml-py, or set telemetry.nvml_module.",
            )
        return cls(nvml, on_gpu_lost=on_gpu_lost)

    @classmethod
    def _without_nvml(cls, reason: str, message: str) -> GpuProbe:
        probe = cls(None)
        probe._reason = reason
        probe._message = message
        logger.info("GPU telemetry unavailable (%s): %s", reason, message)
        return probe

    @property
    def latest(self) -> dict[str, Any] | None:
        """The section returned by the last ``sample()``, or None before it."""
        return self._latest

    @property
    def lost_gpus(self) -> frozenset[int]:
        """Indices of the GPUs that were lost at the last sample."""
        return frozenset(self._lost)

    def sample(self) -> dict[str, Any]:
        """Read every GPU and return the GPU section as JSON-ready data.

        Returns ``{"status", "reason", "message", "driver_version", "gpus"}``.
        ``status`` is ``"ok"`` or ``"unavailable"``, and ``reason`` is None or
        one of ``nvml_not_found``, ``driver_not_loaded``, ``driver_mismatch``,
        ``no_permission``, ``nvml_error`` and ``disabled``. Each GPU is a dict
        with ``index``, ``uuid``, ``name``, ``state`` (``"ok"``, ``"lost"``, or
        ``"error"`` when NVML cannot open the GPU for another reason), the
        ``GPU_FIELDS``, ``processes`` and ``field_status``. A field that
        could not be read is None, and ``field_status`` maps its name to
        ``"not_supported"``, ``"no_permission"`` or ``"error"``. Fields read
        without error are absent from ``field_status``.
        """
        with self._lock:
            lost_before = set(self._lost)
            if self._ensure_initialized():
                section = self._sample_gpus()
            else:
                section = self._unavailable_section()
            self._latest = section
            newly_lost = [
                gpu
                for gpu in section["gpus"]
                if gpu["state"] == GPU_LOST and gpu["index"] not in lost_before
            ]
        for gpu in newly_lost:
            self._notify_lost(gpu)
        return section

    def placeable_gpus(self) -> list[int]:
        """Indices of the GPUs a run may be placed on: readable and not lost."""
        section = self._latest or self.sample()
        return [gpu["index"] for gpu in section["gpus"] if gpu["state"] == GPU_OK]

    def refusal_reason(self) -> GpuRefusal | None:
        """Return why no GPU run can start on this host now, or None if one can.

        The reason is the section's (``driver_mismatch``, ``nvml_not_found``
        and the others listed in ``sample()``), ``no_gpu`` when NVML works but
        lists no GPU, or ``no_healthy_gpu`` when every GPU is lost.
        """
        section = self._latest or self.sample()
        if section["status"] != STATUS_OK:
            return GpuRefusal(section["reason"], section["message"])
        if not section["gpus"]:
            return GpuRefusal("no_gpu", "NVML lists no GPU on this host.")
        if not self.placeable_gpus():
            return GpuRefusal(
                "no_healthy_gpu",
                "Every GPU on this host is lost. Reset the GPUs or reboot the host.",
            )
        return None

    def close(self) -> None:
        """Shut NVML down if this probe initialised it."""
        with self._lock:
            if not self._initialized:
                return
            self._initialized = False
            try:
                self._nvml.nvmlShutdown()
            except self._nvml.NVMLError as error:
                logger.warning("nvmlShutdown failed: %s", error)

    # Initialisation.

    def _ensure_initialized(self) -> bool:
        if self._initialized:
            return True
        if self._nvml is None:
            return False
        now = self._clock()
        if self._next_init_at is not None and now < self._next_init_at:
            return False
        self.init_attempts += 1
        try:
            self._initialize()
        except self._nvml.NVMLError as error:
            self._record_init_failure(error, now)
            return False
        return True

    def _initialize(self) -> None:
        nvml = self._nvml
        nvml.nvmlInit()
        try:
            driver_version = text(nvml.nvmlSystemGetDriverVersion())
            gpu_count = nvml.nvmlDeviceGetCount()
        except nvml.NVMLError:
            shutdown_quietly(nvml)
            raise
        if self._reason is not None:
            logger.info("NVML is available again after %s", self._reason)
        self._initialized = True
        self._next_init_at = None
        self._reason = self._message = None
        self._driver_version = driver_version
        self._gpu_count = gpu_count
        logger.info("NVML initialised: driver %s, %s GPU(s)", driver_version, gpu_count)

    def _record_init_failure(self, error: Exception, now: float) -> None:
        reason, message = classify_init_error(self._nvml, error)
        if reason != self._reason:
            logger.warning(
                "GPU telemetry unavailable (%s): %s Retrying nvmlInit every %s s.",
                reason,
                message,
                self._init_retry_seconds,
            )
        else:
            logger.debug("nvmlInit failed again (%s): %s", reason, error)
        self._reason = reason
        self._message = message
        self._next_init_at = now + self._init_retry_seconds

    def _unavailable_section(self) -> dict[str, Any]:
        return {
            "status": STATUS_UNAVAILABLE,
            "reason": self._reason,
            "message": self._message,
            "driver_version": None,
            "gpus": [],
        }

    # Sampling.

    def _sample_gpus(self) -> dict[str, Any]:
        gpus = [self._sample_gpu(index) for index in range(self._gpu_count)]
        live_pids = {
            process["pid"] for gpu in gpus for process in gpu["processes"] or ()
        }
        for pid in set(self._process_names) - live_pids:
            del self._process_names[pid]
        return {
            "status": STATUS_OK,
            "reason": None,
            "message": None,
            "driver_version": self._driver_version,
            "gpus": gpus,
        }

    def _sample_gpu(self, index: int) -> dict[str, Any]:
        identity = self._identities.get(index, {"uuid": None, "name": None})
        gpu: dict[str, Any] = {"index": index, **identity, "state": GPU_OK}
        gpu.update(dict.fromkeys(GPU_FIELDS))
        gpu["processes"] = None
        gpu["field_status"] = {}
        nvml = self._nvml
        try:
            handle = self._handle(index)
            self._read_identity(index, handle, gpu)
            for fields, reader in FIELD_READERS:
                self._read_fields(index, handle, fields, reader, gpu)
            self._read_processes(index, handle, gpu)
        except nvml.NVMLError_GpuIsLost:
            return self._mark_lost(gpu)
        except nvml.NVMLError as error:
            # Only nvmlDeviceGetHandleByIndex gets here: the readers record
            # every other error in field_status.
            return self._mark_unreadable(gpu, error)
        if index in self._lost:
            self._lost.discard(index)
            logger.warning(
                "GPU %s (%s) is readable again after being lost", index, gpu["uuid"]
            )
        return gpu

    def _handle(self, index: int) -> Any:
        handle = self._handles.get(index)
        if handle is None:
            handle = self._nvml.nvmlDeviceGetHandleByIndex(index)
            self._handles[index] = handle
        return handle

    def _read_identity(self, index: int, handle: Any, gpu: dict[str, Any]) -> None:
        # The name and UUID do not change while the driver is loaded, so they
        # are read until both are known, then taken from the cache.
        if index in self._identities:
            return
        self._read_fields(index, handle, ("uuid",), read_uuid, gpu)
        self._read_fields(index, handle, ("name",), read_name, gpu)
        if gpu["uuid"] is not None and gpu["name"] is not None:
            self._identities[index] = {"uuid": gpu["uuid"], "name": gpu["name"]}

    def _read_fields(
        self,
        index: int,
        handle: Any,
        fields: tuple[str, ...],
        reader: Callable[[ModuleType, Any], tuple],
        gpu: dict[str, Any],
    ) -> None:
        nvml = self._nvml
        try:
            values = reader(nvml, handle)
        except nvml.NVMLError_GpuIsLost:
            raise
        except nvml.NVMLError as error:
            for field in fields:
                self._record_field_error(index, field, error, gpu)
            return
        gpu.update(zip(fields, values, strict=True))

    def _read_processes(self, index: int, handle: Any, gpu: dict[str, Any]) -> None:
        nvml = self._nvml
        try:
            entries = [
                *nvml.nvmlDeviceGetComputeRunningProcesses(handle),
                *nvml.nvmlDeviceGetGraphicsRunningProcesses(handle),
            ]
        except nvml.NVMLError_GpuIsLost:
            raise
        except nvml.NVMLError as error:
            self._record_field_error(index, "processes", error, gpu)
            return
        # A process that does compute and graphics work is listed twice.
        used_memory: dict[int, int | None] = {}
        for entry in entries:
            used_memory.setdefault(entry.pid, entry.usedGpuMemory)
        gpu["processes"] = [
            {"pid": pid, "used_memory_bytes": used, "name": self._process_name(pid)}
            for pid, used in used_memory.items()
        ]

    def _process_name(self, pid: int) -> str | None:
        # Cached while the pid stays on a GPU, so a long training run costs
        # one lookup. None when the process exited after NVML listed it or
        # cannot be read.
        # NOTE: NVML reports host pids. In a container with its own PID
        # namespace, the same number may name another process, or none.
        if pid not in self._process_names:
            try:
                name = psutil.Process(pid).name()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                name = None
            self._process_names[pid] = name
        return self._process_names[pid]

    def _record_field_error(
        self, index: int, field: str, error: Exception, gpu: dict[str, Any]
    ) -> None:
        status = field_status(self._nvml, error)
        gpu["field_status"][field] = status
        if (index, field) in self._logged_fields:
            return
        self._logged_fields.add((index, field))
        if status == "not_supported":
            logger.info(
                "GPU %s does not support %s; it is reported as null", index, field
            )
        else:
            logger.warning(
                "GPU %s: reading %s failed (%s: %s); it is reported as null",
                index,
                field,
                status,
                error,
            )

    def _mark_unreadable(self, gpu: dict[str, Any], error: Exception) -> dict[str, Any]:
        index = gpu["index"]
        gpu["state"] = GPU_ERROR
        if (index, "handle") not in self._logged_fields:
            self._logged_fields.add((index, "handle"))
            logger.warning(
                "GPU %s cannot be opened (%s); it is reported as error", index, error
            )
        return gpu

    def _mark_lost(self, gpu: dict[str, Any]) -> dict[str, Any]:
        index = gpu["index"]
        # A lost GPU's handle may be stale after a reset, so fetch it anew.
        self._handles.pop(index, None)
        gpu.update(dict.fromkeys(GPU_FIELDS))
        gpu["processes"] = None
        gpu["field_status"] = {}
        gpu["state"] = GPU_LOST
        if index not in self._lost:
            self._lost.add(index)
            logger.error(
                "GPU %s (%s) is lost: NVML reports it fell off the bus. "
                "Reset it (nvidia-smi -r) or reboot the host.",
                index,
                gpu["uuid"] or "uuid unknown",
            )
        return gpu

    def _notify_lost(self, gpu: dict[str, Any]) -> None:
        if self._on_gpu_lost is None:
            return
        event = GpuLost(
            index=gpu["index"],
            uuid=gpu["uuid"],
            name=gpu["name"],
            message=f"GPU {gpu['index']} is lost (NVML: GPU is lost). "
            "Reset it (nvidia-smi -r) or reboot the host.",
        )
        try:
            self._on_gpu_lost(event)
        except Exception:
            logger.exception("on_gpu_lost callback failed for GPU %s", gpu["index"])

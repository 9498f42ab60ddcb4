"""One agent's host: per-GPU panels with an hour of history, CPU, memory, disks."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Static

from console import resources
from console.format import NO_VALUE, format_bytes, meter, ratio_of
from console.resources import (
    GPU_METRICS,
    TELEMETRY_PREFIX,
    TELEMETRY_STEP_SECONDS,
    TELEMETRY_WINDOW_SECONDS,
    AgentData,
)
from console.screens.base import ConsoleScreen
from console.screens.fleet import state_cell
from console.widgets import GpuHistory, GpuPanel, GpuProcess


def process_owners(data: AgentData) -> dict[int, str]:
    """Map process ids to what owns them: a run or a model's serving worker.

    Runs give their ``pid`` (and ``pids`` when the agent lists a run's
    whole process group); ``GET /api/v1/serving`` gives the serving
    worker's ``pid``; that one process serves every deployed model.
    """
    owners: dict[int, str] = {}
    for run in data.active_runs or ():
        label = f"run {run.get('id')} ({run.get('model')})"
        for pid in [run.get("pid"), *(run.get("pids") or ())]:
            if isinstance(pid, int):
                owners[pid] = label
    serving = data.serving or {}
    if isinstance(serving.get("pid"), int):
        models = sorted(d.get("model", "") for d in data.deployments or ())
        owners[serving["pid"]] = "serving worker" + (
            f" ({', '.join(models)})" if models else ""
        )
    return owners


def gpu_processes(
    gpu: dict[str, Any], owners: dict[int, str]
) -> tuple[GpuProcess, ...]:
    processes = []
    for process in gpu.get("processes") or ():
        pid = process.get("pid")
        owner = process.get("owner") or owners.get(pid, "")
        if isinstance(owner, dict):
            owner = " ".join(str(value) for value in owner.values())
        processes.append(
            GpuProcess(
                pid=pid,
                used_memory_bytes=process.get("used_memory_bytes"),
                name=process.get("name"),
                owner=owner or "not a rigdeck process",
            )
        )
    return tuple(processes)


def gpu_history(data: AgentData, index: int, now: float) -> GpuHistory:
    """Return one value per minute of the last hour for each GPU metric."""
    step = TELEMETRY_STEP_SECONDS
    start = (now - TELEMETRY_WINDOW_SECONDS) // step * step
    buckets = [
        start + step * i for i in range(int(TELEMETRY_WINDOW_SECONDS // step) + 1)
    ]
    values = {}
    for metric in GPU_METRICS:
        by_ts: dict[float, float] = {}
        for series in data.telemetry.get(metric) or ():
            if str(series["labels"].get("gpu")) == str(index):
                by_ts = {point[0]: point[1] for point in series["points"]}
        values[metric] = tuple(by_ts.get(ts) for ts in buckets)
    return GpuHistory(
        utilization_ratio=values["gpu_utilization_ratio"],
        memory_used_bytes=values["gpu_memory_used_bytes"],
        temperature_celsius=values["gpu_temperature_celsius"],
        power_watts=values["gpu_power_watts"],
    )


def summary_text(agent: str, host: dict[str, Any] | None, state: Text) -> Text:
    text = Text(f"{agent}", style="bold")
    text.append("  ")
    text.append(state)
    if not host:
        return text
    software = host.get("software") or {}
    gpu = host.get("gpu") or {}
    details = [
        f"host {host.get('hostname') or NO_VALUE}",
        f"region {host.get('region') or NO_VALUE}",
        f"rigdeck {software.get('rigdeck') or NO_VALUE}",
    ]
    if software.get("torch"):
        details.append(f"torch {software['torch']}")
    if gpu.get("driver_version"):
        details.append(f"driver {gpu['driver_version']}")
    text.append("  " + " · ".join(details), style="dim")
    return text


def resources_text(host: dict[str, Any] | None) -> Text:
    """Return CPU, load, memory, swap and disk lines."""
    if not host:
        return Text("waiting for the first host sample…", style="dim")
    lines = [_cpu_line(host), _memory_line(host)]
    lines += [_disk_line(disk) for disk in host.get("disks") or ()]
    return Text("\n").join(lines)


def _cpu_line(host: dict[str, Any]) -> Text:
    cpu = host.get("cpu") or {}
    load = host.get("load") or {}
    cores = cpu.get("core_utilization_ratios") or []
    text = Text("CPU    ")
    text.append(meter(cpu.get("utilization_ratio"), 10))
    text.append(f"  {len(cores)} cores  load ")
    text.append(" ".join(_load(load.get(key)) for key in ("1m", "5m", "15m")))
    return text


def _memory_line(host: dict[str, Any]) -> Text:
    memory = host.get("memory") or {}
    swap = host.get("swap") or {}
    text = Text("MEM    ")
    text.append(
        meter(ratio_of(memory.get("used_bytes"), memory.get("total_bytes")), 10)
    )
    text.append(f"  {_used_of(memory)}  swap {_used_of(swap)}")
    return text


def _disk_line(disk: dict[str, Any]) -> Text:
    text = Text("DISK   ")
    text.append(meter(ratio_of(disk.get("used_bytes"), disk.get("total_bytes")), 10))
    text.append(f"  {_used_of(disk)}  {disk.get('mountpoint')}")
    return text


def _used_of(sizes: dict[str, Any]) -> str:
    """Return ``used/total`` in binary units, e.g. ``97.0GiB/256.0GiB``."""
    used = format_bytes(sizes.get("used_bytes"))
    return f"{used}/{format_bytes(sizes.get('total_bytes'))}"


def gpu_status_text(host: dict[str, Any] | None) -> Text | None:
    """Return why there are no GPU panels, or None when there are GPUs."""
    gpu = (host or {}).get("gpu")
    if not host:
        return None
    if not gpu or gpu.get("status") != "ok":
        gpu = gpu or {}
        reason = gpu.get("message") or gpu.get("reason") or "not reported"
        return Text(
            f"GPUs: n/a ({gpu.get('status', 'unknown')}): {reason}", style="dim"
        )
    if not gpu.get("gpus"):
        return Text("GPUs: none on this host", style="dim")
    return None


def _load(value: float | None) -> str:
    return NO_VALUE if value is None else f"{value:.2f}"


class HostScreen(ConsoleScreen):
    """Per-GPU panels with sparklines of the last hour, and the host's resources."""

    VIEW = "host"

    def __init__(self, agent: str, filter_text: str = "") -> None:
        super().__init__(filter_text)
        self.agent = agent

    def describe(self) -> str:
        return f"host {self.agent} · " + super().describe().partition(" · ")[2]

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="host-body"):
            yield Static(id="host-summary")
            yield Static(id="host-resources")
            yield Static(id="gpu-status")

    def initial_focus(self) -> Widget | None:
        return self.query_one("#host-body")

    def poll_plan(self) -> dict[str, set[str]]:
        kinds = {
            resources.HOST,
            resources.ACTIVE_RUNS,
            resources.DEPLOYMENTS,
            resources.SERVING,
        }
        data = self.rigdeck.data[self.agent]
        gpu = (data.host or {}).get("gpu") or {}
        if gpu.get("gpus"):
            kinds.update(TELEMETRY_PREFIX + metric for metric in GPU_METRICS)
        return {self.agent: kinds}

    def selected_agent(self) -> str | None:
        return self.agent

    def refresh_view(self, agents: set[str] | None) -> None:
        if agents is not None and self.agent not in agents:
            return
        client = self.rigdeck.clients[self.agent]
        data = self.rigdeck.data[self.agent]
        self.query_one("#host-summary", Static).update(
            summary_text(self.agent, data.host, state_cell(client))
        )
        self.query_one("#host-resources", Static).update(resources_text(data.host))
        status = gpu_status_text(data.host)
        status_widget = self.query_one("#gpu-status", Static)
        status_widget.update(status or "")
        status_widget.display = status is not None
        self._show_gpus(data)
        super().refresh_view(agents)

    def _show_gpus(self, data: AgentData) -> None:
        gpus = ((data.host or {}).get("gpu") or {}).get("gpus") or []
        owners = process_owners(data)
        now = self.rigdeck.clock()
        body = self.query_one("#host-body", VerticalScroll)
        panels = {panel.index: panel for panel in self.query(GpuPanel)}
        for position, gpu in enumerate(gpus):
            index = gpu.get("index", position)
            panel = panels.pop(index, None)
            if panel is None:
                panel = GpuPanel(index, id=f"gpu-{index}")
                body.mount(panel)
            panel.show(gpu, gpu_history(data, index, now), gpu_processes(gpu, owners))
        for panel in panels.values():
            panel.remove()

    def status_text(self) -> str:
        data = self.rigdeck.data[self.agent]
        # A GPU metric without samples only leaves its sparkline empty.
        missing = [
            f"{kind}: {reason}"
            for kind, reason in data.missing.items()
            if not kind.startswith(TELEMETRY_PREFIX)
        ]
        return "; ".join(missing)

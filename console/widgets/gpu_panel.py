"""One GPU on the host view: current figures, an hour of sparklines, processes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.widget import Widget

from console.format import (
    NO_VALUE,
    format_bytes,
    format_percent,
    sparkline,
    truncate,
)

LABEL_WIDTH = 7
VALUE_WIDTH = 17


@dataclass(frozen=True)
class GpuProcess:
    """A process on a GPU and what owns it, e.g. ``run 17 (shuttle)``."""

    pid: int
    used_memory_bytes: int | None
    name: str | None
    owner: str


@dataclass(frozen=True)
class GpuHistory:
    """The last hour of one GPU: one value (or None) per minute, per metric."""

    utilization_ratio: tuple[float | None, ...] = ()
    memory_used_bytes: tuple[float | None, ...] = ()
    temperature_celsius: tuple[float | None, ...] = ()
    power_watts: tuple[float | None, ...] = ()


class GpuPanel(Widget):
    """Renders one entry of ``host.gpu.gpus`` with its history and processes."""

    DEFAULT_CSS = """
    GpuPanel {
        height: auto;
        border: round $primary 50%;
        padding: 0 1;
        margin: 0 0 1 0;
    }
    GpuPanel.-lost {
        border: round $error;
    }
    """

    def __init__(self, index: int, id: str | None = None) -> None:
        super().__init__(id=id)
        self.index = index
        self.gpu: dict[str, Any] = {}
        self.history = GpuHistory()
        self.processes: tuple[GpuProcess, ...] = ()

    def show(
        self,
        gpu: dict[str, Any],
        history: GpuHistory,
        processes: tuple[GpuProcess, ...],
    ) -> None:
        """Replace what the panel shows and redraw it."""
        changed = (gpu, history, processes) != (self.gpu, self.history, self.processes)
        self.gpu, self.history, self.processes = gpu, history, processes
        self.set_class(gpu.get("state") not in (None, "ok"), "-lost")
        self.border_title = self._title()
        if changed:
            self.refresh(layout=True)

    def _title(self) -> str:
        gpu = self.gpu
        state = gpu.get("state") or "unknown"
        symbol = "●" if state == "ok" else "✕"
        name = gpu.get("name") or "unknown model"
        return f"GPU {self.index} · {name} · {symbol} {state}"

    def render(self) -> Text:
        width = max(10, self.size.width)
        spark_width = max(4, width - LABEL_WIDTH - VALUE_WIDTH - 2)
        gpu, history = self.gpu, self.history
        lines = [
            self._line(
                "util",
                sparkline(history.utilization_ratio, spark_width, 0.0, 1.0),
                format_percent(gpu.get("utilization_ratio")),
            ),
            self._line(
                "memory",
                sparkline(
                    history.memory_used_bytes,
                    spark_width,
                    0.0,
                    gpu.get("memory_total_bytes"),
                ),
                f"{format_bytes(gpu.get('memory_used_bytes'))}/"
                f"{format_bytes(gpu.get('memory_total_bytes'))}",
            ),
            self._line(
                "temp",
                sparkline(history.temperature_celsius, spark_width, 20.0, 100.0),
                _celsius(gpu),
            ),
            self._line(
                "power",
                sparkline(
                    history.power_watts, spark_width, 0.0, gpu.get("power_limit_watts")
                ),
                _power(gpu),
            ),
        ]
        text = Text("\n").join(lines)
        for process in self.processes or ():
            text.append("\n")
            text.append(self._process_line(process, width))
        if not self.processes:
            text.append("\nno processes", style="dim")
        return text

    def _line(self, label: str, spark: str, value: str) -> Text:
        line = Text(label.ljust(LABEL_WIDTH), style="bold")
        line.append(spark, style="cyan")
        line.append("  " + value.rjust(VALUE_WIDTH))
        return line

    def _process_line(self, process: GpuProcess, width: int) -> Text:
        line = Text(f"pid {process.pid:<8}", style="dim")
        line.append(f"{format_bytes(process.used_memory_bytes):>9}  ")
        line.append(process.owner, style="bold" if process.owner else "")
        if process.name:
            line.append(f"  {process.name}", style="dim")
        line.truncate(width, overflow="ellipsis")
        return line


def _unavailable(gpu: dict[str, Any], field: str) -> str:
    """Return a missing value with the agent's reason, e.g. ``- (not_supported)``."""
    reason = (gpu.get("field_status") or {}).get(field)
    return truncate(f"{NO_VALUE} ({reason})" if reason else NO_VALUE, VALUE_WIDTH)


def _celsius(gpu: dict[str, Any]) -> str:
    value = gpu.get("temperature_celsius")
    if value is None:
        return _unavailable(gpu, "temperature_celsius")
    return f"{value:.0f}°C"


def _power(gpu: dict[str, Any]) -> str:
    watts = gpu.get("power_watts")
    limit = gpu.get("power_limit_watts")
    if watts is None:
        return _unavailable(gpu, "power_watts")
    if limit:
        return f"{watts:.0f}/{limit:.0f}W"
    return f"{watts:.0f}W"

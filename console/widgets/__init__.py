"""Reusable widgets of the console."""

from console.widgets.command_bar import CommandBar
from console.widgets.filter_bar import FilterBar
from console.widgets.gpu_panel import GpuHistory, GpuPanel, GpuProcess
from console.widgets.prompt_bar import PromptBar
from console.widgets.resource_table import ResourceTable, Row

__all__ = [
    "CommandBar",
    "FilterBar",
    "GpuHistory",
    "GpuPanel",
    "GpuProcess",
    "PromptBar",
    "ResourceTable",
    "Row",
]

"""rigdeck's published plugin interface and its built-in plugins.

Plugins may import this package and ``store``, nothing else of rigdeck's.
Importing it pulls in neither numpy, torch nor river.
"""

from plugins.interface import (
    Candidate,
    DataError,
    Dataset,
    Gate,
    GateContext,
    GateVerdict,
    PluginConfigError,
    PluginError,
    PluginNotFoundError,
    ProductionVersion,
    Recipe,
    Reporter,
    TabularData,
    TrainingJob,
    TrainingResult,
    metric_value,
)
from plugins.registry import GROUP, installed, load

__all__ = [
    "GROUP",
    "Candidate",
    "DataError",
    "Dataset",
    "Gate",
    "GateContext",
    "GateVerdict",
    "PluginConfigError",
    "PluginError",
    "PluginNotFoundError",
    "ProductionVersion",
    "Recipe",
    "Reporter",
    "TabularData",
    "TrainingJob",
    "TrainingResult",
    "installed",
    "load",
    "metric_value",
]

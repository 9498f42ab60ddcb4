"""Find plugins through the entry-point group ``rigdeck.plugins``.

An entry point named ``KIND.NAME`` (``dataset.csv``, ``recipe.tabular-mlp``,
``gate.residency``) names a class. The built-in plugins register the same
way in rigdeck's own pyproject.toml, so a third-party package replaces or
adds plugins without touching rigdeck.
"""

from __future__ import annotations

from importlib import metadata

from plugins.detectors import Detector
from plugins.interface import Dataset, Gate, PluginError, PluginNotFoundError, Recipe
from plugins.notifiers import Notifier

GROUP = "rigdeck.plugins"

BASE_CLASSES: dict[str, type] = {
    "dataset": Dataset,
    "recipe": Recipe,
    "gate": Gate,
    "detector": Detector,
    "notifier": Notifier,
}


def installed(kind: str) -> dict[str, metadata.EntryPoint]:
    """Return the entry points of one kind by plugin name; loads nothing."""
    prefix = f"{kind}."
    found: dict[str, metadata.EntryPoint] = {}
    # metadata.entry_points() keeps only the first distribution of each
    # name on sys.path, so a stale rigdeck.egg-info in the working directory
    # would hide the installed plugins. Reading every distribution avoids
    # that; the first one on sys.path still wins for a given plugin name.
    for distribution in metadata.distributions():
        for entry_point in distribution.entry_points:
            if entry_point.group == GROUP and entry_point.name.startswith(prefix):
                found.setdefault(entry_point.name.removeprefix(prefix), entry_point)
    return found


def load(kind: str, name: str) -> type:
    """Import and return the plugin class ``kind.name``.

    Raises:
        PluginNotFoundError: nothing of that kind and name is installed;
            the message lists the installed ones.
        PluginError: the entry point fails to import, or does not name a
            subclass of the kind's base class.
    """
    available = installed(kind)
    entry_point = available.get(name)
    if entry_point is None:
        raise PluginNotFoundError(kind, name, list(available))
    try:
        plugin = entry_point.load()
    except Exception as error:
        raise PluginError(
            f"The {kind} plugin {name!r} ({entry_point.value}) failed to import: "
            f"{type(error).__name__}: {error}"
        ) from error
    base = BASE_CLASSES.get(kind)
    if base is not None and not (isinstance(plugin, type) and issubclass(plugin, base)):
        raise PluginError(
            f"The {kind} plugin {name!r} ({entry_point.value}) is not a subclass of "
            f"{_public_name(base)}."
        )
    return plugin


def _public_name(base: type) -> str:
    """Name a base class as plugin authors import it."""
    if base.__module__ == "plugins.interface":
        return f"plugins.{base.__name__}"
    return f"{base.__module__}.{base.__name__}"

"""Drift detector plugins and the interface they implement.

A detector plugin is a class registered under the entry-point group
``rigdeck.plugins`` as ``detector.NAME``. The built-in ones wrap river's
ADWIN, KSWIN and Page-Hinkley detectors and its HDDM_A error-rate
detector (``plugins.detectors.river_detectors``).

A detector watches one stream of floats and reports a change. The agent
never feeds it a raw feature value: the monitor first maps each value
through the reference distribution into [0, 1] (see ``agent.drift``),
and non-finite values never reach a detector. A detector whose
``input_kind`` is ``"binary"`` receives the error signal as 0 and 1.

This module imports neither numpy nor river. River is imported when a
detector is constructed, in the agent's drift thread.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = ["Detector"]


class Detector(abc.ABC):
    """One drift detector instance, fed one value at a time.

    ``validate_options`` runs when agent.toml loads and raises
    ``plugins.PluginConfigError`` naming the bad option. ``update`` runs in
    the drift thread only, so an implementation needs no locking.

    Args:
        options: the value ``validate_options`` returned.
    """

    kind: ClassVar[str] = "detector"
    name: ClassVar[str]
    input_kind: ClassVar[str] = "real"
    """``"real"`` for values in [0, 1], ``"binary"`` for 0/1 error indicators."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options

    @classmethod
    def validate_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """Check options and return them with defaults filled in."""
        return dict(options)

    @abc.abstractmethod
    def update(self, value: float) -> bool:
        """Feed one finite value; return True when this value completes a change."""

    def change_size(self) -> int | None:
        """Return how many of the latest values follow the change just found.

        Called right after ``update`` returned True. None means the detector
        does not estimate where the change began, and the monitor uses its
        configured ``confirm_rows`` instead.
        """
        return None

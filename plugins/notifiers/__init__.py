"""Notifier plugins and the interface they implement.

A notifier plugin is a class registered under the entry-point group
``rigdeck.plugins`` as ``notifier.NAME``. The built-in ones write alerts
to the agent's log (``log``) and POST them as JSON to a URL
(``webhook``).

``send`` makes one delivery attempt. The agent calls it from a thread
of its own per configured notifier, retries a failed attempt with
exponential backoff, and stores each delivery's outcome in the
``notifications`` table, so a slow or failing notifier delays only its
own deliveries.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from plugins.interface import PluginError

__all__ = ["Notification", "Notifier", "NotifierError"]


class NotifierError(PluginError):
    """One failed delivery attempt; the message gives the reason (status, timeout)."""


@dataclass(frozen=True)
class Notification:
    """One alert, as a notifier delivers it.

    Attributes:
        alert_id: the alert's id on the agent (``POST /api/v1/alerts/{id}/ack``).
        agent: the name of the agent that raised it.
        kind: ``drift``, ``gate_failed``, ``run_refused`` and so on.
        severity: ``info``, ``warning`` or ``critical``.
        source: what the alert is about, e.g. ``model/shuttle/stable/feature:f1``.
        message: one sentence for a person.
        created_at: Unix seconds.
        details: more fields for machines; a drift alert carries its event.
    """

    alert_id: int
    agent: str
    kind: str
    severity: str
    source: str
    message: str
    created_at: float
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Notifier(abc.ABC):
    """Delivers notifications somewhere people or tools look.

    ``validate_options`` runs when agent.toml loads and raises
    ``plugins.PluginConfigError`` naming the bad option.

    Args:
        options: the value ``validate_options`` returned.
    """

    kind: ClassVar[str] = "notifier"
    name: ClassVar[str]

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options

    @classmethod
    def validate_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """Check options and return them with defaults filled in."""
        return dict(options)

    @abc.abstractmethod
    def send(self, notification: Notification) -> str:
        """Make one delivery attempt; return a short outcome such as ``HTTP 204``.

        Raises:
            NotifierError: the attempt failed; the agent may retry it.
        """

    def close(self) -> None:  # noqa: B027 - optional, most notifiers hold nothing
        """Release connections; called once when the agent stops."""

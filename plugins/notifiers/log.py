"""The ``log`` notifier: one line per alert in the agent's log."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from plugins._options import check_keys, check_type
from plugins.interface import PluginConfigError
from plugins.notifiers import Notification, Notifier

logger = logging.getLogger(__name__)

LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class LogNotifier(Notifier):
    """Options: ``level``, one of info, warning (default) or error."""

    name = "log"

    @classmethod
    def validate_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        where = "log notifier"
        check_keys(where, options, required=(), optional=("level",))
        level = options.get("level", "warning")
        check_type(where, "level", level, str)
        if level not in LEVELS:
            raise PluginConfigError(
                f"{where}: level must be one of {', '.join(LEVELS)} (got {level!r})."
            )
        return {"level": level}

    def send(self, notification: Notification) -> str:
        logger.log(
            LEVELS[self.options["level"]],
            "alert %s (%s, %s) from %s: %s",
            notification.alert_id,
            notification.kind,
            notification.severity,
            notification.source,
            notification.message,
        )
        return "logged"

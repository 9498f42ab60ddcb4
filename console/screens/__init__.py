"""The console's screens; ``VIEWS`` maps each ``:`` command to its screen."""

from console.screens.alerts import AlertsScreen
from console.screens.audit import AuditScreen
from console.screens.base import ConsoleScreen
from console.screens.compare import CompareScreen
from console.screens.drift import DriftScreen
from console.screens.fleet import FleetScreen
from console.screens.help import HelpScreen
from console.screens.host import HostScreen
from console.screens.models import ModelsScreen
from console.screens.reason_dialog import ReasonDialog
from console.screens.releases import ReleasesScreen
from console.screens.run_log import RunLogScreen
from console.screens.runs import RunsScreen

VIEWS: dict[str, type[ConsoleScreen]] = {
    "fleet": FleetScreen,
    "host": HostScreen,
    "runs": RunsScreen,
    "models": ModelsScreen,
    "releases": ReleasesScreen,
    "drift": DriftScreen,
    "alerts": AlertsScreen,
    "audit": AuditScreen,
}

__all__ = [
    "VIEWS",
    "AlertsScreen",
    "AuditScreen",
    "CompareScreen",
    "ConsoleScreen",
    "DriftScreen",
    "FleetScreen",
    "HelpScreen",
    "HostScreen",
    "ModelsScreen",
    "ReasonDialog",
    "ReleasesScreen",
    "RunLogScreen",
    "RunsScreen",
]

"""The rollback dialog: the version production leaves and the one it returns to."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text

from console.resources import AgentData
from console.screens.reason_dialog import ReasonDialog

if TYPE_CHECKING:
    from console.screens.base import ConsoleScreen


def rollback_versions(
    data: AgentData, model: str
) -> tuple[int | None, int | None, int | None]:
    """Return (stable now, canary now, version a rollback returns to).

    The target is the deployment's ``rollback_version`` when the agent
    reports it. Otherwise it is the version of the latest promoted release
    before the one now in production, or None, and the agent picks it.
    """
    deployment = data.deployment(model) or {}
    stable = deployment.get("stable_version")
    canary = deployment.get("canary_version")
    target = deployment.get("rollback_version") or deployment.get(
        "previous_stable_version"
    )
    if target is None:
        target = _previous_promoted(data.releases or [], model, stable)
    return stable, canary, target


def _previous_promoted(
    releases: list[dict[str, Any]], model: str, stable: int | None
) -> int | None:
    promoted = sorted(
        (
            release
            for release in releases
            if release.get("model") == model and release.get("state") == "promoted"
        ),
        key=lambda release: release.get("id", 0),
        reverse=True,
    )
    for release in promoted:
        if release.get("version") != stable:
            return release.get("version")
    return None


def rollback_details(
    model: str, stable: int | None, canary: int | None, target: int | None
) -> Text:
    text = Text()
    text.append("leaves      ", style="bold")
    text.append(f"{model} v{stable}" if stable else "nothing in production")
    if canary:
        text.append(f" (and stops canary v{canary})")
    text.append("\nreturns to  ", style="bold")
    if target is not None:
        text.append(f"{model} v{target}")
    else:
        text.append(
            "the previous known-good version, as the agent records it", style="italic"
        )
    text.append(
        "\nTraffic moves at once; the change is audited with your reason.", style="dim"
    )
    return text


def confirm_rollback(screen: ConsoleScreen, agent: str, model: str) -> None:
    """Ask for confirmation and a reason, then POST the rollback."""
    stable, canary, target = rollback_versions(screen.rigdeck.data[agent], model)
    dialog = ReasonDialog(
        f"Roll back {model} on {agent}",
        rollback_details(model, stable, canary, target),
        confirm_label="Roll back",
        reason_required=True,
    )

    def send(reason: str | None) -> None:
        if reason:
            screen.rigdeck.act(
                agent,
                "rollback",
                model,
                f"/api/v1/models/{model}/rollback",
                {"reason": reason},
            )

    screen.app.push_screen(dialog, send)

"""docs/configuration.md matches the configuration models it documents."""

from __future__ import annotations

from harness import REPO

from agent.config_reference import render_reference


def test_configuration_reference_is_current() -> None:
    committed = (REPO / "docs" / "configuration.md").read_text()

    assert committed == render_reference(), (
        "docs/configuration.md is out of date; regenerate it with "
        "`python -m agent.config_reference > docs/configuration.md`."
    )


def test_reference_lists_every_section() -> None:
    text = render_reference()

    for heading in (
        "## `[agent]`",
        "## `[api]`",
        "## `[telemetry]`",
        "## `[store]`",
        "## `[training]`",
        "## `[serving]`",
        "## `[[models]]`",
        "## `[models.dataset]`",
        "## `[models.release]`",
    ):
        assert heading in text

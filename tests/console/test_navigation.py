"""Keys and commands: ':' command mode, '/' filter, Esc, Enter, '?' help."""

from __future__ import annotations

from pathlib import Path

from console_helpers import build_app, loaded, screen_text, text_of, wait_until
from fake_agent import FakeAgent

from console import resources
from console.screens import (
    AlertsScreen,
    AuditScreen,
    DriftScreen,
    FleetScreen,
    HelpScreen,
    HostScreen,
    ModelsScreen,
    ReleasesScreen,
    RunsScreen,
)
from console.widgets import CommandBar, FilterBar, ResourceTable


async def type_command(pilot, command: str) -> None:
    await pilot.press("colon", *[key if key != " " else "space" for key in command])
    await pilot.press("enter")
    await pilot.pause()


async def test_command_mode_opens_every_view(tmp_path: Path):
    app = build_app(tmp_path, [FakeAgent("gpu-a"), FakeAgent("gpu-b")])
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: loaded(app, resources.HOST))
        for command, screen_type in (
            ("runs", RunsScreen),
            ("models", ModelsScreen),
            ("releases", ReleasesScreen),
            ("drift", DriftScreen),
            ("alerts", AlertsScreen),
            ("audit", AuditScreen),
            ("host gpu-b", HostScreen),
            ("fleet", FleetScreen),
        ):
            await type_command(pilot, command)

            assert isinstance(app.screen, screen_type), command

        assert len(app.screen_stack) == 2


async def test_command_prefix_and_unknown_command(tmp_path: Path):
    app = build_app(tmp_path, [FakeAgent("gpu-a")])
    async with app.run_test(size=(100, 30)) as pilot:
        await type_command(pilot, "rel")
        assert isinstance(app.screen, ReleasesScreen)

        await type_command(pilot, "nonsense")

        assert isinstance(app.screen, ReleasesScreen)
        messages = [notification.message for notification in app._notifications]
        assert any("Unknown command 'nonsense'" in text for text in messages)


async def test_command_bar_takes_keys_typed_at_once(tmp_path: Path):
    # Keys typed right after ':' must reach the prompt, not the screen's
    # bindings ('a' would approve on the releases screen).
    app = build_app(tmp_path, [FakeAgent("gpu-a")])
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("colon", "a", "u", "d", "i", "t", "enter")
        await pilot.pause()

        assert isinstance(app.screen, AuditScreen)


async def test_host_command_names_unknown_agent(tmp_path: Path):
    app = build_app(tmp_path, [FakeAgent("gpu-a")])
    async with app.run_test(size=(100, 30)) as pilot:
        await type_command(pilot, "host nope")

        assert isinstance(app.screen, FleetScreen)
        messages = [notification.message for notification in app._notifications]
        assert any("No agent named 'nope'" in text for text in messages)


async def test_quit_command_exits(tmp_path: Path):
    app = build_app(tmp_path, [FakeAgent("gpu-a")])
    async with app.run_test(size=(100, 30)) as pilot:
        await type_command(pilot, "quit")

        assert app.return_code == 0
        assert not app.is_running


async def test_filter_narrows_focused_table(tmp_path: Path):
    app = build_app(tmp_path, [FakeAgent("gpu-a"), FakeAgent("gpu-b")])
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: loaded(app, resources.HOST))
        table = app.screen.query_one("#fleet", ResourceTable)
        assert table.row_count == 2

        await pilot.press("slash", "g", "p", "u", "-", "b")
        await pilot.pause()

        assert table.row_count == 1
        assert table.shown_keys == ["gpu-b"]
        await pilot.press("enter")
        assert not app.screen.query_one(FilterBar).is_open
        assert table.has_focus
        assert table.filter_text == "gpu-b"

        await pilot.press("escape")

        assert table.row_count == 2
        assert table.filter_text == ""


async def test_filter_matches_every_word(tmp_path: Path):
    app = build_app(tmp_path, [FakeAgent("gpu-a"), FakeAgent("gpu-b")])
    async with app.run_test(size=(100, 30)) as pilot:
        await type_command(pilot, "releases")
        table = app.screen.query_one("#releases", ResourceTable)
        await wait_until(pilot, lambda: table.row_count == 10)

        await pilot.press("slash", *"gpu-a pending")
        await pilot.pause()

        assert table.shown_keys == ["gpu-a\t5"]


async def test_command_argument_filters_view(tmp_path: Path):
    app = build_app(tmp_path, [FakeAgent("gpu-a"), FakeAgent("gpu-b")])
    async with app.run_test(size=(100, 30)) as pilot:
        await type_command(pilot, "alerts gpu-b")
        table = app.screen.query_one("#alerts", ResourceTable)
        await wait_until(pilot, lambda: table.row_count == 2)

        assert all(key.startswith("gpu-b") for key in table.shown_keys)


async def test_escape_goes_back_and_stops_at_fleet(tmp_path: Path):
    app = build_app(tmp_path, [FakeAgent("gpu-a")])
    async with app.run_test(size=(100, 30)) as pilot:
        await type_command(pilot, "runs")
        await type_command(pilot, "drift")
        assert isinstance(app.screen, DriftScreen)

        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, FleetScreen)
        await pilot.press("escape")

        assert isinstance(app.screen, FleetScreen)


async def test_enter_opens_host_of_selected_agent(tmp_path: Path):
    app = build_app(tmp_path, [FakeAgent("gpu-a"), FakeAgent("gpu-b")])
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: loaded(app, resources.HOST))
        await pilot.press("down", "enter")
        await pilot.pause()

        assert isinstance(app.screen, HostScreen)
        assert app.screen.agent == "gpu-b"


async def test_help_lists_every_binding_and_command(tmp_path: Path):
    app = build_app(tmp_path, [FakeAgent("gpu-a")])
    async with app.run_test(size=(100, 30)) as pilot:
        await type_command(pilot, "releases")
        await pilot.press("question_mark")
        await pilot.pause()

        assert isinstance(app.screen, HelpScreen)
        text = " ".join(text_of(static) for static in app.screen.query("Static"))
        for label in (
            "Approve",
            "Reject",
            "Promote",
            "Abort",
            "Roll back",
            "Filter",
            "Back",
            "Command",
            "Help",
            ":host NAME",
            ":quit",
        ):
            assert label in text, label
        await pilot.press("escape")
        assert isinstance(app.screen, ReleasesScreen)


async def test_every_screen_binding_is_shown_or_in_help(tmp_path: Path):
    app = build_app(tmp_path, [FakeAgent("gpu-a")])
    async with app.run_test(size=(100, 30)) as pilot:
        for command in (
            "fleet",
            "runs",
            "models",
            "releases",
            "drift",
            "alerts",
            "audit",
        ):
            await type_command(pilot, command)
            screen = app.screen
            active = screen.active_bindings
            for binding in type(screen).BINDINGS:
                described = binding.show or binding.description
                assert described, f"{command}: {binding.key} has no description"
                assert binding.key in active or binding.key.replace("_", " ") in {
                    k for k in active
                }, f"{command}: {binding.key} is not active"


async def test_mouse_click_selects_row(tmp_path: Path):
    app = build_app(tmp_path, [FakeAgent("gpu-a"), FakeAgent("gpu-b")])
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: loaded(app, resources.HOST))
        table = app.screen.query_one("#fleet", ResourceTable)

        await pilot.click(ResourceTable, offset=(2, 2))

        assert table.selected_key == "gpu-b"


async def test_command_bar_suggests_commands(tmp_path: Path):
    app = build_app(tmp_path, [FakeAgent("gpu-a")])
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("colon", "r", "e", "l")
        await pilot.pause()
        bar = app.screen.query_one(CommandBar)

        assert bar.input._suggestion == "releases"


async def test_command_prompt_shows_typed_text_at_80x24(tmp_path):
    app = build_app(tmp_path, [FakeAgent("gpu-a")])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press(":", "r", "u", "n")
        await pilot.pause()

        bar = app.screen.query_one("#command-bar")
        assert bar.input.value == "run"
        assert bar.input.region.width > 40
        assert ":run" in screen_text(app).replace(" ", "")

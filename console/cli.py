"""``rigdeck``: the terminal console over one or many agents."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from console.config import (
    DEFAULT_CONFIG,
    agents_from_options,
    check_unique_names,
    load_console_config,
)
from console.errors import ConsoleError


@click.group(
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_CONFIG,
    show_default=True,
    help="console.toml listing [[agents]] with name, url, token_file and ca_file.",
)
@click.option(
    "--agent",
    "agent_urls",
    multiple=True,
    metavar="URL",
    help="An agent to watch: http://HOST:PORT, https://HOST:PORT or "
    "ssh://USER@HOST[:PORT]. Repeatable; added to those in --config.",
)
@click.option(
    "--token-file",
    "token_files",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="File with the bearer token of the --agent at the same position. Repeatable.",
)
@click.option(
    "--ca-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="PEM bundle of the CA that signed the https:// --agent certificates; "
    "default: the system's trusted CAs.",
)
@click.option(
    "--readonly", is_flag=True, help="Hide and refuse every state-changing action."
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append the console's log (agent states, retries, actions) to this file. "
    "Default: no log, because the terminal belongs to the console.",
)
@click.version_option(package_name="rigdeck")
@click.pass_context
def cli(
    ctx: click.Context,
    config_path: Path,
    agent_urls: tuple[str, ...],
    token_files: tuple[Path, ...],
    ca_file: Path | None,
    readonly: bool,
    log_file: Path | None,
) -> None:
    """Watch a fleet of rigdeck agents, approve releases and roll back.

    Without a subcommand, opens the console on the agents in --config and
    those given with --agent. Run `rigdeck demo` to try it on local agents.
    """
    if ctx.invoked_subcommand is not None:
        return
    agents = load_console_config(config_path) + agents_from_options(
        agent_urls, token_files, ca_file
    )
    if not agents:
        raise click.UsageError(
            f"No agents to watch: {config_path} lists none and no --agent was given. "
            "Try `rigdeck --agent http://127.0.0.1:7070 --token-file TOKEN_FILE`."
        )
    check_unique_names(agents)
    for entry in agents:
        entry.read_token()  # a missing token file fails here, before the UI starts
    configure_logging(log_file)
    from console.app import RigdeckApp

    app = RigdeckApp(agents, readonly=readonly)
    app.run()
    if app.hung_up:
        # The terminal is gone, so no message could be seen: exit 0 quietly.
        sys.exit(0)


def configure_logging(log_file: Path | None) -> None:
    """Send log records to ``log_file``, or nowhere; never to the terminal.

    Without a handler, Python prints warnings to stderr, which would draw
    over the console's screen.
    """
    root = logging.getLogger()
    if log_file is None:
        root.addHandler(logging.NullHandler())
        return
    handler = logging.FileHandler(log_file)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(logging.INFO)


@cli.command()
@click.option(
    "--keep", is_flag=True, help="Keep the demo's temporary directory on exit."
)
@click.option(
    "--headless",
    is_flag=True,
    help="Run the whole loop without the console, approving with the demo "
    "approver token; print each stage and a summary, exit 0 only if every "
    "stage completed.",
)
def demo(keep: bool, headless: bool) -> None:
    """Start two local agents and open the console on them as an approver.

    Host A (examples/host-a.toml) trains shuttle on river's Shuttle data
    and serves it. Live traffic from held-out rows gets a sensor offset on
    f1 part-way through, so the drift monitors raise an event and retrain.
    You approve, promote and roll back the new version. Host B (examples/host-b.toml)
    serves phishing. Notifications say when a step waits for you. Both
    agents and their files live in a temporary directory and stop when
    you quit.
    """
    if headless:
        from console.demo import run_headless

        logging.basicConfig(level=logging.WARNING)
        sys.exit(run_headless(keep=keep))
    from console.demo import run_demo

    configure_logging(None)
    run_demo(keep=keep)


def main() -> None:
    try:
        cli(standalone_mode=True)
    except ConsoleError as error:
        click.echo(f"Error: {error}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()

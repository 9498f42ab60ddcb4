"""``rigdeck``: the terminal console over one or many agents."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from console.config import DEFAULT_CONFIG, agents_from_options, load_console_config
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
    "--readonly", is_flag=True, help="Hide and refuse every state-changing action."
)
@click.version_option(package_name="rigdeck")
@click.pass_context
def cli(
    ctx: click.Context,
    config_path: Path,
    agent_urls: tuple[str, ...],
    token_files: tuple[Path, ...],
    readonly: bool,
) -> None:
    """Watch a fleet of rigdeck agents, approve releases and roll back.

    Without a subcommand, opens the console on the agents in --config and
    those given with --agent. Run `rigdeck demo` to try it on local agents.
    """
    if ctx.invoked_subcommand is not None:
        return
    agents = load_console_config(config_path) + agents_from_options(
        agent_urls, token_files
    )
    if not agents:
        raise click.UsageError(
            f"No agents to watch: {config_path} lists none and no --agent was given. "
            "Try `rigdeck --agent http://127.0.0.1:7070 --token-file TOKEN_FILE`."
        )
    from console.app import RigdeckApp

    RigdeckApp(agents, readonly=readonly).run()


@cli.command()
@click.option(
    "--keep", is_flag=True, help="Keep the demo's temporary directory on exit."
)
def demo(keep: bool) -> None:
    """Start a local agent from examples/agent.toml in a temporary directory
    and open the console on it."""
    from console.demo import run_demo

    run_demo(keep=keep)


def main() -> None:
    try:
        cli(standalone_mode=True)
    except ConsoleError as error:
        click.echo(f"Error: {error}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()

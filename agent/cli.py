"""``rigdeck-agent``: set up, run and administer the agent on one host."""

from __future__ import annotations

import contextlib
import errno
import getpass
import json
import os
import socket
import sqlite3
import sys
from pathlib import Path

import click

from agent.errors import AgentError
from agent.replay import SHIFT_SYNTAX
from store.errors import StoreError

CONFIG_HELP = "Path of agent.toml. Default: $RIGDECK_CONFIG, else ./agent.toml."

# The click.Context.meta key under which a command records the store it
# opens, so that the message about a full disk can name that file.
_STORE_PATH_KEY = "rigdeck.store_path"
# errno values of a write that failed for lack of room: no space left on
# the device, or the user's disk quota used up.
_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def _config_option(function):
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="RIGDECK_CONFIG",
        default="agent.toml",
        show_default=True,
        help=CONFIG_HELP,
    )(function)


def _load(config_path: Path):
    from agent.config import load_config

    return load_config(config_path)


def _open_store(config_path: Path, create: bool = False):
    """Open the agent's store; only commands that write may create it."""
    from store import Store

    config = _load(config_path)
    _record_store_path(config.store_path)
    if not create and not config.store_path.exists():
        raise click.ClickException(
            f"No store at {config.store_path}. Check agent.data_dir in {config_path}, "
            "or start the agent once to create it."
        )
    config.data_dir.mkdir(parents=True, exist_ok=True)
    return Store(config.store_path, busy_timeout_ms=config.store.busy_timeout_ms)


def _record_store_path(store_path: Path) -> None:
    click.get_current_context().meta[_STORE_PATH_KEY] = store_path


def _cli_actor() -> str:
    return f"cli:{getpass.getuser()}"


class _AgentCommandGroup(click.Group):
    """The top-level group, where every command's expected errors are reported.

    An ``AgentError`` or ``StoreError``, any error whose chain shows a
    full file system, and SQLite's errors about the store file (read-only,
    cannot open, I/O) become one ``Error:`` line on stderr and exit
    status 1, the status of every other ``click.ClickException``. Other
    errors keep their traceback, because they are bugs.
    """

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (AgentError, StoreError, sqlite3.Error, OSError) as error:
            full = _disk_full_error(error) or _full_store_directory(ctx, error)
            if full is not None:
                raise click.ClickException(_disk_full_message(ctx, full)) from error
            if isinstance(error, (AgentError, StoreError)):
                raise click.ClickException(str(error)) from error
            message = _store_file_message(ctx, error)
            if message is not None:
                raise click.ClickException(message) from error
            raise


# SQLite's result codes for a store file it cannot open, write or read.
_STORE_FILE_ERRORS = ("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_IOERR")


def _store_file_error(error: BaseException) -> sqlite3.Error | None:
    name = getattr(error, "sqlite_errorname", None) or ""
    if isinstance(error, sqlite3.Error) and name.startswith(_STORE_FILE_ERRORS):
        return error
    return None


def _full_store_directory(ctx: click.Context, error: BaseException):
    """Return ``error`` when it is an I/O error and the store's file system is full.

    With no block left, SQLite fails to create the store's shared-memory
    file and reports an I/O error rather than SQLITE_FULL.
    """
    store_path = ctx.meta.get(_STORE_PATH_KEY)
    failed = _store_file_error(error)
    if failed is None or store_path is None or "IOERR" not in failed.sqlite_errorname:
        return None
    try:
        free = os.statvfs(store_path.parent).f_bavail
    except OSError:
        return None
    return error if free == 0 else None


def _store_file_message(ctx: click.Context, error: BaseException) -> str | None:
    failed = _store_file_error(error)
    store_path = ctx.meta.get(_STORE_PATH_KEY)
    if failed is None or store_path is None:
        return None
    if failed.sqlite_errorname.startswith("SQLITE_READONLY"):
        fix = (
            f"Run the command as the user that owns {store_path} (`ls -l` shows "
            "it), or give that user write access to the file and its directory."
        )
    elif failed.sqlite_errorname.startswith("SQLITE_CANTOPEN"):
        fix = (
            f"Check that {store_path.parent} exists and that this user may "
            "read and write in it."
        )
    else:
        fix = f"Check the file system that contains {store_path.parent}."
    code = failed.sqlite_errorname
    return f"Cannot use the store {store_path}: {failed} ({code}). {fix}"


def _disk_full_error(error: BaseException | None) -> BaseException | None:
    """Return the error in ``error``'s chain that reports a full file system."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, sqlite3.Error) and _is_sqlite_full(error):
            return error
        if isinstance(error, OSError) and error.errno in _DISK_FULL_ERRNOS:
            return error
        error = error.__cause__ or error.__context__
    return None


def _is_sqlite_full(error: sqlite3.Error) -> bool:
    # SQLite reports a write that fails with ENOSPC as SQLITE_FULL, whose
    # message is "database or disk is full". sqlite_errorname is set on
    # errors raised by the sqlite3 module of Python 3.11 and newer.
    name = getattr(error, "sqlite_errorname", None)
    return name == "SQLITE_FULL" or "database or disk is full" in str(error)


def _disk_full_message(ctx: click.Context, error: BaseException) -> str:
    store_path = ctx.meta.get(_STORE_PATH_KEY)
    if isinstance(error, OSError) and error.filename:
        path = Path(os.fsdecode(error.filename))
        failure = f"Cannot write {path}: {error.strerror}."
        return f"{failure} {_free_space_hint(error, path.parent)}"
    if isinstance(error, sqlite3.Error) and store_path is not None:
        failure = f"Cannot write to the store {store_path}: {error}."
        return (
            f"{failure} The change was rolled back. "
            f"{_free_space_hint(error, store_path.parent)}"
        )
    failure = f"A write failed because the file system is full: {error}."
    return f"{failure} {_free_space_hint(error, None)}"


def _free_space_hint(error: BaseException, directory: Path | None) -> str:
    quota = isinstance(error, OSError) and error.errno == errno.EDQUOT
    action = "Free space or raise your disk quota" if quota else "Free space"
    if directory is None:
        return f"{action} on the full file system, then run the command again."
    return (
        f"{action} on the file system that contains {directory} "
        f"(`df -h {directory}` shows it), then run the command again."
    )


@click.group(
    cls=_AgentCommandGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="rigdeck")
def cli() -> None:
    """The rigdeck agent: trains, serves and watches models on this GPU host.

    Start with `rigdeck-agent init DIR`, then `rigdeck-agent run --config
    DIR/agent.toml`, then create tokens for the console with
    `rigdeck-agent token create NAME --role ROLE`.
    """


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--name", default=None, help="Host name shown in the console. Default: hostname."
)
@click.option(
    "--region", default="default", show_default=True, help="Data-residency region."
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=7070,
    show_default=True,
    help="Control API port on 127.0.0.1; 0 picks a free port at each start.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing agent.toml.")
def init(
    directory: Path, name: str | None, region: str, port: int, force: bool
) -> None:
    """Write a commented DIRECTORY/agent.toml and create its data directory."""
    from agent.config import parse_config

    config_path = directory / "agent.toml"
    if config_path.exists() and not force:
        raise click.ClickException(
            f"{config_path} exists; pass --force to overwrite it."
        )
    template = (Path(__file__).parent / "agent.toml.template").read_text()
    # json.dumps quotes and escapes the strings as TOML basic strings.
    text = template.format(
        name=json.dumps(name or socket.gethostname()),
        region=json.dumps(region),
        data_dir=json.dumps("data"),
        port=port,
    )
    import tomllib

    parse_config(tomllib.loads(text), config_path)
    (directory / "data").mkdir(parents=True, exist_ok=True)
    _write_atomically(config_path, text)
    click.echo(f"Wrote {config_path} and {directory / 'data'}.")
    click.echo(f"Start the agent: rigdeck-agent run --config {config_path}")


def _write_atomically(path: Path, text: str) -> None:
    """Write ``path`` through a temporary file, so a failed write leaves no stub."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(text)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


@cli.command()
@_config_option
def run(config_path: Path) -> None:
    """Run the agent in the foreground until SIGTERM or SIGINT (Ctrl-C)."""
    from agent.daemon import run_agent

    config = _load(config_path)
    _record_store_path(config.store_path)
    run_agent(config)


@cli.group()
def token() -> None:
    """Create, list and revoke bearer tokens (viewer, operator, approver, admin)."""


@token.command("create")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["viewer", "operator", "approver", "admin"]),
    required=True,
    help="viewer reads; operator runs jobs, requests releases, rolls back; "
    "approver approves and promotes; admin manages tokens and overrides gates.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the token to this file (mode 0600) instead of printing it.",
)
@_config_option
def token_create(name: str, role: str, output: Path | None, config_path: Path) -> None:
    """Create token NAME with ROLE; the token is shown once and stored hashed."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
        raise click.BadParameter(
            f"{name!r}: use 1 to 64 letters, digits, '.', '_' or '-'.",
            param_hint="NAME",
        )
    # Open the output first: a path that cannot be written must fail before
    # the token exists, or its secret would be lost with its name taken.
    secret_file = _SecretFile(output) if output else None
    try:
        secret = _insert_token(config_path, name, role, secret_file)
    except BaseException:
        if secret_file is not None:
            secret_file.discard()
        raise
    if secret_file is not None:
        secret_file.close()
        click.echo(f"Created token {name!r} ({role}); written to {output}.")
    else:
        click.echo(secret)
        click.echo(f"Created token {name!r} ({role}). It is shown only once.", err=True)


def _insert_token(
    config_path: Path, name: str, role: str, secret_file: _SecretFile | None
) -> str:
    """Store the token and its audit entry, and return the secret."""
    from store import audit, tokens

    # The store is closed on an error too, which rolls back anything a
    # failed write left open.
    with (
        contextlib.closing(_open_store(config_path, create=True)) as store,
        store.write() as db,
    ):
        if tokens.get_token(db, name) is not None:
            raise click.ClickException(
                f"A token named {name!r} exists; pick another name."
            )
        secret, _ = tokens.create_token(db, name, role)
        audit.append_entry(
            db,
            actor=_cli_actor(),
            action="token.create",
            target=f"token/{name}",
            after={"role": role},
        )
        # Inside the transaction, so a secret that cannot be written rolls
        # the token back instead of leaving it unusable.
        if secret_file is not None:
            secret_file.write(secret)
    return secret


class _SecretFile:
    """The ``--output`` file of ``token create``, with mode 0600.

    It is opened before the token exists, so that an unwritable path fails
    first. An existing file keeps its contents until ``write``. When no
    token is created, ``discard`` removes the file if it was created here,
    or else empties it if ``write`` had started, because a secret in it
    would match no token.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.created = False
        self.written = False
        try:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                self.created = True
            except FileExistsError:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            with contextlib.ExitStack() as on_error:
                on_error.callback(os.close, fd)
                os.fchmod(fd, 0o600)
                on_error.pop_all()
        except OSError as error:
            self._remove_created()
            raise click.ClickException(self._failure(error)) from error
        self._handle = os.fdopen(fd, "w")

    def write(self, secret: str) -> None:
        """Replace the file's contents with ``secret`` and fsync it."""
        try:
            self.written = True
            self._handle.seek(0)
            self._handle.truncate()
            self._handle.write(secret + "\n")
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as error:
            raise click.ClickException(self._failure(error)) from error

    def close(self) -> None:
        self._handle.close()

    def discard(self) -> None:
        # Closing flushes what a failed write left buffered, so the file is
        # emptied after it, not before.
        with contextlib.suppress(OSError):
            self._handle.close()
        if self.written and not self.created:
            with contextlib.suppress(OSError):
                os.truncate(self.path, 0)
        self._remove_created()

    def _remove_created(self) -> None:
        if self.created:
            with contextlib.suppress(OSError):
                self.path.unlink()

    def _failure(self, error: OSError) -> str:
        message = (
            f"Cannot write the token to {self.path}: {error.strerror}. "
            "No token was created."
        )
        if error.errno in _DISK_FULL_ERRNOS:
            message += " " + _free_space_hint(error, self.path.parent)
        return message


@token.command("list")
@_config_option
def token_list(config_path: Path) -> None:
    """List tokens with their roles; secrets are never shown."""
    import time

    from store import tokens

    with contextlib.closing(_open_store(config_path)) as store:
        rows = tokens.list_tokens(store.db)
    click.echo(f"{'NAME':24} {'ROLE':9} {'CREATED (UTC)':20} STATE")
    for row in rows:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(row["created_at"]))
        state = "revoked" if row["revoked_at"] else "active"
        click.echo(f"{row['name']:24} {row['role']:9} {created:20} {state}")


@token.command("revoke")
@click.argument("name")
@_config_option
def token_revoke(name: str, config_path: Path) -> None:
    """Revoke token NAME; requests with it get 401 from then on."""
    from store import audit, tokens

    with (
        contextlib.closing(_open_store(config_path)) as store,
        store.write() as db,
    ):
        row = tokens.get_token(db, name)
        if row is None:
            raise click.ClickException(
                f"No token named {name!r}; see `rigdeck-agent token list`."
            )
        if row["revoked_at"] is None:
            tokens.revoke_token(db, name)
            audit.append_entry(
                db,
                actor=_cli_actor(),
                action="token.revoke",
                target=f"token/{name}",
                before={"revoked": False},
                after={"revoked": True},
            )
    click.echo(f"Revoked token {name!r}.")


@cli.group()
def audit() -> None:
    """Inspect the hash-chained audit log."""


@audit.command("verify")
@_config_option
def audit_verify(config_path: Path) -> None:
    """Check the hash chain; exit 1 and name the first bad entry if it is broken."""
    from store import audit as audit_rows

    with contextlib.closing(_open_store(config_path)) as store:
        result = audit_rows.verify_chain(store.db)
    if not result.ok:
        click.echo(f"FAILED: {result.message}", err=True)
        sys.exit(1)
    click.echo(result.message)


@cli.command("install-service")
@_config_option
@click.option(
    "--user",
    default=getpass.getuser,
    show_default="the user running this command",
    help="Account the service runs as (User=). It must exist and should own the "
    "data directory. A dedicated system user is best.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the unit to this file (mode 0644), e.g. "
    "/etc/systemd/system/rigdeck-agent.service, instead of printing it.",
)
@click.option("--force", is_flag=True, help="Replace the --output file if it exists.")
def install_service(
    config_path: Path, user: str, output: Path | None, force: bool
) -> None:
    """Print a systemd unit that runs this agent as a hardened service.

    The unit runs the rigdeck-agent script of this Python environment with
    the absolute path of --config, restarts it on failure, and makes the
    file system read-only except the data directory, while the GPUs stay
    reachable. Printing it needs no root; installing it does, for example:

    \b
    rigdeck-agent install-service --config /srv/rigdeck/agent.toml \\
        --user rigdeck --output /etc/systemd/system/rigdeck-agent.service
    systemctl daemon-reload && systemctl enable --now rigdeck-agent
    """
    from agent.config import load_config
    from agent.service_unit import (
        UNIT_NAME,
        agent_executable,
        build_unit,
        write_unit,
    )

    try:
        config = load_config(config_path)
        python = sys.executable
        unit, warnings = build_unit(
            config, user, agent_executable(python), Path(python).absolute()
        )
        unit_name = output.name if output and output.suffix == ".service" else UNIT_NAME
        text = unit.render(unit_name)
        if output is not None:
            write_unit(text, output, force)
    except AgentError as error:
        raise click.ClickException(f"{error}\nNo unit was written.") from error
    for warning in warnings:
        click.echo(f"Warning: {warning}", err=True)
    if output is None:
        click.echo(text, nl=False)
        return
    click.echo(f"Wrote {output}. Enable it with:", err=True)
    click.echo(
        f"  systemctl daemon-reload && systemctl enable --now {unit_name}", err=True
    )


@cli.command()
@click.argument("model")
@click.option(
    "--source",
    required=True,
    help="A data set shipped with river 0.26 (e.g. Shuttle) or the path of a CSV "
    "file with a header row.",
)
@click.option(
    "--rate",
    "rate_rows_per_second",
    type=float,
    required=True,
    help="Rows sent per second, on average (batches are spread out to match).",
)
@click.option(
    "--url",
    help="Base URL of the serving worker, e.g. http://127.0.0.1:8080. "
    "Default: the url in DATA_DIR/serving.json of the agent given by --config.",
)
@_config_option
@click.option(
    "--batch-rows",
    type=int,
    default=50,
    show_default=True,
    help="Number of rows per inference request.",
)
@click.option("--limit", type=int, help="Send at most this many rows. Default: all.")
@click.option(
    "--skip",
    "skip_rows",
    type=int,
    default=0,
    show_default=True,
    help="Leave out this many rows at the start of the (shuffled) source.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the shuffle of the source rows; -1 keeps the file's row order.",
)
@click.option(
    "--target",
    help="Label column of a CSV source. Default: the one "
    "column that is not a model feature.",
)
@click.option(
    "--shift",
    "shift_texts",
    multiple=True,
    help="Add an offset to a feature from a row on (counted among the rows sent): "
    f"{SHIFT_SYNTAX}. 'std' scales the number by the feature's standard deviation "
    "over the source. Repeatable.",
)
@click.option(
    "--window",
    "window_rows",
    type=int,
    default=500,
    show_default=True,
    help="Number of rows summarised by each progress line.",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="File with a predict token, if the worker needs one.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print each progress line as one JSON object (rows_sent, rows, errors, "
    "error_rate, versions, elapsed_seconds), for scripts.",
)
def replay(
    model: str,
    source: str,
    rate_rows_per_second: float,
    url: str | None,
    config_path: Path,
    batch_rows: int,
    limit: int | None,
    skip_rows: int,
    seed: int,
    target: str | None,
    shift_texts: tuple[str, ...],
    window_rows: int,
    token_file: Path | None,
    as_json: bool,
) -> None:
    """Send a data set to MODEL's serving endpoint, with feedback labels.

    Prints one line per --window rows: rows sent, the error rate of the
    served predictions in that window, and which versions answered.
    """
    import httpx

    from agent.replay import Replayer, ReplayError, Shift, load_source, shuffled

    _check_positive(
        rate_rows_per_second=rate_rows_per_second,
        batch_rows=batch_rows,
        window_rows=window_rows,
        limit=limit if limit is not None else 1,
    )
    if skip_rows < 0:
        raise ReplayError(f"--skip must be 0 or more (got {skip_rows}).")
    shifts = [Shift.parse(text) for text in shift_texts]
    headers = (
        {"Authorization": f"Bearer {token_file.read_text().strip()}"}
        if token_file
        else {}
    )
    base_url = url or _serving_url(config_path)
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        replayer = Replayer(
            client, model, rate_rows_per_second, batch_rows, window_rows
        )
        source_rows = load_source(source, replayer.feature_names(), target)
        rows = shuffled(source_rows, None if seed == -1 else seed, skip_rows, limit)
        say = (lambda text: None) if as_json else click.echo
        for shift in shifts:
            offset = rows.apply(shift, source_rows)
            say(f"shift {shift.describe()}: {offset:+.4g} added")
        say(
            f"replaying {len(rows.rows)} rows of {source} to {model} at "
            f"{base_url}, {rate_rows_per_second:g} rows/s"
        )

        def emit(window, sent_rows: int, elapsed_seconds: float) -> None:
            if as_json:
                click.echo(json.dumps(window.to_json(sent_rows, elapsed_seconds)))
            else:
                click.echo(window.line(sent_rows, elapsed_seconds))

        total = replayer.replay(rows, emit)
    say(f"done {total.line(total.rows, 0.0).split('  elapsed')[0]}")


def _check_positive(**values: float) -> None:
    from agent.replay import ReplayError

    # The parameter names that differ from their option's name.
    options = {"rate_rows_per_second": "--rate", "window_rows": "--window"}
    for name, value in values.items():
        if not value > 0:
            option = options.get(name, "--" + name.replace("_", "-"))
            raise ReplayError(f"{option} must be more than 0 (got {value}).")


def _serving_url(config_path: Path) -> str:
    from agent.replay import ReplayError

    path = _load(config_path).data_dir / "serving.json"
    try:
        return json.loads(path.read_text())["url"]
    except (OSError, ValueError, KeyError) as error:
        raise ReplayError(
            f"No serving URL in {path} ({error}); the agent serves nothing yet. "
            "Deploy a version first, or pass --url."
        ) from error


def main() -> None:
    # Every command may create the store or files in the data directory
    # (token create before the first run, for one): readable by this user only.
    os.umask(0o077)
    cli(standalone_mode=True)


if __name__ == "__main__":
    main()

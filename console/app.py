"""The rigdeck console: a Textual app over many agents.

One async worker, the poller, wakes every ``poll_seconds``, gets the
resources the current screen shows, and starts one task per agent that is
not already waiting for a response or backing off after a failure. Each task posts
an ``AgentPolled`` message; the app stores the results in that agent's
``AgentData`` and notifies the screen, which redraws what changed. Actions run
in their own async workers and report back with messages too, so no code
here touches widgets from another thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
from textual import work
from textual.app import App
from textual.binding import Binding
from textual.reactive import reactive
from textual.worker import Worker, WorkerState

from console import resources
from console.client import DEFAULT_CONCURRENCY, AgentClient
from console.config import AgentEntry
from console.errors import AgentRequestError, ConsoleError
from console.messages import (
    ActionFailed,
    ActionSucceeded,
    AgentPolled,
    CommandSubmitted,
    IdentityFound,
)
from console.resources import AgentData
from console.screens import VIEWS, ConsoleScreen, FleetScreen, HelpScreen, HostScreen

logger = logging.getLogger(__name__)

POLL_SECONDS = 2.0
QUIT_COMMANDS = ("quit", "q", "q!")


class RigdeckApp(App):
    """Watch a fleet of agents and act on it.

    Args:
        agents: the agents to watch; names must be unique.
        readonly: hide and refuse every state-changing action.
        transports: an httpx transport per agent name, used instead of the
            network (tests feed canned agents this way).
        clock: the wall clock for ages and times (tests fix it).
        poll_seconds: seconds between polls of each agent.
        ssh_command: the ssh executable for ``ssh://`` agents.
        concurrency: requests in flight to all agents together.
    """

    TITLE = "rigdeck"
    # Absolute, because Textual resolves a relative one against the module
    # of the subclass (the demo subclasses this app in console/demo).
    CSS_PATH = Path(__file__).parent / "app.tcss"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("colon", "command_mode", "Command", key_display=":", id="command"),
        Binding("question_mark", "help", "Help", key_display="?", id="help"),
        Binding("ctrl+q", "quit", "Quit", show=False, id="quit"),
    ]
    # A message every main screen shows under its header until it changes;
    # empty hides it. The demo shows its current step here.
    banner = reactive("")

    def __init__(
        self,
        agents: list[AgentEntry],
        readonly: bool = False,
        transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
        clock: Callable[[], float] = time.time,
        poll_seconds: float = POLL_SECONDS,
        ssh_command: str = "ssh",
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        super().__init__()
        self.readonly = readonly
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.hung_up = False
        self._concurrency = concurrency
        self._ssh_command = ssh_command
        self._transports = dict(transports or {})
        self._entries = agents
        self.clients: dict[str, AgentClient] = {}
        self.data: dict[str, AgentData] = {entry.name: AgentData() for entry in agents}
        self._poll_tasks: set[asyncio.Task] = set()
        self._wake = asyncio.Event()
        self._identity_tried: set[str] = set()

    # Lifecycle.

    def on_mount(self) -> None:
        # The limiter must be made on the app's event loop.
        limiter = asyncio.Semaphore(self._concurrency)
        for entry in self._entries:
            self.clients[entry.name] = AgentClient(
                entry,
                transport=self._transports.get(entry.name),
                limiter=limiter,
                readonly=self.readonly,
                clock=self.clock,
                ssh_command=self._ssh_command,
            )
        self._install_hangup_handler()
        self.push_screen(FleetScreen())
        self.run_worker(self._poll_loop(), name="poller", group="poller")

    def _install_hangup_handler(self) -> None:
        """End quietly on SIGHUP (lost terminal) and SIGTERM, closing tunnels."""
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGHUP, signal.SIGTERM):
            try:
                loop.add_signal_handler(signal_number, self._hang_up, signal_number)
            except (NotImplementedError, RuntimeError, ValueError):
                # Not on the main thread (tests), or not on this platform.
                logger.debug("no handler installed for signal %s", signal_number)

    def _hang_up(self, signal_number: int) -> None:
        # A lost terminal cannot show a message, so exit without one.
        logger.info("received %s; exiting", signal.Signals(signal_number).name)
        self.hung_up = True
        self.exit(return_code=0)

    async def on_unmount(self) -> None:
        for task in self._poll_tasks:
            task.cancel()
        for client in self.clients.values():
            await client.aclose()

    # Polling.

    def poll_now(self) -> None:
        """Start the next poll at once instead of at the next tick."""
        self._wake.set()

    async def _poll_loop(self) -> None:
        while True:
            self._poll_due_agents()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)

    def _poll_due_agents(self) -> None:
        screen = self.console_screen()
        if screen is None or not screen.is_mounted:
            # A screen just pushed has no tables yet to say what it shows.
            return
        now_monotonic = time.monotonic()
        now = self.clock()
        for name, kinds in screen.poll_plan().items():
            client = self.clients[name]
            if not client.ready_to_poll(now_monotonic):
                client.note_waiting(now_monotonic)
                continue
            due = self._due_kinds(self.data[name], kinds, now)
            if not due:
                continue
            client.in_flight_since = now_monotonic
            task = asyncio.create_task(self._poll_agent(client, due, now))
            self._poll_tasks.add(task)
            task.add_done_callback(self._poll_tasks.discard)

    def _due_kinds(self, data: AgentData, kinds: set[str], now: float) -> list[str]:
        """Return the kinds whose last fetch is older than their refresh interval."""
        due = []
        for kind in sorted(kinds):
            minimum = next(
                (
                    seconds
                    for prefix, seconds in resources.MIN_REFRESH_SECONDS.items()
                    if kind.startswith(prefix)
                ),
                0.0,
            )
            if kind in data.missing:
                minimum = max(minimum, resources.MISSING_RETRY_SECONDS)
            if now - data.fetched_at.get(kind, -1e18) >= minimum:
                due.append(kind)
        return due

    async def _poll_agent(
        self, client: AgentClient, kinds: list[str], now: float
    ) -> None:
        """Fetch ``kinds`` from one agent and post what came back.

        One request goes first, alone (the host when it is due). Only when
        the agent responds to it do the others follow, together. A slow or dead
        agent so occupies one slot of the shared limiter, not one per kind,
        and cannot starve the rest of the fleet.
        """
        data = self.data[client.name]
        message = AgentPolled(client.name)
        # The role matters only once the user acts, so it is asked on the
        # second poll that reaches the agent: the first view comes sooner.
        answered_before = client.status.last_ok_at is not None
        first = resources.HOST if resources.HOST in kinds else kinds[0]
        rest = [kind for kind in kinds if kind != first]
        try:
            await self._fetch_into(message, client, data, [first], now)
            reached = first in message.results or message.errors[first][0] is not None
            if rest and reached:
                await self._fetch_into(message, client, data, rest, now)
            if (
                answered_before
                and message.results
                and client.name not in self._identity_tried
            ):
                await self._identify(client)
        except Exception:
            # A bug must not end this agent's polling: log it, keep what came.
            logger.exception("poll of agent %s failed", client.name)
        finally:
            client.in_flight_since = None
        self.post_message(message)

    async def _fetch_into(
        self,
        message: AgentPolled,
        client: AgentClient,
        data: AgentData,
        kinds: list[str],
        now: float,
    ) -> None:
        outcomes = await asyncio.gather(
            *(resources.fetch(client, data, kind, now) for kind in kinds),
            return_exceptions=True,
        )
        for kind, outcome in zip(kinds, outcomes, strict=True):
            if isinstance(outcome, AgentRequestError):
                message.errors[kind] = (outcome.status, outcome.message)
            elif isinstance(outcome, Exception):
                logger.error(
                    "agent %s: fetching %s failed: %r", client.name, kind, outcome
                )
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                message.results[kind] = outcome

    async def _identify(self, client: AgentClient) -> None:
        try:
            await client.identify()
        except AgentRequestError as error:
            logger.warning(
                "could not learn the token's role on %s: %s", client.name, error
            )
            return
        self._identity_tried.add(client.name)
        logger.info(
            "agent %s: token %s has the %s role (%s)",
            client.name,
            client.identity.name,
            client.identity.role,
            client.identity.source,
        )
        self.post_message(IdentityFound(client.name))

    def on_agent_polled(self, message: AgentPolled) -> None:
        data = self.data[message.agent]
        now = self.clock()
        for kind, result in message.results.items():
            try:
                resources.apply(data, kind, result, now)
            except (KeyError, TypeError, ValueError) as error:
                data.missing[kind] = f"the agent returned an unexpected body: {error!r}"
                logger.warning(
                    "agent %s: cannot read %s: %r", message.agent, kind, error
                )
        for kind, (status, text) in message.errors.items():
            reason = resources.missing_reason(status, text)
            if reason is not None:
                data.missing[kind] = reason
                data.fetched_at[kind] = now
            logger.debug("agent %s: %s failed: %s", message.agent, kind, text)
        self._tell_screen(message.agent)

    def on_identity_found(self, message: IdentityFound) -> None:
        self._tell_screen(message.agent)
        screen = self.console_screen()
        # Footer bindings are recomputed only when the selected row's agent
        # is concerned: with hundreds of agents, once each would be slow.
        if screen is not None and screen.selected_agent() == message.agent:
            screen.selection_changed()

    def _tell_screen(self, agent: str) -> None:
        screen = self.console_screen()
        if screen is not None:
            screen.data_changed(agent)

    def console_screen(self) -> ConsoleScreen | None:
        """The topmost main screen, under any open dialog."""
        for screen in reversed(self.screen_stack):
            if isinstance(screen, ConsoleScreen):
                return screen
        return None

    # Actions.

    def act(
        self,
        agent: str,
        action: str,
        target: str,
        path: str,
        body: dict[str, Any] | None = None,
    ) -> None:
        """POST ``body`` to ``path`` on ``agent`` in a worker; report with a message."""
        self._act(agent, action, target, path, body)

    @work(group="actions", exit_on_error=False)
    async def _act(
        self,
        agent: str,
        action: str,
        target: str,
        path: str,
        body: dict[str, Any] | None,
    ) -> None:
        client = self.clients[agent]
        try:
            result = await client.post(path, body)
        except AgentRequestError as error:
            self.post_message(
                ActionFailed(agent, action, target, error.message, error.status)
            )
            return
        except ConsoleError as error:
            self.post_message(ActionFailed(agent, action, target, str(error), None))
            return
        self.post_message(ActionSucceeded(agent, action, target, result))

    def on_action_succeeded(self, message: ActionSucceeded) -> None:
        label = message.action.replace("_", " ")
        # Short, so that it does not cover the details it changed for long.
        self.notify(f"{message.agent}: {label} {message.target}: done.", timeout=3)
        self.poll_now()

    def on_action_failed(self, message: ActionFailed) -> None:
        label = message.action.replace("_", " ")
        status = f" (HTTP {message.status})" if message.status else ""
        self.notify(
            f"{message.agent}: {label} {message.target} failed{status}: "
            f"{message.message}",
            severity="error",
            timeout=10,
        )
        if message.status == 403:
            self.post_message(IdentityFound(message.agent))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # The one place where a worker's unexpected failure is absorbed.
        if event.state is WorkerState.ERROR:
            logger.exception(
                "worker %s failed", event.worker.name, exc_info=event.worker.error
            )
            self.notify(
                f"Internal error in {event.worker.name}: {event.worker.error!r}",
                severity="error",
            )

    # Navigation and commands.

    def command_words(self) -> list[str]:
        words = [*VIEWS, "quit", "help"]
        words += [f"host {name}" for name in self.data]
        return words

    def action_command_mode(self) -> None:
        screen = self.console_screen()
        if screen is not None and screen is self.screen:
            screen.open_command_bar()

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.screen))

    def on_command_submitted(self, message: CommandSubmitted) -> None:
        self.run_command(message.command)

    def run_command(self, command: str) -> None:
        """Run a ``:`` command: a view name, optionally with an argument, or quit."""
        word, _, argument = command.strip().lstrip(":").partition(" ")
        word, argument = word.lower(), argument.strip()
        if word in QUIT_COMMANDS:
            self.exit()
            return
        if word == "help":
            self.action_help()
            return
        view = _match_view(word)
        if view is None:
            self.notify(
                f"Unknown command {word!r}; try one of: {', '.join(VIEWS)}, quit.",
                severity="error",
            )
            return
        self.show_view(view, argument)

    def show_view(self, view: str, argument: str = "") -> None:
        """Open ``view``; ``argument`` is the host's agent or a table filter."""
        if view == "host":
            self._show_host(argument)
            return
        current = self.console_screen()
        if view == "fleet":
            while len(self.screen_stack) > 2:
                self.pop_screen()
            current = self.console_screen()
        if current is not None and view == current.VIEW:
            if argument:
                current.apply_filter(argument)
        else:
            self.push_screen(VIEWS[view](filter_text=argument))
        self.poll_now()

    def _show_host(self, agent: str) -> None:
        if not agent:
            screen = self.console_screen()
            agent = (screen.selected_agent() if screen else None) or ""
        if agent not in self.clients:
            names = ", ".join(sorted(self.clients)) or "none"
            problem = f"No agent named {agent!r}" if agent else "No agent selected"
            self.notify(
                f"{problem}; use :host NAME with one of: {names}.", severity="error"
            )
            return
        self.push_screen(HostScreen(agent))
        self.poll_now()

    def go_back(self) -> None:
        """Leave the current screen, unless it is the fleet at the bottom."""
        if len(self.screen_stack) > 2:
            self.pop_screen()
            self.poll_now()


def _match_view(word: str) -> str | None:
    """Return the view named by ``word`` or by a unique prefix of it."""
    if word in VIEWS:
        return word
    matches = [view for view in VIEWS if view.startswith(word)] if word else []
    return matches[0] if len(matches) == 1 else None

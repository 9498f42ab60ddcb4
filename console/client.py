"""One async HTTP client per agent, with its reachability state and backoff.

Every request has explicit timeouts and waits for a slot of a limiter shared
by all agents, so a slow or dead agent costs the console one waiting
coroutine, never a frozen screen or an unbounded pile of sockets. After a
failure the agent is polled again only after an exponential backoff.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from console.config import AgentEntry, ssh_target
from console.errors import AgentRequestError, ConsoleConfigError, ReadOnlyError
from console.roles import identity_from_forbidden
from console.tunnel import SshTunnel

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 3.0
READ_TIMEOUT_SECONDS = 10.0
# A request still waiting after this long marks the agent slow.
SLOW_SECONDS = 2.0
# Backoff after consecutive failures: 2, 4, 8, 16, then 30 s, each with
# up to 20 % random jitter so that agents that failed together do not
# retry together.
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 30.0
BACKOFF_JITTER_RATIO = 0.2
# Requests in flight to all agents together.
DEFAULT_CONCURRENCY = 64
# Connections kept open to one agent.
CONNECTIONS_PER_AGENT = 4


class AgentState(enum.Enum):
    """How an agent responded to its latest requests."""

    CONNECTING = "connecting"
    OK = "ok"
    SLOW = "slow"
    UNREACHABLE = "unreachable"
    UNAUTHORIZED = "token rejected"


@dataclass
class AgentStatus:
    """The reachability of one agent, as the fleet view shows it.

    Attributes:
        state: the latest verdict.
        last_ok_at: Unix time of the last successful response, or None.
        latency_seconds: duration of the last completed request.
        error: why the agent is slow or unreachable, in words.
        failures: consecutive failed requests.
        retry_at: monotonic time before which the agent is not polled again.
    """

    state: AgentState = AgentState.CONNECTING
    last_ok_at: float | None = None
    latency_seconds: float | None = None
    error: str | None = None
    failures: int = 0
    retry_at: float = 0.0


@dataclass
class Identity:
    """Who the console is on one agent: the token's name and role.

    ``source`` is ``whoami`` when the agent reported it, ``inferred`` when the
    role was read from a 403 message, and None while it is unknown.
    """

    name: str | None = None
    role: str | None = None
    source: str | None = None


class AgentClient:
    """Talks to one agent's control API over HTTP(S) or an ssh tunnel.

    Args:
        entry: the agent's name, URL and credentials.
        transport: an httpx transport to use instead of the network (tests).
        limiter: a semaphore shared by every client, bounding requests in
            flight across the fleet; a private one when omitted.
        readonly: refuse every request other than GET.
        clock: the wall clock for ``last_ok_at`` (tests fix it).
        ssh_command: the ssh executable for ``ssh://`` URLs.
    """

    def __init__(
        self,
        entry: AgentEntry,
        transport: httpx.AsyncBaseTransport | None = None,
        limiter: asyncio.Semaphore | None = None,
        readonly: bool = False,
        clock: Callable[[], float] = time.time,
        ssh_command: str = "ssh",
    ) -> None:
        self.entry = entry
        self.status = AgentStatus()
        self.identity = Identity()
        self.readonly = readonly
        self.clock = clock
        # Set by the poller while a poll waits, so a slow agent is never
        # polled twice at once and shows as slow before it times out.
        self.in_flight_since: float | None = None
        self._limiter = limiter or asyncio.Semaphore(DEFAULT_CONCURRENCY)
        self._etags: dict[str, tuple[str, Any]] = {}
        self._random = random.Random(entry.name)
        self.tunnel: SshTunnel | None = None
        if entry.url.startswith("ssh://"):
            self.tunnel = SshTunnel(entry.name, ssh_target(entry.url), ssh_command)
        self._http = self._make_http(transport)

    def _make_http(
        self, transport: httpx.AsyncBaseTransport | None
    ) -> httpx.AsyncClient:
        token = self.entry.read_token()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        verify: Any = False
        if self.entry.url.startswith("https://"):
            verify = ssl_context(self.entry.ca_file)
        # The ssh tunnel's local port is known only once it opens.
        base_url = "http://127.0.0.1" if self.tunnel else self.entry.url
        return httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            timeout=httpx.Timeout(
                READ_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS
            ),
            limits=httpx.Limits(
                max_connections=CONNECTIONS_PER_AGENT,
                max_keepalive_connections=CONNECTIONS_PER_AGENT,
            ),
            verify=verify,
            transport=transport,
        )

    @property
    def name(self) -> str:
        return self.entry.name

    def age_seconds(self) -> float | None:
        """Seconds since the last successful response, or None if there was none."""
        if self.status.last_ok_at is None:
            return None
        return self.clock() - self.status.last_ok_at

    def ready_to_poll(self, now: float) -> bool:
        """Return whether a new poll may start at monotonic time ``now``."""
        return self.in_flight_since is None and now >= self.status.retry_at

    def note_waiting(self, now: float) -> None:
        """Mark the agent slow when the poll in flight has waited past SLOW_SECONDS."""
        if self.in_flight_since is None:
            return
        waited = now - self.in_flight_since
        if waited > SLOW_SECONDS and self.status.state is not AgentState.UNREACHABLE:
            self._mark(AgentState.SLOW, f"no answer for {waited:.0f} s")

    async def get(self, path: str, **params: Any) -> Any:
        """GET ``path`` and return its JSON; None-valued params are left out.

        When the agent sent an ETag for the same request before, the request
        carries ``If-None-Match`` and a 304 returns the cached body.
        """
        query = {key: value for key, value in params.items() if value is not None}
        cache_key = path + "?" + str(sorted(query.items()))
        cached = self._etags.get(cache_key)
        headers = {"If-None-Match": cached[0]} if cached else None
        response = await self._request("GET", path, params=query, headers=headers)
        if response.status_code == 304 and cached is not None:
            return cached[1]
        body = self._json(response, path)
        etag = response.headers.get("etag")
        if etag:
            self._etags[cache_key] = (etag, body)
        return body

    async def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """POST ``body`` as JSON to ``path``; refused in a read-only console."""
        if self.readonly:
            raise ReadOnlyError(self.name, "POST", path)
        response = await self._request("POST", path, json=body or {})
        logger.info("agent %s: POST %s -> %s", self.name, path, response.status_code)
        return self._json(response, path)

    async def identify(self) -> Identity:
        """Find the token's name and role on this agent.

        Requests ``GET /api/v1/whoami``. Agents without that route return
        404. Then the token list, which only admins may read, tells an admin
        (200) from the others, whose 403 message names their role.
        """
        try:
            me = await self.get("/api/v1/whoami")
        except AgentRequestError as error:
            if error.status != 404:
                raise
        else:
            self.identity = Identity(me.get("name"), me.get("role"), "whoami")
            return self.identity
        try:
            await self.get("/api/v1/tokens")
        except AgentRequestError as error:
            if error.status == 403:
                self.note_forbidden(error.message)
            elif error.status is None:
                raise
        else:
            self.identity = Identity(self.identity.name, "admin", "inferred")
        return self.identity

    def note_forbidden(self, message: str) -> None:
        """Learn the token's name and role from an agent's 403 message."""
        found = identity_from_forbidden(message)
        if found and self.identity.source != "whoami":
            self.identity = Identity(found[0], found[1], "inferred")

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if self.tunnel is not None:
            await self._open_tunnel()
        async with self._limiter:
            started = time.monotonic()
            try:
                response = await self._http.request(method, path, **kwargs)
            except httpx.TimeoutException as error:
                self._fail(AgentState.SLOW, f"timed out after {_elapsed(started)}")
                raise AgentRequestError(
                    self.name, f"{method} {path} timed out after {_elapsed(started)}"
                ) from error
            except httpx.TransportError as error:
                reason = str(error) or type(error).__name__
                self._fail(AgentState.UNREACHABLE, reason)
                raise AgentRequestError(
                    self.name, f"{method} {path} failed: {reason}"
                ) from error
        if response.status_code == 401:
            # Reachable but useless: a missing, wrong or revoked token must not
            # look like a healthy agent with empty data.
            error = self._error(response, method, path)
            self._mark(AgentState.UNAUTHORIZED, error.message)
            raise error
        self._succeed(time.monotonic() - started)
        if response.status_code >= 400:
            raise self._error(response, method, path)
        return response

    async def _open_tunnel(self) -> None:
        assert self.tunnel is not None
        try:
            port = await self.tunnel.ensure_open()
        except AgentRequestError as error:
            self._fail(AgentState.UNREACHABLE, error.message)
            raise
        self._http.base_url = f"http://127.0.0.1:{port}"

    def _succeed(self, latency: float) -> None:
        self.status.latency_seconds = latency
        self.status.last_ok_at = self.clock()
        self.status.failures = 0
        self.status.retry_at = 0.0
        if latency > SLOW_SECONDS:
            self._mark(AgentState.SLOW, f"answered in {latency:.1f} s")
        else:
            self._mark(AgentState.OK, None)

    def _fail(self, state: AgentState, reason: str) -> None:
        self.status.failures += 1
        delay = min(
            BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (self.status.failures - 1)
        )
        delay *= 1 + self._random.uniform(0, BACKOFF_JITTER_RATIO)
        self.status.retry_at = time.monotonic() + delay
        if self.status.failures > 1:
            logger.warning(
                "agent %s: attempt %s failed (%s); next try in %.0f s",
                self.name,
                self.status.failures,
                reason,
                delay,
            )
        self._mark(state, reason)

    def _mark(self, state: AgentState, error: str | None) -> None:
        if state is not self.status.state:
            logger.info(
                "agent %s is now %s%s",
                self.name,
                state.value,
                f" ({error})" if error else "",
            )
        self.status.state = state
        self.status.error = error

    def _error(
        self, response: httpx.Response, method: str, path: str
    ) -> AgentRequestError:
        code, message = _error_body(response)
        if response.status_code == 403:
            self.note_forbidden(message)
        return AgentRequestError(self.name, message, response.status_code, code)

    def _json(self, response: httpx.Response, path: str) -> Any:
        try:
            return response.json()
        except ValueError as error:
            raise AgentRequestError(
                self.name,
                f"{path} returned a body that is not JSON "
                f"(HTTP {response.status_code})",
                response.status_code,
            ) from error

    async def aclose(self) -> None:
        """Close the HTTP connections and the ssh tunnel, if any."""
        await self._http.aclose()
        if self.tunnel is not None:
            await self.tunnel.close()


@functools.cache
def ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    """Return one shared context per CA file: certificates and host names checked.

    Loading a CA bundle takes tens of milliseconds; a context per client
    would make a console over hundreds of agents slow to start.
    """
    if ca_file is None:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as error:
        raise ConsoleConfigError(
            f"Cannot load the CA file {ca_file}: {error}. Give a PEM bundle."
        ) from error


def _elapsed(started: float) -> str:
    return f"{time.monotonic() - started:.1f} s"


def _error_body(response: httpx.Response) -> tuple[str | None, str]:
    try:
        error = response.json()["error"]
        return error.get("code"), str(error["message"])
    except (ValueError, KeyError, TypeError):
        return None, f"HTTP {response.status_code} {response.reason_phrase}".strip()

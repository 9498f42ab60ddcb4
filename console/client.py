"""One async HTTP client per agent, with its reachability state.

Every request has an explicit timeout, so a slow or dead agent costs the
console one worker waiting, never a frozen screen.
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from console.config import AgentEntry
from console.errors import AgentRequestError

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 3.0
READ_TIMEOUT_SECONDS = 10.0
SLOW_SECONDS = 2.0


class AgentState(enum.Enum):
    """How an agent answered its latest requests."""

    CONNECTING = "connecting"
    OK = "ok"
    SLOW = "slow"
    UNREACHABLE = "unreachable"


@dataclass
class AgentStatus:
    state: AgentState = AgentState.CONNECTING
    last_ok_at: float | None = None
    latency_seconds: float | None = None
    error: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def age_seconds(self, now: float | None = None) -> float | None:
        if self.last_ok_at is None:
            return None
        return (now or time.time()) - self.last_ok_at


class AgentClient:
    """Talks to one agent's control API over HTTP(S)."""

    def __init__(
        self, entry: AgentEntry, transport: httpx.AsyncBaseTransport | None = None
    ):
        self.entry = entry
        self.status = AgentStatus()
        # Set by the poller while a poll waits, so a slow agent is never
        # polled twice at once and shows as slow before it times out.
        self.in_flight_since: float | None = None
        token = entry.read_token()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        verify: Any = str(entry.ca_file) if entry.ca_file else True
        self._http = httpx.AsyncClient(
            base_url=entry.url,
            headers=headers,
            timeout=httpx.Timeout(
                READ_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS
            ),
            verify=verify,
            transport=transport,
        )

    @property
    def name(self) -> str:
        return self.entry.name

    async def get(self, path: str, **params: Any) -> Any:
        return await self._request("GET", path, params=params or None)

    async def post(self, path: str, body: dict | None = None) -> Any:
        return await self._request("POST", path, json=body or {})

    def note_waiting(self) -> None:
        """Mark the agent slow when a request has waited past SLOW_SECONDS."""
        if self.in_flight_since is None:
            return
        if time.monotonic() - self.in_flight_since > SLOW_SECONDS:
            self._mark(AgentState.SLOW, "waiting for an answer")

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        if self.entry.url.startswith("ssh://"):
            # TODO: open a local port forward with the system ssh client; until
            # then an ssh:// agent shows as unreachable with this reason.
            self._mark(AgentState.UNREACHABLE, "ssh:// tunnels are not supported yet")
            raise AgentRequestError(self.name, "ssh:// tunnels are not supported yet")
        started = time.monotonic()
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as error:
            self._mark(AgentState.SLOW, f"timed out after {READ_TIMEOUT_SECONDS:.0f} s")
            raise AgentRequestError(self.name, "the request timed out") from error
        except httpx.TransportError as error:
            self._mark(AgentState.UNREACHABLE, str(error) or type(error).__name__)
            raise AgentRequestError(self.name, f"unreachable: {error}") from error
        latency = time.monotonic() - started
        self.status.latency_seconds = latency
        self._mark(AgentState.SLOW if latency > SLOW_SECONDS else AgentState.OK, None)
        self.status.last_ok_at = time.time()
        if response.status_code >= 400:
            raise AgentRequestError(
                self.name, _error_message(response), response.status_code
            )
        return response.json()

    def _mark(self, state: AgentState, error: str | None) -> None:
        if state is not self.status.state:
            logger.info("agent %s is now %s", self.name, state.value)
        self.status.state = state
        self.status.error = error

    async def aclose(self) -> None:
        await self._http.aclose()


def _error_message(response: httpx.Response) -> str:
    try:
        return response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"

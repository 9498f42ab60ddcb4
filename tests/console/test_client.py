"""AgentClient: states, backoff, ETags, read-only refusal, roles, error bodies."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from console.client import AgentClient, AgentState
from console.config import AgentEntry
from console.errors import AgentRequestError, ReadOnlyError

ENTRY = AgentEntry("a", "http://a.test")


def client_for(handler, **options) -> AgentClient:
    return AgentClient(ENTRY, transport=httpx.MockTransport(handler), **options)


async def test_ok_response_marks_agent_ok():
    client = client_for(lambda request: httpx.Response(200, json={"x": 1}))

    assert await client.get("/api/v1/host") == {"x": 1}
    assert client.status.state is AgentState.OK
    assert client.status.last_ok_at is not None
    await client.aclose()


async def test_connect_error_marks_unreachable_and_backs_off():
    def refuse(request):
        raise httpx.ConnectError("Connection refused", request=request)

    client = client_for(refuse)
    for attempt in range(1, 4):
        with pytest.raises(AgentRequestError) as raised:
            await client.get("/api/v1/host")
        assert raised.value.status is None
        assert client.status.failures == attempt

    delay = client.status.retry_at - time.monotonic()
    assert client.status.state is AgentState.UNREACHABLE
    assert "Connection refused" in client.status.error
    # Third failure: 2 * 2**2 = 8 s, plus up to 20 % jitter.
    assert 7.0 < delay <= 9.7
    assert not client.ready_to_poll(time.monotonic())
    await client.aclose()


async def test_timeout_marks_slow():
    def time_out(request):
        raise httpx.ReadTimeout("timed out", request=request)

    client = client_for(time_out)
    with pytest.raises(AgentRequestError) as raised:
        await client.get("/api/v1/host")

    assert "timed out" in raised.value.message
    assert client.status.state is AgentState.SLOW
    await client.aclose()


async def test_request_waiting_past_two_seconds_marks_slow():
    client = client_for(lambda request: httpx.Response(200, json={}))
    now = time.monotonic()
    client.in_flight_since = now - 2.5

    client.note_waiting(now)

    assert client.status.state is AgentState.SLOW
    assert client.status.error == "no answer for 2 s"
    await client.aclose()


async def test_success_after_failures_resets_backoff():
    calls = []

    def flaky(request):
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={})

    client = client_for(flaky)
    with pytest.raises(AgentRequestError):
        await client.get("/api/v1/host")
    await client.get("/api/v1/host")

    assert client.status.failures == 0
    assert client.status.retry_at == 0.0
    assert client.status.state is AgentState.OK
    await client.aclose()


async def test_error_body_is_translated():
    def forbidden(request):
        return httpx.Response(
            403,
            json={
                "error": {
                    "code": "forbidden",
                    "message": "This action needs the operator role or higher; the "
                    "token 'ci' has the viewer role.",
                }
            },
        )

    client = client_for(forbidden)
    with pytest.raises(AgentRequestError) as raised:
        await client.post("/api/v1/jobs/x/trigger")

    assert raised.value.status == 403
    assert raised.value.code == "forbidden"
    assert str(raised.value).startswith("a: This action needs the operator role")
    # An agent that responded with an error is reachable.
    assert client.status.state is AgentState.OK
    assert (client.identity.name, client.identity.role) == ("ci", "viewer")
    await client.aclose()


async def test_non_json_error_body_names_the_status():
    client = client_for(lambda request: httpx.Response(502, text="<html>bad gateway"))

    with pytest.raises(AgentRequestError) as raised:
        await client.get("/api/v1/host")

    assert raised.value.message == "HTTP 502 Bad Gateway"
    await client.aclose()


async def test_etag_sends_if_none_match_and_reuses_body():
    seen = []

    def handler(request):
        seen.append(request.headers.get("if-none-match"))
        if request.headers.get("if-none-match") == '"v1"':
            return httpx.Response(304)
        return httpx.Response(200, json={"items": [1]}, headers={"ETag": '"v1"'})

    client = client_for(handler)
    first = await client.get("/api/v1/releases", limit=50)
    second = await client.get("/api/v1/releases", limit=50)

    assert first == second == {"items": [1]}
    assert seen == [None, '"v1"']
    await client.aclose()


async def test_readonly_client_refuses_post():
    client = client_for(lambda request: httpx.Response(200, json={}), readonly=True)

    with pytest.raises(ReadOnlyError) as raised:
        await client.post("/api/v1/models/m/rollback", {"reason": "x"})

    assert "read-only" in str(raised.value)
    await client.aclose()


async def test_identify_prefers_whoami():
    client = client_for(
        lambda request: httpx.Response(200, json={"name": "bob", "role": "approver"})
    )

    identity = await client.identify()

    assert (identity.name, identity.role, identity.source) == (
        "bob",
        "approver",
        "whoami",
    )
    await client.aclose()


async def test_identify_falls_back_to_token_list():
    def handler(request):
        if request.url.path == "/api/v1/whoami":
            return httpx.Response(
                404, json={"error": {"code": "not_found", "message": "No route"}}
            )
        return httpx.Response(200, json={"items": []})

    client = client_for(handler)

    identity = await client.identify()

    assert (identity.name, identity.role, identity.source) == (
        None,
        "admin",
        "inferred",
    )
    await client.aclose()


async def test_bearer_token_is_sent(tmp_path: Path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    seen = []
    client = AgentClient(
        AgentEntry("a", "http://a.test", token_file=token_file),
        transport=httpx.MockTransport(
            lambda request: (
                seen.append(request.headers["authorization"])
                or httpx.Response(200, json={})
            )
        ),
    )

    await client.get("/api/v1/host")

    assert seen == ["Bearer s3cret"]
    await client.aclose()


async def test_rejected_token_marks_agent_unauthorized():
    message = "The bearer token is unknown or revoked."
    client = client_for(
        lambda request: httpx.Response(
            401, json={"error": {"code": "invalid_token", "message": message}}
        )
    )

    with pytest.raises(AgentRequestError) as raised:
        await client.get("/api/v1/host")

    assert raised.value.status == 401
    assert client.status.state is AgentState.UNAUTHORIZED
    assert client.status.error == message
    await client.aclose()

"""ETags let a poller skip unchanged lists: 304 until the data changes."""

from __future__ import annotations

from harness import RunningAgent


def test_unchanged_list_answers_304(running_agent: RunningAgent) -> None:
    with running_agent.client("admin") as admin:
        first = admin.get("/api/v1/tokens")
        again = admin.get(
            "/api/v1/tokens", headers={"If-None-Match": first.headers["etag"]}
        )

    assert first.status_code == 200
    assert first.headers["etag"].startswith('"')
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == first.headers["etag"]


def test_changed_list_answers_200_with_new_tag(running_agent: RunningAgent) -> None:
    with running_agent.client("admin") as admin:
        first = admin.get("/api/v1/tokens")
        admin.post("/api/v1/tokens", json={"name": "etag-reader", "role": "viewer"})
        after = admin.get(
            "/api/v1/tokens", headers={"If-None-Match": first.headers["etag"]}
        )

    assert after.status_code == 200
    assert after.headers["etag"] != first.headers["etag"]
    assert "etag-reader" in {item["name"] for item in after.json()["items"]}


def test_errors_carry_no_etag(running_agent: RunningAgent) -> None:
    with running_agent.client(None) as anonymous:
        response = anonymous.get("/api/v1/tokens")

    assert response.status_code == 401
    assert "etag" not in response.headers


def test_tag_in_a_list_of_tags_matches(running_agent: RunningAgent) -> None:
    with running_agent.client("admin") as admin:
        tag = admin.get("/api/v1/tokens").headers["etag"]
        again = admin.get(
            "/api/v1/tokens", headers={"If-None-Match": f'"other", {tag}'}
        )

    assert again.status_code == 304

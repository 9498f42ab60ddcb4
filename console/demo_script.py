"""The guided part of ``rigdeck demo``: what the demo operator does for you.

The demo operator trains version 1 of ``shuttle`` and requests its release;
you approve it in the console as the second person the four-eyes rule
needs. Once it is live, the operator trains version 2 and requests its
release too, which goes through a canary you can watch, promote and roll
back. The script talks to the agent over HTTP only, in a thread, and tells
you each next step with a notification.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import httpx

logger = logging.getLogger(__name__)

MODEL = "shuttle"
POLL_SECONDS = 1.0
TRAIN_TIMEOUT_SECONDS = 600.0
APPROVAL_TIMEOUT_SECONDS = 3600.0


class DemoScript(threading.Thread):
    """Drive the demo operator's side of the release flow."""

    def __init__(
        self,
        url: str,
        operator_token: str,
        notify: Callable[[str], None],
        on_live: Callable[[], None] = lambda: None,
    ):
        super().__init__(name="rigdeck-demo-script", daemon=True)
        self._on_live = on_live
        self._http = httpx.Client(
            base_url=url,
            headers={"Authorization": f"Bearer {operator_token}"},
            timeout=30,
        )
        self._notify = notify
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()

    def run(self) -> None:
        try:
            for version in (1, 2):
                self._train(version)
                release = self._request_release(version)
                self._notify(
                    f"Version {version} of {MODEL} is trained and its release waits "
                    "for you: type :releases, select it and press a to approve."
                )
                self._wait_for_release(release["id"], version)
                if version == 1:
                    self._wait(
                        lambda: self._get("/api/v1/serving")["state"],
                        {"running", "failed"},
                        TRAIN_TIMEOUT_SECONDS,
                    )
                    self._on_live()
                    self._notify(
                        "Version 1 is live and the replayer sends it Shuttle rows "
                        "with feedback labels. Type :drift to see the monitors."
                    )
            self._notify(
                "Done: version 2 is live. Press b on the Releases or Models screen "
                "to roll back to version 1, and watch the audit log with :audit."
            )
        except _Stopped:
            return
        except (httpx.HTTPError, RuntimeError) as error:
            logger.warning("the demo script stopped: %s", error)
            self._notify(f"The demo script stopped: {error}")

    def _train(self, version: int) -> None:
        run = self._post(f"/api/v1/jobs/{MODEL}/trigger", {"reason": "demo"})
        self._notify(
            f"The demo operator started training version {version} of {MODEL} "
            f"(run {run['id']}). Type :runs to watch it, l for its log."
        )
        state = self._wait(
            lambda: self._get(f"/api/v1/runs/{run['id']}")["state"],
            {"succeeded", "failed", "cancelled", "timed_out", "interrupted"},
            TRAIN_TIMEOUT_SECONDS,
        )
        if state != "succeeded":
            raise RuntimeError(f"run {run['id']} ended {state}")

    def _request_release(self, version: int) -> dict:
        return self._post(
            "/api/v1/releases",
            {"model": MODEL, "version": version, "reason": "demo: a new version"},
        )

    def _wait_for_release(self, release_id: int, version: int) -> None:
        def state() -> str:
            release = self._get(f"/api/v1/releases/{release_id}")
            if release["state"] == "canary" and not self._told_canary:
                self._told_canary = True
                self._notify(
                    f"Version {version} is a canary now. Watch its figures on "
                    ":releases, then press p to promote it (or A to abort)."
                )
            return release["state"]

        self._told_canary = False
        final = self._wait(
            state, {"promoted", "rejected", "aborted"}, APPROVAL_TIMEOUT_SECONDS
        )
        if final != "promoted":
            raise RuntimeError(f"release {release_id} was {final}")

    def _wait(self, read: Callable[[], str], done: set[str], timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = read()
            if value in done:
                return value
            if self._stopped.wait(POLL_SECONDS):
                raise _Stopped
        raise RuntimeError(f"gave up after {timeout:.0f} s")

    def _get(self, path: str) -> dict:
        response = self._http.get(path)
        response.raise_for_status()
        return response.json()

    def _post(self, path: str, body: dict) -> dict:
        response = self._http.post(path, json=body)
        if response.status_code >= 400:
            message = response.json().get("error", {}).get("message", response.text)
            raise RuntimeError(f"POST {path} failed: {message}")
        return response.json()


class _Stopped(Exception):
    pass

"""The ``webhook`` notifier: POST each alert as a JSON body to a URL."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from plugins._options import check_keys, check_type
from plugins.interface import PluginConfigError
from plugins.notifiers import Notification, Notifier, NotifierError

DEFAULT_TIMEOUT_SECONDS = 5.0
MAX_TIMEOUT_SECONDS = 120.0


class WebhookNotifier(Notifier):
    """Options: ``url``, ``timeout_seconds`` (5) and ``headers`` ({}).

    The body is the notification as JSON (``Notification.to_json``). Any
    2xx status counts as delivered; redirects are not followed. Put a
    secret in ``headers`` (``Authorization = "Bearer ..."``) rather than
    in the URL: error messages and logs name the host, never the headers.
    """

    name = "webhook"

    @classmethod
    def validate_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        where = "webhook notifier"
        check_keys(
            where, options, required=("url",), optional=("timeout_seconds", "headers")
        )
        url = options["url"]
        check_type(where, "url", url, str)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PluginConfigError(
                f"{where}: url must be an http:// or https:// URL with a host "
                f"(got {url!r})."
            )
        timeout = options.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
        check_type(where, "timeout_seconds", timeout, (int, float))
        if not (math.isfinite(timeout) and 0 < timeout <= MAX_TIMEOUT_SECONDS):
            raise PluginConfigError(
                f"{where}: timeout_seconds must be in (0, {MAX_TIMEOUT_SECONDS:g}] "
                f"(got {timeout!r})."
            )
        headers = options.get("headers", {})
        check_type(where, "headers", headers, dict)
        for key, value in headers.items():
            if not isinstance(value, str):
                raise PluginConfigError(
                    f"{where}: headers.{key} must be a string (got a "
                    f"{type(value).__name__})."
                )
        return {"url": url, "timeout_seconds": float(timeout), "headers": dict(headers)}

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        self._host = urlsplit(options["url"]).netloc
        self._client = httpx.Client(
            timeout=options["timeout_seconds"],
            headers=options["headers"],
            follow_redirects=False,
        )

    def send(self, notification: Notification) -> str:
        try:
            response = self._client.post(
                self.options["url"], json=notification.to_json()
            )
        except httpx.TimeoutException as error:
            raise NotifierError(
                f"The webhook at {self._host} timed out: no response within "
                f"{self.options['timeout_seconds']:g} s ({type(error).__name__})."
            ) from error
        except httpx.HTTPError as error:
            raise NotifierError(
                f"The webhook at {self._host} could not be reached: "
                f"{type(error).__name__}: {error}"
            ) from error
        if not response.is_success:
            raise NotifierError(
                f"The webhook at {self._host} responded with HTTP "
                f"{response.status_code}."
            )
        return f"HTTP {response.status_code}"

    def close(self) -> None:
        self._client.close()

"""A tiny HTTP agent on loopback that can turn slow or go away (tests only).

It serves the fleet view's routes with canned JSON. ``delay_seconds``
makes every later request wait that long before the response (or until
the server is closed), and ``close`` stops it listening, so a test can move
one agent from ok to slow or unreachable while the console polls.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOST_BODY = {
    "name": "loopback",
    "cpu": {"utilization_ratio": 0.5, "core_utilization_ratios": [0.5, 0.5]},
    "memory": {"total_bytes": 100, "used_bytes": 50},
    "gpu": {"status": "ok", "gpus": []},
}
EMPTY_LIST = {"items": [], "next_cursor": None}


class LoopbackAgent:
    """A threaded HTTP server on 127.0.0.1 with a free port."""

    def __init__(self) -> None:
        self.delay_seconds = 0.0
        self.requests = 0
        self._released = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                owner.requests += 1
                if owner.delay_seconds:
                    owner._released.wait(owner.delay_seconds)
                path = self.path.split("?")[0]
                body = HOST_BODY if path == "/api/v1/host" else EMPTY_LIST
                if path == "/api/v1/whoami":
                    body = {"name": "loopback-viewer", "role": "viewer"}
                data = json.dumps(body).encode()
                try:
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the console gave up on this request

            def log_message(self, format: str, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop listening and let any delayed request finish at once."""
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

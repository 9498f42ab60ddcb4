"""The release service the daemon starts: the controller and its canary analysis."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from agent.config import AgentConfig
from agent.releases.controller import ReleaseController
from store import Store

logger = logging.getLogger(__name__)


class ReleaseService:
    """Judges every canary each ``serving.analysis_interval_seconds``."""

    def __init__(
        self,
        store: Store,
        config: AgentConfig,
        on_deployment_change: Callable[[str], None] = lambda model: None,
    ) -> None:
        self.controller = ReleaseController(
            store, config, on_deployment_change=on_deployment_change
        )
        self.interval_seconds = config.serving.analysis_interval_seconds
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name="canary-analysis", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stopping.wait(self.interval_seconds):
            try:
                self.controller.analyse()
            except Exception:
                logger.exception("the canary analysis failed; retrying")

"""Rate limits for log lines that can repeat many times a second."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable


class LogThrottle:
    """Let one log line per key through each interval, and count the others.

    Args:
        interval_seconds: the minimum time between two lines of one key.
            Default 60.
        clock: monotonic seconds.
    """

    def __init__(
        self,
        interval_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval_seconds = interval_seconds
        self.clock = clock
        self._logged_at: dict[Hashable, float] = {}
        self._suppressed: dict[Hashable, int] = {}
        self._lock = threading.Lock()

    def allow(self, key: Hashable) -> int | None:
        """Return None to drop this line, else how many were dropped since the last."""
        now = self.clock()
        with self._lock:
            logged_at = self._logged_at.get(key)
            if logged_at is not None and now - logged_at < self.interval_seconds:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return None
            self._logged_at[key] = now
            return self._suppressed.pop(key, 0)

    def forget(self, key: Hashable) -> None:
        """Drop the state of a key that will not repeat, e.g. of an ended run."""
        with self._lock:
            self._logged_at.pop(key, None)
            self._suppressed.pop(key, None)

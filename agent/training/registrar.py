"""Register finished runs on background threads, away from the run supervisor.

Registration hashes the artifact and evaluates the model's gates; either
can take minutes, and a gate plugin can hang. Done here, it never holds
``RunManager``'s lock, so budgets, GPU checks and cancels go on meanwhile.

The threads are daemon threads started on first use. They are not those
of a ``ThreadPoolExecutor``, whose threads the interpreter joins at exit,
so a gate that never returns would keep a stopped agent from exiting.
Each thread opens its own store connection (``Store`` keeps one per
thread), so the pool is fixed in size rather than a thread per run.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


class Registrar:
    """A fixed pool of daemon threads that call ``work`` on each submitted item.

    Args:
        work: called with each item on a pool thread; it must handle its
            own errors, and any that escape are logged.
        threads: the pool size, e.g. the maximum of concurrent runs, so a
            hung registration does not delay the others.
    """

    def __init__(self, work: Callable[[Any], None], threads: int) -> None:
        self.work = work
        self.thread_count = max(1, threads)
        self._items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, item: Any) -> None:
        self._start()
        self._items.put(item)

    def stop(self) -> None:
        """Let each thread end once the items submitted so far are done."""
        with self._lock:
            for _ in self._threads:
                self._items.put(_STOP)
            self._threads = []

    def _start(self) -> None:
        with self._lock:
            while len(self._threads) < self.thread_count:
                thread = threading.Thread(
                    target=self._serve,
                    name=f"run-registrar-{len(self._threads) + 1}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)

    def _serve(self) -> None:
        while True:
            item = self._items.get()
            if item is _STOP:
                return
            try:
                self.work(item)
            except Exception:
                logger.exception("registration work on %r failed", item)


_STOP = object()

"""Logging of served requests to the store's ``predictions`` table.

Turning a request into rows costs more than serving it: every row needs
its features and outputs as JSON text, and SQLite binds every row. On a
thread of the worker that work would hold the GIL the event loop needs,
so it runs in a writer process (spawned, so it never loads torch).

The worker's side stays on the event loop and uses no thread: requests
are collected for up to ``BATCH_SECONDS`` or ``BATCH_REQUESTS``, pickled
as one message and written to a pipe without blocking; what the pipe
cannot take yet waits in a bounded outbox. When the outbox is full,
whole batches are dropped and counted, so a slow disk slows logging,
never inference. The writer turns messages into rows (see
``store.predictions``) and writes them in one transaction every
``log_flush_seconds``. It exits after a last write when the pipe closes
(the worker stopped or died) or on SIGTERM.

The worker hands over the request and response bodies as bytes, not
arrays. The writer parses them again with ``parse_float=str`` and
``parse_int=str``, so each stored number is the text the client sent or
the worker returned, and no float is formatted twice. For a 64-row
request that halved the CPU time of building its rows, from about 250
to 130 µs on a 2-core Xeon VM, because formatting floats was most of it.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import math
import multiprocessing
import os
import pickle
import select
import signal
import struct
import time
from typing import Any, NamedTuple

from agent.serving.worker.protocol import FP32_FORMAT
from store import Store, StoreBusyError
from store import predictions as prediction_rows

logger = logging.getLogger(__name__)

BATCH_SECONDS = 0.02
BATCH_REQUESTS = 256
MAX_OUTBOX_BYTES = 64 * 1024 * 1024
STOP_TIMEOUT_SECONDS = 10.0
# The writer runs at a lower CPU priority: when cores are short, requests
# come first and the writer catches up later, from the outbox.
WRITER_NICE = 10
# Linux lets an unprivileged process grow a pipe to /proc/sys/fs/pipe-max-size,
# 1 MiB by default; a larger pipe absorbs bursts without touching the outbox.
_PIPE_BYTES = 1 << 20
_F_SETPIPE_SZ = 1031
_HEADER = struct.Struct("!I")


class LoggedRequest(NamedTuple):
    """One served request, as the hot path hands it over."""

    model: str
    version: int
    request_id: str
    ts: float
    latency_seconds: float
    status: int
    rows: int
    # The request body as received. The worker validated it, so its one input
    # contains ``rows`` rows of numbers.
    request_body: bytes
    # The predicted label of each row (None for a non-finite row); None when
    # the model failed.
    labels: list[Any] | None
    # The response body when its outputs include ``probabilities``, else None.
    response_body: bytes | None
    # Without ``response_body`` on a 200: the probabilities as computed
    # (float32, rows x classes), because the client asked for labels only.
    probabilities: Any
    nonfinite_rows: list[int]


class PredictionLog:
    """The worker's side: batches on the event loop, a pipe, the writer process.

    Args:
        store_path: the store the writer opens.
        busy_timeout_ms: the writer's SQLite busy timeout.
        flush_seconds: seconds between two writes to the store.
    """

    def __init__(
        self, store_path: str, busy_timeout_ms: int, flush_seconds: float
    ) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._written = self._context.Value("q", 0, lock=False)
        self._arguments = (store_path, busy_timeout_ms, flush_seconds)
        self._process: multiprocessing.process.BaseProcess | None = None
        self._fd = -1
        self._batch: list[LoggedRequest] = []
        self._outbox = bytearray()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting_for_pipe = False
        self.dropped_requests = 0

    @property
    def written_rows(self) -> int:
        return self._written.value

    def start(self) -> None:
        reader, writer = self._context.Pipe(duplex=False)
        self._process = self._context.Process(
            target=write_loop,
            args=(reader, self._written, *self._arguments),
            name="rigdeck-prediction-log",
        )
        self._process.start()
        reader.close()
        self._fd = os.dup(writer.fileno())
        writer.close()
        _grow_pipe(self._fd)
        os.set_blocking(self._fd, False)
        logger.info("prediction log writer started (pid %s)", self._process.pid)

    def record(self, entry: LoggedRequest) -> None:
        """Queue one served request; call it from the event loop."""
        self._batch.append(entry)
        if len(self._batch) >= BATCH_REQUESTS:
            self._send_batch()
        elif len(self._batch) == 1:
            self._loop = asyncio.get_running_loop()
            self._loop.call_later(BATCH_SECONDS, self._send_batch)

    def stop(self) -> None:
        """Send what is queued, close the pipe and wait for the writer's last write."""
        if self._process is None:
            return
        # The event loop has stopped; what the pipe cannot take now is written
        # below with a blocking write.
        self._loop = None
        self._send_batch()
        if self._fd >= 0:
            os.set_blocking(self._fd, True)
            try:
                os.write(self._fd, self._outbox)
            except BrokenPipeError:
                logger.error("the prediction log writer is gone; rows were lost")
            os.close(self._fd)
            self._fd = -1
        self._process.join(STOP_TIMEOUT_SECONDS)
        if self._process.is_alive():
            logger.error(
                "the prediction log writer did not stop within %s s; terminating it",
                STOP_TIMEOUT_SECONDS,
            )
            self._process.terminate()
            self._process.join()

    def _send_batch(self) -> None:
        batch, self._batch = self._batch, []
        if not batch or self._fd < 0:
            return
        payload = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
        if len(self._outbox) + len(payload) > MAX_OUTBOX_BYTES:
            self._drop(len(batch))
            return
        self._outbox += _HEADER.pack(len(payload))
        self._outbox += payload
        self._write()

    def _write(self) -> None:
        try:
            written = os.write(self._fd, self._outbox)
        except BlockingIOError:
            written = 0
        except BrokenPipeError:
            logger.error(
                "the prediction log writer exited; requests are no longer logged"
            )
            os.close(self._fd)
            self._fd = -1
            self._outbox.clear()
            return
        del self._outbox[:written]
        self._wait_for_pipe(bool(self._outbox))

    def _wait_for_pipe(self, wait: bool) -> None:
        if wait == self._waiting_for_pipe or self._loop is None:
            return
        if wait:
            self._loop.add_writer(self._fd, self._write)
        else:
            self._loop.remove_writer(self._fd)
        self._waiting_for_pipe = wait

    def _drop(self, count: int) -> None:
        self.dropped_requests += count
        logger.warning(
            "the prediction log is behind by %s bytes; %s requests dropped so far",
            len(self._outbox),
            self.dropped_requests,
        )


def write_loop(
    connection: Any,
    written: Any,
    store_path: str,
    busy_timeout_ms: int,
    flush_seconds: float,
) -> None:
    """Run in the writer process until the pipe closes or SIGTERM arrives."""
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    # Ctrl-C in a terminal reaches the whole process group; the worker closes
    # the pipe when it stops, after its last request.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, request_stop)
    os.nice(WRITER_NICE)
    fd = connection.fileno()
    store = Store(store_path, busy_timeout_ms=busy_timeout_ms)
    writer = _RowWriter(store, written)
    buffer = bytearray()
    deadline = time.monotonic() + flush_seconds
    open_pipe = True
    while open_pipe and not stopping:
        timeout = max(0.0, deadline - time.monotonic())
        try:
            readable, _, _ = select.select([fd], [], [], timeout)
        except InterruptedError:
            readable = []
        if readable:
            chunk = os.read(fd, _PIPE_BYTES)
            open_pipe = bool(chunk)
            buffer += chunk
            _take_messages(buffer, writer)
        if time.monotonic() >= deadline:
            writer.flush()
            deadline = time.monotonic() + flush_seconds
    writer.flush(final=True)
    store.close()


class _RowWriter:
    def __init__(self, store: Store, written: Any) -> None:
        self.store = store
        self.written = written
        self.pending: list[tuple] = []
        self.failed_attempts = 0

    def add(self, entry: LoggedRequest) -> None:
        try:
            self.pending.extend(rows_of(entry))
        except (ValueError, KeyError, IndexError, TypeError, StopIteration):
            # The worker validated both bodies, so this is a bug. Losing one
            # request beats stopping the writer, which would lose them all.
            logger.exception(
                "request %s of model %s could not be turned into prediction rows; "
                "it is not logged",
                entry.request_id,
                entry.model,
            )

    def flush(self, final: bool = False) -> None:
        if not self.pending:
            return
        try:
            with self.store.write() as db:
                prediction_rows.insert_predictions(db, self.pending)
        except StoreBusyError:
            self.failed_attempts += 1
            logger.warning(
                "the store was busy; %s prediction rows wait for the next write "
                "(attempt %s)",
                len(self.pending),
                self.failed_attempts,
            )
            if final:
                logger.error("%s prediction rows were not written", len(self.pending))
            return
        self.written.value += len(self.pending)
        self.pending = []
        self.failed_attempts = 0


def _take_messages(buffer: bytearray, writer: _RowWriter) -> None:
    """Decode every complete message at the start of ``buffer`` and remove it."""
    offset = 0
    while len(buffer) - offset >= _HEADER.size:
        (size,) = _HEADER.unpack_from(buffer, offset)
        end = offset + _HEADER.size + size
        if len(buffer) < end:
            break
        for entry in pickle.loads(buffer[offset + _HEADER.size : end]):
            writer.add(entry)
        offset = end
    del buffer[:offset]


def rows_of(entry: LoggedRequest) -> list[tuple]:
    """Turn one request into ``predictions`` rows (``store.predictions`` columns)."""
    count = entry.rows
    features = _feature_texts(entry.request_body, count)
    outputs = _output_texts(entry)
    nonfinite = set(entry.nonfinite_rows)
    return [
        (
            entry.model,
            entry.version,
            prediction_rows.row_key(entry.request_id, index, count),
            index,
            entry.ts,
            features[index],
            outputs[index],
            entry.latency_seconds,
            entry.status,
            int(index in nonfinite),
        )
        for index in range(count)
    ]


def _number_texts(body: bytes) -> Any:
    # Every JSON number stays the text it was sent as, e.g. "0.25" or "3".
    return json.loads(body, parse_float=str, parse_int=str)


def _feature_texts(body: bytes, count: int) -> list[str]:
    """Return each row's features as a JSON list, copied from the request body."""
    data = _number_texts(body)["inputs"][0]["data"]
    if data and type(data[0]) is list:
        return ["[" + ", ".join(row) + "]" for row in data]
    columns = len(data) // count
    return [
        "[" + ", ".join(data[index * columns : (index + 1) * columns]) + "]"
        for index in range(count)
    ]


def _output_texts(entry: LoggedRequest) -> list[str]:
    """Return each row's ``{"label", "probabilities"}`` as JSON text."""
    if entry.labels is None:
        return ["null"] * entry.rows
    if entry.response_body is not None:
        probabilities = _answered_probabilities(entry.response_body)
    else:
        probabilities = _computed_probabilities(entry.probabilities)
    label_texts = {label: json.dumps(label) for label in set(entry.labels)}
    return [
        f'{{"label": {label_texts[label]}, "probabilities": {text}}}'
        for label, text in zip(entry.labels, probabilities, strict=True)
    ]


def _answered_probabilities(response_body: bytes) -> list[str]:
    """Return each row's probabilities as JSON text, copied from the response."""
    output = next(
        output
        for output in _number_texts(response_body)["outputs"]
        if output["name"] == "probabilities"
    )
    count, width = (int(size) for size in output["shape"])
    # The response has null for a non-finite probability.
    texts = ["null" if text is None else text for text in output["data"]]
    return [
        "[" + ", ".join(texts[index * width : (index + 1) * width]) + "]"
        for index in range(count)
    ]


def _computed_probabilities(probabilities: Any) -> list[str]:
    # The same text as the response would have had.
    return [
        "["
        + ", ".join(
            FP32_FORMAT % value if math.isfinite(value) else "null" for value in row
        )
        + "]"
        for row in probabilities.tolist()
    ]


def _grow_pipe(fd: int) -> None:
    try:
        fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_BYTES)
    except OSError as error:
        logger.debug("the prediction log pipe keeps its default size: %s", error)

"""One JSON access-log line per request, off the request's path.

The line is serialised once (orjson) with the same prefix as every other log line (time, level,
logger name), collected in memory, and written every ``flush_seconds`` by one thread, so a
request never waits on the log's pipe or file and many lines cost one system call. A write of
at most ``PIPE_BUF`` bytes is atomic, so batches are cut at line boundaries to stay within it:
the lines of several workers sharing one stderr never interleave mid-line.

Whether lines are written at all follows the ``gateway.access`` logger's level (``server.
log_level``: ``info`` and below write them). When the output cannot keep up, at most
``max_pending_bytes`` wait; further lines are dropped and counted, and one line says how many
once the output drains: the log never holds a request up nor grows without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import orjson

LOGGER = "gateway.access"
FLUSH_SECONDS = 0.05
MAX_PENDING_BYTES = 8 << 20
MAX_BATCHES = 2  # batches handed to the thread and not yet written
CHUNK = select.PIPE_BUF


def chunks(lines: list[bytes], limit: int = CHUNK) -> list[bytes]:
    """Whole lines joined into pieces of at most ``limit`` bytes (a longer line on its own)."""
    pieces: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for line in lines:
        if current and size + len(line) > limit:
            pieces.append(b"".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line)
    if current:
        pieces.append(b"".join(current))
    return pieces


class _Prefix:
    """``2024-05-01 12:00:00,123 INFO gateway.access ``, as logging's basic format writes it;
    the seconds part is formatted once per second."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._second = -1
        self._text = ""

    def __call__(self) -> bytes:
        now = self._clock()
        second = int(now)
        if second != self._second:
            self._second = second
            self._text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return f"{self._text},{int((now - second) * 1000):03d} INFO {LOGGER} ".encode()


class AccessLog:
    def __init__(
        self,
        fd: int = 2,
        *,
        flush_seconds: float = FLUSH_SECONDS,
        max_pending_bytes: int = MAX_PENDING_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._fd = fd
        self._flush_seconds = flush_seconds
        self._max_pending = max_pending_bytes
        self._prefix = _Prefix(clock)
        self._logger = logging.getLogger(LOGGER)
        self._lines: list[bytes] = []
        self._pending = 0
        self._dropped = 0
        self._timer: asyncio.TimerHandle | None = None
        self._batches: list[Future[None]] = []
        self._thread: ThreadPoolExecutor | None = None

    @property
    def enabled(self) -> bool:
        return self._logger.isEnabledFor(logging.INFO)

    def write(self, request_id: str, seconds: float, facts: dict[str, Any]) -> None:
        """On the event loop: queue the request's line (facts hold no secret nor input)."""
        fields = {"request_id": request_id, "duration_ms": round(seconds * 1000, 3), **facts}
        line = self._prefix() + orjson.dumps(fields) + b"\n"
        if self._pending + len(line) > self._max_pending:
            self._dropped += 1
            return
        self._lines.append(line)
        self._pending += len(line)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._flush_seconds, self._flush)

    def _flush(self) -> None:
        self._timer = None
        self._batches = [batch for batch in self._batches if not batch.done()]
        if len(self._batches) >= MAX_BATCHES:  # the output is slow: gather more meanwhile
            self._timer = asyncio.get_running_loop().call_later(self._flush_seconds, self._flush)
            return
        self._batches.append(self._executor().submit(self._write_out, self._take()))

    def _take(self) -> list[bytes]:
        lines, self._lines, self._pending = self._lines, [], 0
        if self._dropped:
            note = {"dropped_lines": self._dropped, "reason": "log output too slow"}
            lines.append(self._prefix() + orjson.dumps(note) + b"\n")
            self._dropped = 0
        return lines

    def _executor(self) -> ThreadPoolExecutor:
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, "gateway-access-log")
        return self._thread

    def _write_out(self, lines: list[bytes]) -> None:
        for piece in chunks(lines):
            view = memoryview(piece)
            with contextlib.suppress(OSError):  # a closed stderr loses lines, never a request
                while view:
                    view = view[os.write(self._fd, view) :]

    async def flush(self) -> None:
        """Write everything queued so far and wait until it is written."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._lines or self._dropped:
            self._batches.append(self._executor().submit(self._write_out, self._take()))
        for batch in self._batches:
            await asyncio.wrap_future(batch)
        self._batches = []

    async def close(self) -> None:
        await self.flush()
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None

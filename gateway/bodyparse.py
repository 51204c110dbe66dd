"""Very large request bodies are parsed in a separate process.

Parsing holds the interpreter lock for as long as it runs, even on a thread: a 20 MB array of
token ids takes over half a second, in which no other tenant's request moves. A pool process
parses instead and hands back only what validation reads: the known fields, with token lists as
compact integer arrays (one buffer each, cheap to pass back), so the serving process never
holds millions of integer objects either. Validation itself stays in `protocol`, unchanged.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import orjson

from gateway.tokens import MAX_TOKEN_ID

OUT_OF_PROCESS_BYTES = 1024 * 1024
FIELDS = ("model", "input", "encoding_format", "dimensions", "user")
# Stands for a token list that can only fail validation (bools, non-integers, nesting): the
# serving process rejects it with the same message without receiving the list itself.
INVALID_ITEM: list[Any] = [None]


def lighten(body: bytes | bytearray) -> dict[str, Any] | list[Any] | None:
    """In the pool process: the body's known fields, token lists as arrays; None if the body is
    not JSON, an empty list if it is JSON but not an object (validation refuses both)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return []
    light = {name: data[name] for name in FIELDS if name in data}
    if isinstance(light.get("input"), list):
        light["input"] = _compact_input(light["input"])
    return light


def _compact_input(raw: list[Any]) -> list[Any] | np.ndarray:
    if raw and type(raw[0]) is int:
        return _ids(raw)
    return [_ids(item) if isinstance(item, list) and item else item for item in raw]


def _ids(item: list[Any]) -> np.ndarray | list[Any]:
    if bool in set(map(type, item)):
        return INVALID_ITEM
    try:
        ids = np.asarray(item)
    except (ValueError, OverflowError):
        return INVALID_ITEM
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        return INVALID_ITEM
    if int(ids.min()) < 0 or int(ids.max()) > MAX_TOKEN_ID:
        return ids  # out of range: the serving process names the value in its message
    return ids.astype("<u4")


def _yield_the_cpu() -> None:
    """In each pool process: parsing is the least urgent work on the machine, so the serving
    processes (and the other tenants' requests they carry) are scheduled first."""
    os.nice(10)


def _started() -> None:
    """A no-op: the first job, which starts the pool's processes."""


class ParsePool:
    """At most `processes` parsing processes, started on first use, never by a small body."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None
        self._starting: asyncio.Lock | None = None

    @property
    def enabled(self) -> bool:
        return self.processes > 0

    async def parse(self, body: bytes | bytearray) -> dict[str, Any] | list[Any] | None:
        pool = self._pool or await self._start()
        return await asyncio.get_running_loop().run_in_executor(pool, lighten, body)

    async def _start(self) -> ProcessPoolExecutor:
        """Starting the processes waits for a new interpreter's imports (half a second): on
        a thread, never on the event loop, and once however many bodies wait for it."""
        self._starting = self._starting or asyncio.Lock()
        async with self._starting:
            if self._pool is None:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload([__name__])
                pool = ProcessPoolExecutor(
                    self.processes, mp_context=context, initializer=_yield_the_cpu
                )
                await asyncio.to_thread(lambda: pool.submit(_started).result())
                self._pool = pool
            return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

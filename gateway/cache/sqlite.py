"""The durable embedded cache: SQLite in WAL mode on one file under the data directory, shared
by every worker of one machine and kept across restarts, with a small in-process tier in front.

Reads of the file run on one reader thread and writes on one writer thread per process, so a
read never waits behind a write and the event loop never waits on the disk. What the hot tier
holds is served without leaving the loop: the only disk touch of such a hit is one small query
for the model's generation and the store's epoch (a few microseconds, answered from SQLite's
page cache), which is what makes a purge or a delete on another worker visible at once.

Least-recently-used eviction is cheap: reads only collect the keys they served, and the writer
thread stamps their access time in one batch a second; after each batch of writes it evicts
down to 90% of ``max_bytes`` when the store has grown past it.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from gateway.cache import Contents
from gateway.cache import sqlite_db as db
from gateway.cache.memory import MemoryCache
from gateway.embedded import BUSY_TIMEOUT_SECONDS
from gateway.store import StoreUnavailable

T = TypeVar("T")
log = logging.getLogger("gateway.cache")

TOUCH_INTERVAL = 1.0  # seconds between batched access-time updates
_FAILURES = (sqlite3.Error, OSError, TimeoutError)


class SqliteCache:
    name = "sqlite"

    def __init__(
        self,
        directory: str | Path,
        *,
        max_bytes: int,
        ttl_seconds: int,
        hot_entries: int,
        timeout: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(directory) / db.FILE_NAME
        self._max_bytes = max_bytes
        self._ttl = ttl_seconds
        self._timeout = timeout
        self._clock = clock
        self._hot = MemoryCache(hot_entries, ttl_seconds, clock)
        self._reader = ThreadPoolExecutor(1, "gateway-cache-read")
        self._writer = ThreadPoolExecutor(1, "gateway-cache-write")
        self._connections = threading.local()
        self._loop_connection: sqlite3.Connection | None = None
        self._epoch: int | None = None
        self._touched: set[bytes] = set()
        self._touched_at = clock()
        self._closed = False

    # -- the request path ------------------------------------------------------------------

    async def read(self, tag: str, keys: Sequence[bytes]) -> tuple[int | None, list[bytes | None]]:
        try:
            generation, epoch = db.generation_and_epoch(await self._on_loop(), tag)
        except _FAILURES as exc:
            raise StoreUnavailable(f"sqlite cache read: {type(exc).__name__}") from exc
        if epoch != self._epoch:
            self._hot.clear()
            self._epoch = epoch
        return generation, await self.get_many(keys)

    async def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        values = await self._hot.get_many(keys)
        missing = [key for key, value in zip(keys, values, strict=True) if value is None]
        self._touch([key for key, value in zip(keys, values, strict=True) if value is not None])
        if not missing:
            return values
        found = await self._checked(self._reader, db.read, missing, self._clock())
        self._remember(found)
        self._touch(list(found))
        return [
            found[key][0] if value is None and key in found else value
            for key, value in zip(keys, values, strict=True)
        ]

    async def set_many(
        self, items: Sequence[tuple[bytes, bytes]], ttl_seconds: int | None = None
    ) -> None:
        if not items:
            return
        now = self._clock()
        expires = now + (ttl_seconds or self._ttl)
        await self._checked(
            self._writer, self._write, items, now, expires, timeout=BUSY_TIMEOUT_SECONDS * 2
        )
        self._hot.put(items, expires, now)

    def _write(
        self, connection: sqlite3.Connection, items: Any, now: float, expires: float
    ) -> None:
        db.write(connection, items, now, expires)
        db.evict(connection, self._max_bytes, now)

    def _remember(self, found: dict[bytes, tuple[bytes, float]]) -> None:
        now = self._clock()
        for key, (value, expires) in found.items():
            self._hot.put([(key, value)], expires, now)

    def _touch(self, keys: list[bytes]) -> None:
        """Collect what was read; hand it to the writer thread at most once a second."""
        self._touched.update(keys)
        now = self._clock()
        if self._touched and now - self._touched_at >= TOUCH_INTERVAL:
            touched, self._touched, self._touched_at = list(self._touched), set(), now
            self._writer.submit(self._in_thread, self._quietly(db.touch), touched, now)

    def _quietly(self, work: Callable[..., object]) -> Callable[..., None]:
        def run(*args: Any) -> None:
            try:
                work(*args)
            except _FAILURES as exc:  # background upkeep: the next pass tries again
                log.warning("sqlite cache upkeep failed: %s", type(exc).__name__)

        return run

    # -- administration ----------------------------------------------------------------------

    async def delete_many(self, keys: Sequence[bytes]) -> int:
        deleted = await self._admin(self._writer, db.delete, keys)
        await self._hot.delete_many(keys)
        return deleted

    async def purge(self, tag: str) -> int:
        generation = await self._admin(self._writer, db.purge, tag)
        drop = self._quietly(db.drop_old_generations)
        self._writer.submit(self._in_thread, drop, tag, generation)
        return generation

    async def contents(self) -> Contents:
        models = await self._admin(self._reader, db.contents, self._clock())
        return Contents(models, estimated=False)

    async def stored_bytes(self) -> int:
        return await self._admin(self._reader, db.stored_bytes)

    async def _admin(self, executor: ThreadPoolExecutor, work: Callable[..., T], *args: Any) -> T:
        return await self._checked(executor, work, *args, timeout=BUSY_TIMEOUT_SECONDS * 2)

    async def _checked(
        self,
        executor: ThreadPoolExecutor,
        work: Callable[..., T],
        *args: Any,
        timeout: float | None = None,
    ) -> T:
        """``work`` on a thread; any failure of the file raises `StoreUnavailable`."""
        try:
            return await self._call(executor, work, *args, timeout=timeout)
        except _FAILURES as exc:
            raise StoreUnavailable(f"sqlite cache: {type(exc).__name__}") from exc

    # -- threads and connections ------------------------------------------------------------

    async def _call(
        self,
        executor: ThreadPoolExecutor,
        work: Callable[..., T],
        *args: Any,
        timeout: float | None = None,
    ) -> T:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(executor, self._in_thread, work, *args)
        async with asyncio.timeout(timeout or self._timeout):
            return await future

    def _in_thread(self, work: Callable[..., T], *args: Any) -> T:
        connection: sqlite3.Connection | None = getattr(self._connections, "value", None)
        if connection is None:
            connection = self._connections.value = db.connect(self.path)
        return work(connection, *args)

    async def _on_loop(self) -> sqlite3.Connection:
        """A connection for the one small query a hot hit makes; the reader thread sets the
        file up first, so opening it here never waits on another worker."""
        if self._loop_connection is None:
            await self._call(self._reader, lambda connection: None)
            self._loop_connection = db.connect(self.path, schema=False, timeout=0.05)
        return self._loop_connection

    async def ping(self) -> bool:
        try:
            await self._call(self._reader, lambda c: c.execute("SELECT 1").fetchone())
        except _FAILURES:
            return False
        return True

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for executor in (self._writer, self._reader):
            await asyncio.get_running_loop().run_in_executor(executor, self._close_thread)
            executor.shutdown(wait=False)
        if self._loop_connection is not None:
            self._loop_connection.close()
            self._loop_connection = None
        self._hot.clear()

    def _close_thread(self) -> None:
        connection = getattr(self._connections, "value", None)
        if connection is not None:
            connection.close()
            self._connections.value = None

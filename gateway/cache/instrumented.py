"""A Cache decorator that times every operation (failures are counted by the guard)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from gateway.cache import Cache, Contents
from gateway.metrics import Metrics


class InstrumentedCache:
    def __init__(self, inner: Cache, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics
        self.name = inner.name

    async def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        started = time.perf_counter()
        values = await self._inner.get_many(keys)
        self._metrics.cache_duration("read", time.perf_counter() - started)
        return values

    async def read(self, tag: str, keys: Sequence[bytes]) -> tuple[int | None, list[bytes | None]]:
        started = time.perf_counter()
        answer = await self._inner.read(tag, keys)
        self._metrics.cache_duration("read", time.perf_counter() - started)
        return answer

    async def set_many(
        self, items: Sequence[tuple[bytes, bytes]], ttl_seconds: int | None = None
    ) -> None:
        started = time.perf_counter()
        await self._inner.set_many(items, ttl_seconds)
        self._metrics.cache_duration("write", time.perf_counter() - started)

    async def delete_many(self, keys: Sequence[bytes]) -> int:
        return await self._inner.delete_many(keys)

    async def purge(self, tag: str) -> int:
        return await self._inner.purge(tag)

    async def contents(self) -> Contents:
        return await self._inner.contents()

    async def ping(self) -> bool:
        return await self._inner.ping()

    async def close(self) -> None:
        await self._inner.close()

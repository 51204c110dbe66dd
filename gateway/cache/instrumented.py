"""A Cache decorator that times every operation (failures are counted by the guard)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from gateway.cache import Cache
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

    async def set_many(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        started = time.perf_counter()
        await self._inner.set_many(items)
        self._metrics.cache_duration("write", time.perf_counter() - started)

    async def ping(self) -> bool:
        return await self._inner.ping()

    async def close(self) -> None:
        await self._inner.close()

"""A Cache decorator that times every operation and counts failures as metrics."""

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

    @property
    def errors(self) -> int:
        return self._inner.errors

    async def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        errors, started = self._inner.errors, time.perf_counter()
        values = await self._inner.get_many(keys)
        self._observe("read", started, errors)
        return values

    async def set_many(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        errors, started = self._inner.errors, time.perf_counter()
        await self._inner.set_many(items)
        self._observe("write", started, errors)

    def _observe(self, op: str, started: float, errors_before: int) -> None:
        self._metrics.cache_duration(op, time.perf_counter() - started)
        if self._inner.errors > errors_before:
            self._metrics.cache_error(op)

    async def ping(self) -> bool:
        return await self._inner.ping()

    async def close(self) -> None:
        await self._inner.close()

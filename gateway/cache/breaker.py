"""A circuit breaker in front of another cache, so a dead Redis costs nothing per request.

While the breaker is open, ``get_many`` answers all misses and ``set_many`` is skipped, both
without touching the inner cache. After the cooldown one call goes through as the probe; it
closes the breaker when the inner cache works again.

The inner cache never raises (a read error is a miss, a write error is counted), so a failed
call shows up as its ``errors`` count going up across the call. Under concurrency a success
overlapping another call's failure may be counted as a failure: the breaker errs towards open.

Reads and writes may have breakers of their own (shared with the other parts on the same Redis,
see gateway/store.py): a Redis that refuses writes (out of memory) then stops cache writes while
reads still go through.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from gateway.breaker import CircuitBreaker, State
from gateway.cache import Cache


class BreakerCache:
    def __init__(
        self,
        inner: Cache,
        *,
        failure_threshold: int = 3,
        cooldown: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        reads: CircuitBreaker | None = None,
        writes: CircuitBreaker | None = None,
    ) -> None:
        self._inner = inner
        self._breaker = reads or CircuitBreaker(failure_threshold, cooldown, clock)
        self._write_breaker = writes or self._breaker
        self.name = inner.name
        self.skipped = 0  # calls answered without asking the inner cache

    @property
    def errors(self) -> int:
        return self._inner.errors

    @property
    def state(self) -> State:
        return self._breaker.state

    async def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        if not keys:
            return []
        if not self._breaker.allow():
            self.skipped += 1
            return [None] * len(keys)
        before = self._inner.errors
        values = await self._inner.get_many(keys)
        self._record(before)
        return values

    async def set_many(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        if not items:
            return
        if not self._write_breaker.allow():
            self.skipped += 1
            return
        before = self._inner.errors
        await self._inner.set_many(items)
        self._record(before, self._write_breaker)

    async def ping(self) -> bool:
        return await self._inner.ping()

    async def close(self) -> None:
        await self._inner.close()

    def _record(self, errors_before: int, breaker: CircuitBreaker | None = None) -> None:
        breaker = breaker or self._breaker
        if self._inner.errors > errors_before:
            breaker.record_failure()
        else:
            breaker.record_success()

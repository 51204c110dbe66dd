"""Every store behind the one guard (gateway/store.py), each with its documented degraded
behaviour. Adapters only translate their backend's errors into `StoreUnavailable`; timeouts,
breakers, fallbacks and error logs live here and in the guard, nowhere else.

    store      while its backend is unavailable
    cache      reads are misses; writes are skipped (and counted); administration raises (503)
    limiter    per-instance buckets (fail open)
    usage      writes are kept in the buffer for the next try; reads raise
    keys       each process keeps the keys it read last; admin calls raise (503)
    budgets    requests are served unchecked and without budget headers; alerts wait
    history    writes are kept in the buffer for the next try; reports raise (503)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from gateway.apikeys import ApiKey, KeyStore
from gateway.budgets import Account, Ledger, Reservation
from gateway.budgets.book import BookStore
from gateway.cache import Cache, Contents
from gateway.history import HistoryStore
from gateway.history import Table as HistoryTable
from gateway.ratelimit import Limiter
from gateway.ratelimit.bucket import BucketRequest, Decision
from gateway.store import SELF_BOUNDED, StoreGuard, StoreUnavailable
from gateway.usage import Table, UsageStore

T = TypeVar("T")
WRITE_TIMEOUTS = 4  # a write may take this many read timeouts (a pipeline of many commands)


def _ignore(op: str) -> None:
    pass


class GuardedCache:
    def __init__(
        self,
        inner: Cache,
        reads: StoreGuard,
        writes: StoreGuard,
        on_error: Callable[[str], None] = _ignore,
    ) -> None:
        self._inner = inner
        self._reads = reads
        self._writes = writes
        self._on_error = on_error  # (op): the cache-errors metric
        self.name = inner.name

    async def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        if not keys:
            return []
        try:
            # The socket timeout (or the fast reader's) bounds a read: no timer on the hot path.
            return await self._reads.call(lambda: self._inner.get_many(keys), timeout=SELF_BOUNDED)
        except StoreUnavailable:
            self._on_error("read")
            return [None] * len(keys)

    async def read(self, tag: str, keys: Sequence[bytes]) -> tuple[int | None, list[bytes | None]]:
        try:
            # Bounded like get_many: one timer fewer on every request.
            return await self._reads.call(lambda: self._inner.read(tag, keys), timeout=SELF_BOUNDED)
        except StoreUnavailable:
            self._on_error("read")
            return None, [None] * len(keys)

    async def set_many(
        self, items: Sequence[tuple[bytes, bytes]], ttl_seconds: int | None = None
    ) -> None:
        if not items:
            return
        try:
            timeout = self._writes.timeout * WRITE_TIMEOUTS
            await self._writes.call(
                lambda: self._inner.set_many(items, ttl_seconds), timeout=timeout
            )
        except StoreUnavailable:
            self._on_error("write")

    async def delete_many(self, keys: Sequence[bytes]) -> int:
        return await self._admin(lambda: self._inner.delete_many(keys))

    async def purge(self, tag: str) -> int:
        return await self._admin(lambda: self._inner.purge(tag))

    async def contents(self) -> Contents:
        return await self._admin(self._inner.contents)

    async def _admin(self, operation: Callable[[], Awaitable[T]]) -> T:
        """An operator's call: the store's answer, or StoreUnavailable (a 503), never a guess."""
        timeout = self._writes.timeout * WRITE_TIMEOUTS * 2
        return await self._writes.call(operation, timeout=timeout)

    async def ping(self) -> bool:
        return await self._inner.ping()

    async def close(self) -> None:
        await self._inner.close()


class GuardedLimiter:
    def __init__(self, inner: Limiter, guard: StoreGuard, fallback: Limiter) -> None:
        self._inner = inner
        self._guard = guard
        self._fallback = fallback
        self.fallbacks = 0

    @property
    def name(self) -> str:
        return self._inner.name

    async def acquire(self, requests: Sequence[BucketRequest]) -> list[Decision]:
        if not requests:
            return []
        return await self._guard.call_or(
            lambda: self._inner.acquire(requests), lambda: self._fall_back(requests)
        )

    async def _fall_back(self, requests: Sequence[BucketRequest]) -> list[Decision]:
        self.fallbacks += 1
        return await self._fallback.acquire(requests)

    async def close(self) -> None:
        await self._inner.close()
        await self._fallback.close()


class GuardedUsage:
    def __init__(self, inner: UsageStore, reads: StoreGuard, writes: StoreGuard) -> None:
        self._inner = inner
        self._reads = reads
        self._writes = writes
        self.name = inner.name

    async def add(self, delta: Table) -> None:
        timeout = self._writes.timeout * WRITE_TIMEOUTS
        await self._writes.call(lambda: self._inner.add(delta), timeout=timeout)

    async def table(self) -> Table:
        timeout = self._reads.timeout * WRITE_TIMEOUTS * 2  # a scan over every usage hash
        return await self._reads.call(self._inner.table, timeout=timeout)

    async def close(self) -> None:
        await self._inner.close()


class GuardedKeys:
    def __init__(self, inner: KeyStore, guard: StoreGuard) -> None:
        self._inner = inner
        self._guard = guard
        self.name = inner.name
        self._timeout = guard.timeout * WRITE_TIMEOUTS

    async def version(self) -> int:
        return await self._guard.call(self._inner.version, timeout=self._timeout)

    async def load(self) -> list[ApiKey]:
        return await self._guard.call(self._inner.load, timeout=self._timeout)

    async def put(self, key: ApiKey) -> None:
        await self._guard.call(lambda: self._inner.put(key), timeout=self._timeout)

    async def delete(self, key_id: str) -> bool:
        return await self._guard.call(lambda: self._inner.delete(key_id), timeout=self._timeout)

    async def touch(self, used: dict[str, int]) -> None:
        await self._guard.call(lambda: self._inner.touch(used), timeout=self._timeout)

    async def last_used(self) -> dict[str, int]:
        return await self._guard.call(self._inner.last_used, timeout=self._timeout)

    async def close(self) -> None:
        await self._inner.close()


class GuardedLedger:
    """Reservations are on the request path (the reads guard); alert claims are background
    writes."""

    def __init__(self, inner: Ledger, reads: StoreGuard, writes: StoreGuard) -> None:
        self._inner = inner
        self._reads = reads
        self._writes = writes
        self.name = inner.name

    async def reserve(self, accounts: Sequence[Account], cost: int) -> Reservation:
        return await self._reads.call(lambda: self._inner.reserve(accounts, cost))

    async def adjust(self, accounts: Sequence[Account], delta: int) -> tuple[int, ...]:
        return await self._reads.call(lambda: self._inner.adjust(accounts, delta))

    async def claim(self, marker: str, expires_at: int) -> bool:
        return await self._writes.call(lambda: self._inner.claim(marker, expires_at))

    async def close(self) -> None:
        await self._inner.close()


class GuardedBook:
    def __init__(self, inner: BookStore, reads: StoreGuard, writes: StoreGuard) -> None:
        self._inner = inner
        self._reads = reads
        self._writes = writes
        self.name = inner.name

    async def put(self, name: str, body: bytes | None) -> None:
        await self._writes.call(lambda: self._inner.put(name, body))

    async def entries(self) -> dict[str, bytes]:
        return await self._reads.call(self._inner.entries)

    async def close(self) -> None:
        await self._inner.close()


class GuardedHistory:
    def __init__(self, inner: HistoryStore, reads: StoreGuard, writes: StoreGuard) -> None:
        self._inner = inner
        self._reads = reads
        self._writes = writes
        self.name = inner.name

    async def add(self, delta: HistoryTable) -> None:
        timeout = self._writes.timeout * WRITE_TIMEOUTS
        await self._writes.call(lambda: self._inner.add(delta), timeout=timeout)

    async def read(self, first_hour: int, end_hour: int) -> HistoryTable:
        timeout = self._reads.timeout * WRITE_TIMEOUTS * 2  # a pipeline over many hours
        return await self._reads.call(
            lambda: self._inner.read(first_hour, end_hour), timeout=timeout
        )

    async def prune(self, before_hour: int) -> None:
        timeout = self._writes.timeout * WRITE_TIMEOUTS
        await self._writes.call(lambda: self._inner.prune(before_hour), timeout=timeout)

    async def close(self) -> None:
        await self._inner.close()

"""Redis cache: one MGET per batch read, one non-transactional pipeline per batch write. Any
failure raises `StoreUnavailable`; the guard around it owns timeouts and the breaker."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from gateway.cache.fastread import FastReader
from gateway.store import StoreUnavailable

_FAILURES = (RedisError, OSError, asyncio.TimeoutError)

# One Redis, or a Redis Cluster (multi-key reads and pipelines are then grouped by hash slot).
RedisClient = aioredis.Redis | RedisCluster


class RedisCache:
    name = "redis"

    def __init__(
        self,
        client: RedisClient,
        ttl_seconds: int,
        timeout: float,
        reader: FastReader | None = None,
    ) -> None:
        self._client = client
        self._reader = reader
        if reader is not None:
            self._mget: Callable[[Sequence[bytes]], Awaitable[list[Any]]] = reader.mget
        elif isinstance(client, RedisCluster):
            self._mget = client.mget_nonatomic
        else:
            self._mget = client.mget
        self._ttl = ttl_seconds
        self._timeout = timeout  # for ping; FastReader bounds its own reads

    async def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        try:
            values: list[bytes | None] = await self._mget(keys)
            return values
        except _FAILURES as exc:
            raise StoreUnavailable(f"redis read: {type(exc).__name__}") from exc

    async def set_many(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for key, value in items:
            pipe.set(key, value, ex=self._ttl)
        try:
            await pipe.execute()
        except _FAILURES as exc:
            raise StoreUnavailable(f"redis write: {type(exc).__name__}") from exc

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout):
                return bool(await self._client.ping())
        except _FAILURES:
            return False

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        await self._client.aclose()

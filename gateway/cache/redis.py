"""Redis cache: one MGET per batch read, one non-transactional pipeline per batch write."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

log = logging.getLogger("gateway.cache")

_FAILURES = (RedisError, OSError, asyncio.TimeoutError)

# One Redis, or a Redis Cluster (multi-key reads and pipelines are then grouped by hash slot).
RedisClient = aioredis.Redis | RedisCluster


class RedisCache:
    name = "redis"

    def __init__(self, client: RedisClient, ttl_seconds: int, timeout: float) -> None:
        self._client = client
        self._mget = client.mget_nonatomic if isinstance(client, RedisCluster) else client.mget
        self._ttl = ttl_seconds
        self._timeout = timeout
        self.errors = 0

    async def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        try:  # the client's socket timeout (cache.timeout) bounds this call
            values = await self._mget(keys)
            return values  # type: ignore[return-value]
        except _FAILURES as exc:
            self._failed("read", exc)
            return [None] * len(keys)

    async def set_many(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        if not items:
            return
        try:
            async with asyncio.timeout(self._timeout * 4):
                pipe = self._client.pipeline(transaction=False)
                for key, value in items:
                    pipe.set(key, value, ex=self._ttl)
                await pipe.execute()
        except _FAILURES as exc:
            self._failed("write", exc)

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout):
                return bool(await self._client.ping())
        except _FAILURES:
            return False

    async def close(self) -> None:
        await self._client.aclose()

    def _failed(self, op: str, exc: BaseException) -> None:
        self.errors += 1
        log.warning("cache %s failed: %s", op, type(exc).__name__)

"""Redis cache: one MGET per batch read (the model's generation key rides along), one
non-transactional pipeline per batch write. Any failure raises `StoreUnavailable`; the guard
around it owns timeouts and the breaker. A model's generation is a plain counter without a TTL
(`{prefix}:g:{tag}`), so `volatile-*` eviction policies never drop it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from gateway.cache import Contents
from gateway.cache.redis_contents import sample_contents
from gateway.redispipe import RedisPipe
from gateway.store import StoreUnavailable

T = TypeVar("T")
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
        reader: RedisPipe | None = None,
        prefix: str = "gw",
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
        self._timeout = timeout  # for ping; RedisPipe bounds its own reads
        self._prefix = prefix

    async def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        return await self._call("read", lambda: self._mget(keys))

    async def read(self, tag: str, keys: Sequence[bytes]) -> tuple[int | None, list[bytes | None]]:
        values = await self._call("read", lambda: self._mget([self._generation_key(tag), *keys]))
        return _generation(values[0]), values[1:]

    def _generation_key(self, tag: str) -> bytes:
        return f"{self._prefix}:g:{tag}".encode()

    async def set_many(
        self, items: Sequence[tuple[bytes, bytes]], ttl_seconds: int | None = None
    ) -> None:
        pipe = self._client.pipeline(transaction=False)
        for key, value in items:
            pipe.set(key, value, ex=ttl_seconds or self._ttl)
        await self._call("write", pipe.execute)

    async def delete_many(self, keys: Sequence[bytes]) -> int:
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.delete(key)
        return sum(await self._call("delete", pipe.execute))

    async def purge(self, tag: str) -> int:
        return int(await self._call("purge", lambda: self._client.incr(self._generation_key(tag))))

    async def contents(self) -> Contents:
        return await self._call("contents", lambda: sample_contents(self._client, self._prefix))

    async def _call(self, op: str, work: Callable[[], Awaitable[T]]) -> T:
        try:
            return await work()
        except _FAILURES as exc:
            raise StoreUnavailable(f"redis {op}: {type(exc).__name__}") from exc

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


def _generation(raw: bytes | None) -> int:
    """A generation read back from Redis; anything but a counter counts as the first."""
    return int(raw) if raw is not None and raw.isdigit() else 0

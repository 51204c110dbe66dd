"""Redis cache: one MGET per batch read, one non-transactional pipeline per batch write."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from gateway.cache.fastread import FastReader
from gateway.store import ErrorLog

log = logging.getLogger("gateway.cache")

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
        self._timeout = timeout
        self.errors = 0
        self._logs = {op: ErrorLog(f"cache {op}", logger=log) for op in ("read", "write")}

    async def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        try:  # a timeout of cache.timeout bounds this call (the reader's or the socket's)
            values: list[bytes | None] = await self._mget(keys)
            return values
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
        if self._reader is not None:
            self._reader.close()
        await self._client.aclose()

    def _failed(self, op: str, exc: BaseException) -> None:
        self.errors += 1
        self._logs[op].failed(exc)

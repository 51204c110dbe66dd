"""Runtime keys in Redis, seen by every instance: one hash of id -> stored key, a version
counter bumped with every change (each instance polls it), and a hash of last uses. The three
share one hash tag, so they live in one slot on a Redis Cluster."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

from redis.exceptions import RedisError

from gateway import apikeys
from gateway.apikeys import ApiKey
from gateway.cache.redis import RedisClient
from gateway.store import StoreUnavailable

T = TypeVar("T")


class RedisKeys:
    name = "redis"

    def __init__(self, client: RedisClient, prefix: str) -> None:
        self._client = client
        self._all = f"{prefix}:{{keys}}:all"
        self._version = f"{prefix}:{{keys}}:version"
        self._used = f"{prefix}:{{keys}}:used"

    async def _call(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc

    async def version(self) -> int:
        value = await self._call(self._client.get(self._version))
        return int(value or 0)

    async def load(self) -> list[ApiKey]:
        stored: dict[Any, Any] = await self._call(self._client.hgetall(self._all))
        return [key for body in stored.values() if (key := apikeys.load(body)) is not None]

    async def put(self, key: ApiKey) -> None:
        pipe = self._client.pipeline(transaction=False)
        pipe.hset(self._all, key.id, apikeys.dump(key))
        pipe.incr(self._version)
        await self._call(pipe.execute())

    async def delete(self, key_id: str) -> bool:
        pipe = self._client.pipeline(transaction=False)
        pipe.hdel(self._all, key_id)
        pipe.incr(self._version)
        deleted, _ = await self._call(pipe.execute())
        return bool(deleted)

    async def touch(self, used: dict[str, int]) -> None:
        if used:
            await self._call(self._client.hset(self._used, mapping=used))  # type: ignore[arg-type]

    async def last_used(self) -> dict[str, int]:
        stored: dict[Any, Any] = await self._call(self._client.hgetall(self._used))
        return {_text(key_id): int(at) for key_id, at in stored.items()}

    async def close(self) -> None:
        return None  # the client belongs to whoever created it


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

"""Usage counters in Redis, shared by every instance: one hash per (key, team) with fields
`<model>\\x1f<counter>`, incremented in one pipeline. Counters never carry a TTL, so a
`volatile-*` eviction policy never takes them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.exceptions import RedisError

from gateway.cache.redis import RedisClient
from gateway.store import StoreUnavailable
from gateway.usage import FIELDS, Counts, Row, Table, merge_into

SEPARATOR = "\x1f"


class RedisUsage:
    name = "redis"

    def __init__(self, client: RedisClient, prefix: str) -> None:
        self._client = client
        self._prefix = f"{prefix}:usage:"

    def _hash(self, row: Row) -> str:
        return f"{self._prefix}{row.key}{SEPARATOR}{row.team}"

    async def add(self, delta: Table) -> None:
        pipe = self._client.pipeline(transaction=False)
        for row, counts in delta.items():
            for field, value in zip(FIELDS, counts.values(), strict=True):
                if value:
                    pipe.hincrby(self._hash(row), f"{row.model}{SEPARATOR}{field}", value)
        try:
            await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc

    async def table(self) -> Table:
        try:
            names = [n async for n in self._client.scan_iter(match=f"{self._prefix}*")]
            pipe = self._client.pipeline(transaction=False)
            for name in names:
                pipe.hgetall(name)
            hashes: list[dict[bytes, bytes]] = await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc
        return _table_from_hashes(names, hashes, len(self._prefix))

    async def close(self) -> None:
        return None  # the client belongs to whoever created it


def _table_from_hashes(
    names: Sequence[Any], hashes: Sequence[dict[bytes, bytes]], skip: int
) -> Table:
    table: Table = {}
    for name, fields in zip(names, hashes, strict=True):
        key, _, team = _text(name)[skip:].partition(SEPARATOR)
        for field, value in fields.items():
            model, _, counter = _text(field).partition(SEPARATOR)
            if counter in FIELDS:
                one = Counts(**{counter: int(value)})
                merge_into(table, Row(key, team, model), one)
    return table


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

"""Spend history in Redis: one hash per hour (fields `key \\x1f team \\x1f model \\x1f counter`),
incremented by HINCRBY in one pipeline per write; each hash expires with the retention, so
Redis prunes by itself. A range is read with one pipeline of HGETALLs."""

from __future__ import annotations

from collections.abc import Sequence

from redis.exceptions import RedisError

from gateway.cache.redis import RedisClient
from gateway.history import FIELDS, Counts, Slot, Table, merge_into
from gateway.store import StoreUnavailable

SEPARATOR = "\x1f"


class RedisHistory:
    name = "redis"

    def __init__(self, client: RedisClient, *, prefix: str = "gw", retention_hours: int) -> None:
        self._client = client
        self._prefix = f"{prefix}:history:"
        self._ttl = retention_hours * 3600

    async def add(self, delta: Table) -> None:
        pipe = self._client.pipeline(transaction=False)
        for slot, counts in delta.items():
            name = f"{self._prefix}{slot.hour}"
            for field, value in zip(FIELDS, counts.values(), strict=True):
                if value:
                    pipe.hincrby(name, _field(slot, field), value)
            pipe.expire(name, self._ttl + 3600)
        await self._execute(pipe)

    async def read(self, first_hour: int, end_hour: int) -> Table:
        hours = range(first_hour, end_hour)
        pipe = self._client.pipeline(transaction=False)
        for hour in hours:
            pipe.hgetall(f"{self._prefix}{hour}")
        hashes = await self._execute(pipe)
        table: Table = {}
        for hour, fields in zip(hours, hashes, strict=True):
            _collect(table, hour, fields)
        return table

    async def prune(self, before_hour: int) -> None:
        """Nothing to do: every hour's hash expires by itself."""

    async def close(self) -> None:
        """Closes nothing it was given: the client belongs to whoever created it."""

    async def _execute(self, pipe: object) -> list[dict[bytes, bytes]]:
        try:
            result: list[dict[bytes, bytes]] = await pipe.execute()  # type: ignore[attr-defined]
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"history: {type(exc).__name__}") from exc
        return result


def _field(slot: Slot, counter: str) -> str:
    return SEPARATOR.join((slot.key, slot.team, slot.model, counter))


def _collect(table: Table, hour: int, fields: dict[bytes, bytes]) -> None:
    for raw, value in fields.items():
        parts: Sequence[str] = _text(raw).split(SEPARATOR)
        if len(parts) != 4 or parts[3] not in FIELDS:
            continue  # not ours: ignored, never trusted
        key, team, model, counter = parts
        try:
            count = int(value)
        except ValueError:
            continue
        merge_into(table, Slot(hour, key, team, model), Counts(**{counter: count}))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

"""Usage per key, team and model: integer counters in Redis (shared by every instance, kept
across restarts) or in memory. Costs are computed from the counters at read time, so totals stay
exact: cost = billed tokens x price, savings = (tokens - billed tokens) x price."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from redis.exceptions import RedisError

from gateway.cache.redis import RedisClient
from gateway.catalog import Catalog

log = logging.getLogger("gateway.usage")

FIELDS = ("requests", "inputs", "cached_inputs", "tokens", "billed_tokens")


@dataclass(frozen=True, slots=True)
class UsageRecord:
    key: str
    team: str
    model: str
    counts: Mapping[str, int]  # one value per name in FIELDS


Counts = dict[str, int]
Table = dict[tuple[str, str, str], Counts]  # (key, team, model) -> counts


class UsageStore(Protocol):
    async def record(self, record: UsageRecord) -> None: ...

    async def table(self) -> Table: ...


class MemoryUsage:
    def __init__(self) -> None:
        self._table: Table = defaultdict(lambda: dict.fromkeys(FIELDS, 0))

    async def record(self, record: UsageRecord) -> None:
        counts = self._table[(record.key, record.team, record.model)]
        for name, value in record.counts.items():
            counts[name] += value

    async def table(self) -> Table:
        return {k: dict(v) for k, v in self._table.items()}


class RedisUsage:
    """One hash per (key, team): fields `<model>\\x1f<counter>`, incremented in one pipeline."""

    def __init__(self, client: RedisClient, prefix: str, timeout: float) -> None:
        self._client = client
        self._prefix = f"{prefix}:usage:"
        self._timeout = timeout

    def _hash(self, key: str, team: str) -> str:
        return f"{self._prefix}{key}\x1f{team}"

    async def record(self, record: UsageRecord) -> None:
        pipe = self._client.pipeline(transaction=False)
        name = self._hash(record.key, record.team)
        for field, value in record.counts.items():
            if value:
                pipe.hincrby(name, f"{record.model}\x1f{field}", value)
        try:
            async with asyncio.timeout(self._timeout * 4):
                await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("usage write failed: %s", type(exc).__name__)

    async def table(self) -> Table:
        names = [name async for name in self._client.scan_iter(match=f"{self._prefix}*")]
        pipe = self._client.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(name)
        hashes: list[dict[bytes, bytes]] = await pipe.execute()
        return _table_from_hashes(names, hashes, len(self._prefix))


def _table_from_hashes(
    names: Sequence[Any], hashes: Sequence[dict[bytes, bytes]], skip: int
) -> Table:
    table: Table = defaultdict(lambda: dict.fromkeys(FIELDS, 0))
    for name, fields in zip(names, hashes, strict=True):
        key, _, team = _text(name)[skip:].partition("\x1f")
        for field, value in fields.items():
            model, _, counter = _text(field).partition("\x1f")
            if counter in FIELDS:
                table[(key, team, model)][counter] += int(value)
    return dict(table)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def model_row(model: str, counts: Counts, catalog: Catalog) -> dict[str, Any]:
    entry = catalog.get(model)
    price = entry.price_per_million if entry is not None else 0.0
    saved = counts["tokens"] - counts["billed_tokens"]
    return {
        "model": model,
        **counts,
        "cost_usd": counts["billed_tokens"] * price / 1_000_000,
        "saved_usd": saved * price / 1_000_000,
    }


def _group(rows: Iterable[tuple[str, str, Counts]], catalog: Catalog) -> list[dict[str, Any]]:
    by_model: dict[str, Counts] = defaultdict(lambda: dict.fromkeys(FIELDS, 0))
    for model, _, counts in rows:
        for name in FIELDS:
            by_model[model][name] += counts[name]
    return [model_row(m, c, catalog) for m, c in sorted(by_model.items())]


def report(table: Table, catalog: Catalog, only_key: str | None) -> dict[str, Any]:
    """Per key (and, for the internal token, per team) usage with costs per model."""
    rows = [(k, t, m, c) for (k, t, m), c in table.items() if only_key in (None, k)]
    keys = sorted({(k, t) for k, t, _, _ in rows})
    body: dict[str, Any] = {
        "object": "usage",
        "keys": [
            {
                "key": k,
                "team": t,
                "models": _group(
                    ((m, t, c) for kk, tt, m, c in rows if (kk, tt) == (k, t)), catalog
                ),
            }
            for k, t in keys
        ],
    }
    if only_key is None:
        teams = sorted({t for _, t, _, _ in rows if t})
        body["teams"] = [
            {
                "team": team,
                "models": _group(((m, t, c) for _, t, m, c in rows if t == team), catalog),
            }
            for team in teams
        ]
    return body

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
from gateway.store import StoreGuard, StoreUnavailable

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


def _new_table() -> Table:
    return defaultdict(lambda: dict.fromkeys(FIELDS, 0))


def merge_into(table: Table, key: tuple[str, str, str], counts: Mapping[str, int]) -> None:
    row = table[key]
    for name, value in counts.items():
        row[name] += value


class UsageStore(Protocol):
    async def add(self, delta: Table) -> bool: ...  # False: not written, try again later

    async def table(self) -> Table: ...  # raises StoreUnavailable


class MemoryUsage:
    def __init__(self) -> None:
        self._table = _new_table()

    async def add(self, delta: Table) -> bool:
        for key, counts in delta.items():
            merge_into(self._table, key, counts)
        return True

    async def table(self) -> Table:
        return {k: dict(v) for k, v in self._table.items()}


class UsageBuffer:
    """Sums usage in memory and hands it to the store about once a second, in one write, so the
    request path does no I/O for it. A crash loses at most one interval of this instance's
    usage; a failed write is kept and retried with the next one."""

    def __init__(self, store: UsageStore, interval: float = 1.0) -> None:
        self._store = store
        self._interval = interval
        self._pending = _new_table()

    def add(self, record: UsageRecord) -> None:
        merge_into(self._pending, (record.key, record.team, record.model), record.counts)

    async def flush(self) -> None:
        delta, self._pending = self._pending, _new_table()
        if not delta:
            return
        written = False
        try:
            written = await self._store.add(delta)
        finally:  # failed or cancelled: keep the counts for the next write
            if not written:
                for key, counts in delta.items():
                    merge_into(self._pending, key, counts)

    async def table(self) -> Table:
        """The store's table plus what this instance has not written yet (a failed write stays
        pending, so it is never counted twice and never missing)."""
        await self.flush()
        table = _new_table()
        for rows in (await self._store.table(), self._pending):
            for key, counts in rows.items():
                merge_into(table, key, counts)
        return dict(table)

    def pending(self) -> Table:
        """What this instance counted and has not written yet (all it has while the store is
        unavailable)."""
        return {k: dict(v) for k, v in self._pending.items()}

    async def run(self) -> None:
        """Flush every interval until cancelled (the app's lifecycle cancels, then flushes)."""
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()


class RedisUsage:
    """One hash per (key, team): fields `<model>\\x1f<counter>`, incremented in one pipeline.
    Counters never carry a TTL, so a `volatile-*` eviction policy never takes them."""

    def __init__(
        self,
        client: RedisClient,
        prefix: str,
        timeout: float,
        *,
        reads: StoreGuard | None = None,
        writes: StoreGuard | None = None,
    ) -> None:
        self._client = client
        self._prefix = f"{prefix}:usage:"
        self._timeout = timeout
        self._reads = reads or usage_guard("usage read", timeout)
        self._writes = writes or usage_guard("usage write (kept for the next one)", timeout)

    def _hash(self, key: str, team: str) -> str:
        return f"{self._prefix}{key}\x1f{team}"

    async def add(self, delta: Table) -> bool:
        pipe = self._client.pipeline(transaction=False)
        for (key, team, model), counts in delta.items():
            for field, value in counts.items():
                if value:
                    pipe.hincrby(self._hash(key, team), f"{model}\x1f{field}", value)
        try:
            await self._writes.call(pipe.execute, timeout=self._timeout * 4)
        except StoreUnavailable:
            return False
        return True

    async def table(self) -> Table:
        return await self._reads.call(self._read_table, timeout=self._timeout * 8)

    async def _read_table(self) -> Table:
        names = [name async for name in self._client.scan_iter(match=f"{self._prefix}*")]
        pipe = self._client.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(name)
        hashes: list[dict[bytes, bytes]] = await pipe.execute()
        return _table_from_hashes(names, hashes, len(self._prefix))


def usage_guard(what: str, timeout: float) -> StoreGuard:
    return StoreGuard(what, timeout=timeout, failures=(RedisError, OSError), logger=log)


def _table_from_hashes(
    names: Sequence[Any], hashes: Sequence[dict[bytes, bytes]], skip: int
) -> Table:
    table = _new_table()
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


def report(
    table: Table, catalog: Catalog, only_key: str | None, names: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Per key (and, for the internal token, per team) usage with costs per model. Rows are
    keyed by key id; ``names`` gives each id its display name."""
    names = names or {}
    rows = [(k, t, m, c) for (k, t, m), c in table.items() if only_key in (None, k)]
    keys = sorted({(k, t) for k, t, _, _ in rows}, key=lambda kt: (names.get(kt[0], kt[0]), kt))
    body: dict[str, Any] = {
        "object": "usage",
        "keys": [
            {
                "key": names.get(k, k),
                "key_id": k,
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

"""Spend history: usage per UTC hour, key, team and model as exact integer counters (the
`Counts` of `gateway.usage`), summed in memory and written to a store (one backend per module:
memory, sqlite, redis) once a second. Days are sums of their hours. Reports in the shape of
OpenAI's organization Usage and Costs APIs are built from the counters (`query`, `report`)."""

from __future__ import annotations

from typing import NamedTuple, Protocol

from gateway.usage import FIELDS, ZERO, Counts

HOUR = 3600
DAY = 86_400


class Slot(NamedTuple):
    hour: int  # Unix seconds // 3600
    key: str  # the key's id
    team: str
    model: str


__all__ = ["FIELDS", "ZERO", "Counts", "HistoryStore", "Slot", "Table", "merge_into"]

Table = dict[Slot, Counts]


def merge_into(table: Table, slot: Slot, counts: Counts) -> None:
    table[slot] = table.get(slot, ZERO) + counts


class HistoryStore(Protocol):
    """Adds are increments; a failed call raises ``StoreUnavailable`` and changed nothing."""

    name: str

    async def add(self, delta: Table) -> None: ...

    async def read(self, first_hour: int, end_hour: int) -> Table:
        """Every slot with first_hour <= hour < end_hour."""
        ...

    async def prune(self, before_hour: int) -> None: ...

    async def close(self) -> None: ...

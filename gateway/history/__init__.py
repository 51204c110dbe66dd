"""Spend history: usage per UTC hour, key, team and model as exact integer counters, summed in
memory and written to a store (one backend per module: memory, sqlite, redis) once a second.
Days are sums of their hours. Reports in the shape of OpenAI's organization Usage and Costs
APIs are built from the counters (pure: `query`, `report`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple, Protocol

HOUR = 3600
DAY = 86_400


@dataclass(frozen=True, slots=True)
class Counts:
    requests: int = 0
    inputs: int = 0
    cached_inputs: int = 0
    tokens: int = 0  # every token served, hits included
    billed_tokens: int = 0  # the upstream tokens paid for

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(a + b for a, b in zip(self.values(), other.values(), strict=True)))

    def values(self) -> tuple[int, ...]:
        return dataclasses.astuple(self)


FIELDS = tuple(f.name for f in dataclasses.fields(Counts))
ZERO = Counts()


class Slot(NamedTuple):
    hour: int  # Unix seconds // 3600
    key: str  # the key's id
    team: str
    model: str


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

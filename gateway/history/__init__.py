"""Spend history: usage per UTC hour, key, team and model as exact integer counters, summed in
memory and written to a store (one backend per module: memory, sqlite, redis) once a second.
Days are sums of their hours. Reports in the shape of OpenAI's organization Usage and Costs APIs
are built from the counters (`query`, `report`).

Beside what served requests used (the `Counts` of `gateway.usage`), each hour counts the
requests the gateway refused with a 429 (its rate limits, concurrency shares and budgets) and
those that failed because the upstream did (a 502, 503 or 504 after the attempts, or a
provider's own error passed on). A refusal before the request's model was read is filed under
the model "" (shown as no model)."""

from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from gateway import usage

HOUR = 3600
DAY = 86_400


@dataclass(frozen=True, slots=True)
class Counts:
    requests: int = 0  # served: the usage counters of `gateway.usage`, in its order
    inputs: int = 0
    cached_inputs: int = 0
    tokens: int = 0
    billed_tokens: int = 0
    rate_limited: int = 0  # answered 429 by the gateway's limits or budgets
    upstream_errors: int = 0  # failed because the upstream did

    def __add__(self, other: Counts) -> Counts:
        return Counts(*map(operator.add, self.values(), other.values()))

    def values(self) -> tuple[int, ...]:
        # Spelled out: dataclasses.astuple deep-copies, and this runs on every request.
        return (
            self.requests,
            self.inputs,
            self.cached_inputs,
            self.tokens,
            self.billed_tokens,
            self.rate_limited,
            self.upstream_errors,
        )

    @classmethod
    def served(cls, counts: usage.Counts) -> Counts:
        return cls(*counts.values())


FIELDS = tuple(f.name for f in dataclasses.fields(Counts))
ZERO = Counts()
RATE_LIMITED = Counts(rate_limited=1)
UPSTREAM_ERROR = Counts(upstream_errors=1)


class Slot(NamedTuple):
    hour: int  # Unix seconds // 3600
    key: str  # the key's id
    team: str
    model: str  # "": refused before the model was read


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

"""Usage per key, team and model: typed integer counters, summed in memory and written to a
store (one backend per module: memory, sqlite, redis). Costs are computed from the counters at
read time (see ``report``), so totals stay exact."""

from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass
from typing import NamedTuple, Protocol


@dataclass(frozen=True, slots=True)
class Counts:
    requests: int = 0
    inputs: int = 0
    cached_inputs: int = 0
    tokens: int = 0
    billed_tokens: int = 0  # the upstream tokens paid for: tokens - billed_tokens were saved

    def __add__(self, other: Counts) -> Counts:
        return Counts(*map(operator.add, self.values(), other.values()))

    def values(self) -> tuple[int, ...]:
        # Spelled out: dataclasses.astuple deep-copies, and this runs twice per request.
        return (self.requests, self.inputs, self.cached_inputs, self.tokens, self.billed_tokens)


FIELDS = tuple(f.name for f in dataclasses.fields(Counts))
ZERO = Counts()


class Row(NamedTuple):
    key: str
    team: str
    model: str


Table = dict[Row, Counts]


@dataclass(frozen=True, slots=True)
class UsageRecord:
    row: Row
    counts: Counts


def merge_into(table: Table, row: Row, counts: Counts) -> None:
    table[row] = table.get(row, ZERO) + counts


class UsageStore(Protocol):
    """Adds are increments; a failed call raises ``StoreUnavailable`` and changed nothing."""

    name: str

    async def add(self, delta: Table) -> None: ...

    async def table(self) -> Table: ...

    async def close(self) -> None: ...

"""Spend history in this process's memory (lost at exit: the embedded default is SQLite)."""

from __future__ import annotations

from gateway.history import Table, merge_into


class MemoryHistory:
    name = "memory"

    def __init__(self) -> None:
        self._table: Table = {}

    async def add(self, delta: Table) -> None:
        for slot, counts in delta.items():
            merge_into(self._table, slot, counts)

    async def read(self, first_hour: int, end_hour: int) -> Table:
        return {s: c for s, c in self._table.items() if first_hour <= s.hour < end_hour}

    async def prune(self, before_hour: int) -> None:
        self._table = {s: c for s, c in self._table.items() if s.hour >= before_hour}

    async def close(self) -> None:
        return None

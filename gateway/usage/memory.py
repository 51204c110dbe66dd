"""Usage counters in this process's memory: gone at restart, not shared by workers."""

from __future__ import annotations

from gateway.usage import Table, merge_into


class MemoryUsage:
    name = "memory"

    def __init__(self) -> None:
        self._table: Table = {}

    async def add(self, delta: Table) -> None:
        for row, counts in delta.items():
            merge_into(self._table, row, counts)

    async def table(self) -> Table:
        return dict(self._table)

    async def close(self) -> None:
        return None

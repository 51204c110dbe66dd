"""Sums usage in memory and hands it to the store about once a second, in one write, so the
request path does no I/O for it. A crash loses at most one interval of this instance's usage;
a failed write is kept and retried with the next one."""

from __future__ import annotations

import asyncio
import logging

from gateway.usage import Counts, Row, Table, UsageRecord, UsageStore, merge_into
from gateway.writebehind import Pending

log = logging.getLogger("gateway.usage")


class UsageBuffer:
    def __init__(self, store: UsageStore, interval: float = 1.0) -> None:
        self._store = store
        self._interval = interval
        self._pending: Pending[Row, Counts] = Pending("usage", log)

    @property
    def store(self) -> UsageStore:
        return self._store

    def add(self, record: UsageRecord) -> None:
        self._pending.add(record.row, record.counts)

    async def flush(self) -> None:
        await self._pending.flush(self._store.add)

    async def table(self) -> Table:
        """The store's table plus what this instance has not written yet."""
        await self.flush()
        table = await self._store.table()
        for row, counts in self._pending.snapshot().items():
            merge_into(table, row, counts)
        return table

    def pending(self) -> Table:
        """What this instance counted and has not written yet (all it has while the store is
        unavailable)."""
        return self._pending.snapshot()

    async def run(self) -> None:
        """Flush every interval until cancelled (the app's lifecycle cancels, then flushes)."""
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()

"""Sums usage in memory and hands it to the store about once a second, in one write, so the
request path does no I/O for it. A crash loses at most one interval of this instance's usage;
a failed write is kept and retried with the next one."""

from __future__ import annotations

import asyncio
import logging

from gateway.store import StoreUnavailable
from gateway.usage import Table, UsageRecord, UsageStore, merge_into

log = logging.getLogger("gateway.usage")


class UsageBuffer:
    def __init__(self, store: UsageStore, interval: float = 1.0) -> None:
        self._store = store
        self._interval = interval
        self._pending: Table = {}

    @property
    def store(self) -> UsageStore:
        return self._store

    def add(self, record: UsageRecord) -> None:
        merge_into(self._pending, record.row, record.counts)

    async def flush(self) -> None:
        delta, self._pending = self._pending, {}
        if not delta:
            return
        written = False
        try:
            await self._store.add(delta)
            written = True
        except StoreUnavailable as exc:
            log.warning("usage write failed, kept for the next one: %s", exc)
        finally:  # failed or cancelled: keep the counts for the next write
            if not written:
                for row, counts in delta.items():
                    merge_into(self._pending, row, counts)

    async def table(self) -> Table:
        """The store's table plus what this instance has not written yet."""
        await self.flush()
        table = await self._store.table()
        for row, counts in self._pending.items():
            merge_into(table, row, counts)
        return table

    def pending(self) -> Table:
        """What this instance counted and has not written yet (all it has while the store is
        unavailable)."""
        return dict(self._pending)

    async def run(self) -> None:
        """Flush every interval until cancelled (the app's lifecycle cancels, then flushes)."""
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()

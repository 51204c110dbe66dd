"""Sums spend history in memory and writes it about once a second in one store call, so the
request path does no I/O for it; prunes past the retention about once an hour. A crash loses at
most one interval of this instance's counts; a failed write is kept for the next one."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from gateway.history import HOUR, Counts, HistoryStore, Slot, Table
from gateway.store import StoreUnavailable
from gateway.writebehind import Pending

log = logging.getLogger("gateway.history")


class HistoryBuffer:
    def __init__(
        self,
        store: HistoryStore,
        *,
        retention_hours: int,
        interval: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._retention_hours = retention_hours
        self._interval = interval
        self._clock = clock
        self._pending: Pending[Slot, Counts] = Pending("history", log)
        self._pruned_at = 0.0

    def add(self, key: str, team: str, model: str, counts: Counts) -> None:
        hour = int(self._clock()) // HOUR
        self._pending.add(Slot(hour, key, team, model), counts)

    async def flush(self) -> None:
        await self._pending.flush(self._store.add)

    async def read(self, first_hour: int, end_hour: int) -> Table:
        await self.flush()
        return await self._store.read(first_hour, end_hour)

    async def prune(self) -> None:
        now = self._clock()
        if now - self._pruned_at < HOUR:
            return
        self._pruned_at = now
        try:
            await self._store.prune(int(now) // HOUR - self._retention_hours)
        except StoreUnavailable as exc:
            log.warning("history prune failed: %s", exc)

    async def run(self) -> None:
        """Flush every interval until cancelled (the app's lifecycle cancels, then flushes)."""
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()
            await self.prune()

"""Fixtures: every spend-history backend (memory, a real SQLite file, a real Redis, a real
Redis Cluster)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.history import HistoryStore
from gateway.history.memory import MemoryHistory
from gateway.history.redis import RedisHistory
from gateway.history.sqlite import SqliteHistory
from tests.support.backends import BACKENDS, Builders, store_on


@pytest.fixture(params=BACKENDS)
async def history(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[HistoryStore]:
    builders: Builders[HistoryStore] = Builders(
        MemoryHistory, SqliteHistory, lambda client: RedisHistory(client, retention_hours=24 * 90)
    )
    async with store_on(request, tmp_path, builders) as store:
        yield store

"""Fixtures: every ledger backend (memory, a real SQLite file, a real Redis, a real Redis
Cluster) on one clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.budgets import Ledger
from gateway.budgets.book import BookStore
from gateway.budgets.memory import MemoryBook, MemoryLedger
from gateway.budgets.redis import RedisBook, RedisLedger
from gateway.budgets.sqlite import SqliteBook, SqliteLedger
from tests.support.backends import BACKENDS, Builders, store_on
from tests.support.clock import FakeClock

# 2037-11-28 23:30 UTC, a Saturday: ahead of the real clock, as Redis expires keys by it
NOW = 2_143_063_800.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture(params=BACKENDS)
async def ledger(
    request: pytest.FixtureRequest, clock: FakeClock, tmp_path: Path
) -> AsyncIterator[Ledger]:
    builders: Builders[Ledger] = Builders(
        memory=lambda: MemoryLedger(clock),
        sqlite=lambda database: SqliteLedger(database, clock),
        redis=RedisLedger,
    )
    async with store_on(request, tmp_path, builders) as store:
        yield store


@pytest.fixture(params=BACKENDS)
async def book_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BookStore]:
    builders: Builders[BookStore] = Builders(MemoryBook, SqliteBook, RedisBook)
    async with store_on(request, tmp_path, builders) as store:
        yield store

"""One behaviour suite for every usage store backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.embedded import Database
from gateway.store import StoreUnavailable
from gateway.usage import Counts, Row, UsageStore
from gateway.usage.redis import RedisUsage
from gateway.usage.sqlite import SqliteUsage
from tests.support.redis_server import RedisServer

ALICE = Row("alice", "red", "text-embedding-3-small")
BOB = Row("bob", "", "text-embedding-3-large")


async def test_a_new_store_is_empty(usage_store: UsageStore) -> None:
    assert await usage_store.table() == {}


async def test_adds_sum_per_row(usage_store: UsageStore) -> None:
    await usage_store.add({ALICE: Counts(1, 2, 1, 10, 5)})
    await usage_store.add({ALICE: Counts(1, 3, 0, 20, 20), BOB: Counts(requests=1)})
    assert await usage_store.table() == {ALICE: Counts(2, 5, 1, 30, 25), BOB: Counts(requests=1)}


async def test_names_with_separators_and_unicode_stay_apart(usage_store: UsageStore) -> None:
    odd = Row("key:with:colons", "tëam", "model/one")
    await usage_store.add({odd: Counts(requests=3)})
    assert await usage_store.table() == {odd: Counts(requests=3)}


async def test_sqlite_usage_survives_reopening_the_file(tmp_path: Path) -> None:
    first = Database(tmp_path)
    await SqliteUsage(first).add({ALICE: Counts(requests=4)})
    first.close()
    second = Database(tmp_path)
    assert await SqliteUsage(second).table() == {ALICE: Counts(requests=4)}
    second.close()


async def test_an_unwritable_data_directory_raises_store_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreUnavailable):
        await SqliteUsage(Database(blocker / "data")).add({ALICE: Counts(requests=1)})


async def test_a_dead_redis_raises_store_unavailable(own_redis: RedisServer) -> None:
    import redis.asyncio  # noqa: PLC0415

    client = redis.asyncio.Redis.from_url(own_redis.url, socket_timeout=0.2)
    own_redis.kill()
    store = RedisUsage(client, "test")
    with pytest.raises(StoreUnavailable):
        await store.add({ALICE: Counts(requests=1)})
    with pytest.raises(StoreUnavailable):
        await store.table()
    await client.aclose()

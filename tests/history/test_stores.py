"""One behaviour suite for every spend-history store, and the buffer in front of them."""

from __future__ import annotations

from pathlib import Path

import redis.asyncio

from gateway.embedded import Database
from gateway.history import Counts, HistoryStore, Slot
from gateway.history.buffer import HistoryBuffer
from gateway.history.redis import RedisHistory
from gateway.history.sqlite import SqliteHistory
from tests.ratelimit.conftest import make_client
from tests.support.clock import FakeClock
from tests.support.redis_server import RedisServer

HOUR = 498_863  # 2026-11-28T23:00:00Z // 3600
ONE = Counts(requests=1, inputs=3, cached_inputs=1, tokens=30, billed_tokens=20)


async def test_adds_are_exact_integer_increments(history: HistoryStore) -> None:
    slot = Slot(HOUR, "alice", "red", "text-embedding-3-small")
    await history.add({slot: ONE})
    await history.add({slot: ONE + ONE})
    assert await history.read(HOUR, HOUR + 1) == {slot: Counts(3, 9, 3, 90, 60)}


async def test_a_read_covers_first_hour_up_to_end_hour(history: HistoryStore) -> None:
    slots = [Slot(HOUR + i, "alice", "", "m") for i in range(3)]
    await history.add(dict.fromkeys(slots, ONE))
    assert set(await history.read(HOUR, HOUR + 2)) == set(slots[:2])


async def test_keys_teams_and_models_are_kept_apart(history: HistoryStore) -> None:
    slots = [Slot(HOUR, "a", "red", "m1"), Slot(HOUR, "a", "", "m1"), Slot(HOUR, "b", "red", "m2")]
    await history.add(dict.fromkeys(slots, ONE))
    assert await history.read(HOUR, HOUR + 1) == dict.fromkeys(slots, ONE)


async def test_pruning_drops_hours_before_the_retention(tmp_path: Path) -> None:
    store = SqliteHistory(Database(tmp_path))
    await store.add({Slot(HOUR, "a", "", "m"): ONE, Slot(HOUR + 5, "a", "", "m"): ONE})
    await store.prune(HOUR + 1)
    assert list(await store.read(0, HOUR + 10)) == [Slot(HOUR + 5, "a", "", "m")]


async def test_redis_hours_expire_with_the_retention(redis_client: redis.asyncio.Redis) -> None:
    await RedisHistory(redis_client, retention_hours=2).add({Slot(HOUR, "a", "", "m"): ONE})
    assert 0 < await redis_client.ttl(f"gw:history:{HOUR}") <= 3 * 3600


async def test_sqlite_history_survives_a_restart(tmp_path: Path) -> None:
    first = SqliteHistory(Database(tmp_path))
    await first.add({Slot(HOUR, "a", "", "m"): ONE})
    await first.close()
    assert await SqliteHistory(Database(tmp_path)).read(HOUR, HOUR + 1) == {
        Slot(HOUR, "a", "", "m"): ONE
    }


async def test_the_buffer_files_counts_under_the_current_hour(history: HistoryStore) -> None:
    clock = FakeClock(HOUR * 3600 + 59)
    buffer = HistoryBuffer(history, retention_hours=24, clock=clock)
    buffer.add("alice", "red", "m", ONE)
    clock.advance(3600)
    buffer.add("alice", "red", "m", ONE)
    assert await buffer.read(HOUR, HOUR + 2) == {
        Slot(HOUR, "alice", "red", "m"): ONE,
        Slot(HOUR + 1, "alice", "red", "m"): ONE,
    }


async def test_a_failed_write_is_kept_for_the_next(own_redis: RedisServer) -> None:
    client = make_client(own_redis.url)
    buffer = HistoryBuffer(
        RedisHistory(client, retention_hours=24), retention_hours=24, clock=FakeClock(HOUR * 3600)
    )
    buffer.add("alice", "", "m", ONE)
    own_redis.kill()
    await buffer.flush()
    own_redis.start()
    try:
        await buffer.flush()
        assert await buffer.read(HOUR, HOUR + 1) == {Slot(HOUR, "alice", "", "m"): ONE}
    finally:
        await client.aclose()

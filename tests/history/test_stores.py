"""One behaviour suite for every spend-history store, and the buffer in front of them."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from gateway import usage
from gateway.embedded import FILE_NAME, Database
from gateway.history import FIELDS, Counts, HistoryStore, Slot
from gateway.history.buffer import HistoryBuffer
from gateway.history.redis import RedisHistory
from gateway.history.sqlite import SqliteHistory
from tests.support.backends import make_client
from tests.support.clock import FakeClock
from tests.support.redis_server import RedisServer

HOUR = 498_863  # 2026-11-28T23:00:00Z // 3600
ONE = Counts(requests=1, inputs=3, cached_inputs=1, tokens=30, billed_tokens=20)
REFUSED = Counts(rate_limited=2, upstream_errors=1)


async def test_adds_are_exact_integer_increments(history: HistoryStore) -> None:
    slot = Slot(HOUR, "alice", "red", "text-embedding-3-small")
    await history.add({slot: ONE})
    await history.add({slot: ONE + ONE})
    assert await history.read(HOUR, HOUR + 1) == {slot: Counts(3, 9, 3, 90, 60)}


async def test_refusals_are_counted_beside_the_usage(history: HistoryStore) -> None:
    served, refused = Slot(HOUR, "alice", "red", "m"), Slot(HOUR, "alice", "red", "")
    await history.add({served: ONE + REFUSED, refused: REFUSED})
    await history.add({refused: Counts(rate_limited=1)})
    assert await history.read(HOUR, HOUR + 1) == {
        served: Counts(1, 3, 1, 30, 20, rate_limited=2, upstream_errors=1),
        refused: Counts(rate_limited=3, upstream_errors=1),
    }


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


def _old_history_file(directory: Path) -> None:
    """A database written before refusals were counted: no such columns."""
    with sqlite3.connect(directory / FILE_NAME) as db:
        db.execute(
            "CREATE TABLE usage_hourly (hour INTEGER NOT NULL, key TEXT NOT NULL, "
            "team TEXT NOT NULL, model TEXT NOT NULL, requests INTEGER NOT NULL, "
            "inputs INTEGER NOT NULL, cached_inputs INTEGER NOT NULL, tokens INTEGER NOT NULL, "
            "billed_tokens INTEGER NOT NULL, PRIMARY KEY (hour, key, team, model))"
        )
        db.execute("INSERT INTO usage_hourly VALUES (?, 'a', '', 'm', 1, 3, 1, 30, 20)", (HOUR,))
    db.close()


async def test_an_older_sqlite_file_gains_the_refusal_columns(tmp_path: Path) -> None:
    _old_history_file(tmp_path)
    store = SqliteHistory(Database(tmp_path))
    await store.add({Slot(HOUR, "a", "", "m"): REFUSED})
    assert await store.read(HOUR, HOUR + 1) == {Slot(HOUR, "a", "", "m"): ONE + REFUSED}
    await store.close()


async def test_a_second_worker_finds_the_file_already_upgraded(tmp_path: Path) -> None:
    _old_history_file(tmp_path)
    first, second = SqliteHistory(Database(tmp_path)), SqliteHistory(Database(tmp_path))
    await first.add({Slot(HOUR, "a", "", "m"): REFUSED})
    await second.add({Slot(HOUR, "a", "", "m"): REFUSED})
    assert await second.read(HOUR, HOUR + 1) == {Slot(HOUR, "a", "", "m"): ONE + REFUSED + REFUSED}
    await first.close()
    await second.close()


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


def test_history_counts_begin_with_the_usage_counters() -> None:
    served = usage.Counts(requests=1, inputs=3, cached_inputs=1, tokens=30, billed_tokens=20)
    assert FIELDS[: len(usage.FIELDS)] == usage.FIELDS and Counts.served(served) == ONE


@pytest.mark.parametrize("counts_type", [Counts, usage.Counts])
def test_counts_values_are_every_field_in_order(counts_type: type[Any]) -> None:
    numbered = counts_type(*range(1, len(dataclasses.fields(counts_type)) + 1))
    assert numbered.values() == dataclasses.astuple(numbered)
    assert (numbered + numbered).values() == tuple(2 * v for v in numbered.values())

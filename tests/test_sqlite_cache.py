"""The SQLite cache: a byte budget with least-recently-used eviction, one file shared by every
process on the machine (purges, deletes and refreshes seen at once), kept across restarts."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gateway.cache.sqlite import TOUCH_INTERVAL, SqliteCache
from gateway.keys import TEXT, cache_keys, key_hasher, model_tag
from gateway.store import StoreUnavailable
from tests.support.clock import FakeClock

TAG = model_tag("m")
VECTOR = b"v" * 6156  # a 1536-dim entry
BUDGET = 200_000

Open = Callable[..., SqliteCache]


def key(text: str, generation: int = 0) -> bytes:
    hasher = key_hasher("shared", "m", None)
    return cache_keys("gw", hasher, TEXT, [text.encode()], tag=TAG, generation=generation)[0]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


@pytest.fixture
async def open_cache(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Open]:
    opened: list[SqliteCache] = []

    def make(directory: Path = tmp_path, max_bytes: int = BUDGET) -> SqliteCache:
        cache = SqliteCache(
            directory, max_bytes=max_bytes, ttl_seconds=3600, hot_entries=8, timeout=5, clock=clock
        )
        opened.append(cache)
        return cache

    yield make
    for cache in opened:
        await cache.close()


async def test_the_store_stays_within_its_byte_budget_under_new_inputs(open_cache: Open) -> None:
    cache = open_cache()
    for batch in range(100):
        await cache.set_many([(key(f"{batch}-{i}"), VECTOR) for i in range(10)])
        assert await cache.stored_bytes() <= BUDGET
    assert await cache.stored_bytes() > BUDGET * 0.8
    assert cache.path.stat().st_size < 4 * BUDGET  # freed pages are reused


async def test_eviction_drops_the_least_recently_read_entries(
    open_cache: Open, clock: FakeClock
) -> None:
    cache = open_cache()
    kept = key("read often")
    await cache.set_many([(kept, VECTOR)])
    for batch in range(60):
        clock.advance(TOUCH_INTERVAL)
        await cache.get_many([kept])  # a read; its time is stamped in the next batch
        await cache.set_many([(key(f"{batch}-{i}"), VECTOR) for i in range(2)])
    other = open_cache()  # no hot tier of its own: what it reads comes from the file
    assert await other.get_many([kept, key("0-0")]) == [VECTOR, None]


async def test_a_restarted_process_reads_what_it_wrote(open_cache: Open) -> None:
    first = open_cache()
    await first.set_many([(key("kept"), VECTOR)])
    await first.close()
    assert await open_cache().get_many([key("kept")]) == [VECTOR]


async def test_two_processes_share_one_file(open_cache: Open) -> None:
    a, b = open_cache(), open_cache()
    await a.set_many([(key("shared"), VECTOR)])
    assert await b.read(TAG, [key("shared")]) == (0, [VECTOR])


async def test_a_delete_on_one_process_is_a_miss_on_another_at_once(open_cache: Open) -> None:
    a, b = open_cache(), open_cache()
    await a.set_many([(key("gone"), VECTOR)])
    assert (await b.read(TAG, [key("gone")]))[1] == [VECTOR]  # now in b's hot tier
    assert await a.delete_many([key("gone")]) == 1
    assert (await b.read(TAG, [key("gone")]))[1] == [None]


async def test_a_refresh_on_one_process_replaces_what_another_holds(open_cache: Open) -> None:
    a, b = open_cache(), open_cache()
    await a.set_many([(key("changed"), VECTOR)])
    await b.read(TAG, [key("changed")])
    await a.set_many([(key("changed"), b"w" * 6156)])
    assert (await b.read(TAG, [key("changed")]))[1] == [b"w" * 6156]


async def test_a_purge_on_one_process_is_a_new_generation_on_another(open_cache: Open) -> None:
    a, b = open_cache(), open_cache()
    await a.set_many([(key("old"), VECTOR)])
    assert await a.purge(TAG) == 1
    assert (await b.read(TAG, [key("old", generation=1)])) == (1, [None])


async def test_a_purge_frees_the_old_generation_in_the_background(open_cache: Open) -> None:
    cache = open_cache()
    await cache.set_many([(key(f"{i}"), VECTOR) for i in range(5)])
    await cache.purge(TAG)
    await cache.set_many([(key("new", generation=1), VECTOR)])  # queued behind the drop
    assert await cache.stored_bytes() == len(key("new", generation=1)) + len(VECTOR)


async def test_an_unusable_data_directory_is_store_unavailable(
    open_cache: Open, tmp_path: Path
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    cache = open_cache(blocked)
    with pytest.raises(StoreUnavailable):
        await cache.set_many([(key("x"), VECTOR)])
    with pytest.raises(StoreUnavailable):
        await cache.read(TAG, [key("x")])


async def test_a_hot_hit_never_waits_for_the_reader_thread(open_cache: Open) -> None:
    cache = open_cache()
    await cache.read(TAG, [])  # the first read opens the file
    await cache.set_many([(key("hot"), VECTOR)])
    busy = threading.Event()
    cache._reader.submit(busy.wait, 5)  # the thread that reads the file is stuck
    try:
        async with asyncio.timeout(1):
            assert await cache.read(TAG, [key("hot")]) == (0, [VECTOR])
    finally:
        busy.set()

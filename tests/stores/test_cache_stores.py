"""One behaviour suite for every cache backend."""

from __future__ import annotations

from gateway.cache import Cache

KEYS = [b"gw:test:a", b"gw:test:b", b"gw:test:{slot}:c"]


async def test_a_batch_reads_back_what_was_written_in_order(cache_store: Cache) -> None:
    await cache_store.set_many([(KEYS[0], b"one"), (KEYS[2], b"three")])
    assert await cache_store.get_many(KEYS) == [b"one", None, b"three"]


async def test_a_later_write_replaces_the_value(cache_store: Cache) -> None:
    await cache_store.set_many([(KEYS[1], b"old")])
    await cache_store.set_many([(KEYS[1], b"new")])
    assert await cache_store.get_many([KEYS[1]]) == [b"new"]


async def test_binary_values_come_back_byte_for_byte(cache_store: Cache) -> None:
    value = bytes(range(256)) * 4
    await cache_store.set_many([(KEYS[0], value)])
    assert await cache_store.get_many([KEYS[0]]) == [value]


async def test_it_answers_ping(cache_store: Cache) -> None:
    assert await cache_store.ping()

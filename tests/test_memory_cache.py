from __future__ import annotations

from gateway.cache.memory import MemoryCache
from tests.support.clock import FakeClock


async def test_entries_expire_after_their_ttl() -> None:
    clock = FakeClock(0.0)
    cache = MemoryCache(10, ttl_seconds=5, clock=clock)
    await cache.set_many([(b"k", b"v")])
    clock.now = 4.9
    assert await cache.get_many([b"k"]) == [b"v"]
    clock.now = 5.0
    assert await cache.get_many([b"k"]) == [None]


async def test_the_least_recently_used_entry_is_evicted_at_the_bound() -> None:
    cache = MemoryCache(2, ttl_seconds=60, clock=FakeClock())
    await cache.set_many([(b"a", b"1"), (b"b", b"2")])
    await cache.get_many([b"a"])
    await cache.set_many([(b"c", b"3")])
    assert await cache.get_many([b"a", b"b", b"c"]) == [b"1", None, b"3"]

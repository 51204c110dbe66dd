"""`python -m bench.cache_reads`: what one cache read costs on each backend, without HTTP.

The gateway's own read call (the model's generation and the values, as a request makes it) on
memory, SQLite (with and without its in-process tier) and Redis, over a store holding 2,000
1536-dim entries: wall-clock p50 per call and this process's CPU per call (every thread;
redis-server's own CPU is not in it). CPU per call is what holds up on a busy machine.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis.asyncio

from gateway.cache import Cache
from gateway.cache.memory import MemoryCache
from gateway.cache.redis import RedisCache
from gateway.cache.sqlite import SqliteCache
from gateway.keys import TEXT, cache_keys, key_hasher, model_tag
from gateway.redispipe import RedisPipe
from tests.support.redis_server import RedisServer

ENTRIES = 2000
VALUE = b"v" * (16 + 4 * 1536)  # a stored 1536-dim vector
TAG = model_tag("text-embedding-3-small")
TTL = 3600
Make = Callable[[], Awaitable[Cache]]


def keys(count: int) -> list[bytes]:
    hasher = key_hasher("shared", "text-embedding-3-small", None)
    canonical = [f"input {i}".encode() for i in range(count)]
    return cache_keys("gw", hasher, TEXT, canonical, tag=TAG, generation=0)


async def measure(cache: Cache, batch: int, calls: int) -> tuple[float, float]:
    """(p50 µs, CPU µs) per read of ``batch`` keys."""
    every = keys(ENTRIES)
    walls = []
    cpu_started = time.process_time()
    for i in range(calls):
        start = (i * batch) % (ENTRIES - batch)
        began = time.perf_counter()
        _, values = await cache.read(TAG, every[start : start + batch])
        walls.append(time.perf_counter() - began)
        assert all(v is not None for v in values)
    cpu = (time.process_time() - cpu_started) / calls
    return statistics.median(walls) * 1e6, cpu * 1e6


async def bench(label: str, cache: Cache) -> list[str]:
    every = keys(ENTRIES)
    for start in range(0, ENTRIES, 500):
        await cache.set_many([(key, VALUE) for key in every[start : start + 500]])
    rows = []
    for batch, calls in ((1, 40_000), (64, 4_000)):
        await measure(cache, batch, calls // 10)  # warm-up: the hot tier, the page cache
        p50, cpu = await measure(cache, batch, calls)
        rows.append(f"| {label} | {batch} | {p50:,.0f} | {cpu:,.0f} |")
    await cache.close()
    return rows


async def run(directory: Path, redis_url: str) -> list[str]:
    def sqlite(hot: int, name: str) -> SqliteCache:
        return SqliteCache(
            directory / name, max_bytes=1 << 30, ttl_seconds=TTL, hot_entries=hot, timeout=5
        )

    client = redis.asyncio.from_url(redis_url)
    await client.flushdb()
    caches: list[tuple[str, Cache]] = [
        ("memory", MemoryCache(100_000, TTL)),
        ("sqlite", sqlite(10_000, "hot")),
        ("sqlite, no in-process tier", sqlite(1, "cold")),
        ("redis", RedisCache(client, TTL, 1.0, RedisPipe(redis_url, 1.0))),
    ]
    rows = ["| backend | keys per read | p50 µs | CPU µs per read |", "|---|---|---|---|"]
    for label, cache in caches:
        rows += await bench(label, cache)
    return rows


def main() -> None:
    with RedisServer() as server, tempfile.TemporaryDirectory(prefix="gateway-reads-") as tmp:
        print("\n".join(asyncio.run(run(Path(tmp), server.url))))


if __name__ == "__main__":
    main()

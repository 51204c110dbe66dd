"""Every backend stores the bytes of every storage format as they are: entries written in
different formats read back together, each by its own header."""

from __future__ import annotations

import numpy as np
import pytest
import redis

from gateway import codec
from gateway.cache import Cache
from gateway.codec import StorageFormat
from gateway.keys import model_tag
from tests.stores.test_cache_stores import keys
from tests.support.fake_upstream import vector_for
from tests.support.redis_server import RedisServer

TAG = model_tag("model-a")
FORMATS: list[StorageFormat] = ["raw", "compact", "float16"]
VECTORS = [vector_for("text-embedding-3-small", f"stored {i}", 1536) for i in range(3)]


@pytest.mark.parametrize("storage", FORMATS)
async def test_a_vector_round_trips_through_the_store_in_each_format(
    cache_store: Cache, storage: StorageFormat
) -> None:
    (key,) = keys("round trip")
    value = codec.pack(VECTORS[0].tobytes(), 1536, 9, storage)
    await cache_store.set_many([(key, value)])
    _, (stored,) = await cache_store.read(TAG, [key])
    assert stored == value
    entry = codec.unpack(stored, 1536)
    assert entry is not None and entry.tokens == 9
    np.testing.assert_allclose(np.frombuffer(entry.vector, "<f4"), VECTORS[0], atol=2.0**-11)


async def test_one_read_returns_entries_of_every_format_together(cache_store: Cache) -> None:
    formats: list[StorageFormat] = ["float16", "raw", "compact"]
    written = keys("a", "b", "c")
    await cache_store.set_many(
        [
            (key, codec.pack(vector.tobytes(), 1536, i, storage))
            for i, (key, vector, storage) in enumerate(zip(written, VECTORS, formats, strict=True))
        ]
    )
    _, values = await cache_store.read(TAG, [*written, *keys("absent")])
    found = codec.unpack_many(values, 1536)
    assert [entry and entry.tokens for entry in found] == [0, 1, 2, None]
    assert bytes(found[1].vector) == VECTORS[1].tobytes()  # type: ignore[union-attr]
    assert bytes(found[2].vector) == VECTORS[2].tobytes()  # type: ignore[union-attr]


def test_in_redis_compact_takes_a_smaller_allocation_and_float16_about_half(
    redis_server: RedisServer,
) -> None:
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()
        used = {}
        for storage, key in zip(FORMATS, keys("r", "c", "h"), strict=True):
            client.set(key, codec.pack(VECTORS[0].tobytes(), 1536, 1, storage))
            used[storage] = int(client.memory_usage(key, samples=0) or 0)
    assert used["compact"] <= used["raw"] - 1024  # the 6 KB allocator class, not the 7 KB one
    assert used["float16"] <= 0.55 * used["raw"]

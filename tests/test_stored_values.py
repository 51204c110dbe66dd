"""Values read back from the cache are untrusted: whatever fails the checksum, holds a
non-finite float or an implausible token count is a miss, and the next fetch overwrites it."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import redis

from gateway import codec
from tests.support.background import BackgroundLoop
from tests.support.fake_upstream import vector_for
from tests.support.redis_server import RedisServer
from tests.support.stack import Stack

SMALL = "text-embedding-3-small"
VECTOR = np.linspace(-1, 1, 8, dtype="<f4")


def flip(value: bytes, at: int) -> bytes:
    return value[:at] + bytes([value[at] ^ 0x01]) + value[at + 1 :]


def test_a_changed_body_byte_is_a_miss() -> None:
    value = codec.pack(VECTOR.tobytes(), 8, 3)
    assert codec.unpack(value, 8) is not None
    assert codec.unpack(flip(value, codec.HEADER_SIZE + 5), 8) is None


def test_a_changed_token_count_is_a_miss() -> None:
    value = codec.pack(VECTOR.tobytes(), 8, 3)
    corrupted = value[:8] + struct.pack("<I", 4_000_000_000) + value[12:]
    assert codec.unpack(corrupted, 8) is None


def test_nan_under_a_valid_header_and_checksum_is_a_miss() -> None:
    poisoned = VECTOR.copy()
    poisoned[2] = np.nan
    assert codec.unpack(codec.pack(poisoned.tobytes(), 8, 3), 8) is None


def test_an_implausible_token_count_under_a_valid_checksum_is_a_miss() -> None:
    assert codec.unpack(codec.pack(VECTOR.tobytes(), 8, 4_000_000_000), 8) is None


def test_a_value_of_the_previous_format_is_a_miss() -> None:
    old = struct.pack("<4sII", b"EV1\x00", 8, 3) + VECTOR.tobytes()
    assert codec.unpack(old, 8) is None
    assert codec.unpack(old + b"\0\0\0\0", 8) is None


@pytest.fixture
def cached(background: BackgroundLoop, redis_server: RedisServer) -> Iterator[Stack]:
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()
    stack = Stack(background, redis_server.url)
    yield stack
    stack.close()


def embed(stack: Stack) -> httpx.Response:
    body = {"model": SMALL, "input": "stored text", "encoding_format": "float"}
    return httpx.post(f"{stack.base_url}/embeddings", json=body, timeout=10)


def corrupt_the_only_entry(url: str) -> bytes:
    with redis.Redis.from_url(url) as client:
        (key,) = client.keys("gw:e:*")
        value = client.get(key)
        assert value is not None
        client.set(key, flip(value, len(value) - 3))
        return bytes(key)


def test_a_corrupted_entry_is_refetched_and_overwritten(
    cached: Stack, redis_server: RedisServer
) -> None:
    embed(cached)
    cached.drain()
    corrupt_the_only_entry(redis_server.url)
    for expected_cache in ("MISS", "HIT"):
        response = embed(cached)
        assert response.headers["x-cache"] == expected_cache
        got = np.asarray(response.json()["data"][0]["embedding"], dtype=np.float32)
        np.testing.assert_array_equal(got, vector_for(SMALL, "stored text", 1536))
        assert response.json()["usage"]["prompt_tokens"] == 2
        cached.drain()


def test_an_entry_corrupted_after_it_was_served_is_a_miss(
    cached: Stack, redis_server: RedisServer
) -> None:
    """What the process remembers of a checked value is reused for those same bytes only."""
    embed(cached)
    cached.drain()
    assert embed(cached).headers["x-cache"] == "HIT"
    corrupt_the_only_entry(redis_server.url)
    assert embed(cached).headers["x-cache"] == "MISS"

"""The pipelined MGET reader against a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError

from gateway.redispipe import RedisPipe
from tests.support.redis_server import RedisServer


@pytest.fixture
async def reader(own_redis: RedisServer) -> AsyncIterator[RedisPipe]:
    async with redis.asyncio.from_url(own_redis.url) as client:
        await client.mset({b"a": b"1", b"b": b"2"})
    fast = RedisPipe(own_redis.url, timeout=1.0)
    yield fast
    fast.close()


async def test_mget_returns_values_and_none_in_key_order(reader: RedisPipe) -> None:
    assert await reader.mget([b"b", b"missing", b"a"]) == [b"2", None, b"1"]


async def test_concurrent_reads_pipeline_on_one_connection(reader: RedisPipe) -> None:
    results = await asyncio.gather(*(reader.mget([b"a", b"b"][i % 2 :]) for i in range(50)))
    assert results == [[b"1", b"2"] if i % 2 == 0 else [b"2"] for i in range(50)]


async def test_an_error_reply_raises(reader: RedisPipe, own_redis: RedisServer) -> None:
    with pytest.raises(RedisError):
        await reader.call("NO-SUCH-COMMAND")
    assert await reader.mget([b"a"]) == [b"1"]


async def test_a_missing_script_raises_noscript_and_keeps_the_connection(
    reader: RedisPipe,
) -> None:
    with pytest.raises(NoScriptError):
        await reader.call("EVALSHA", "0" * 40, 0)
    assert await reader.mget([b"a"]) == [b"1"]


async def test_a_dead_server_raises_and_the_reader_reconnects_after_it_returns(
    reader: RedisPipe, own_redis: RedisServer
) -> None:
    assert await reader.mget([b"a"]) == [b"1"]
    own_redis.kill()
    with pytest.raises((RedisConnectionError, TimeoutError)):
        await reader.mget([b"a"])
    own_redis.start()
    assert await reader.mget([b"a"]) == [None]  # a fresh, empty server


async def test_a_database_number_in_the_url_is_selected(own_redis: RedisServer) -> None:
    async with redis.asyncio.from_url(own_redis.url.replace("/0", "/3")) as client:
        await client.set(b"k", b"db3")
    fast = RedisPipe(own_redis.url.replace("/0", "/3"), timeout=1.0)
    try:
        assert await fast.mget([b"k"]) == [b"db3"]
    finally:
        fast.close()

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import redis.asyncio

from tests.support.backends import make_client
from tests.support.background import BackgroundLoop
from tests.support.redis_cluster import RedisCluster, cluster_supported
from tests.support.redis_server import RedisServer
from tests.support.stack import Stack


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def cluster_nodes() -> Iterator[RedisCluster]:
    """A real 3-node Redis Cluster for the session, for store suites that run over it."""
    reason = cluster_supported()
    if reason is not None:
        pytest.fail(reason)
    nodes = RedisCluster()
    nodes.start()
    yield nodes
    nodes.stop()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of the test's own, for tests that kill or restart it."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def background() -> Iterator[BackgroundLoop]:
    with BackgroundLoop() as loop:
        yield loop


@pytest.fixture(params=["memory", "sqlite", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    """The cache backend: "memory", "sqlite" or a Redis URL; the same suite runs on each."""
    if request.param != "redis":
        return str(request.param)
    server: RedisServer = request.getfixturevalue("redis_server")
    with redis.Redis.from_url(server.url) as client:
        client.flushdb()
    return server.url


@pytest.fixture
def stack(background: BackgroundLoop, backend: str) -> Iterator[Stack]:
    gateway = Stack(background, backend)
    yield gateway
    gateway.close()


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    client = make_client(redis_server.url)
    await client.flushdb()
    yield client
    await client.aclose()

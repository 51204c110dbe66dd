"""The gateway on a real 3-node Redis Cluster: batches spread over hash slots read and write in
grouped round trips, limits and usage still hold."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from gateway.settings import hash_key
from tests.support.background import BackgroundLoop
from tests.support.redis_cluster import RedisCluster, cluster_supported
from tests.support.stack import Stack

SMALL = "text-embedding-3-small"
KEY = "sk-cluster-tenant"

pytestmark = pytest.mark.skipif(cluster_supported() is not None, reason=str(cluster_supported()))


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    nodes = RedisCluster()
    nodes.start()
    yield nodes
    nodes.stop()


@pytest.fixture
def stack(background: BackgroundLoop, cluster: RedisCluster) -> Iterator[Stack]:
    cluster.flush()
    keys = [
        {
            "name": "tenant",
            "sha256": hash_key(KEY),
            "limits": {"requests_per_second": 0.001, "requests_burst": 5},
        }
    ]
    gateway = Stack(background, cluster.url, {"auth": {"keys": keys}})
    yield gateway
    gateway.close()


def embed(stack: Stack, texts: list[str]) -> httpx.Response:
    response = httpx.post(
        f"{stack.base_url}/embeddings",
        json={"model": SMALL, "input": texts},
        headers={"x-api-key": KEY},
        timeout=10,
    )
    stack.drain()
    return response


def test_a_batch_across_hash_slots_is_cached_and_served_after_a_restart(stack: Stack) -> None:
    texts = [f"cluster text {i}" for i in range(50)]
    first = embed(stack, texts)
    stack.restart_gateway()
    second = embed(stack, texts)
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert second.json()["data"] == first.json()["data"]
    assert stack.upstream.inputs_embedded == 50


def test_limits_and_usage_work_on_a_cluster(stack: Stack) -> None:
    statuses = [embed(stack, ["limited"]).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    usage = httpx.get(f"{stack.base_url}/usage", headers={"x-api-key": KEY}).json()
    assert usage["keys"][0]["models"][0]["requests"] == 5

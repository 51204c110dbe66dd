"""Budget alerts end to end: two gateway instances on one Redis, spending one key's budget in
turns, post exactly one webhook per threshold to a real local receiver, and nothing secret."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from tests.support.background import BackgroundLoop
from tests.support.receiver import Receiver
from tests.support.redis_server import RedisServer
from tests.support.stack import Stack
from tests.test_budgets_api import ALICE, INTERNAL, budget_config, embed


@pytest.fixture
def receiver(background: BackgroundLoop) -> Iterator[Receiver]:
    server = Receiver()
    background.run(server.start())
    yield server
    background.run(server.stop())


@pytest.fixture
def two_instances(
    background: BackgroundLoop, redis_server: RedisServer, receiver: Receiver
) -> Iterator[tuple[Stack, Stack]]:
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()
    config = budget_config(extra={"alerts": {"webhooks": [receiver.url]}})
    first = Stack(background, redis_server.url, config)
    second = Stack(background, redis_server.url, config)
    yield first, second
    first.close()
    second.close()


def wait_for(receiver: Receiver, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(receiver.received) < count and time.monotonic() < deadline:
        time.sleep(0.02)


def test_two_instances_post_one_alert_per_threshold(
    two_instances: tuple[Stack, Stack], receiver: Receiver
) -> None:
    statuses = []
    for i in range(12):  # about 5 tokens each against a budget of 50 tokens: spent at ~10
        stack = two_instances[i % 2]
        statuses.append(embed(stack, ALICE, f"alert probe number {i}").status_code)
    for stack in two_instances:
        stack.drain()
    wait_for(receiver, 3)
    time.sleep(0.3)  # room for a duplicate to show up, were there one
    assert 429 in statuses
    assert [alert["threshold"] for alert in receiver.received] == [0.5, 0.8, 1.0]
    assert {alert["api_key_id"] for alert in receiver.received} == {"key_alice"}


def test_an_alert_carries_no_secret(two_instances: tuple[Stack, Stack], receiver: Receiver) -> None:
    embed(two_instances[0], ALICE, "word " * 30)
    two_instances[0].drain()
    wait_for(receiver, 1)
    raw = b"".join(receiver.raw)
    assert raw and receiver.received[0]["scope"] == "api_key"
    for secret in (ALICE, INTERNAL, "sk-upstream-openai-secret", "sk-upstream-nanogpt-secret"):
        assert secret.encode() not in raw

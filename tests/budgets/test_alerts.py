"""Budget alerts: thresholds in exact integers, claimed once per period across instances, and
delivered to a real HTTP receiver in the background with retries and a timeout."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.budgets import Account, Budget, Ledger
from gateway.budgets.alerts import AlertWatch, reached, to_ppm
from gateway.budgets.memory import MemoryLedger
from gateway.budgets.redis import RedisLedger
from gateway.budgets.sqlite import SqliteLedger
from gateway.embedded import Database
from gateway.webhooks import WebhookSender
from tests.budgets.conftest import NOW
from tests.support.backends import make_client
from tests.support.clock import FakeClock
from tests.support.receiver import Receiver
from tests.support.redis_server import RedisServer

LIMIT = 1_000_000


def account(now: float = NOW) -> Account:
    return Account.current("key", "alice", Budget(LIMIT, "daily"), now)


def test_thresholds_are_reached_at_exact_fractions() -> None:
    thresholds = [to_ppm(t) for t in (0.5, 0.8, 1.0)]
    assert reached(499_999, LIMIT, thresholds) == []
    assert reached(500_000, LIMIT, thresholds) == [500_000]
    assert reached(LIMIT + 1, LIMIT, thresholds) == thresholds


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def two_ledgers(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock, redis_server: RedisServer
) -> AsyncIterator[tuple[Ledger, Ledger]]:
    """Two instances' views of one store (memory: one process, so one ledger)."""
    if request.param == "memory":
        shared = MemoryLedger(clock)
        yield shared, shared
        return
    if request.param == "sqlite":
        a, b = SqliteLedger(Database(tmp_path), clock), SqliteLedger(Database(tmp_path), clock)
        yield a, b
        await a.close()
        await b.close()
        return
    clients = [make_client(redis_server.url) for _ in range(2)]
    await clients[0].flushdb()
    yield RedisLedger(clients[0]), RedisLedger(clients[1])
    for client in clients:
        await client.aclose()


async def test_two_instances_send_one_alert_per_threshold(
    two_ledgers: tuple[Ledger, Ledger], clock: FakeClock
) -> None:
    sent: list[dict[str, Any]] = []
    watches = [AlertWatch(ledger, sent.append, clock=clock) for ledger in two_ledgers]
    for used in (300_000, 600_000, 850_000, 900_000, 1_000_000, 1_200_000):
        for watch in watches:
            await watch.observe([account()], [used])
    assert [alert["threshold"] for alert in sent] == [0.5, 0.8, 1.0]


async def test_one_spend_crossing_two_thresholds_sends_two(
    two_ledgers: tuple[Ledger, Ledger], clock: FakeClock
) -> None:
    sent: list[dict[str, Any]] = []
    await AlertWatch(two_ledgers[0], sent.append, clock=clock).observe([account()], [850_000])
    assert [alert["threshold"] for alert in sent] == [0.5, 0.8]


async def test_a_new_period_alerts_again(
    two_ledgers: tuple[Ledger, Ledger], clock: FakeClock
) -> None:
    sent: list[dict[str, Any]] = []
    watch = AlertWatch(two_ledgers[0], sent.append, clock=clock)
    await watch.observe([account()], [600_000])
    await watch.observe([account(NOW + 86_400)], [600_000])
    assert [alert["period_start"] for alert in sent] == [
        "2037-11-28T00:00:00Z",
        "2037-11-29T00:00:00Z",
    ]


async def test_an_alert_says_whose_budget_and_how_much_without_secrets(clock: FakeClock) -> None:
    sent: list[dict[str, Any]] = []
    await AlertWatch(MemoryLedger(clock), sent.append, clock=clock).observe([account()], [800_000])
    assert sent[-1] | {"created_at": 0} == {
        "object": "organization.budget.alert",
        "created_at": 0,
        "scope": "api_key",
        "api_key_id": "alice",
        "threshold": 0.8,
        "period": "daily",
        "period_start": "2037-11-28T00:00:00Z",
        "resets_at": "2037-11-29T00:00:00Z",
        "budget_usd": "0.000001",
        "spent_usd": "0.0000008",
        "remaining_usd": "0.0000002",
    }


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


async def deliver(sender: WebhookSender, *payloads: dict[str, Any]) -> None:
    task = asyncio.get_running_loop().create_task(sender.run())
    for payload in payloads:
        sender.send(payload)
    await sender.join()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task  # the session closes its connections


async def test_a_webhook_posts_json(receiver: Receiver) -> None:
    sender = WebhookSender([receiver.url])
    await deliver(sender, {"threshold": 0.5})
    assert receiver.received == [{"threshold": 0.5}]
    assert sender.delivered == 1


async def test_a_failed_delivery_is_retried(receiver: Receiver) -> None:
    receiver.fail_next = 2
    sender = WebhookSender([receiver.url], max_attempts=3, base_delay=0.001)
    await deliver(sender, {"threshold": 0.8})
    assert receiver.received == [{"threshold": 0.8}] and receiver.attempts == 3


async def test_a_hung_receiver_costs_one_timeout_per_attempt(receiver: Receiver) -> None:
    receiver.hang_next = 1
    sender = WebhookSender([receiver.url], timeout=0.2, max_attempts=2, base_delay=0.001)
    await deliver(sender, {"threshold": 1.0})
    assert receiver.received == [{"threshold": 1.0}] and receiver.attempts == 2


async def test_delivery_gives_up_after_its_attempts(receiver: Receiver) -> None:
    receiver.fail_next = 5
    sender = WebhookSender([receiver.url], max_attempts=2, base_delay=0.001)
    await deliver(sender, {"threshold": 1.0})
    assert receiver.received == [] and sender.failed == 1


def test_sending_never_waits() -> None:
    sender = WebhookSender(["http://127.0.0.1:9/hook"], max_queued=1)
    sender.send({"a": 1})
    sender.send({"a": 2})  # queue full: dropped, not awaited

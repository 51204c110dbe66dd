"""One behaviour suite for every budget ledger (memory, SQLite, Redis, Redis Cluster), then
concurrency."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis.asyncio

from gateway.budgets import Account, Budget, Ledger
from gateway.budgets.money import usd_to_units
from gateway.budgets.redis import RedisLedger
from gateway.budgets.sqlite import SqliteLedger
from gateway.embedded import Database
from tests.budgets.conftest import NOW
from tests.support.backends import make_client
from tests.support.clock import FakeClock
from tests.support.redis_server import RedisServer


def account(owner: str = "alice", usd: str = "1", scope: str = "key") -> Account:
    return Account.current(scope, owner, Budget.of(usd, "daily"), NOW)  # type: ignore[arg-type]


async def test_a_reservation_that_fits_is_granted_and_counted(ledger: Ledger) -> None:
    granted = await ledger.reserve([account()], 400)
    assert granted.granted and granted.used == (400,)
    assert (await ledger.reserve([account()], 100)).used == (500,)


async def test_a_reservation_over_what_remains_is_refused_and_charges_nothing(
    ledger: Ledger,
) -> None:
    limit = usd_to_units("1")
    await ledger.reserve([account()], limit - 10)
    refused = await ledger.reserve([account()], 11)
    assert not refused.granted and refused.used == (limit - 10,)
    assert (await ledger.reserve([account()], 10)).granted  # exactly what remains fits


async def test_a_refusal_by_one_account_charges_none(ledger: Ledger) -> None:
    key, team = account("alice", "1"), account("team-a", "0.000001", "team")
    refused = await ledger.reserve([key, team], usd_to_units("0.000002"))
    assert not refused.granted
    assert (await ledger.reserve([key, team], 0)).used == (0, 0)


async def test_nothing_to_pay_is_granted_on_a_spent_budget(ledger: Ledger) -> None:
    spent = account(usd="0.000000000001")  # one unit
    await ledger.adjust([spent], 5)
    reply = await ledger.reserve([spent], 0)
    assert reply.granted and reply.used == (5,)


async def test_settling_moves_the_reservation_to_the_real_cost(ledger: Ledger) -> None:
    await ledger.reserve([account()], 1000)
    assert await ledger.adjust([account()], -300) == (700,)
    assert await ledger.adjust([account()], 50) == (750,)


async def test_counters_hold_64_bit_integers_exactly(ledger: Ledger) -> None:
    big = account(usd="9000000")  # beyond 2**53 units
    assert (await ledger.reserve([big], usd_to_units("8999999.999999999999"))).granted
    assert not (await ledger.reserve([big], 2)).granted
    reply = await ledger.reserve([big], 1)
    assert reply.granted and reply.used == (usd_to_units("9000000"),)


async def test_each_period_has_its_own_account(ledger: Ledger) -> None:
    today = account()
    tomorrow = Account.current("key", "alice", today.budget, NOW + 86_400)
    await ledger.reserve([today], usd_to_units("1"))
    assert (await ledger.reserve([tomorrow], usd_to_units("1"))).granted


async def test_a_marker_is_claimed_once(ledger: Ledger) -> None:
    expires = int(NOW) + 3600
    assert await ledger.claim("key:alice:0.5", expires)
    assert not await ledger.claim("key:alice:0.5", expires)
    assert await ledger.claim("key:alice:0.8", expires)


async def reserve_concurrently(ledgers: list[Ledger], cost: int, count: int) -> int:
    budget = account(usd="0.00001")  # 10**7 units: room for 10 requests of 10**6
    replies = await asyncio.gather(
        *(ledgers[i % len(ledgers)].reserve([budget], cost) for i in range(count))
    )
    return sum(reply.granted for reply in replies)


async def test_fifty_concurrent_reservations_on_redis_never_overshoot(
    redis_client: redis.asyncio.Redis, redis_server: RedisServer
) -> None:
    """Five clients (five instances' connections) race for a budget of ten requests."""
    clients = [make_client(redis_server.url) for _ in range(5)]
    try:
        granted = await reserve_concurrently([RedisLedger(c) for c in clients], 10**6, 50)
    finally:
        for client in clients:
            await client.aclose()
    assert granted == 10


async def test_fifty_concurrent_reservations_on_sqlite_never_overshoot(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Five connections to one file (five workers) race for a budget of ten requests."""
    databases = [Database(tmp_path) for _ in range(5)]
    for database in databases:  # opened one after another, as workers start
        database.call(lambda _: None)
    ledgers: list[Ledger] = [SqliteLedger(database, clock) for database in databases]
    try:
        assert await reserve_concurrently(ledgers, 10**6, 50) == 10
    finally:
        for ledger in ledgers:
            await ledger.close()


@pytest.mark.parametrize("cost", [0, 1])
async def test_a_reply_lists_one_used_value_per_account(ledger: Ledger, cost: int) -> None:
    reply = await ledger.reserve([account("a"), account("b", scope="team")], cost)
    assert reply.used == (cost, cost)

"""Budget enforcement of one request: reserve, refuse with OpenAI's quota error, settle, and
serve without a budget answer when the ledger's store is down."""

from __future__ import annotations

import pytest

from gateway.background import Background
from gateway.budgets import Budget, Ledger
from gateway.budgets.alerts import AlertWatch
from gateway.budgets.keeper import BudgetKeeper
from gateway.budgets.money import usd_to_units
from gateway.budgets.policies import Policies
from gateway.budgets.redis import RedisLedger
from gateway.errors import InsufficientQuota
from tests.support.backends import make_client
from tests.support.clock import FakeClock
from tests.support.redis_server import RedisServer

DOLLAR = usd_to_units(1)


def keeper(ledger: Ledger, clock: FakeClock, team_usd: str = "10") -> BudgetKeeper:
    policies = Policies(
        {("key", "alice"): Budget.of(1, "daily"), ("team", "red"): Budget.of(team_usd, "monthly")}
    )
    return BudgetKeeper(ledger, policies, clock=clock)


async def test_a_caller_without_a_budget_is_not_asked_about(
    ledger: Ledger, clock: FakeClock
) -> None:
    assert await keeper(ledger, clock).reserve("bob", "", DOLLAR * 100) is None


async def test_the_headers_show_the_tightest_budget_and_its_reset(
    ledger: Ledger, clock: FakeClock
) -> None:
    budgets = keeper(ledger, clock)
    hold = await budgets.reserve("alice", "red", DOLLAR // 4)
    assert hold is not None
    standing = await budgets.settle(hold, DOLLAR // 5)
    assert standing is not None
    assert standing.headers() == {
        "x-gateway-budget-remaining-usd": "0.8",
        "x-gateway-budget-reset": "2037-11-29T00:00:00Z",
    }


async def test_a_cost_over_what_remains_is_refused_with_openais_quota_error(
    ledger: Ledger, clock: FakeClock
) -> None:
    budgets = keeper(ledger, clock)
    with pytest.raises(InsufficientQuota) as refused:
        await budgets.reserve("alice", "red", DOLLAR + 1)
    error = refused.value
    assert (error.status, error.type) == (429, "insufficient_quota")
    assert error.code == "insufficient_quota"
    assert error.message.startswith("You exceeded your current quota, please check your plan")
    assert error.response_headers()["x-should-retry"] == "false"
    assert error.response_headers()["x-gateway-budget-remaining-usd"] == "1"


async def test_the_team_budget_refuses_too(ledger: Ledger, clock: FakeClock) -> None:
    with pytest.raises(InsufficientQuota, match="project's budget"):
        await keeper(ledger, clock, team_usd="0.5").reserve("alice", "red", DOLLAR)


async def test_a_released_reservation_gives_the_budget_back(
    ledger: Ledger, clock: FakeClock
) -> None:
    budgets = keeper(ledger, clock)
    hold = await budgets.reserve("alice", "red", DOLLAR)
    assert hold is not None
    await budgets.release(hold)
    assert await budgets.reserve("alice", "red", DOLLAR) is not None


async def test_a_spent_budget_still_serves_what_costs_nothing(
    ledger: Ledger, clock: FakeClock
) -> None:
    budgets = keeper(ledger, clock)
    hold = await budgets.reserve("alice", "", DOLLAR)
    assert hold is not None
    await budgets.settle(hold, DOLLAR + 5)  # the upstream reported more than estimated
    free = await budgets.reserve("alice", "", 0)
    assert free is not None and free.used == (DOLLAR + 5,)


async def test_the_budget_resets_at_the_period_boundary(ledger: Ledger, clock: FakeClock) -> None:
    budgets = keeper(ledger, clock)
    await budgets.reserve("alice", "", DOLLAR)
    with pytest.raises(InsufficientQuota):
        await budgets.reserve("alice", "", 1)
    clock.now = 2_143_065_600.0  # 2037-11-29T00:00:00Z
    assert await budgets.reserve("alice", "", DOLLAR) is not None


async def test_a_store_outage_serves_the_request_without_budget_headers(
    clock: FakeClock, own_redis: RedisServer
) -> None:
    client = make_client(own_redis.url)
    budgets = keeper(RedisLedger(client), clock)
    own_redis.kill()
    hold = await budgets.reserve("alice", "red", DOLLAR * 5)
    assert hold is not None and await budgets.settle(hold, DOLLAR * 5) is None
    await client.aclose()


async def test_a_refusal_sends_the_budget_spent_alert(ledger: Ledger, clock: FakeClock) -> None:
    sent: list[dict[str, object]] = []
    background = Background()
    budgets = BudgetKeeper(
        ledger,
        Policies({("key", "alice"): Budget.of(1, "daily")}),
        alerts=AlertWatch(ledger, sent.append, clock=clock),
        spawn=background.spawn,
        clock=clock,
    )
    hold = await budgets.reserve("alice", "", DOLLAR // 10 * 9)
    assert hold is not None
    await budgets.settle(hold, DOLLAR // 10 * 9)
    with pytest.raises(InsufficientQuota):
        await budgets.reserve("alice", "", DOLLAR // 5)
    await background.drain()
    assert [alert["threshold"] for alert in sent] == [0.5, 0.8, 1.0]
    assert sent[-1]["spent_usd"] == "0.9"  # what was spent, not what was asked for

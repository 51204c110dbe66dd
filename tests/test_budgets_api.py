"""Budgets end to end, on the embedded SQLite store and on Redis: the quota refusal before any
upstream call, hits served on a spent budget, 50 concurrent misses against a small budget,
the response headers, the gauge, and teams as projects through the admin API."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import openai
import orjson
import pytest

from gateway.settings import hash_key
from tests.support.background import BackgroundLoop
from tests.support.stack import Stack

SMALL = "text-embedding-3-small"  # $0.02 per 1M tokens: 20,000 units per token
ALICE, BOB, INTERNAL = "sk-alice-budget-1", "sk-bob-budget-2", "sk-internal-budget"
UNITS = Decimal(10) ** 12
BUDGET_USD = "0.000001"  # 10**6 units: 50 tokens of SMALL


def budget_config(
    alice_usd: str = BUDGET_USD, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "auth": {
            "keys": [
                {
                    "name": "alice",
                    "id": "key_alice",
                    "sha256": hash_key(ALICE),
                    "team": "search",
                    "budget": {"usd": float(alice_usd), "period": "monthly"},
                },
                {"name": "bob", "id": "key_bob", "sha256": hash_key(BOB), "team": "search"},
            ],
            "internal_token": INTERNAL,
        },
        **(extra or {}),
    }


@pytest.fixture
def budgeted(background: BackgroundLoop, backend: str) -> Iterator[Stack]:
    # Redis answers within its timeout even on a busy machine: these tests are about the ledger,
    # not its fallback (a timed-out ledger call degrades to this instance's own count).
    stack = Stack(background, backend, budget_config(extra={"cache": {"timeout": 2.0}}))
    yield stack
    stack.close()


def embed(stack: Stack, key: str, inputs: str | list[str]) -> httpx.Response:
    return httpx.post(
        f"{stack.base_url}/embeddings",
        json={"model": SMALL, "input": inputs},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )


def remaining(response: httpx.Response) -> Decimal:
    return Decimal(response.headers["x-gateway-budget-remaining-usd"])


def test_a_budgeted_key_sees_what_remains_and_when_it_resets(budgeted: Stack) -> None:
    response = embed(budgeted, ALICE, "hello world")
    assert response.status_code == 200
    cost = Decimal(response.headers["x-gateway-cost-usd"])
    assert cost > 0 and remaining(response) == Decimal(BUDGET_USD) - cost
    assert re.fullmatch(r"\d{4}-\d\d-01T00:00:00Z", response.headers["x-gateway-budget-reset"])


def test_a_key_without_a_budget_gets_no_budget_headers(budgeted: Stack) -> None:
    assert "x-gateway-budget-remaining-usd" not in embed(budgeted, BOB, "hello").headers


def test_misses_over_the_budget_are_refused_before_any_upstream_call(budgeted: Stack) -> None:
    calls = len(budgeted.upstream.requests)
    response = embed(budgeted, ALICE, "a text that costs a few tokens")
    assert response.status_code == 200
    over = embed(budgeted, ALICE, ["word " * 60])  # 60 tokens: more than the 50 allowed
    assert over.status_code == 429
    error = over.json()["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
    assert error["message"].startswith(
        "You exceeded your current quota, please check your plan and billing details."
    )
    assert over.headers["x-should-retry"] == "false"
    assert len(budgeted.upstream.requests) == calls + 1


def test_the_openai_client_raises_its_quota_error_without_retrying(budgeted: Stack) -> None:
    client = openai.OpenAI(base_url=budgeted.base_url, api_key=ALICE, max_retries=2)
    with pytest.raises(openai.RateLimitError) as refused:
        client.embeddings.create(model=SMALL, input="word " * 60)
    assert refused.value.code == "insufficient_quota"
    assert len(budgeted.upstream.requests) == 0


def test_hits_are_served_while_the_budget_is_spent(budgeted: Stack) -> None:
    texts = [f"spend {i} " * 4 for i in range(5)]
    served = [t for t in texts if embed(budgeted, ALICE, t).status_code == 200]
    assert embed(budgeted, ALICE, "word " * 40).status_code == 429
    budgeted.drain()
    calls = len(budgeted.upstream.requests)
    again = embed(budgeted, ALICE, served)
    assert again.status_code == 200 and again.headers["x-cache"] == "HIT"
    assert "x-gateway-budget-remaining-usd" in again.headers
    assert len(budgeted.upstream.requests) == calls


def test_a_teammates_spend_counts_against_the_team_budget(
    background: BackgroundLoop, backend: str
) -> None:
    teams = {"teams": {"search": {"budget": {"usd": 0.0000004, "period": "daily"}}}}
    stack = Stack(background, backend, budget_config(extra=teams))
    try:
        assert embed(stack, BOB, "word " * 15).status_code == 200  # 15 of 20 tokens
        refused = embed(stack, ALICE, "word " * 10)
        assert refused.status_code == 429 and "project's budget" in refused.text
    finally:
        stack.close()


async def fifty_misses(stack: Stack) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30) as client:
        return await asyncio.gather(
            *(
                client.post(
                    f"{stack.base_url}/embeddings",
                    json={"model": SMALL, "input": f"concurrent input number {i}"},
                    headers={"Authorization": f"Bearer {ALICE}"},
                )
                for i in range(50)
            )
        )


def test_fifty_concurrent_misses_overshoot_by_at_most_one_request(budgeted: Stack) -> None:
    responses = asyncio.run(fifty_misses(budgeted))
    served = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(served) + len(refused) == 50 and served and refused
    spent = sum(Decimal(r.headers["x-gateway-cost-usd"]) for r in served)
    one_request = max(Decimal(r.headers["x-gateway-cost-usd"]) for r in served)
    assert spent <= Decimal(BUDGET_USD) + one_request
    assert len(budgeted.upstream.requests) <= len(served)


def test_the_gauge_agrees_with_the_headers(budgeted: Stack) -> None:
    response = embed(budgeted, ALICE, "agree with the metrics")
    metrics = httpx.get(f"{budgeted.url}/metrics", timeout=10).text
    used = re.search(r'gateway_budget_used_usd\{owner="key_alice",scope="key"\} (\S+)', metrics)
    limit = re.search(r'gateway_budget_limit_usd\{owner="key_alice",scope="key"\} (\S+)', metrics)
    assert used and limit
    assert float(limit[1]) - float(used[1]) == pytest.approx(float(remaining(response)))


def admin(stack: Stack, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(
        method,
        f"{stack.url}/v1/organization/projects{path}",
        json=body,
        headers={"Authorization": f"Bearer {INTERNAL}"},
        timeout=10,
    )


def test_teams_appear_as_projects_and_take_a_budget(budgeted: Stack) -> None:
    listed = admin(budgeted, "GET", "").json()
    assert [p["id"] for p in listed["data"]] == ["search"]
    assert listed["data"][0]["source"] == "config" and listed["data"][0]["budget"] is None
    updated = admin(budgeted, "POST", "/search", {"budget": {"usd": 0.0000002, "period": "daily"}})
    assert updated.json()["budget"] == {"usd": "0.0000002", "period": "daily"}
    refused = embed(budgeted, BOB, "word " * 20)
    assert refused.status_code == 429 and "project's budget" in refused.text


def test_a_project_created_at_runtime_holds_a_budget(budgeted: Stack) -> None:
    created = admin(budgeted, "POST", "", {"name": "ads", "budget": {"usd": 5}})
    assert created.status_code == 200
    project = created.json()
    assert (project["object"], project["id"], project["budget"]) == (
        "organization.project",
        "ads",
        {"usd": "5", "period": "monthly"},
    )
    assert project["budget_usage"]["remaining_usd"] == "5"
    assert admin(budgeted, "GET", "/ads").json()["name"] == "ads"
    assert admin(budgeted, "POST", "", {"name": "ads"}).status_code == 400
    assert admin(budgeted, "GET", "/nope").status_code == 404


@pytest.mark.parametrize(
    "body",
    [{"budget": {"usd": -1}}, {"budget": {"usd": 1, "period": "yearly"}}, {"budget": "lots"}],
)
def test_a_bad_budget_is_an_openai_style_400(budgeted: Stack, body: dict[str, Any]) -> None:
    response = admin(budgeted, "POST", "/search", body)
    assert response.status_code == 400 and set(response.json()) == {"error"}


def test_the_projects_api_needs_the_internal_token(budgeted: Stack) -> None:
    response = httpx.get(
        f"{budgeted.url}/v1/organization/projects",
        headers={"Authorization": f"Bearer {ALICE}"},
        timeout=10,
    )
    assert response.status_code == 401


def test_a_project_change_needs_a_body(budgeted: Stack) -> None:
    response = httpx.post(
        f"{budgeted.url}/v1/organization/projects/search",
        headers={"Authorization": f"Bearer {INTERNAL}"},
        timeout=10,
    )
    assert response.status_code == 400


def test_every_projects_call_is_audit_logged_without_the_token(
    budgeted: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="gateway.audit"):
        admin(budgeted, "POST", "/search", {"budget": {"usd": 1, "period": "daily"}})
        httpx.get(f"{budgeted.url}/v1/organization/projects")  # refused: logged too
    lines = [orjson.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.audit"]
    assert [(line["audit"], line["project_id"], line["status"]) for line in lines] == [
        ("projects.update", "search", 200),
        ("projects.list", None, 401),
    ]
    assert [line["actor"]["credential"] for line in lines] == ["internal token", "refused"]
    assert not any(INTERNAL in r.getMessage() for r in caplog.records)

"""Cost, savings and usage: /metrics, /v1/usage and the response headers agree exactly."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.settings import hash_key
from tests.support.background import BackgroundLoop
from tests.support.stack import Stack

SMALL = "text-embedding-3-small"
FOUR_TOKENS = "one two three four"
PRICE = 0.02 / 1_000_000
ALICE, BOB, INTERNAL = "sk-alice-accounting", "sk-bob-accounting", "sk-internal-accounting"


@pytest.fixture
def gateway(background: BackgroundLoop, backend: str) -> Iterator[Stack]:
    keys = [
        {"name": "alice", "sha256": hash_key(ALICE), "team": "search"},
        {"name": "bob", "sha256": hash_key(BOB), "team": "ads"},
    ]
    stack = Stack(background, backend, {"auth": {"keys": keys, "internal_token": INTERNAL}})
    yield stack
    stack.close()


def embed(stack: Stack, key: str, text: str | Sequence[str] = FOUR_TOKENS) -> httpx.Response:
    response = httpx.post(
        f"{stack.base_url}/embeddings",
        json={"model": SMALL, "input": text},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    stack.drain()
    return response


def sample(stack: Stack, name: str, **labels: str) -> float:
    """The sum over every series of ``name`` that carries ``labels`` (others may be seeded 0)."""
    text = httpx.get(f"{stack.url}/metrics").text
    return sum(
        float(s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def usage(stack: Stack, key: str) -> dict[str, Any]:
    response = httpx.get(f"{stack.base_url}/usage", headers={"Authorization": f"Bearer {key}"})
    body: dict[str, Any] = response.json()
    return body


def test_a_miss_adds_its_upstream_cost_and_a_hit_adds_the_same_to_savings(gateway: Stack) -> None:
    miss = embed(gateway, ALICE)
    labels = {"model": SMALL, "key": "alice", "team": "search"}
    assert sample(gateway, "gateway_cost_usd_total", **labels) == pytest.approx(4 * PRICE)
    assert miss.headers["x-gateway-cost-usd"] == "0.00000008"
    hit = embed(gateway, ALICE)
    assert sample(gateway, "gateway_cost_saved_usd_total", **labels) == pytest.approx(4 * PRICE)
    assert (hit.headers["x-gateway-cost-usd"], hit.headers["x-gateway-saved-usd"]) == (
        "0",
        "0.00000008",
    )


def test_inputs_are_counted_by_result(gateway: Stack) -> None:
    embed(gateway, ALICE, ["a", "b"])
    embed(gateway, ALICE, ["a", "c", "c"])
    assert sample(gateway, "gateway_embedding_inputs_total", model=SMALL, result="hit") == 1
    assert sample(gateway, "gateway_embedding_inputs_total", model=SMALL, result="miss") == 3
    assert (
        sample(gateway, "gateway_embedding_inputs_total", model=SMALL, result="deduplicated") == 1
    )


def test_tokens_are_counted_as_hit_or_miss_per_key(gateway: Stack) -> None:
    embed(gateway, ALICE)
    embed(gateway, BOB)
    assert sample(gateway, "gateway_tokens_total", key="alice", result="miss") == 4
    assert sample(gateway, "gateway_tokens_total", key="bob", result="hit") == 4


def test_upstream_calls_are_counted_per_provider(gateway: Stack) -> None:
    embed(gateway, ALICE, ["a", "b"])
    labels = {"provider": "openai", "model": SMALL}
    assert sample(gateway, "gateway_upstream_requests_total", status="200", **labels) == 1
    assert sample(gateway, "gateway_upstream_inputs_total", **labels) == 2


def test_rate_limited_requests_are_counted(background: BackgroundLoop) -> None:
    keys = [
        {
            "name": "alice",
            "sha256": hash_key(ALICE),
            "limits": {"requests_burst": 1, "requests_per_second": 0.001},
        }
    ]
    stack = Stack(background, "", {"auth": {"keys": keys}})
    try:
        embed(stack, ALICE)
        assert embed(stack, ALICE).status_code == 429
        assert sample(stack, "gateway_rate_limited_total", scope="key", key="alice") == 1
    finally:
        stack.close()


def test_requests_are_counted_by_route_and_status(gateway: Stack) -> None:
    embed(gateway, ALICE)
    embed(gateway, "sk-wrong")
    route = "/v1/embeddings"
    assert sample(gateway, "gateway_requests_total", route=route, status="200") == 1
    assert sample(gateway, "gateway_requests_total", route=route, status="401") == 1


def test_a_key_sees_only_its_own_usage(gateway: Stack) -> None:
    embed(gateway, ALICE)
    embed(gateway, BOB)
    body = usage(gateway, ALICE)
    assert [k["key"] for k in body["keys"]] == ["alice"]
    (row,) = body["keys"][0]["models"]
    assert row["requests"] == 1
    assert (row["tokens"], row["billed_tokens"]) == (4, 4)
    assert row["cost_usd"] == pytest.approx(4 * PRICE)
    assert "teams" not in body


def test_the_internal_token_sees_every_key_and_team(gateway: Stack) -> None:
    embed(gateway, ALICE)
    embed(gateway, BOB)
    body = usage(gateway, INTERNAL)
    assert [k["key"] for k in body["keys"]] == ["alice", "bob"]
    assert [t["team"] for t in body["teams"]] == ["ads", "search"]
    bob = body["keys"][1]["models"][0]
    assert (bob["cached_inputs"], bob["saved_usd"]) == (1, pytest.approx(4 * PRICE))


def test_metrics_usage_and_headers_agree(gateway: Stack) -> None:
    responses = [
        embed(gateway, key, text)
        for key, text in [(ALICE, ["x y", "z"]), (BOB, ["x y", "w v u"]), (ALICE, "z")]
    ]
    spent = sum(float(r.headers["x-gateway-cost-usd"]) for r in responses)
    saved = sum(float(r.headers["x-gateway-saved-usd"]) for r in responses)
    rows = [m for k in usage(gateway, INTERNAL)["keys"] for m in k["models"]]
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(spent)
    assert sum(r["saved_usd"] for r in rows) == pytest.approx(saved)
    metric_spent = sum(sample(gateway, "gateway_cost_usd_total", key=k) for k in ("alice", "bob"))
    assert metric_spent == pytest.approx(spent)


def test_metrics_can_require_the_internal_token(background: BackgroundLoop) -> None:
    config = {"auth": {"internal_token": INTERNAL}, "metrics": {"require_internal_token": True}}
    stack = Stack(background, "", config)
    try:
        assert httpx.get(f"{stack.url}/metrics").status_code == 401
        headers = {"Authorization": f"Bearer {INTERNAL}"}
        assert httpx.get(f"{stack.url}/metrics", headers=headers).status_code == 200
    finally:
        stack.close()

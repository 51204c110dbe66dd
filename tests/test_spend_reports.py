"""The organization Usage and Costs endpoints end to end: OpenAI's published shapes (checked
by schema and by OpenAI's own SDK), a key sees only itself, CSV rows equal the JSON rows, and
the figures agree with the response headers."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from openapi_schema_validator import OAS30Validator

from gateway.history.report import cell
from tests.history.openai_schemas import COSTS_RESULT, USAGE_EMBEDDINGS_RESULT, usage_response
from tests.support.background import BackgroundLoop
from tests.support.stack import Stack
from tests.test_budgets_api import ALICE, BOB, INTERNAL, SMALL, budget_config, embed

DAY = 86_400


@pytest.fixture
def traffic(
    background: BackgroundLoop, backend: str
) -> Iterator[tuple[Stack, list[httpx.Response]]]:
    stack = Stack(background, backend, budget_config("5"))
    answers = [
        embed(stack, ALICE, ["first text", "second text"]),
        embed(stack, ALICE, ["first text", "third text"]),  # one hit
        embed(stack, BOB, "bob's own text"),
    ]
    assert all(r.status_code == 200 for r in answers)
    yield stack, answers
    stack.close()


def today() -> int:
    return int(time.time()) // DAY * DAY


def report(stack: Stack, path: str, key: str = INTERNAL, **params: Any) -> httpx.Response:
    return httpx.get(
        f"{stack.url}/v1/organization/{path}",
        params={"start_time": today(), **params},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )


def results(page: dict[str, Any]) -> list[dict[str, Any]]:
    return [result for bucket in page["data"] for result in bucket["results"]]


def test_usage_matches_openais_schema_and_counts_every_token(
    traffic: tuple[Stack, list[httpx.Response]],
) -> None:
    stack, answers = traffic
    page = report(stack, "usage/embeddings", group_by=["api_key_id"]).json()
    OAS30Validator(usage_response(USAGE_EMBEDDINGS_RESULT)).validate(page)
    by_key = {r["api_key_id"]: r for r in results(page)}
    tokens = [a.json()["usage"]["prompt_tokens"] for a in answers]
    assert by_key["key_alice"]["input_tokens"] == tokens[0] + tokens[1]
    assert (by_key["key_alice"]["num_model_requests"], by_key["key_alice"]["cached_inputs"]) == (
        2,
        1,
    )
    assert by_key["key_alice"]["saved_usd"] == pytest.approx(
        float(Decimal(answers[1].headers["x-gateway-saved-usd"]))
    )


def test_costs_match_openais_schema_and_the_cost_headers(
    traffic: tuple[Stack, list[httpx.Response]],
) -> None:
    stack, answers = traffic
    page = report(stack, "costs", group_by=["project_id", "line_item"]).json()
    OAS30Validator(usage_response(COSTS_RESULT)).validate(page)
    [result] = results(page)
    assert (result["project_id"], result["line_item"]) == ("search", f"{SMALL}, input")
    spent = sum(Decimal(a.headers["x-gateway-cost-usd"]) for a in answers)
    assert result["amount"] == {"value": pytest.approx(float(spent)), "currency": "usd"}


def test_openais_sdk_reads_both_reports(traffic: tuple[Stack, list[httpx.Response]]) -> None:
    stack, _ = traffic
    client = openai.OpenAI(base_url=stack.base_url, api_key=INTERNAL, admin_api_key=INTERNAL)
    usage = client.admin.organization.usage.embeddings(start_time=today(), group_by=["model"])
    assert usage.data[0].results[0].model == SMALL  # type: ignore[union-attr]
    costs = client.admin.organization.usage.costs(start_time=today(), group_by=["project_id"])
    assert costs.data[0].results[0].project_id == "search"


def test_a_key_sees_only_its_own_usage(traffic: tuple[Stack, list[httpx.Response]]) -> None:
    stack, _ = traffic
    page = report(stack, "usage/embeddings", key=BOB, group_by="api_key_id").json()
    assert {r["api_key_id"] for r in results(page)} == {"key_bob"}
    asked_for_alice = report(
        stack, "costs", key=BOB, api_key_ids="key_alice", group_by="api_key_id"
    )
    assert results(asked_for_alice.json()) == []


def test_the_reports_need_a_key(traffic: tuple[Stack, list[httpx.Response]]) -> None:
    stack, _ = traffic
    assert httpx.get(f"{stack.url}/v1/organization/costs?start_time=0").status_code == 401


@pytest.mark.parametrize("path", ["usage/embeddings", "costs"])
@pytest.mark.parametrize("ask", ["query", "accept"])
def test_csv_rows_equal_the_json_rows(
    traffic: tuple[Stack, list[httpx.Response]], path: str, ask: str
) -> None:
    stack, _ = traffic
    params = {"group_by": "project_id,api_key_id"}
    as_json = report(stack, path, **params).json()
    if ask == "query":
        as_csv = report(stack, path, format="csv", **params)
    else:
        as_csv = httpx.get(
            f"{stack.url}/v1/organization/{path}",
            params={"start_time": today(), **params},
            headers={"Authorization": f"Bearer {INTERNAL}", "Accept": "text/csv"},
        )
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    expected = []
    for bucket in as_json["data"]:
        for result in bucket["results"]:
            flat = {"start_time": bucket["start_time"], "end_time": bucket["end_time"], **result}
            amount = flat.pop("amount", None)
            if amount:
                flat |= {"amount_value": amount["value"], "amount_currency": amount["currency"]}
            flat.pop("object")
            expected.append({k: cell(v) for k, v in flat.items()})
    assert [{k: row[k] for k in expected[0]} for row in rows] == expected
    assert len(rows) == 2


def test_a_bad_query_is_an_openai_style_400(traffic: tuple[Stack, list[httpx.Response]]) -> None:
    stack, _ = traffic
    response = report(stack, "costs", bucket_width="1h")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "bucket_width"

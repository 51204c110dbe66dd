"""A key's budget through the keys admin API: set when the key is made or changed, shown with
what is left of it, and enforced on the key's next request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.background import BackgroundLoop
from tests.support.stack import Stack
from tests.test_budgets_api import ALICE, BOB, INTERNAL, budget_config, embed

KEYS = "/v1/organization/api_keys"


@pytest.fixture
def gateway(background: BackgroundLoop, backend: str) -> Iterator[Stack]:
    stack = Stack(background, backend, budget_config())
    yield stack
    stack.close()


def admin(stack: Stack, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(
        method,
        f"{stack.url}{KEYS}{path}",
        json=body,
        headers={"Authorization": f"Bearer {INTERNAL}"},
        timeout=10,
    )


def test_a_key_made_with_a_budget_is_held_to_it(gateway: Stack) -> None:
    made = admin(gateway, "POST", "", {"name": "etl", "budget": {"usd": 0.0000002}})
    assert made.status_code == 201
    key = made.json()
    assert key["budget"] == {"usd": "0.0000002", "period": "monthly"}
    assert key["budget_usage"]["remaining_usd"] == "0.0000002"
    refused = embed(gateway, key["value"], "word " * 20)  # 20 tokens: twice the budget
    assert refused.status_code == 429 and "API key's budget" in refused.text


def test_a_budget_set_on_a_key_applies_to_its_next_request(gateway: Stack) -> None:
    key = admin(gateway, "POST", "", {"name": "etl"}).json()
    assert key["budget"] is None and key["budget_usage"] is None
    assert embed(gateway, key["value"], "word " * 20).status_code == 200
    changed = admin(gateway, "POST", f"/{key['id']}", {"budget": {"usd": 0.0000001}})
    assert changed.status_code == 200 and changed.json()["budget"]["usd"] == "0.0000001"
    assert embed(gateway, key["value"], "other " * 20).status_code == 429
    cleared = admin(gateway, "POST", f"/{key['id']}", {"budget": None})
    assert cleared.json()["budget"] is None
    assert embed(gateway, key["value"], "other " * 20).status_code == 200


def test_a_config_keys_budget_shows_in_the_list_with_its_spend(gateway: Stack) -> None:
    embed(gateway, ALICE, "hello world")
    listed = admin(gateway, "GET", "").json()["data"]
    alice = next(key for key in listed if key["name"] == "alice")
    assert alice["budget"] == {"usd": "0.000001", "period": "monthly"}
    assert alice["budget_usage"]["spent_usd"] != "0"


def test_a_bad_budget_changes_nothing(gateway: Stack) -> None:
    key = admin(gateway, "POST", "", {"name": "etl"}).json()
    response = admin(gateway, "POST", f"/{key['id']}", {"name": "new", "budget": {"usd": -5}})
    assert response.status_code == 400
    assert admin(gateway, "GET", f"/{key['id']}").json()["name"] == "etl"


def test_a_config_key_takes_a_budget_but_no_other_change(gateway: Stack) -> None:
    listed = admin(gateway, "GET", "").json()["data"]
    bob = next(key for key in listed if key["name"] == "bob")
    changed = admin(gateway, "POST", f"/{bob['id']}", {"budget": {"usd": 0.0000001}})
    assert changed.status_code == 200 and changed.json()["budget"]["usd"] == "0.0000001"
    assert embed(gateway, BOB, "word " * 20).status_code == 429
    renamed = admin(gateway, "POST", f"/{bob['id']}", {"name": "robert", "budget": None})
    assert renamed.status_code >= 400


def test_a_team_named_by_a_runtime_key_is_a_project_that_takes_a_budget(gateway: Stack) -> None:
    key = admin(gateway, "POST", "", {"name": "etl", "team": "data"}).json()
    project = httpx.post(
        f"{gateway.url}/v1/organization/projects/data",
        json={"budget": {"usd": 0.0000001, "period": "daily"}},
        headers={"Authorization": f"Bearer {INTERNAL}"},
        timeout=10,
    )
    assert project.status_code == 200 and project.json()["budget"]["period"] == "daily"
    assert embed(gateway, key["value"], "word " * 20).status_code == 429

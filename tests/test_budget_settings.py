"""Budgets, alerts and history in settings: typed, checked, and naming the bad key's path."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.budgets import Budget
from gateway.settings import SettingsError, parse
from gateway.spending import configured_budgets

PROVIDERS = {"p": {"base_url": "http://upstream"}}
KEY = {"name": "ci", "id": "key_ci", "sha256": "a" * 64, "team": "search"}


def settings(**sections: Any) -> dict[str, Any]:
    return {"providers": PROVIDERS, **sections}


def error_for(data: dict[str, Any]) -> str:
    with pytest.raises(SettingsError) as raised:
        parse(data)
    return str(raised.value)


def test_keys_and_teams_take_budgets_by_period() -> None:
    parsed = parse(
        settings(
            auth={"keys": [KEY | {"budget": {"usd": 50, "period": "weekly"}}]},
            teams={"search": {"budget": {"usd": 0.1}}},
        )
    )
    assert configured_budgets(parsed) == {
        ("key", "key_ci"): Budget.of(50, "weekly"),
        ("team", "search"): Budget.of("0.1", "monthly"),
    }


def test_a_negative_budget_names_its_path() -> None:
    message = error_for(settings(auth={"keys": [KEY | {"budget": {"usd": -1}}]}))
    assert message == "auth.keys[0].budget.usd: must be a number >= 0"


def test_an_unknown_period_is_refused() -> None:
    message = error_for(settings(teams={"search": {"budget": {"usd": 1, "period": "yearly"}}}))
    assert message == "teams.search.budget.period: must be one of daily, weekly, monthly"


def test_alert_thresholds_are_fractions_of_the_budget() -> None:
    assert parse(settings()).alerts.thresholds == (0.5, 0.8, 1.0)
    message = error_for(settings(alerts={"thresholds": [0.5, 0]}))
    assert message.startswith("alerts.thresholds: must be fractions")


def test_the_budget_store_on_redis_needs_a_redis_url() -> None:
    message = error_for(settings(stores={"budgets": "redis"}))
    assert message == "stores.budgets: redis needs cache.redis_url (or REDIS_URL)"

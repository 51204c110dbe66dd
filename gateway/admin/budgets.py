"""Budgets as the admin API reads and writes them, for keys and for teams (projects): parse the
`budget` member of a request body, store it in the budget book, and show an owner's budget with
what is left of it this period."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from gateway.budgets import Account, Budget, Ledger, Scope
from gateway.budgets.book import BudgetBook, budget_json
from gateway.budgets.keeper import standing
from gateway.budgets.money import units_to_usd_text, usd_to_units
from gateway.budgets.period import PERIODS, rfc3339
from gateway.budgets.policies import Policies
from gateway.errors import InvalidRequest

MAX_USD = 9_000_000
SHAPE = '\'budget\' must be {"usd": <number>, "period": "monthly" (or daily, weekly)} or null.'


def parse_budget(raw: Any) -> Budget | None:
    """`{"usd": 50, "period": "monthly"}` (period optional, monthly), or null: no budget."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or "usd" not in raw or set(raw) - {"usd", "period"}:
        raise InvalidRequest(SHAPE, param="budget")
    usd, period = raw["usd"], raw.get("period", "monthly")
    if isinstance(usd, bool) or not isinstance(usd, int | float) or not math.isfinite(usd):
        raise InvalidRequest("'budget.usd' must be a number of dollars.", param="budget.usd")
    units = usd_to_units(usd)
    if not 0 <= units <= usd_to_units(MAX_USD):
        raise InvalidRequest(f"'budget.usd' must be between 0 and {MAX_USD}.", param="budget.usd")
    if period not in PERIODS:
        raise InvalidRequest(
            "'budget.period' must be one of daily, weekly, monthly.", param="budget.period"
        )
    return Budget(units, period)


class BudgetAdmin:
    def __init__(
        self,
        book: BudgetBook,
        policies: Policies,
        ledger: Ledger,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._book = book
        self._policies = policies
        self._ledger = ledger
        self._clock = clock

    async def apply(self, scope: Scope, owner: str, body: dict[str, Any]) -> None:
        """Sets the owner's budget when the body has a `budget` member (null removes it)."""
        if "budget" in body:
            await self._book.set_budget(scope, owner, parse_budget(body["budget"]))

    async def fields(self, scope: Scope, owner: str) -> dict[str, Any]:
        """`budget` and `budget_usage` (spent, remaining, reset of the current period)."""
        budget = self._policies.budget(scope, owner)
        if budget is None:
            return {"budget": None, "budget_usage": None}
        account = Account.current(scope, owner, budget, self._clock())
        used = (await self._ledger.reserve([account], 0)).used
        left = standing([account], used)
        usage = {
            "spent_usd": units_to_usd_text(used[0]),
            "remaining_usd": units_to_usd_text(max(0, left.remaining)),
            "resets_at": rfc3339(left.resets_at),
        }
        return {"budget": budget_json(budget), "budget_usage": usage}

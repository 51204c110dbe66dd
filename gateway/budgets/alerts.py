"""Budget alerts: which thresholds a spend has reached (pure), claimed once per threshold per
period across every instance through the ledger, then handed to a sender that delivers in the
background. A payload names the budget's owner and its figures, never a secret."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from gateway.budgets import Account, Ledger
from gateway.budgets.money import units_to_usd_text
from gateway.budgets.period import rfc3339
from gateway.store import StoreUnavailable

log = logging.getLogger("gateway.budgets")

DEFAULT_THRESHOLDS = (0.5, 0.8, 1.0)
PPM = 1_000_000
MAX_REMEMBERED = 100_000

Notify = Callable[[dict[str, Any]], None]


def to_ppm(fraction: float) -> int:
    return int(Decimal(str(fraction)) * PPM)


def reached(used: int, limit: int, thresholds_ppm: Sequence[int]) -> list[int]:
    """The thresholds (parts per million of the limit) that `used` has reached, in exact ints."""
    return [t for t in thresholds_ppm if used * PPM >= t * limit]


def payload(account: Account, threshold_ppm: int, used: int, now: float) -> dict[str, Any]:
    owner = "api_key_id" if account.scope == "key" else "project_id"
    return {
        "object": "organization.budget.alert",
        "created_at": int(now),
        "scope": "api_key" if account.scope == "key" else "project",
        owner: account.owner,
        "threshold": float(Decimal(threshold_ppm) / PPM),
        "period": account.window.period,
        "period_start": rfc3339(account.window.start),
        "resets_at": rfc3339(account.window.end),
        "budget_usd": units_to_usd_text(account.budget.limit),
        "spent_usd": units_to_usd_text(used),
        "remaining_usd": units_to_usd_text(max(0, account.budget.limit - used)),
    }


class AlertWatch:
    """Asks the ledger to claim each threshold a spend reaches; the one claim that wins, on
    whichever instance, sends the alert. Markers already settled here are remembered, so a
    spend past a threshold costs no further round trip."""

    def __init__(
        self,
        ledger: Ledger,
        notify: Notify,
        thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ledger = ledger
        self._notify = notify
        self._thresholds = sorted({to_ppm(t) for t in thresholds})
        self._clock = clock
        self._settled: set[str] = set()

    async def observe(
        self,
        accounts: Sequence[Account],
        used: Sequence[int],
        refused: Sequence[bool] = (),
    ) -> None:
        """`refused`: per account, whether it just refused a request. A budget that refuses is
        spent as far as its owner is concerned, so every threshold up to 1.0 counts as reached
        even though the spend itself stopped short of the limit."""
        flags = list(refused) or [False] * len(accounts)
        for account, spent, spent_out in zip(accounts, used, flags, strict=True):
            level = max(spent, account.budget.limit) if spent_out else spent
            for threshold in reached(level, account.budget.limit, self._thresholds):
                await self._claim(account, threshold, spent)

    async def _claim(self, account: Account, threshold: int, spent: int) -> None:
        marker = f"alert:{account.id}:{threshold}"
        if marker in self._settled:
            return
        try:
            won = await self._ledger.claim(marker, account.expires_at)
        except StoreUnavailable:
            return  # not settled: the next spend on this account tries again
        if len(self._settled) >= MAX_REMEMBERED:
            self._settled.clear()
        self._settled.add(marker)
        if won:
            log.info("budget alert: %s reached %s of its budget", account.id, threshold / PPM)
            self._notify(payload(account, threshold, spent, self._clock()))

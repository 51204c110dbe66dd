"""Budget enforcement around one request's upstream spend: reserve the estimated cost of its
misses before the upstream call, settle the reported cost after, and say what remains.

Only misses cost: a request with nothing to fetch reserves 0, which is always granted (it is
served even on a spent budget) and still reads the balance for the response headers. When the
ledger's store is unavailable the request is served (degrade, never fail) without headers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.budgets import Account, Ledger, Reservation
from gateway.budgets.alerts import AlertWatch
from gateway.budgets.money import units_to_usd_text
from gateway.budgets.period import rfc3339
from gateway.budgets.policies import Policies
from gateway.errors import InsufficientQuota
from gateway.store import StoreUnavailable

log = logging.getLogger("gateway.budgets")

QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. "
    "This gateway's {what} budget is spent until {reset}."
)

Observe = Callable[[Account, int], None]
Spawn = Callable[[Coroutine[Any, Any, None]], None]


@dataclass(frozen=True, slots=True)
class Standing:
    """The tightest of a request's budgets after it: what the response headers carry."""

    remaining: int  # units; negative when a settlement overshot
    resets_at: int  # Unix seconds

    def headers(self) -> dict[str, str]:
        return {
            "x-gateway-budget-remaining-usd": units_to_usd_text(max(0, self.remaining)),
            "x-gateway-budget-reset": rfc3339(self.resets_at),
        }


def standing(accounts: Sequence[Account], used: Sequence[int]) -> Standing:
    tightest = min(
        zip(accounts, used, strict=True), key=lambda pair: pair[0].budget.limit - pair[1]
    )
    account, spent = tightest
    return Standing(account.budget.limit - spent, account.window.end)


@dataclass(frozen=True, slots=True)
class Hold:
    accounts: tuple[Account, ...]
    reserved: int
    used: tuple[int, ...] | None  # None: the ledger could not be asked


class BudgetKeeper:
    def __init__(
        self,
        ledger: Ledger,
        policies: Policies,
        *,
        alerts: AlertWatch | None = None,
        spawn: Spawn | None = None,
        observe: Observe | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ledger = ledger
        self._policies = policies
        self._alerts = alerts
        self._spawn = spawn
        self._observe = observe
        self._clock = clock

    async def reserve(self, key_id: str, team: str, cost: int) -> Hold | None:
        """None for a caller without a budget; raises InsufficientQuota when the cost does not
        fit what remains of its key's or its team's budget."""
        accounts = tuple(self._policies.accounts(key_id, team, self._clock()))
        if not accounts:
            return None
        try:
            reply = await self._ledger.reserve(accounts, cost)
        except StoreUnavailable:
            return Hold(accounts, 0, None)
        if not reply.granted:
            refused = [u + cost > a.budget.limit for a, u in zip(accounts, reply.used, strict=True)]
            self._alert(accounts, reply.used, refused)
            raise _refusal(accounts, reply, cost)
        self._report(accounts, reply.used)
        return Hold(accounts, cost, reply.used)

    async def settle(self, hold: Hold, cost: int) -> Standing | None:
        """Moves the reservation to the real cost (one ledger call, when the two differ) and
        answers the standing after it; alerts go out in the background."""
        if hold.used is None:
            return None
        delta = cost - hold.reserved
        used = tuple(u + delta for u in hold.used)
        if delta:
            try:
                used = await self._ledger.adjust(hold.accounts, delta)
            except StoreUnavailable:
                log.warning("budget settlement of %d units not written", delta)
        self._report(hold.accounts, used)
        if cost > 0:
            self._alert(hold.accounts, used)
        return standing(hold.accounts, used)

    async def release(self, hold: Hold) -> None:
        """The upstream call failed: give the reservation back."""
        await self.settle(hold, 0)

    def _alert(
        self, accounts: Sequence[Account], used: Sequence[int], refused: Sequence[bool] = ()
    ) -> None:
        if self._alerts is not None and self._spawn is not None:
            self._spawn(self._alerts.observe(accounts, used, refused))  # never delays a response

    def _report(self, accounts: Sequence[Account], used: Sequence[int]) -> None:
        if self._observe is not None:
            for account, spent in zip(accounts, used, strict=True):
                self._observe(account, spent)


def _refusal(accounts: Sequence[Account], reply: Reservation, cost: int) -> InsufficientQuota:
    spent = next(a for a, u in zip(accounts, reply.used, strict=True) if u + cost > a.budget.limit)
    what = "API key's" if spent.scope == "key" else "project's"
    return InsufficientQuota(
        QUOTA_MESSAGE.format(what=what, reset=rfc3339(spent.window.end)),
        headers=standing(accounts, reply.used).headers(),
    )

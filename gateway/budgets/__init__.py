"""Spend budgets per key and team: pure arithmetic here and in `money` and `period`, one ledger
backend per module (`memory`, `sqlite`, `redis`; imported from there).

A request's estimated cost is reserved on every account it spends from (its key's and its
team's) in one atomic step, all or none, before the upstream call; afterwards the difference to
the upstream-reported cost is settled. So concurrent requests see each other's reservations and
can overshoot a budget only by what one estimate fell short of the real cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from gateway.budgets.money import usd_to_units
from gateway.budgets.period import Period, Window, window

Scope = Literal["key", "team"]
EXPIRY_MARGIN = 86_400  # seconds an account outlives its period, for late settlements


@dataclass(frozen=True, slots=True)
class Budget:
    limit: int  # units (1e-12 USD) per period
    period: Period

    @classmethod
    def of(cls, usd: float | int | str, period: Period) -> Budget:
        return cls(usd_to_units(usd), period)


@dataclass(frozen=True, slots=True)
class Account:
    """One owner's budget in one period: what the ledger counts spend against."""

    scope: Scope
    owner: str  # a key id or a team name
    budget: Budget
    window: Window

    @classmethod
    def current(cls, scope: Scope, owner: str, budget: Budget, now: float) -> Account:
        return cls(scope, owner, budget, window(budget.period, now))

    @property
    def id(self) -> str:
        # The owner goes last: the fields before it hold no ':', so ids never collide.
        return f"{self.scope}:{self.window.period}:{self.window.start}:{self.owner}"

    @property
    def expires_at(self) -> int:
        return self.window.end + EXPIRY_MARGIN


@dataclass(frozen=True, slots=True)
class Reservation:
    granted: bool
    used: tuple[int, ...]  # per account, after the reservation (or unchanged when refused)


def admits(used: Sequence[int], limits: Sequence[int], cost: int) -> bool:
    """Nothing to pay always passes; otherwise the cost must fit what remains of every budget."""
    return cost <= 0 or all(u + cost <= limit for u, limit in zip(used, limits, strict=True))


class Ledger(Protocol):
    """Spend per account. Every call is atomic across the accounts it names; a failed call
    raises ``StoreUnavailable`` and changed nothing."""

    name: str

    async def reserve(self, accounts: Sequence[Account], cost: int) -> Reservation: ...

    async def adjust(self, accounts: Sequence[Account], delta: int) -> tuple[int, ...]: ...

    async def claim(self, marker: str, expires_at: int) -> bool:
        """True for exactly one caller per marker (until it expires): alert thresholds."""
        ...

    async def close(self) -> None: ...


__all__ = ["Account", "Budget", "Ledger", "Period", "Reservation", "Scope", "admits"]

"""Budget ledger in this process's memory: one instance, tests, and the fallback."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from gateway.budgets import Account, Reservation, admits

PURGE_EVERY = 3600.0  # seconds between sweeps of ended periods


class MemoryLedger:
    name = "memory"

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._used: dict[str, tuple[int, int]] = {}  # account id -> (used, expires_at)
        self._claims: dict[str, int] = {}  # marker -> expires_at
        self._purged_at = clock()

    async def reserve(self, accounts: Sequence[Account], cost: int) -> Reservation:
        self._purge()
        used = tuple(self._used.get(a.id, (0, 0))[0] for a in accounts)
        if not admits(used, [a.budget.limit for a in accounts], cost):
            return Reservation(False, used)
        return Reservation(True, self._add(accounts, cost))

    async def adjust(self, accounts: Sequence[Account], delta: int) -> tuple[int, ...]:
        return self._add(accounts, delta)

    async def claim(self, marker: str, expires_at: int) -> bool:
        self._purge()
        if marker in self._claims:
            return False
        self._claims[marker] = expires_at
        return True

    async def close(self) -> None:
        return None

    def _add(self, accounts: Sequence[Account], delta: int) -> tuple[int, ...]:
        for account in accounts:
            used = self._used.get(account.id, (0, 0))[0] + delta
            self._used[account.id] = (used, account.expires_at)
        return tuple(self._used[a.id][0] for a in accounts)

    def _purge(self) -> None:
        now = self._clock()
        if now - self._purged_at < PURGE_EVERY:
            return
        self._purged_at = now
        self._used = {k: v for k, v in self._used.items() if v[1] > now}
        self._claims = {k: v for k, v in self._claims.items() if v > now}


class MemoryBook:
    """Budgets and projects set at runtime, in this process only."""

    name = "memory"

    def __init__(self) -> None:
        self._entries: dict[str, bytes] = {}

    async def put(self, name: str, body: bytes | None) -> None:
        if body is None:
            self._entries.pop(name, None)
        else:
            self._entries[name] = body

    async def entries(self) -> dict[str, bytes]:
        return dict(self._entries)

    async def close(self) -> None:
        return None

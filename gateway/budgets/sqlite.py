"""Budget ledger in the embedded SQLite file: shared by the workers of one machine and kept
across restarts. A reservation is one IMMEDIATE transaction, so two workers never both take
the last of a budget."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from gateway.budgets import Account, Reservation, admits
from gateway.embedded import Database, Tables, transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS budget_spend (
    account TEXT PRIMARY KEY, used INTEGER NOT NULL, expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS budget_claims (marker TEXT PRIMARY KEY, expires_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS budget_book (name TEXT PRIMARY KEY, body BLOB NOT NULL);
"""
T = TypeVar("T")
PURGE_EVERY = 3600.0  # seconds between sweeps of ended periods
_ADD = (
    "INSERT INTO budget_spend (account, used, expires_at) VALUES (?, ?, ?) "
    "ON CONFLICT (account) DO UPDATE SET used = used + excluded.used"
)


class SqliteLedger:
    name = "sqlite"

    def __init__(self, database: Database, clock: Callable[[], float] = time.time) -> None:
        self._tables = Tables(database, lambda db: db.executescript(SCHEMA))
        self._clock = clock
        self._purged_at = 0.0

    async def reserve(self, accounts: Sequence[Account], cost: int) -> Reservation:
        return await self._run(lambda db: _reserve(db, accounts, cost))

    async def adjust(self, accounts: Sequence[Account], delta: int) -> tuple[int, ...]:
        return await self._run(lambda db: _adjust(db, accounts, delta))

    async def claim(self, marker: str, expires_at: int) -> bool:
        now = int(self._clock())
        return await self._run(lambda db: _claim(db, marker, expires_at, now))

    async def close(self) -> None:
        self._tables.close()

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        now = self._clock()
        if now - self._purged_at >= PURGE_EVERY:
            self._purged_at = now
            await self._tables.run(lambda db: _purge(db, int(now)))
        return await self._tables.run(work)


def _purge(db: sqlite3.Connection, now: int) -> None:
    db.execute("DELETE FROM budget_spend WHERE expires_at <= ?", (now,))
    db.execute("DELETE FROM budget_claims WHERE expires_at <= ?", (now,))


def _used(db: sqlite3.Connection, accounts: Sequence[Account]) -> tuple[int, ...]:
    found = dict(
        db.execute(
            f"SELECT account, used FROM budget_spend WHERE account IN "  # placeholders only
            f"({', '.join('?' for _ in accounts)})",
            [a.id for a in accounts],
        ).fetchall()
    )
    return tuple(int(found.get(a.id, 0)) for a in accounts)


def _reserve(db: sqlite3.Connection, accounts: Sequence[Account], cost: int) -> Reservation:
    outcome: list[Reservation] = []

    def statements() -> None:
        used = _used(db, accounts)
        if not admits(used, [a.budget.limit for a in accounts], cost):
            outcome.append(Reservation(False, used))
            return
        _add(db, accounts, cost)
        outcome.append(Reservation(True, tuple(u + cost for u in used)))

    transaction(db, statements)
    return outcome[0]


def _adjust(db: sqlite3.Connection, accounts: Sequence[Account], delta: int) -> tuple[int, ...]:
    outcome: list[tuple[int, ...]] = []

    def statements() -> None:
        _add(db, accounts, delta)
        outcome.append(_used(db, accounts))

    transaction(db, statements)
    return outcome[0]


def _add(db: sqlite3.Connection, accounts: Sequence[Account], delta: int) -> None:
    db.executemany(_ADD, [(a.id, delta, a.expires_at) for a in accounts])


def _claim(db: sqlite3.Connection, marker: str, expires_at: int, now: int) -> bool:
    claimed: list[bool] = []

    def statements() -> None:
        db.execute("DELETE FROM budget_claims WHERE marker = ? AND expires_at <= ?", (marker, now))
        cursor = db.execute(
            "INSERT OR IGNORE INTO budget_claims (marker, expires_at) VALUES (?, ?)",
            (marker, expires_at),
        )
        claimed.append(cursor.rowcount == 1)

    transaction(db, statements)
    return claimed[0]


class SqliteBook:
    """Budgets and projects set at runtime, in the embedded file (every worker reads them)."""

    name = "sqlite"

    def __init__(self, database: Database) -> None:
        self._tables = Tables(database, lambda db: db.executescript(SCHEMA))

    async def put(self, name: str, body: bytes | None) -> None:
        await self._tables.run(lambda db: _put(db, name, body))

    async def entries(self) -> dict[str, bytes]:
        return await self._tables.run(
            lambda db: {n: bytes(b) for n, b in db.execute("SELECT name, body FROM budget_book")}
        )

    async def close(self) -> None:
        self._tables.close()


def _put(db: sqlite3.Connection, name: str, body: bytes | None) -> None:
    if body is None:
        db.execute("DELETE FROM budget_book WHERE name = ?", (name,))
    else:
        db.execute(
            "INSERT INTO budget_book (name, body) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET body = excluded.body",
            (name, body),
        )

"""Spend history in the embedded SQLite file: one row per (hour, key, team, model), upserted
in one transaction per write; kept across restarts and shared by one machine's workers.

A file written by an older version lacks the newer counters' columns: the first use adds them
(zero for the hours already there), in one transaction, so workers opening it together agree."""

from __future__ import annotations

import sqlite3
from typing import TypeVar

from gateway.embedded import Database, Tables, adding_upsert, transaction
from gateway.history import FIELDS, Counts, Slot, Table

T = TypeVar("T")

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS usage_hourly (
    hour INTEGER NOT NULL, key TEXT NOT NULL, team TEXT NOT NULL, model TEXT NOT NULL,
    {", ".join(f"{name} INTEGER NOT NULL DEFAULT 0" for name in FIELDS)},
    PRIMARY KEY (hour, key, team, model)
);
"""
_COLUMNS = ", ".join(FIELDS)
_UPSERT = adding_upsert("usage_hourly", ("hour", "key", "team", "model"), FIELDS)
_SELECT = (
    f"SELECT hour, key, team, model, {_COLUMNS} FROM usage_hourly WHERE hour >= ? AND hour < ?"
)


class SqliteHistory:
    name = "sqlite"

    def __init__(self, database: Database) -> None:
        self._tables = Tables(database, lambda db: transaction(db, lambda: _prepare(db)))

    async def add(self, delta: Table) -> None:
        rows = [(*slot, *counts.values()) for slot, counts in delta.items()]
        await self._tables.run(lambda db: transaction(db, lambda: _upsert(db, rows)))

    async def read(self, first_hour: int, end_hour: int) -> Table:
        return await self._tables.run(lambda db: _read(db, first_hour, end_hour))

    async def prune(self, before_hour: int) -> None:
        await self._tables.run(lambda db: _prune(db, before_hour))

    async def close(self) -> None:
        self._tables.close()


def _prepare(db: sqlite3.Connection) -> None:
    db.execute(SCHEMA)
    present = {row[1] for row in db.execute("PRAGMA table_info(usage_hourly)")}
    for name in FIELDS:
        if name not in present:
            db.execute(f"ALTER TABLE usage_hourly ADD COLUMN {name} INTEGER NOT NULL DEFAULT 0")


def _upsert(db: sqlite3.Connection, rows: list[tuple[object, ...]]) -> None:
    db.executemany(_UPSERT, rows)


def _prune(db: sqlite3.Connection, before_hour: int) -> None:
    db.execute("DELETE FROM usage_hourly WHERE hour < ?", (before_hour,))


def _read(db: sqlite3.Connection, first_hour: int, end_hour: int) -> Table:
    cursor = db.execute(_SELECT, (first_hour, end_hour))
    return {Slot(*values[:4]): Counts(*values[4:]) for values in cursor}

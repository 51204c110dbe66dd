"""Usage counters in the embedded SQLite file: kept across restarts, shared by the workers of
one machine. One transaction per write adds every row's counters."""

from __future__ import annotations

import sqlite3

from gateway.embedded import Database, adding_upsert, transaction
from gateway.usage import FIELDS, Counts, Row, Table

_COLUMNS = ", ".join(FIELDS)
_UPSERT = adding_upsert("usage", ("key", "team", "model"), FIELDS)
_SELECT = f"SELECT key, team, model, {_COLUMNS} FROM usage"


class SqliteUsage:
    name = "sqlite"

    def __init__(self, database: Database) -> None:
        self._database = database

    async def add(self, delta: Table) -> None:
        rows = [(*row, *counts.values()) for row, counts in delta.items()]

        def write(db: sqlite3.Connection) -> None:
            db.executemany(_UPSERT, rows)

        await self._database.run(lambda db: transaction(db, lambda: write(db)))

    async def table(self) -> Table:
        return await self._database.run(_read)

    async def close(self) -> None:
        self._database.close()


def _read(db: sqlite3.Connection) -> Table:
    return {Row(*values[:3]): Counts(*values[3:]) for values in db.execute(_SELECT)}

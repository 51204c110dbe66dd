"""Runtime keys in the embedded SQLite file, shared by the workers of one machine. Every change
bumps the `keys_version` row in the same transaction, so a worker polls one row to notice it."""

from __future__ import annotations

import sqlite3

from gateway import apikeys
from gateway.apikeys import ApiKey
from gateway.embedded import Database, transaction

_BUMP = "UPDATE meta SET value = value + 1 WHERE name = 'keys_version'"


class SqliteKeys:
    name = "sqlite"

    def __init__(self, database: Database) -> None:
        self._database = database

    async def version(self) -> int:
        return await self._database.run(_version)

    async def load(self) -> list[ApiKey]:
        rows = await self._database.run(
            lambda db: db.execute("SELECT body FROM api_keys").fetchall()
        )
        return [key for (body,) in rows if (key := apikeys.load(body)) is not None]

    async def put(self, key: ApiKey) -> None:
        body = apikeys.dump(key).decode()

        def write(db: sqlite3.Connection) -> None:
            db.execute("INSERT OR REPLACE INTO api_keys (id, body) VALUES (?, ?)", (key.id, body))
            db.execute(_BUMP)

        await self._database.run(lambda db: transaction(db, lambda: write(db)))

    async def delete(self, key_id: str) -> bool:
        deleted: list[int] = []

        def write(db: sqlite3.Connection) -> None:
            deleted.append(db.execute("DELETE FROM api_keys WHERE id = ?", (key_id,)).rowcount)
            db.execute(_BUMP)

        await self._database.run(lambda db: transaction(db, lambda: write(db)))
        return deleted[0] > 0

    async def touch(self, used: dict[str, int]) -> None:
        rows = list(used.items())
        upsert = (
            "INSERT INTO key_last_used (id, at) VALUES (?, ?) "
            "ON CONFLICT (id) DO UPDATE SET at = max(at, excluded.at)"
        )
        await self._database.run(lambda db: transaction(db, lambda: _many(db, upsert, rows)))

    async def last_used(self) -> dict[str, int]:
        rows = await self._database.run(
            lambda db: db.execute("SELECT id, at FROM key_last_used").fetchall()
        )
        return {key_id: int(at) for key_id, at in rows}

    async def close(self) -> None:
        self._database.close()


def _version(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT value FROM meta WHERE name = 'keys_version'").fetchone()
    return int(row[0])


def _many(db: sqlite3.Connection, statement: str, rows: list[tuple[str, int]]) -> None:
    db.executemany(statement, rows)

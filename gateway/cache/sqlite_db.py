"""The SQLite cache file's schema and statements (synchronous: they run on the cache's threads).

One row per entry, with its model tag and generation, its size, when it was written, when it
expires and when it was last read. Triggers keep a per-model count of entries and bytes exact,
so the byte budget and the administration view never scan the table. ``meta.epoch`` goes up
whenever an entry a process may hold in memory changes (a delete, or an overwrite of a live
entry by a refresh): every process clears its in-memory tier when it sees the epoch move.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from gateway.cache import ModelEntries
from gateway.embedded import BUSY_TIMEOUT_SECONDS, open_file, transaction
from gateway.keys import key_model

T = TypeVar("T")

FILE_NAME = "cache.db"
EVICT_TO = 0.9  # an eviction pass frees down to this share of the budget
CHUNK = 500  # rows per statement where many rows go at once

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key BLOB PRIMARY KEY, tag TEXT NOT NULL, generation INTEGER NOT NULL,
    size INTEGER NOT NULL, created REAL NOT NULL, expires REAL NOT NULL, accessed REAL NOT NULL,
    value BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_accessed ON entries (accessed);
CREATE INDEX IF NOT EXISTS entries_expires ON entries (expires);
CREATE INDEX IF NOT EXISTS entries_model ON entries (tag, generation, created);
CREATE TABLE IF NOT EXISTS generations (tag TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (name, value) VALUES ('epoch', 0);
CREATE TABLE IF NOT EXISTS stats (
    tag TEXT NOT NULL, generation INTEGER NOT NULL,
    entries INTEGER NOT NULL, bytes INTEGER NOT NULL, PRIMARY KEY (tag, generation)
);
CREATE TRIGGER IF NOT EXISTS entries_inserted AFTER INSERT ON entries BEGIN
    INSERT OR IGNORE INTO stats VALUES (new.tag, new.generation, 0, 0);
    UPDATE stats SET entries = entries + 1, bytes = bytes + new.size
        WHERE tag = new.tag AND generation = new.generation;
END;
CREATE TRIGGER IF NOT EXISTS entries_deleted AFTER DELETE ON entries BEGIN
    UPDATE stats SET entries = entries - 1, bytes = bytes - old.size
        WHERE tag = old.tag AND generation = old.generation;
END;
CREATE TRIGGER IF NOT EXISTS entries_resized AFTER UPDATE OF size ON entries BEGIN
    UPDATE stats SET bytes = bytes + new.size - old.size
        WHERE tag = new.tag AND generation = new.generation;
END;
"""

UPSERT = """
INSERT INTO entries (key, tag, generation, size, created, expires, accessed, value)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET size = excluded.size, created = excluded.created,
    expires = excluded.expires, accessed = excluded.accessed, value = excluded.value
"""


def connect(
    path: Path, *, schema: bool = True, timeout: float = BUSY_TIMEOUT_SECONDS
) -> sqlite3.Connection:
    """``schema=False`` for a connection that only reads a file another one has set up."""
    return open_file(path, SCHEMA if schema else None, timeout=timeout)


def _marks(count: int) -> str:
    return ",".join("?" * count)


def generation_and_epoch(connection: sqlite3.Connection, tag: str) -> tuple[int, int]:
    row = connection.execute(
        "SELECT (SELECT value FROM generations WHERE tag = ?),"
        " (SELECT value FROM meta WHERE name = 'epoch')",
        (tag,),
    ).fetchone()
    return row[0] or 0, row[1] or 0


def read(
    connection: sqlite3.Connection, keys: Sequence[bytes], now: float
) -> dict[bytes, tuple[bytes, float]]:
    """Live entries among ``keys``: key -> (value, expires)."""
    found: dict[bytes, tuple[bytes, float]] = {}
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        rows = connection.execute(
            f"SELECT key, value, expires FROM entries WHERE key IN ({_marks(len(chunk))})"
            " AND expires > ?",
            (*chunk, now),
        )
        found.update((key, (value, expires)) for key, value, expires in rows)
    return found


def write(
    connection: sqlite3.Connection,
    items: Sequence[tuple[bytes, bytes]],
    now: float,
    expires: float,
) -> None:
    rows = [
        (key, *key_model(key), len(key) + len(value), now, expires, now, value)
        for key, value in items
    ]

    def upsert() -> None:
        if read(connection, [key for key, _ in items], now):
            _bump_epoch(connection)  # a live entry changes: every in-memory tier forgets
        connection.executemany(UPSERT, rows)

    transaction(connection, upsert)


def _bump_epoch(connection: sqlite3.Connection) -> None:
    connection.execute("UPDATE meta SET value = value + 1 WHERE name = 'epoch'")


def touch(connection: sqlite3.Connection, keys: Sequence[bytes], now: float) -> None:
    """Mark entries as read now, for least-recently-used eviction."""
    rows = [(now, key) for key in keys]
    transaction(
        connection,
        lambda: connection.executemany("UPDATE entries SET accessed = ? WHERE key = ?", rows),
    )


def stored_bytes(connection: sqlite3.Connection) -> int:
    row = connection.execute("SELECT coalesce(sum(bytes), 0) FROM stats").fetchone()
    return int(row[0])


def evict(connection: sqlite3.Connection, max_bytes: int, now: float) -> int:
    """Drop expired entries; then, once over the budget, the least recently read ones until
    the store is back under ``EVICT_TO`` of it."""
    dropped = _drop(connection, "SELECT rowid FROM entries WHERE expires <= ? LIMIT ?", now)
    if stored_bytes(connection) <= max_bytes:
        return dropped
    target = int(max_bytes * EVICT_TO)
    while (excess := stored_bytes(connection) - target) > 0:
        rows = connection.execute(
            "SELECT rowid, size FROM entries ORDER BY accessed LIMIT ?", (CHUNK,)
        ).fetchall()
        chosen = _covering(rows, excess)
        if not chosen:
            break
        dropped += _delete_rowids(connection, chosen)
    return dropped


def _covering(rows: Sequence[tuple[int, int]], excess: int) -> list[int]:
    """The first rows whose sizes add up to at least ``excess``."""
    chosen, freed = [], 0
    for rowid, size in rows:
        if freed >= excess:
            break
        chosen.append(rowid)
        freed += size
    return chosen


def _drop(connection: sqlite3.Connection, select: str, *args: object) -> int:
    """Delete what ``select`` (a rowid query taking ``*args`` and a LIMIT) finds, in chunks."""
    dropped = 0
    while rowids := [r[0] for r in connection.execute(select, (*args, CHUNK)).fetchall()]:
        dropped += _delete_rowids(connection, rowids)
    return dropped


def _delete_rowids(connection: sqlite3.Connection, rowids: Sequence[int]) -> int:
    if not rowids:
        return 0
    statement = f"DELETE FROM entries WHERE rowid IN ({_marks(len(rowids))})"
    return transaction(connection, lambda: connection.execute(statement, rowids).rowcount)


def delete(connection: sqlite3.Connection, keys: Sequence[bytes]) -> int:
    def remove() -> int:
        _bump_epoch(connection)
        deleted = 0
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            statement = f"DELETE FROM entries WHERE key IN ({_marks(len(chunk))})"
            deleted += connection.execute(statement, chunk).rowcount
        return deleted

    return transaction(connection, remove)


def purge(connection: sqlite3.Connection, tag: str) -> int:
    def bump() -> int:
        connection.execute(
            "INSERT INTO generations VALUES (?, 1)"
            " ON CONFLICT (tag) DO UPDATE SET value = value + 1",
            (tag,),
        )
        return int(generation_and_epoch(connection, tag)[0])

    return transaction(connection, bump)


def drop_old_generations(connection: sqlite3.Connection, tag: str, generation: int) -> int:
    """Free what a purge made unreachable, a chunk per transaction so writers interleave."""
    dropped = _drop(
        connection,
        "SELECT rowid FROM entries WHERE tag = ? AND generation < ? LIMIT ?",
        tag,
        generation,
    )
    connection.execute("DELETE FROM stats WHERE tag = ? AND generation < ?", (tag, generation))
    return dropped


def contents(connection: sqlite3.Connection, now: float) -> dict[str, ModelEntries]:
    rows = connection.execute(
        "SELECT s.tag, s.entries, s.bytes,"
        " (SELECT min(created) FROM entries e WHERE e.tag = s.tag AND e.generation = s.generation)"
        " FROM stats s LEFT JOIN generations g ON g.tag = s.tag"
        " WHERE s.generation = coalesce(g.value, 0) AND s.entries > 0"
    ).fetchall()
    return {
        tag: ModelEntries(entries, size, None if oldest is None else max(0.0, now - oldest))
        for tag, entries, size, oldest in rows
    }

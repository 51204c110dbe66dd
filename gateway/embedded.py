"""The embedded SQLite database: one file under the data directory, shared by every worker of
one machine. WAL mode lets readers run beside the one writer; a busy timeout makes workers
take turns instead of failing. Calls run on a thread, one at a time per process, so the event
loop never waits on the disk."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from gateway.store import StoreUnavailable

T = TypeVar("T")

FILE_NAME = "gateway.db"
BUSY_TIMEOUT_SECONDS = 5.0
OPEN_ATTEMPTS = 5
OPEN_RETRY_SECONDS = 0.02

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (name, value) VALUES ('keys_version', 0);
CREATE TABLE IF NOT EXISTS api_keys (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS key_last_used (id TEXT PRIMARY KEY, at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS usage (
    key TEXT NOT NULL, team TEXT NOT NULL, model TEXT NOT NULL,
    requests INTEGER NOT NULL, inputs INTEGER NOT NULL, cached_inputs INTEGER NOT NULL,
    tokens INTEGER NOT NULL, billed_tokens INTEGER NOT NULL,
    PRIMARY KEY (key, team, model)
);
"""


class Database:
    """Opened on first use, so building the app touches no disk."""

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / FILE_NAME
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        return open_file(self.path, SCHEMA)

    def call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` on the connection now, in this thread (for the CLI and threads)."""
        with self._lock:
            try:
                if self._connection is None:
                    self._connection = self._connect()
                return work(self._connection)
            except (sqlite3.Error, OSError) as exc:
                raise StoreUnavailable(f"sqlite: {type(exc).__name__}: {exc}") from exc

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(self.call, work)

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


class Tables:
    """A store's own tables in the shared database file: `prepare` (creating them, upgrading an
    older file) runs once, before the store's first call."""

    def __init__(self, database: Database, prepare: Callable[[sqlite3.Connection], object]) -> None:
        self._database = database
        self._prepare = prepare
        self._ready = False

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if not self._ready:
            await self._database.run(self._prepare)
            self._ready = True
        return await self._database.run(work)

    def close(self) -> None:
        self._database.close()


def adding_upsert(table: str, keys: Sequence[str], counters: Sequence[str]) -> str:
    """INSERT of one row of counters that adds them to the row of the same keys, if there is one."""
    columns = ", ".join([*keys, *counters])
    marks = ", ".join("?" for _ in [*keys, *counters])
    sums = ", ".join(f"{name} = {name} + excluded.{name}" for name in counters)
    return (
        f"INSERT INTO {table} ({columns}) VALUES ({marks}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sums}"
    )


def open_file(
    path: Path, schema: str | None, *, timeout: float = BUSY_TIMEOUT_SECONDS
) -> sqlite3.Connection:
    """A connection to the file at `path` in WAL mode, made with `schema` (None: a connection
    that only reads a file another one has set up). Several workers opening a new file at once
    race to switch it to WAL, and a loser is told "locked" without the busy timeout's wait: it
    tries again, briefly."""
    for attempt in range(1, OPEN_ATTEMPTS + 1):
        try:
            return _open(path, schema, timeout)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == OPEN_ATTEMPTS:
                raise
            time.sleep(OPEN_RETRY_SECONDS * attempt)
    raise AssertionError("unreachable")


def _open(path: Path, schema: str | None, timeout: float) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(
        path, timeout=timeout, isolation_level=None, check_same_thread=False
    )
    try:
        if schema is not None:
            connection.execute("PRAGMA journal_mode=WAL")  # kept by the file once set
            connection.executescript(schema)
        connection.execute("PRAGMA synchronous=NORMAL")  # a crash may lose the last writes only
    except BaseException:
        connection.close()
        raise
    return connection


def transaction(connection: sqlite3.Connection, work: Callable[[], T]) -> T:
    """BEGIN IMMEDIATE takes the write lock up front, so two workers never deadlock."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = work()
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
    return result

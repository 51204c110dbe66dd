"""The embedded SQLite database: one file under the data directory, shared by every worker of
one machine. WAL mode lets readers run beside the one writer; a busy timeout makes workers
take turns instead of failing. Calls run on a thread, one at a time per process, so the event
loop never waits on the disk."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from gateway.store import StoreUnavailable

T = TypeVar("T")

FILE_NAME = "gateway.db"
BUSY_TIMEOUT_SECONDS = 5.0

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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
        )
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")  # durable at each WAL checkpoint
        connection.executescript(SCHEMA)
        return connection

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


def transaction(connection: sqlite3.Connection, statements: Callable[[], None]) -> None:
    """BEGIN IMMEDIATE takes the write lock up front, so two workers never deadlock."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        statements()
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")

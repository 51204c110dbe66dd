"""The embedded database file when several workers of one machine open it at the same moment."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from gateway.embedded import FILE_NAME, Database


def test_a_worker_opening_the_file_while_another_writes_to_it_still_gets_it(
    tmp_path: Path,
) -> None:
    """The race of workers starting together: one holds the new file's write lock while another
    switches it to WAL, which SQLite refuses at once instead of waiting its busy timeout."""
    other = sqlite3.connect(tmp_path / FILE_NAME, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    threading.Timer(0.05, other.execute, ["COMMIT"]).start()
    tables = Database(tmp_path).call(
        lambda db: db.execute("SELECT name FROM sqlite_master WHERE name = 'meta'").fetchall()
    )
    other.close()
    assert tables == [("meta",)]

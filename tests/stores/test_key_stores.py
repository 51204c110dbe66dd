"""One behaviour suite for every key store backend."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway import apikeys
from gateway.apikeys import ApiKey, KeyStore
from gateway.apikeys.sqlite import SqliteKeys
from gateway.embedded import Database
from gateway.settings import LimitSettings
from gateway.store import StoreUnavailable


def a_key(key_id: str = "key_1", name: str = "alice") -> ApiKey:
    secret = apikeys.new_secret()
    return ApiKey(
        id=key_id,
        name=name,
        sha256=apikeys.sha256_hex(secret),
        created_at=1_700_000_000,
        redacted_value=apikeys.redact(secret),
        team="red",
        models=("text-embedding-3-small",),
        limits=LimitSettings(requests_per_second=5),
    )


async def test_a_put_key_loads_back_equal(key_store: KeyStore) -> None:
    key = a_key()
    await key_store.put(key)
    assert await key_store.load() == [key]


async def test_every_change_moves_the_version(key_store: KeyStore) -> None:
    seen = [await key_store.version()]
    await key_store.put(a_key())
    seen.append(await key_store.version())
    await key_store.put(a_key())  # replaced
    seen.append(await key_store.version())
    await key_store.delete("key_1")
    seen.append(await key_store.version())
    assert len(set(seen)) == 4


async def test_reading_does_not_move_the_version(key_store: KeyStore) -> None:
    await key_store.put(a_key())
    before = await key_store.version()
    await key_store.load()
    await key_store.touch({"key_1": 5})
    assert await key_store.version() == before


async def test_delete_says_whether_the_key_existed(key_store: KeyStore) -> None:
    await key_store.put(a_key())
    assert await key_store.delete("key_1") is True
    assert await key_store.delete("key_1") is False
    assert await key_store.load() == []


async def test_last_use_keeps_the_latest_time(key_store: KeyStore) -> None:
    await key_store.touch({"key_1": 100, "key_2": 50})
    await key_store.touch({"key_1": 200})
    assert await key_store.last_used() == {"key_1": 200, "key_2": 50}


async def test_a_malformed_stored_key_is_ignored(tmp_path: Path) -> None:
    database = Database(tmp_path)
    store = SqliteKeys(database)
    await store.put(a_key())
    with sqlite3.connect(database.path) as raw:
        raw.execute("INSERT INTO api_keys VALUES ('key_bad', '{\"id\": 3}')")
    assert [key.id for key in await store.load()] == ["key_1"]
    database.close()


async def test_sqlite_keys_survive_reopening_the_file(tmp_path: Path) -> None:
    first = Database(tmp_path)
    await SqliteKeys(first).put(a_key())
    first.close()
    second = Database(tmp_path)
    assert [key.id for key in await SqliteKeys(second).load()] == ["key_1"]
    second.close()


async def test_an_unusable_data_directory_raises_store_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StoreUnavailable):
        await SqliteKeys(Database(tmp_path / "file" / "data")).version()

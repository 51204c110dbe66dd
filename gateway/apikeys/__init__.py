"""API keys made at runtime: the record (pure), its stored form, and the store protocol.

Only SHA-256 hashes of secrets are stored. A rotated key keeps accepting its previous secret
until ``previous_until``. Backends (one per module: memory, sqlite, redis) raise
``StoreUnavailable`` when they fail, and bump a version on every change, so every instance
notices a change by reading one number."""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import orjson

from gateway.settings import KeySettings, LimitSettings, SettingsError, key_id, parse_as

SECRET_PREFIX = "sk-gw-"


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    sha256: str
    created_at: float  # unix seconds; shown whole, kept exact to order keys made in one second
    redacted_value: str
    team: str = ""
    models: tuple[str, ...] = ()  # empty: every model
    limits: LimitSettings = dataclasses.field(default_factory=LimitSettings)
    # Per-request cache controls the key may send (see gateway/cache_control.py).
    cache_controls: tuple[Literal["no-cache", "no-store", "ttl"], ...] = ("no-store",)
    previous_sha256: str = ""  # the secret before the last rotation ...
    previous_until: float = 0.0  # ... accepted until then (unix seconds)
    source: Literal["runtime", "config"] = "runtime"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def key_id_for(sha256: str) -> str:
    """The id a config key with this hash gets (settings.key_id): it shows neither the secret
    nor its hash. A runtime key keeps the id of its first secret across rotations."""
    return key_id(KeySettings(name="", sha256=sha256))


def sha256_hex(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def redact(secret: str) -> str:
    return f"{secret[: len(SECRET_PREFIX) + 2]}...{secret[-4:]}"


def dump(key: ApiKey) -> bytes:
    return orjson.dumps(dataclasses.asdict(key))


def load(raw: bytes | str) -> ApiKey | None:
    """A stored key, checked field by field; anything malformed is None (and is ignored)."""
    try:
        data: Any = orjson.loads(raw)
        return parse_as(ApiKey, data, "api_key")
    except (orjson.JSONDecodeError, SettingsError, TypeError):
        return None


class KeyStore(Protocol):
    name: str

    async def version(self) -> int: ...  # changes whenever a key is put or deleted

    async def load(self) -> list[ApiKey]: ...

    async def put(self, key: ApiKey) -> None: ...

    async def delete(self, key_id: str) -> bool: ...  # False: there was no such key

    async def touch(self, used: dict[str, int]) -> None: ...  # key id -> last use (unix s)

    async def last_used(self) -> dict[str, int]: ...

    async def close(self) -> None: ...

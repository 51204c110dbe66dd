"""Key lifecycle (create, list, get, update, rotate, revoke) over a key store: shared by the
admin API and the `keys` command, so both follow the same rules. Keys from the config file are
listed read-only; names are unique across both."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Collection, Sequence

from gateway.apikeys import (
    ApiKey,
    KeyStore,
    key_id_for,
    new_secret,
    redact,
    sha256_hex,
)
from gateway.apikeys.directory import KeyDirectory
from gateway.apikeys.requests import KeyChanges
from gateway.errors import InvalidRequest, NotFound
from gateway.settings import RESERVED_KEY_NAMES, KeySettings, LimitSettings, key_id

CONFIG_REDACTED = "(set in the config file)"


def config_view(key: KeySettings) -> ApiKey:
    return ApiKey(
        id=key_id(key),
        name=key.name,
        sha256="",
        created_at=0,
        redacted_value=CONFIG_REDACTED,
        team=key.team,
        models=key.models,
        limits=key.limits,
        cache_controls=key.cache_controls,
        source="config",
    )


class KeyAdmin:
    def __init__(
        self,
        store: KeyStore,
        config_keys: Sequence[KeySettings],
        model_names: Collection[str],
        *,
        directory: KeyDirectory | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.model_names = model_names
        self._config = [config_view(key) for key in config_keys]
        self.directory = directory
        self._clock = clock

    async def list(self) -> list[ApiKey]:
        """Config keys first, then runtime keys oldest first: a stable order for paging."""
        runtime = sorted(await self.store.load(), key=lambda key: (key.created_at, key.id))
        return self._config + runtime

    async def get(self, key_id: str) -> ApiKey:
        for key in await self.list():
            if key.id == key_id:
                return key
        raise NotFound(f"No API key with id '{key_id}'.", code="not_found")

    async def last_used(self) -> dict[str, int]:
        return await self.store.last_used()

    async def create(self, changes: KeyChanges) -> tuple[ApiKey, str]:
        assert changes.name is not None
        await self._check_name(changes.name, None)
        secret = new_secret()
        key = ApiKey(
            id=key_id_for(sha256_hex(secret)),
            name=changes.name,
            sha256=sha256_hex(secret),
            created_at=self._clock(),
            redacted_value=redact(secret),
            team=changes.team or "",
            models=changes.models or (),
            limits=changes.limits or LimitSettings(),
            cache_controls=changes.cache_controls or ("no-store",),
        )
        await self._save(key)
        return key, secret

    async def update(self, key_id: str, changes: KeyChanges) -> ApiKey:
        key = await self._runtime(key_id)
        if changes.name is not None:
            await self._check_name(changes.name, key_id)
        updates = {k: v for k, v in dataclasses.asdict(changes).items() if v is not None}
        if changes.limits is not None:
            updates["limits"] = changes.limits  # asdict turned it into a dict
        key = dataclasses.replace(key, **updates)
        await self._save(key)
        return key

    async def rotate(self, key_id: str, grace_seconds: float) -> tuple[ApiKey, str]:
        """A new secret; the old one keeps working for ``grace_seconds`` (0: not at all)."""
        key = await self._runtime(key_id)
        secret = new_secret()
        rotated = dataclasses.replace(
            key,
            sha256=sha256_hex(secret),
            redacted_value=redact(secret),
            previous_sha256=key.sha256 if grace_seconds > 0 else "",
            previous_until=self._clock() + grace_seconds if grace_seconds > 0 else 0.0,
        )
        await self._save(rotated)
        return rotated, secret

    async def revoke(self, key_id: str) -> ApiKey:
        key = await self._runtime(key_id)
        await self.store.delete(key_id)
        await self._refresh()
        return key

    async def _runtime(self, key_id: str) -> ApiKey:
        key = await self.get(key_id)
        if key.source == "config":
            raise InvalidRequest(
                f"The API key '{key_id}' comes from the config file and is read-only here; "
                "change it in the config file.",
                code="read_only_key",
            )
        return key

    async def _check_name(self, name: str, own_id: str | None) -> None:
        if name in RESERVED_KEY_NAMES:
            raise InvalidRequest(f"The name '{name}' is reserved.", param="name")
        if any(key.name == name and key.id != own_id for key in await self.list()):
            raise InvalidRequest(f"An API key named '{name}' already exists.", param="name")

    async def _save(self, key: ApiKey) -> None:
        await self.store.put(key)
        await self._refresh()

    async def _refresh(self) -> None:
        """This instance sees its own change at once; the others within their poll interval."""
        if self.directory is not None:
            await self.directory.refresh()

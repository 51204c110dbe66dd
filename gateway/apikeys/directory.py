"""Each instance's copy of the runtime keys, for authentication without a store round trip.

It polls the store's version every ``interval`` seconds and reloads every key when the version
changed, so a key made, rotated or revoked anywhere takes effect here within that interval.
While the store is unreachable it keeps the last copy it read. Last uses are collected in
memory and written with the next poll."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from gateway.apikeys import ApiKey, KeyStore
from gateway.auth import Principal
from gateway.quota import divided
from gateway.store import StoreUnavailable


def principal_of(key: ApiKey, workers: int = 1) -> Principal:
    """Its limits are one worker's share when workers keep buckets of their own (see
    quota.per_worker, which does the same for config keys)."""
    limits = divided(key.limits, workers) if workers > 1 else key.limits
    return Principal(
        key.name,
        key.team,
        frozenset(key.models),
        limits,
        key_id=key.id,
        cache_controls=frozenset(key.cache_controls),
    )


class KeyDirectory:
    def __init__(
        self,
        store: KeyStore,
        *,
        interval: float = 0.5,
        clock: Callable[[], float] = time.time,
        workers: int = 1,
    ) -> None:
        self.store = store
        self._workers = workers
        self._interval = interval
        self._clock = clock
        self._version: int | None = None  # None: never read
        self._current: dict[str, Principal] = {}  # sha256 hex -> principal
        self._previous: dict[str, tuple[Principal, float]] = {}  # ... and its deadline
        self._used: dict[str, int] = {}

    @property
    def loaded(self) -> bool:
        return self._version is not None

    @property
    def requires_auth(self) -> bool:
        """True before the keys could be read, and once any key was ever made at runtime: so
        revoking the last key never opens the gateway to anonymous callers."""
        return self._version is None or self._version != 0 or bool(self._current)

    @property
    def names(self) -> dict[str, str]:
        """Key id -> name, for usage reports."""
        return {p.key_id: p.name for p in self._current.values()}

    def find(self, sha256: str) -> Principal | None:
        principal = self._current.get(sha256)
        if principal is None:
            principal, until = self._previous.get(sha256, (None, 0.0))
            if principal is not None and self._clock() >= until:
                return None
        if principal is not None:
            self._used[principal.key_id] = int(self._clock())
        return principal

    def used(self, key_id: str) -> None:
        self._used[key_id] = int(self._clock())

    async def refresh(self) -> None:
        version = await self.store.version()
        if version != self._version:
            self._install(await self.store.load())
            self._version = version

    def _install(self, keys: list[ApiKey]) -> None:
        self._current = {key.sha256: principal_of(key, self._workers) for key in keys}
        self._previous = {
            key.previous_sha256: (principal_of(key, self._workers), key.previous_until)
            for key in keys
            if key.previous_sha256
        }

    async def tick(self) -> None:
        """One poll: pick up changes, write last uses. A store failure (logged by the store's
        guard) keeps the old copy, and the last uses for the next poll."""
        try:
            await self.refresh()
        except StoreUnavailable:
            return
        used, self._used = self._used, {}
        try:
            if used:
                await self.store.touch(used)
        except StoreUnavailable:
            self._used = used | self._used

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.tick()

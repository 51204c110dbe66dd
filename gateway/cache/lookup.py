"""Cache keys at each model's current generation, and their values, in one round trip.

The process remembers the generation it last saw per model and builds keys with it; the store
answers the current generation with the values. When they differ (a purge happened, here or on
another instance) the keys are rebuilt and read again: a purged model is a miss at once
everywhere, and the steady state costs no extra round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.cache import Cache
from gateway.keys import cache_keys, key_hasher, model_tag
from gateway.store import StoreUnavailable

Values = list[bytes | None]


@dataclass(frozen=True, slots=True)
class KeyParts:
    """What the keys of one request's inputs are made of, but the generation."""

    cache_id: str
    scope: str
    dimensions: int | None  # None: the model's full vector
    kind: bytes
    canonical: Sequence[bytes]


class CacheLookup:
    def __init__(self, cache: Cache, key_prefix: str) -> None:
        self._cache = cache
        self._prefix = key_prefix
        self._generations: dict[str, int] = {}
        self._tags: dict[str, str] = {}

    def tag(self, cache_id: str) -> str:
        tag = self._tags.get(cache_id)
        if tag is None:
            tag = self._tags[cache_id] = model_tag(cache_id)
        return tag

    async def read(self, parts: KeyParts, *, refresh: bool = False) -> tuple[list[bytes], Values]:
        """The keys and what the cache holds for them (all misses with ``refresh``)."""
        tag = self.tag(parts.cache_id)
        known = self._generations.get(tag, 0)
        keys = self._keys(parts, known)
        current, values = await self._cache.read(tag, [] if refresh else keys)
        if current is not None and current != known:
            self._generations[tag] = current
            keys = self._keys(parts, current)
            _, values = await self._cache.read(tag, [] if refresh else keys)
        return keys, [None] * len(keys) if refresh else values

    async def current_keys(self, parts: KeyParts) -> list[bytes]:
        """The keys as every instance reads them now (raises when the store cannot say)."""
        current, _ = await self._cache.read(self.tag(parts.cache_id), [])
        if current is None:
            raise StoreUnavailable("the cache did not answer its generation")
        return self._keys(parts, current)

    def _keys(self, parts: KeyParts, generation: int) -> list[bytes]:
        hasher = key_hasher(parts.scope, parts.cache_id, parts.dimensions)
        tag = self.tag(parts.cache_id)
        return cache_keys(
            self._prefix, hasher, parts.kind, parts.canonical, tag=tag, generation=generation
        )

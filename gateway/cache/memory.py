"""A bounded in-process LRU cache with TTL: `stores.cache: memory`, and the hot tier in front of
the SQLite cache."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from gateway.cache import Contents, ModelEntries
from gateway.keys import key_model


class MemoryCache:
    name = "memory"

    def __init__(
        self, max_entries: int, ttl_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        # key -> (expires, value, created)
        self._entries: OrderedDict[bytes, tuple[float, bytes, float]] = OrderedDict()
        self._generations: dict[str, int] = {}
        self._max_entries = max_entries
        self._ttl = ttl_seconds
        self._clock = clock

    async def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        now = self._clock()
        return [self._get(key, now) for key in keys]

    async def read(self, tag: str, keys: Sequence[bytes]) -> tuple[int | None, list[bytes | None]]:
        return self._generations.get(tag, 0), await self.get_many(keys)

    def _get(self, key: bytes, now: float) -> bytes | None:
        item = self._entries.get(key)
        if item is None:
            return None
        if item[0] <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return item[1]

    async def set_many(
        self, items: Sequence[tuple[bytes, bytes]], ttl_seconds: int | None = None
    ) -> None:
        now = self._clock()
        self.put(items, now + (ttl_seconds or self._ttl), now)

    def put(self, items: Sequence[tuple[bytes, bytes]], expires: float, now: float) -> None:
        for key, value in items:
            self._entries[key] = (expires, value, now)
            self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    async def delete_many(self, keys: Sequence[bytes]) -> int:
        return sum(self._entries.pop(key, None) is not None for key in keys)

    async def purge(self, tag: str) -> int:
        self._generations[tag] = self._generations.get(tag, 0) + 1
        return self._generations[tag]

    async def contents(self) -> Contents:
        now = self._clock()
        counts: dict[str, tuple[int, int, float]] = {}
        for key, (expires, value, created) in self._entries.items():
            tag, generation = key_model(key)
            if expires > now and generation == self._generations.get(tag, 0):
                entries, size, oldest = counts.get(tag, (0, 0, created))
                counts[tag] = (entries + 1, size + len(key) + len(value), min(oldest, created))
        models = {
            tag: ModelEntries(entries, size, now - oldest)
            for tag, (entries, size, oldest) in counts.items()
        }
        return Contents(models, estimated=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._entries.clear()

"""A bounded in-process LRU cache with TTL: the embedded default when no Redis is configured."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence


class MemoryCache:
    name = "memory"

    def __init__(
        self, max_entries: int, ttl_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._entries: OrderedDict[bytes, tuple[float, bytes]] = OrderedDict()
        self._max_entries = max_entries
        self._ttl = ttl_seconds
        self._clock = clock

    async def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        now = self._clock()
        return [self._get(key, now) for key in keys]

    def _get(self, key: bytes, now: float) -> bytes | None:
        item = self._entries.get(key)
        if item is None:
            return None
        if item[0] <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return item[1]

    async def set_many(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        expires = self._clock() + self._ttl
        for key, value in items:
            self._entries[key] = (expires, value)
            self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._entries.clear()

"""Vector cache backends. Each answers a batch in one round trip; a backend that cannot answer
raises `StoreUnavailable`, and `gateway.guarded.GuardedCache` turns that into misses (reads)
and skipped writes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Cache(Protocol):
    name: str

    async def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]: ...

    async def set_many(self, items: Sequence[tuple[bytes, bytes]]) -> None: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...

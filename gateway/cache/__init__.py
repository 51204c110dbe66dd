"""Vector cache backends. Both answer a batch in one round trip and never raise to callers:
a read error is a miss, a write error is logged and counted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Cache(Protocol):
    name: str

    @property
    def errors(self) -> int: ...

    async def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]: ...

    async def set_many(self, items: Sequence[tuple[bytes, bytes]]) -> None: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...

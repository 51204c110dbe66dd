"""Vector cache backends. Each answers a batch in one round trip; a backend that cannot answer
raises `StoreUnavailable`, and `gateway.guarded.GuardedCache` turns that into misses (reads)
and skipped writes on the request path, and into a 503 for the administration calls (delete,
purge, contents), so an operator never takes a failure for a success.

Every read names the model's tag and answers the model's current generation with the values, in
the same round trip: a key holds the generation it was made for (see gateway/keys.py), so a purge
on any instance is a miss on every instance at once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ModelEntries:
    """What one model has stored in its current generation."""

    entries: int
    bytes: int
    oldest_age_seconds: float | None = None  # None where the store cannot say


@dataclass(frozen=True, slots=True)
class Contents:
    models: dict[str, ModelEntries]  # by model tag
    estimated: bool  # sampled (Redis) rather than counted


class Cache(Protocol):
    name: str

    async def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]: ...

    async def read(self, tag: str, keys: Sequence[bytes]) -> tuple[int | None, list[bytes | None]]:
        """The tag's current generation (None when a guard answered for a store that did not)
        and the values."""
        ...

    async def set_many(
        self, items: Sequence[tuple[bytes, bytes]], ttl_seconds: int | None = None
    ) -> None: ...

    async def delete_many(self, keys: Sequence[bytes]) -> int: ...

    async def purge(self, tag: str) -> int:
        """Start a new generation of the tag's entries; answers the new generation."""
        ...

    async def contents(self) -> Contents: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...

"""Counters summed in memory and written to their store in one call per flush, so the request
path does no I/O for them. A write that fails or is cancelled keeps its counts for the next."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, Protocol, Self, TypeVar

from gateway.store import StoreUnavailable


class Summable(Protocol):
    def __add__(self, other: Self, /) -> Self: ...


K = TypeVar("K", bound=Hashable)
C = TypeVar("C", bound=Summable)


class Pending(Generic[K, C]):
    """`what` names the counters in the warning a failed write logs."""

    def __init__(self, what: str, logger: logging.Logger) -> None:
        self._what = what
        self._log = logger
        self._table: dict[K, C] = {}

    def add(self, key: K, counts: C) -> None:
        held = self._table.get(key)
        self._table[key] = counts if held is None else held + counts

    def snapshot(self) -> dict[K, C]:
        return dict(self._table)

    async def flush(self, write: Callable[[dict[K, C]], Awaitable[None]]) -> None:
        delta, self._table = self._table, {}
        if not delta:
            return
        written = False
        try:
            await write(delta)
            written = True
        except StoreUnavailable as exc:
            self._log.warning("%s write failed, kept for the next one: %s", self._what, exc)
        finally:  # failed or cancelled: keep the counts for the next write
            if not written:
                for key, counts in delta.items():
                    self.add(key, counts)

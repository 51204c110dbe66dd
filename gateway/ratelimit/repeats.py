"""Refusals a client did not wait for are answered late.

A refused request is told when to retry. A client that asks again before then is refused
again, and answering it at once lets a client that ignores `retry-after` loop as fast as the
gateway can answer: its refusals, cheap one by one, then fill the event loop every tenant's
requests wait in. Such a repeat is held instead: answered `hold` seconds later, which costs
the gateway one timer, so a client that floods refused requests gets at most one answer per
connection per hold. The first refusal of each wait is answered at once, and a client that
waits as told never meets a hold. Each hold is spread between half and one and a half times the
setting, so refusals held together (one client's parallel loops) are not answered together,
which would start them again together.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Hashable

MAX_ENTRIES = 10_000
MAX_HELD = 1_000  # held answers at once; beyond them, answered at once (bounded memory)


class RepeatRefusals:
    """Remembers until when each refused bucket set stays refused; a refusal inside that time
    is a repeat, held `hold` seconds. Bounded by entries, oldest first out."""

    def __init__(
        self,
        hold: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        spread: Callable[[], float] = lambda: random.uniform(0.5, 1.5),
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self.hold = hold
        self._clock = clock
        self._spread = spread
        self._max_entries = max_entries
        self._refused_until: dict[Hashable, float] = {}

    def hold_for(self, buckets: Hashable, wait: float) -> float:
        """Seconds to hold this refusal of `buckets`, which must wait `wait` seconds."""
        now = self._clock()
        until = self._refused_until.get(buckets)
        if until is not None and now < until:
            return self.hold * self._spread()
        if until is None and len(self._refused_until) >= self._max_entries:
            del self._refused_until[next(iter(self._refused_until))]
        self._refused_until[buckets] = now + wait
        return 0.0


class HeldAnswers:
    """Holds answers off the request slots, at most `limit` at once."""

    def __init__(self, limit: int = MAX_HELD) -> None:
        self.limit = limit
        self.held = 0

    async def hold(self, seconds: float) -> None:
        if seconds <= 0 or self.held >= self.limit:
            return
        self.held += 1
        try:
            await asyncio.sleep(seconds)
        finally:
            self.held -= 1

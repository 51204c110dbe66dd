"""A circuit breaker (pure; the clock is injected).

    closed ──failure_threshold consecutive failures──▶ open
    open ──cooldown passes──▶ half_open: lets ONE probe through
    half_open ──probe succeeds──▶ closed
    half_open ──probe fails──▶ open (for another cooldown)

A probe that never reports (its caller was cancelled) does not wedge the breaker: after
another cooldown, the next caller becomes the probe. While open, late results of calls let
through earlier are ignored, so they neither close it nor extend its cooldown.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(
        self,
        failure_threshold: int = 5,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0  # consecutive, while closed
        self._opened_at: float | None = None
        self._probe_at: float | None = None  # when the half-open probe was let through

    @property
    def state(self) -> State:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at < self.cooldown:
            return "open"
        return "half_open"

    def allow(self) -> bool:
        """May a call go through now? In half_open, True once: the caller is the probe."""
        state = self.state
        if state != "half_open":
            return state == "closed"
        if self._probe_at is not None and self._clock() - self._probe_at < self.cooldown:
            return False
        self._probe_at = self._clock()
        return True

    def record_success(self) -> None:
        if self.state == "open":
            return
        self._failures = 0
        self._opened_at = None
        self._probe_at = None

    def record_failure(self) -> None:
        state = self.state
        if state == "open":
            return
        self._failures += 1
        if state == "half_open" or self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
            self._probe_at = None

    def trip(self) -> None:
        """Open now, whatever the count: for a failure too costly to repeat (a timeout)."""
        if self.state == "open":
            return
        self._failures = self.failure_threshold
        self._opened_at = self._clock()
        self._probe_at = None

    def retry_in(self) -> float:
        """Seconds until a call may go through again (0 when one may go now)."""
        if self._opened_at is None:
            return 0.0
        since = self._opened_at if self._probe_at is None else self._probe_at
        return max(0.0, since + self.cooldown - self._clock())

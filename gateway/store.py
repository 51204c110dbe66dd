"""The one policy for every store across the network (Redis today): a short timeout per call, a
circuit breaker, a fallback, and error logs held to one line per interval with a count.

Every store adapter raises `StoreUnavailable` and nothing else when its store cannot answer, so
callers handle one error type. A `StoreGuard` is shared by every part that uses one store: once
the store stalls, the breaker opens for all of them (at the first timeout; other errors, which
cost little, count towards a threshold), so requests pay at most one timeout per breaker window
instead of one per part per request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from gateway.breaker import CircuitBreaker, State

T = TypeVar("T")

log = logging.getLogger("gateway.store")


# A `timeout` for operations that bound themselves (a socket timeout, the fast reader's own).
SELF_BOUNDED = 0.0


class StoreUnavailable(Exception):
    """The store did not answer: down, stalled, refusing writes, or skipped by an open breaker."""


class ErrorLog:
    """At most one WARNING per interval, saying how many failures it stands for."""

    def __init__(
        self,
        what: str,
        *,
        interval: float = 10.0,
        logger: logging.Logger = log,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._what = what
        self._interval = interval
        self._logger = logger
        self._clock = clock
        self._logged_at: float | None = None
        self._unlogged = 0
        self.count = 0

    def failed(self, exc: BaseException) -> None:
        self.count += 1
        self._unlogged += 1
        now = self._clock()
        if self._logged_at is not None and now - self._logged_at < self._interval:
            return
        self._logger.warning(
            "%s failed %d time(s) since the last report (last error: %s)",
            self._what,
            self._unlogged,
            type(exc).__name__,
        )
        self._logged_at, self._unlogged = now, 0


class StoreGuard:
    """Runs store calls under one timeout and one breaker; a failure or a skip raises
    `StoreUnavailable` (or answers the fallback, with `call_or`)."""

    def __init__(
        self,
        name: str,
        *,
        timeout: float,
        failures: tuple[type[BaseException], ...] = (OSError,),
        failure_threshold: int = 3,
        cooldown: float = 2.0,
        log_interval: float = 10.0,
        logger: logging.Logger = log,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.timeout = timeout
        self._failures: tuple[type[BaseException], ...] = (
            TimeoutError,
            StoreUnavailable,
            *failures,
        )
        self.breaker = CircuitBreaker(failure_threshold, cooldown, clock)
        self.errors = ErrorLog(name, interval=log_interval, logger=logger, clock=clock)
        self.skipped = 0  # calls answered without asking the store

    @property
    def state(self) -> State:
        return self.breaker.state

    async def call(
        self, operation: Callable[[], Awaitable[T]], *, timeout: float | None = None
    ) -> T:
        if not self.breaker.allow():
            self.skipped += 1
            raise StoreUnavailable(f"{self.name}: skipped while its breaker is open")
        try:
            result = await self._bounded(operation, self.timeout if timeout is None else timeout)
        except self._failures as exc:
            _raise_if_cancelled(exc)
            self._record_failure(exc)
            self.errors.failed(exc)
            raise StoreUnavailable(f"{self.name}: {type(exc).__name__}") from exc
        self.breaker.record_success()
        return result

    @staticmethod
    async def _bounded(operation: Callable[[], Awaitable[T]], timeout: float) -> T:
        if timeout == SELF_BOUNDED:  # no timer to arm: it costs more than a cache read's parsing
            return await operation()
        async with asyncio.timeout(timeout):
            return await operation()

    def _record_failure(self, exc: BaseException) -> None:
        # A timeout opens the breaker at once: every request behind it would wait as long.
        # (An adapter's own timeout arrives as StoreUnavailable caused by a TimeoutError.)
        if isinstance(exc, TimeoutError) or isinstance(exc.__cause__, TimeoutError):
            self.breaker.trip()
        else:
            self.breaker.record_failure()

    async def call_or(
        self, operation: Callable[[], Awaitable[T]], fallback: Callable[[], Awaitable[T]]
    ) -> T:
        try:
            return await self.call(operation)
        except StoreUnavailable:
            return await fallback()


def _raise_if_cancelled(exc: BaseException) -> None:
    """A cancellation that a client library turned into its own error is still a cancellation:
    answered as an unavailable store, a periodic loop would catch it and never stop."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from exc

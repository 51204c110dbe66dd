"""Token-bucket arithmetic over plain data (pure: no I/O, no clock of its own).

A bucket holds up to `burst` tokens and refills at `rate` tokens per second. A request
names one or more buckets and what it costs in each; it is admitted only if every bucket
can pay, and then every bucket pays (all-or-nothing). `token_bucket.lua` is the same
arithmetic run atomically inside Redis; keep the two in step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# Float noise such as 0.1 * 1000 == 100.00000000000001 must not round up a whole extra ms.
_MS_EPSILON = 1e-6


@dataclass(frozen=True, slots=True)
class Limit:
    rate: float  # tokens refilled per second
    burst: float  # capacity

    def __post_init__(self) -> None:
        if not (self.rate > 0 and self.burst > 0):
            raise ValueError(f"rate and burst must be positive, got {self.rate}, {self.burst}")

    @classmethod
    def per_second(cls, n: float, burst: float | None = None) -> Limit:
        return cls(rate=n, burst=n if burst is None else burst)

    @classmethod
    def per_minute(cls, n: float, burst: float | None = None) -> Limit:
        return cls(rate=n / 60, burst=n if burst is None else burst)


@dataclass(frozen=True, slots=True)
class BucketState:
    tokens: float
    updated_at: float  # seconds, on whatever clock the caller uses


@dataclass(frozen=True, slots=True)
class BucketRequest:
    key: str
    limit: Limit
    cost: float

    def __post_init__(self) -> None:
        if not self.cost >= 0:
            raise ValueError(f"cost must be >= 0, got {self.cost}")


@dataclass(frozen=True, slots=True)
class Decision:
    """One bucket's view of one request. `allowed` is the outcome of the whole request."""

    allowed: bool
    limit: float  # the bucket's burst
    remaining: float
    retry_after: float  # seconds until this bucket could pay the cost; 0 when it can now
    reset_after: float  # seconds until this bucket is full again
    exceeds_burst: bool  # cost > burst: never fits; retry_after is the time to fill up


def refill(state: BucketState | None, limit: Limit, now: float) -> BucketState:
    """The bucket as of `now`; a missing bucket is full and a clock going back adds nothing."""
    if state is None:
        return BucketState(tokens=limit.burst, updated_at=now)
    elapsed = max(0.0, now - state.updated_at)
    tokens = min(limit.burst, state.tokens + elapsed * limit.rate)
    return BucketState(tokens=tokens, updated_at=max(now, state.updated_at))


def decide(
    states: Sequence[BucketState | None], requests: Sequence[BucketRequest], now: float
) -> tuple[list[Decision], list[BucketState]]:
    """Charge every bucket its cost if all of them can pay, else charge none."""
    if len(states) != len(requests):
        raise ValueError("one state per request")
    current = [refill(s, r.limit, now) for s, r in zip(states, requests, strict=True)]
    allowed = all(r.cost <= s.tokens for s, r in zip(current, requests, strict=True))
    if allowed:
        current = [
            BucketState(s.tokens - r.cost, s.updated_at)
            for s, r in zip(current, requests, strict=True)
        ]
    decisions = [_decision(allowed, s, r) for s, r in zip(current, requests, strict=True)]
    return decisions, current


def _decision(allowed: bool, state: BucketState, request: BucketRequest) -> Decision:
    limit = request.limit
    missing = 0.0 if allowed else max(0.0, min(request.cost, limit.burst) - state.tokens)
    return Decision(
        allowed=allowed,
        limit=limit.burst,
        remaining=state.tokens,
        retry_after=missing / limit.rate,
        reset_after=(limit.burst - state.tokens) / limit.rate,
        exceeds_burst=request.cost > limit.burst,
    )


def ceil_ms(seconds: float) -> int:
    """Whole milliseconds, rounded up; anything above zero is at least 1 ms."""
    if seconds <= 0:
        return 0
    return max(1, math.ceil(seconds * 1000 - _MS_EPSILON))


def go_duration(seconds: float) -> str:
    """Format like Go's time.Duration, as OpenAI's x-ratelimit-reset-* headers do."""
    ms = ceil_ms(seconds)
    if ms < 1000:
        return f"{ms}ms" if ms else "0s"
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    whole, frac = divmod(ms, 1000)
    secs = f"{whole}.{frac:03d}".rstrip("0") if frac else str(whole)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"

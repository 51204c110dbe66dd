"""When to retry an upstream call and how long to wait first (pure).

Waits are full jitter (``random() * min(max_delay, base_delay * 2**attempt)``), or the
upstream's own ``retry-after`` when it sent one. Only errors marked ``should_retry`` are
retried: connection errors, timeouts, 429 and 5xx; never a 4xx about the request, nor a
provider the gateway holds no valid credentials for (that one is only failed over).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from gateway.errors import GatewayError

MAX_RETRY_AFTER: Final = 60.0  # seconds: the longest upstream retry-after we honour


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 3  # per deployment, the first attempt included
    base_delay: float = 0.1  # seconds
    max_delay: float = 2.0  # seconds, the cap of one backoff wait
    deadline: float = 30.0  # seconds for one request: every attempt, wait and failover
    # Seconds one attempt may take: a hung call fails over instead of eating the deadline.
    attempt_timeout: float = 10.0
    max_total_attempts: int = 3  # per call, over every deployment: the bound clients rely on


def should_retry(error: GatewayError) -> bool:
    return error.should_retry is True


def backoff(policy: RetryPolicy, attempt: int, random: Callable[[], float]) -> float:
    """Full jitter after failed attempt number ``attempt`` (0 for the first)."""
    return random() * min(policy.max_delay, policy.base_delay * 2.0**attempt)


def retry_delay(
    policy: RetryPolicy, attempt: int, error: GatewayError, random: Callable[[], float]
) -> float:
    """The upstream's retry-after (capped at a minute) when it sent one, else backoff."""
    if error.retry_after is not None:
        return min(MAX_RETRY_AFTER, max(0.0, error.retry_after))
    return backoff(policy, attempt, random)

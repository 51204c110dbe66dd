"""Startup checks on the Redis the gateway is given (advice only: nothing here stops startup)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.exceptions import RedisError

from gateway.cache.redis import RedisClient

log = logging.getLogger("gateway.redis")

# Vectors carry a TTL and usage counters never do, so volatile-* evicts vectors only; noeviction
# never evicts (writes fail at maxmemory instead).
SAFE_POLICY_PREFIXES = ("volatile-", "noeviction")


def policy_warning(policy: str) -> str | None:
    """The warning for a maxmemory-policy that may evict billing counters, else None."""
    if not policy or policy.startswith(SAFE_POLICY_PREFIXES):
        return None
    return (
        f"redis maxmemory-policy is {policy}: it may evict usage counters (billing data); "
        "set maxmemory-policy volatile-lru so only cache entries (which expire) are evicted"
    )


async def warn_on_evicting_policy(client: RedisClient, timeout: float) -> None:
    """One WARNING line when Redis may evict billing data; silent when CONFIG is not allowed."""
    try:
        async with asyncio.timeout(timeout):
            reply: Any = await client.config_get("maxmemory-policy")
    except (RedisError, OSError, TimeoutError):
        return
    warning = policy_warning(_policy(reply))
    if warning is not None:
        log.warning(warning)


def _policy(reply: Any) -> str:
    if isinstance(reply, dict):
        value = reply.get("maxmemory-policy") or reply.get(b"maxmemory-policy") or ""
        return value.decode() if isinstance(value, bytes) else str(value)
    return ""

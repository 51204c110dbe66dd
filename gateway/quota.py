"""Tenant quotas: which token buckets a request pays into, and the 429s and headers they give.

One limiter call per request charges, all or nothing: requests/s per client IP, requests/s and
input tokens/min per key, and optional per-model buckets. Cache hits count: the quota is what
the tenant asks for, whatever the cache saves; the upstream's budget only ever sees misses.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.auth import Principal
from gateway.errors import RateLimited
from gateway.ratelimit.bucket import BucketRequest, Decision, Limit, go_duration
from gateway.settings import LimitSettings, RateLimitSettings

if TYPE_CHECKING:  # the protocol only: this module stays free of redis
    from gateway.ratelimit import Limiter


@dataclass(frozen=True, slots=True)
class Bucket:
    role: str  # ip | key | model
    unit: str  # requests | tokens
    request: BucketRequest


@dataclass(frozen=True, slots=True)
class Quota:
    """The key's own buckets after this request: the x-ratelimit-* headers."""

    requests: Decision | None = None
    tokens: Decision | None = None


def resolve(own: LimitSettings, default: LimitSettings) -> LimitSettings:
    return LimitSettings(
        *(
            default_value if own_value is None else own_value
            for own_value, default_value in zip(
                dataclasses.astuple(own), dataclasses.astuple(default), strict=True
            )
        )
    )


def _limit(rate: float | None, burst: float | None, seconds: float) -> Limit | None:
    if not rate:
        return None
    return Limit(rate=rate / seconds, burst=burst or rate)


def _pair(role: str, name: str, spec: LimitSettings, tokens: int) -> list[Bucket]:
    buckets = []
    requests = _limit(spec.requests_per_second, spec.requests_burst, 1)
    if requests is not None:
        buckets.append(Bucket(role, "requests", BucketRequest(f"{name}:r", requests, 1)))
    per_minute = _limit(spec.tokens_per_minute, spec.tokens_burst, 60)
    if per_minute is not None:
        buckets.append(Bucket(role, "tokens", BucketRequest(f"{name}:t", per_minute, tokens)))
    return buckets


def buckets_for(
    principal: Principal, ip: str, model: str, tokens: int, settings: RateLimitSettings
) -> list[Bucket]:
    ip_only = dataclasses.replace(settings.per_ip, tokens_per_minute=None)
    buckets = _pair("ip", f"ip:{ip}", ip_only, tokens)
    buckets += _pair(
        "key", f"key:{principal.key_id}", resolve(principal.limits, settings.per_key), tokens
    )
    model_limits = settings.per_model.get(model)
    if model_limits is not None:
        buckets += _pair("model", f"model:{model}", model_limits, tokens)
    return buckets


def quota_of(buckets: Sequence[Bucket], decisions: Sequence[Decision]) -> Quota:
    own = {b.unit: d for b, d in zip(buckets, decisions, strict=True) if b.role == "key"}
    return Quota(requests=own.get("requests"), tokens=own.get("tokens"))


def headers(quota: Quota) -> dict[str, str]:
    result = {}
    for unit, decision in (("requests", quota.requests), ("tokens", quota.tokens)):
        if decision is not None:
            result[f"x-ratelimit-limit-{unit}"] = str(int(decision.limit))
            result[f"x-ratelimit-remaining-{unit}"] = str(max(0, math.floor(decision.remaining)))
            result[f"x-ratelimit-reset-{unit}"] = go_duration(decision.reset_after)
    return result


_UNIT_TEXT = {"requests": "requests per second (RPS)", "tokens": "tokens per min (TPM)"}


def too_large(bucket: Bucket, decision: Decision, model: str, quota: Quota) -> RateLimited:
    """A request over a bucket's whole burst can never succeed: OpenAI's "Request too large"
    429, with no retry-after and ``x-should-retry: false``."""
    error = RateLimited(
        f"Request too large for {model} per {bucket.role} on {_UNIT_TEXT[bucket.unit]}: "
        f"Limit {int(decision.limit)}, Requested {int(bucket.request.cost)}. The input or output "
        "tokens must be reduced in order to run successfully.",
        headers=headers(quota),
    )
    error.type = bucket.unit
    error.scope = bucket.role
    error.should_retry = False
    return error


def rate_limited(
    buckets: Sequence[Bucket], decisions: Sequence[Decision], model: str, quota: Quota
) -> RateLimited:
    pairs = list(zip(buckets, decisions, strict=True))
    for bucket, decision in pairs:
        if decision.exceeds_burst:
            return too_large(bucket, decision, model, quota)
    short = [(b, d) for b, d in pairs if d.remaining < b.request.cost] or pairs
    bucket, decision = max(short, key=lambda pair: pair[1].retry_after)
    wait = min(60.0, max(d.retry_after for d in decisions))
    error = RateLimited(
        f"Rate limit reached for {model} per {bucket.role} on {_UNIT_TEXT[bucket.unit]}: "
        f"Limit {int(decision.limit)}, Remaining {math.floor(decision.remaining)}, "
        f"Requested {int(bucket.request.cost)}. Please try again in {wait:.3g}s.",
        headers={
            "retry-after": str(max(1, math.ceil(wait))),
            "retry-after-ms": str(max(1, math.ceil(wait * 1000))),
            **headers(quota),
        },
    )
    error.type = bucket.unit
    error.scope = bucket.role
    return error


def _ignore(scope: str, key: str) -> None:
    pass


class TenantLimits:
    def __init__(
        self,
        limiter: Limiter,
        settings: RateLimitSettings,
        on_reject: Callable[[str, str], None] = _ignore,
    ) -> None:
        self._limiter = limiter
        self._settings = settings
        self._on_reject = on_reject  # (scope, key name): the rate-limited metric

    async def admit(self, principal: Principal, ip: str, model: str, tokens: int) -> Quota:
        """Charge this request to its buckets, or raise a 429 without charging any."""
        if principal.internal:
            return Quota()
        buckets = buckets_for(principal, ip, model, tokens, self._settings)
        if not buckets:
            return Quota()
        decisions = await self._limiter.acquire([b.request for b in buckets])
        quota = quota_of(buckets, decisions)
        if not decisions[0].allowed:
            error = rate_limited(buckets, decisions, model, quota)
            self._on_reject(error.scope, principal.name)
            raise error
        return quota

"""Tenant quotas: which token buckets a request pays into, and the 429s and headers they give.

A request pays in two steps, each one limiter call, all or nothing. From the headers alone,
before the body is read: requests/s per client IP and per key (a failed authentication pays the
IP's bucket). Once the exact token count is known: input tokens/min per key and the optional
per-model buckets. Cache hits count: the quota is what the tenant asks for, whatever the cache
saves; the upstream's budget only ever sees misses.
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
from gateway.ratelimit.refusals import aged
from gateway.ratelimit.repeats import RepeatRefusals
from gateway.settings import LimitSettings, RateLimitSettings, Settings, backend

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

    def with_tokens(self, later: Quota) -> Quota:
        return Quota(requests=self.requests or later.requests, tokens=later.tokens)


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


def _pair(role: str, name: str, spec: LimitSettings, tokens: int | None) -> list[Bucket]:
    """The requests bucket when `tokens` is None, else the tokens bucket (and, for a model,
    its requests bucket too: the model is only known from the body)."""
    buckets = []
    requests = _limit(spec.requests_per_second, spec.requests_burst, 1)
    if requests is not None and (tokens is None or role == "model"):
        buckets.append(Bucket(role, "requests", BucketRequest(f"{name}:r", requests, 1)))
    per_minute = _limit(spec.tokens_per_minute, spec.tokens_burst, 60)
    if per_minute is not None and tokens is not None:
        buckets.append(Bucket(role, "tokens", BucketRequest(f"{name}:t", per_minute, tokens)))
    return buckets


def ip_buckets(ip: str, settings: RateLimitSettings) -> list[Bucket]:
    return _pair("ip", f"ip:{ip}", settings.per_ip, None)


class LimitPolicy:
    """The rate-limit settings, resolved once: each distinct set of a key's own limits is merged
    over the defaults the first time it is seen, not again on every request."""

    def __init__(self, settings: RateLimitSettings) -> None:
        self.settings = settings
        self._resolved: dict[LimitSettings, LimitSettings] = {}

    def of(self, principal: Principal) -> LimitSettings:
        own = principal.limits
        resolved = self._resolved.get(own)
        if resolved is None:
            resolved = self._resolved[own] = resolve(own, self.settings.per_key)
        return resolved


def request_buckets(principal: Principal, ip: str, policy: LimitPolicy) -> list[Bucket]:
    """What a request pays from its headers alone: one request per IP and per key."""
    own = policy.of(principal)
    return ip_buckets(ip, policy.settings) + _pair("key", f"key:{principal.key_id}", own, None)


def token_buckets(
    principal: Principal, model: str, tokens: int, policy: LimitPolicy
) -> list[Bucket]:
    """What a request pays once its exact token count is known."""
    buckets = _pair("key", f"key:{principal.key_id}", policy.of(principal), tokens)
    model_limits = policy.settings.per_model.get(model)
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
    subject = f" for {model}" if model else ""  # before the body is read: no model yet
    error = RateLimited(
        f"Rate limit reached{subject} per {bucket.role} on {_UNIT_TEXT[bucket.unit]}: "
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
        repeats: RepeatRefusals | None = None,
    ) -> None:
        self._limiter = limiter
        self._policy = LimitPolicy(settings)
        self._on_reject = on_reject  # (scope, key name): the rate-limited metric
        self._repeats = repeats or RepeatRefusals(settings.repeat_hold_seconds)

    async def admit_anyone(self, ip: str) -> None:
        """Charge a request whose caller is not known (it failed authentication) to its IP."""
        await self._charge(ip_buckets(ip, self._policy.settings), "", "anonymous")

    async def admit_request(self, principal: Principal, ip: str) -> Quota:
        """Charge one request to the IP's and the key's buckets, from the headers alone."""
        if principal.internal:
            return Quota()
        buckets = request_buckets(principal, ip, self._policy)
        return await self._charge(buckets, "", principal.name)

    async def admit_tokens(self, principal: Principal, model: str, tokens: int) -> Quota:
        """Charge the exact tokens (and the model's buckets), or raise a 429 charging none."""
        if principal.internal:
            return Quota()
        buckets = token_buckets(principal, model, tokens, self._policy)
        return await self._charge(buckets, model, principal.name)

    async def _charge(self, buckets: Sequence[Bucket], model: str, name: str) -> Quota:
        if not buckets:
            return Quota()
        decisions = await self._limiter.acquire([b.request for b in buckets])
        quota = quota_of(buckets, decisions)
        if not decisions[0].allowed:
            error = self._refusal(buckets, decisions, model, quota)
            self._on_reject(error.scope, name)
            raise error
        return quota

    def _refusal(
        self, buckets: Sequence[Bucket], decisions: list[Decision], model: str, quota: Quota
    ) -> RateLimited:
        """The 429; a repeat the client did not wait for is held, and says what is left to
        wait once it is answered."""
        error = rate_limited(buckets, decisions, model, quota)
        if error.should_retry is False:  # can never succeed: nothing to wait for
            return error
        wait = max(d.retry_after for d in decisions)
        hold = self._repeats.hold_for(tuple(b.request.key for b in buckets), wait)
        if hold:
            error = rate_limited(buckets, aged(decisions, hold), model, quota)
            error.hold = hold
        return error


def _share(value: float | None, workers: int, floor: float = 0.0) -> float | None:
    """One worker's part of a limit value; None (inherit) and 0 (unlimited) stay as they are."""
    if not value:
        return value
    return max(value / workers, floor)


def divided(spec: LimitSettings, workers: int) -> LimitSettings:
    """One worker's share of a key's limits."""
    return LimitSettings(
        requests_per_second=_share(spec.requests_per_second, workers),
        requests_burst=_share(spec.requests_burst, workers, floor=1.0),  # one request must fit
        tokens_per_minute=_share(spec.tokens_per_minute, workers),
        tokens_burst=_share(spec.tokens_burst, workers, floor=1.0),
    )


def per_worker(settings: Settings, workers: int) -> Settings:
    """Without a shared Redis every worker keeps its own buckets: each gets rate/N and burst/N,
    so N workers together hold one limit (for a client whose requests spread over them)."""
    if workers <= 1 or backend(settings, "limiter") == "redis":
        return settings
    limits = settings.limits
    shares = dataclasses.replace(
        limits,
        per_ip=divided(limits.per_ip, workers),
        per_key=divided(limits.per_key, workers),
        per_model={m: divided(spec, workers) for m, spec in limits.per_model.items()},
    )
    keys = tuple(
        dataclasses.replace(key, limits=divided(key.limits, workers)) for key in settings.auth.keys
    )
    auth = dataclasses.replace(settings.auth, keys=keys)
    return dataclasses.replace(settings, limits=shares, auth=auth)

"""Route a model's upstream call across its deployments, within one deadline.

    order     priority order; weighted random when any deployment has a weight > 0
              (weight-0 deployments then follow, in priority order, as fallbacks)
    pick      round-robin from the deployment after the one last tried, skipping those whose
              breaker is open, that used up ``max_attempts``, or whose next retry would start
              after the deadline; wait until the picked one may be retried
    failure   retryable (should_retry) → count it on the provider's breaker, schedule that
              deployment's retry (backoff with jitter, or the upstream's retry-after), pick again
              not retryable (a 4xx about the request) → raised at once
              an answer that fails validation (upstream/validate.py, the provider's parser) or
              any unexpected exception is a retryable failure too, never a 500
              misconfigured (the gateway's own credentials) → failed over, never retried
    bound     at most ``max_total_attempts`` provider calls per call, over every deployment
    give up   nothing left to pick → the last error (502/503/504, ``x-should-retry: true``);
              every breaker open before any attempt → 503 "no healthy deployment for model X"
    deadline  the whole call, waits included (asyncio.timeout) → 504 UpstreamTimeout

A retry-after (or backoff) delays only the deployment that failed: failing over to another
deployment is immediate. Per-provider concurrency is the provider's own business.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random as _random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from gateway.breaker import CircuitBreaker
from gateway.catalog import Deployment, Model
from gateway.errors import (
    GatewayError,
    ProviderMisconfigured,
    ServiceUnavailable,
    UpstreamError,
    UpstreamTimeout,
)
from gateway.upstream import Inputs, Provider, UpstreamBatch
from gateway.upstream.retry import RetryPolicy, retry_delay, should_retry
from gateway.upstream.validate import check_batch

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
Random = Callable[[], float]
BreakerFactory = Callable[[str], CircuitBreaker]  # provider name → its breaker

DEFAULT_POLICY = RetryPolicy()
log = logging.getLogger("gateway.upstream")
Observe = Callable[[str, str, str, float, int], None]


def _ignore(provider: str, model: str, status: str, seconds: float, inputs: int) -> None:
    pass


def weight_of(deployment: Deployment) -> float:
    """The deployment's routing weight; 0 keeps priority order."""
    return deployment.weight


def deployment_order(deployments: Sequence[Deployment], random: Random) -> tuple[Deployment, ...]:
    """Priority order, or weighted random order (Efraimidis-Spirakis) when weights are set."""
    weighted = [d for d in deployments if weight_of(d) > 0]
    if not weighted:
        return tuple(deployments)
    drawn = sorted(weighted, key=lambda d: random() ** (1 / weight_of(d)), reverse=True)
    return (*drawn, *(d for d in deployments if weight_of(d) <= 0))


@dataclass(slots=True)
class _Call:
    """The bookkeeping of one embed call (never shared between calls)."""

    order: tuple[Deployment, ...]
    deadline_at: float
    failures: dict[Deployment, int] = field(default_factory=dict)
    ready_at: dict[Deployment, float] = field(default_factory=dict)
    last_error: GatewayError | None = None
    last_tried: Deployment | None = None
    in_flight: Deployment | None = None
    tried: set[Deployment] = field(default_factory=set)
    attempts: int = 0

    def rotation(self) -> list[Deployment]:
        """Every deployment, starting after the one last tried."""
        start = 0 if self.last_tried is None else self.order.index(self.last_tried) + 1
        return [*self.order[start:], *self.order[:start]]


class Router:
    """Counters: ``attempts`` (provider calls), ``retries`` (calls after a call's first one),
    ``failovers`` (retries that moved to another deployment)."""

    def __init__(
        self,
        providers: Mapping[str, Provider],
        policy: RetryPolicy = DEFAULT_POLICY,
        *,
        breaker_factory: BreakerFactory | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        random: Random = _random.random,
        observe: Observe = _ignore,
    ) -> None:
        self._providers = dict(providers)
        self._observe = observe  # (provider, model, status, seconds, inputs) of every call
        self._policy = policy
        self._clock = clock
        self._sleep = sleep
        self._random = random
        factory = breaker_factory or (lambda _name: CircuitBreaker(clock=clock))
        self._breakers = {name: factory(name) for name in self._providers}
        # At most half the deadline, so a hung attempt always leaves time to fail over.
        self._attempt_timeout = min(policy.attempt_timeout, policy.deadline / 2)
        self.attempts = 0
        self.retries = 0
        self.failovers = 0

    def batch_limits(self, model: Model) -> tuple[int, int]:
        """The tightest inputs-per-call and tokens-per-call caps among the model's providers."""
        providers = [self._providers[d.provider] for d in model.deployments]
        return (
            min(p.max_batch for p in providers),
            min(p.max_tokens_per_request for p in providers),
        )

    def breaker_states(self) -> dict[str, str]:
        return {name: breaker.state for name, breaker in self._breakers.items()}

    async def embed(self, model: Model, inputs: Inputs, dimensions: int | None) -> UpstreamBatch:
        order = deployment_order(model.deployments, self._random)
        call = _Call(order, self._clock() + self._policy.deadline)
        try:
            async with asyncio.timeout(self._policy.deadline):
                return await self._run(call, model, inputs, dimensions)
        except TimeoutError:
            raise self._timed_out(call, model) from None

    async def _run(
        self, call: _Call, model: Model, inputs: Inputs, dimensions: int | None
    ) -> UpstreamBatch:
        while call.attempts < self._policy.max_total_attempts and (
            deployment := await self._pick(call) or self._last_resort(call)
        ):
            batch = await self._attempt(call, model, deployment, inputs, dimensions)
            if batch is not None:
                return batch
        raise call.last_error or self._no_healthy_deployment(model)

    async def _pick(self, call: _Call) -> Deployment | None:
        call.in_flight = None  # no provider to blame if the deadline passes while waiting
        for deployment in call.rotation():
            wait = self._wait_before(call, deployment)
            if wait is None:
                continue
            if wait > 0:
                await self._sleep(wait)
            if self._breakers[deployment.provider].allow():
                return deployment
        return None

    def _last_resort(self, call: _Call) -> Deployment | None:
        """Once every healthy deployment has failed this call, one not yet tried whose breaker
        is open gets a single attempt: better a likely failure than a certain one. A call that
        found every breaker open tries none (the 503 protects a dead provider)."""
        if call.last_tried is None:
            return None
        for deployment in call.order:
            if deployment not in call.tried and self._breakers[deployment.provider].state == "open":
                return deployment
        return None

    def _wait_before(self, call: _Call, deployment: Deployment) -> float | None:
        """Seconds to wait before trying ``deployment`` again; None when it is out of the call."""
        if call.failures.get(deployment, 0) >= self._policy.max_attempts:
            return None
        if self._breakers[deployment.provider].state == "open":
            return None
        now = self._clock()
        ready_at = call.ready_at.get(deployment, now)
        return None if ready_at > call.deadline_at else max(0.0, ready_at - now)

    async def _attempt(
        self,
        call: _Call,
        model: Model,
        deployment: Deployment,
        inputs: Inputs,
        dimensions: int | None,
    ) -> UpstreamBatch | None:
        """The batch, or None after a retryable failure; a non-retryable error is raised."""
        self._count(call, deployment)
        provider = self._providers[deployment.provider]
        call.in_flight = deployment
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._attempt_timeout):
                batch = await provider.embed(deployment.upstream_model, inputs, dimensions)
            check_batch(batch, len(inputs), dimensions or model.dimensions, deployment.provider)
        except TimeoutError:
            error = UpstreamTimeout(f"upstream provider {deployment.provider} timed out")
            self._record(deployment, "timeout", started, len(inputs))
            self._failed(call, deployment, error)
            return None
        except GatewayError as error:
            self._record(deployment, error.upstream_status or "error", started, len(inputs))
            self._failed(call, deployment, error)
            return None
        except Exception:  # a bug or a surprise on the upstream path is a failed attempt too
            log.exception("upstream provider %s: unexpected failure", deployment.provider)
            surprise = UpstreamError(f"upstream provider {deployment.provider} failed")
            self._record(deployment, "error", started, len(inputs))
            self._failed(call, deployment, surprise)
            return None
        self._record(deployment, "200", started, len(inputs))
        self._breakers[deployment.provider].record_success()
        return batch

    def _record(self, deployment: Deployment, status: str, started: float, inputs: int) -> None:
        seconds = time.perf_counter() - started
        self._observe(deployment.provider, deployment.upstream_model, status, seconds, inputs)

    def _count(self, call: _Call, deployment: Deployment) -> None:
        call.tried.add(deployment)
        call.attempts += 1
        self.attempts += 1
        if call.last_tried is not None:
            self.retries += 1
            if deployment != call.last_tried:
                self.failovers += 1
        call.last_tried = deployment

    def _failed(self, call: _Call, deployment: Deployment, error: GatewayError) -> None:
        breaker = self._breakers[deployment.provider]
        if isinstance(error, ProviderMisconfigured):  # another deployment may still serve
            call.failures[deployment] = self._policy.max_attempts
            call.last_error = error
            return
        if not should_retry(error):
            breaker.record_success()  # the provider answered; the request was at fault
            raise error
        breaker.record_failure()
        failures = call.failures.get(deployment, 0)
        call.failures[deployment] = failures + 1
        delay = retry_delay(self._policy, failures, error, self._random)
        call.ready_at[deployment] = self._clock() + delay
        call.last_error = error

    def _timed_out(self, call: _Call, model: Model) -> UpstreamTimeout:
        if call.in_flight is not None:  # the call the deadline cut counts against its provider
            self._breakers[call.in_flight.provider].record_failure()
        within = f"{self._policy.deadline:g} s"
        return UpstreamTimeout(f"upstream for model {model.name} did not answer within {within}")

    def _no_healthy_deployment(self, model: Model) -> ServiceUnavailable:
        waits = (self._breakers[d.provider].retry_in() for d in model.deployments)
        seconds = max(1, math.ceil(min(waits, default=1.0)))
        return ServiceUnavailable(
            f"no healthy deployment for model {model.name}",
            headers={"retry-after": str(seconds)},
            retry_after=float(seconds),
        )

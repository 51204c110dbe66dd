"""Router against two real fake upstreams: retries, retry-after, failover, breakers, deadline."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import numpy as np
import pytest

from gateway.breaker import CircuitBreaker
from gateway.catalog import Deployment, Model
from gateway.errors import (
    GatewayError,
    ProviderMisconfigured,
    ServiceUnavailable,
    UpstreamError,
    UpstreamTimeout,
)
from gateway.settings import ProviderSettings
from gateway.upstream.openai import OpenAIProvider
from gateway.upstream.retry import RetryPolicy
from gateway.upstream.router import Router, deployment_order
from tests.support.clock import FakeClock
from tests.support.fake_upstream import FakeUpstream, vector_for

NAME = "tiny"
DIMS = 8
SECRET = "sk-secret-test"
TEXTS = ["hello", "world"]


class Sleeper:
    """An injected sleep: records each delay and moves the fake clock instead of waiting."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.clock.advance(seconds)


@dataclass(frozen=True, slots=True)
class WeightedDeployment(Deployment):
    weight: float = 0.0


def model(*providers: str) -> Model:
    return Model(
        name=NAME,
        dimensions=DIMS,
        max_tokens=8191,
        price_per_million=0.0,
        supports_dimensions=False,
        derive_dimensions=False,
        cl100k=True,
        cache_id=NAME,
        owned_by="system",
        display_name=NAME,
        description="",
        deployments=tuple(Deployment(p, NAME) for p in providers),
    )


BOTH = model("primary", "secondary")
ONLY_PRIMARY = model("primary")


@pytest.fixture
async def primary() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream(dims_by_model={NAME: DIMS})
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def secondary() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream(dims_by_model={NAME: DIMS})
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def providers(
    primary: FakeUpstream, secondary: FakeUpstream
) -> AsyncIterator[dict[str, OpenAIProvider]]:
    built = {
        name: OpenAIProvider(name, ProviderSettings(base_url=fake.base_url, api_key=SECRET))
        for name, fake in (("primary", primary), ("secondary", secondary))
    }
    for provider in built.values():
        await provider.start()
    yield built
    for provider in built.values():
        await provider.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleeper(clock: FakeClock) -> Sleeper:
    return Sleeper(clock)


RouterFactory = Callable[..., Router]


@pytest.fixture
def make_router(
    providers: dict[str, OpenAIProvider], clock: FakeClock, sleeper: Sleeper
) -> RouterFactory:
    def build(
        threshold: int = 5, cooldown: float = 30.0, policy: RetryPolicy | None = None
    ) -> Router:
        return Router(
            providers,
            policy or RetryPolicy(),
            breaker_factory=lambda _name: CircuitBreaker(threshold, cooldown, clock),
            clock=clock,
            sleep=sleeper,
            random=lambda: 0.5,
        )

    return build


@pytest.fixture
def router(make_router: RouterFactory) -> Router:
    return make_router()


async def test_a_5xx_is_retried_with_backoff_until_it_succeeds(
    router: Router, primary: FakeUpstream, sleeper: Sleeper
) -> None:
    primary.fail_next(2, 500)
    batch = await router.embed(ONLY_PRIMARY, TEXTS, None)
    expected = np.stack([vector_for(NAME, text, DIMS) for text in TEXTS])
    np.testing.assert_array_equal(batch.vectors, expected)
    assert primary.request_count == 3
    assert sleeper.delays == pytest.approx([0.05, 0.1])  # 0.5 * 0.1 * 2**attempt
    assert (router.attempts, router.retries, router.failovers) == (3, 2, 0)


async def test_each_call_is_observed_with_what_the_provider_itself_answered(
    providers: dict[str, OpenAIProvider], primary: FakeUpstream, clock: FakeClock
) -> None:
    seen: list[str] = []
    router = Router(
        providers,
        RetryPolicy(),
        breaker_factory=lambda _name: CircuitBreaker(5, 30.0, clock),
        observe=lambda _provider, _model, status, _seconds, _inputs: seen.append(status),
        clock=clock,
        sleep=Sleeper(clock),
        random=lambda: 0.5,
    )
    primary.fail_next(1, 500)
    primary.fail_next(1, 429)
    await router.embed(ONLY_PRIMARY, TEXTS, None)
    assert seen == ["500", "429", "200"]  # not the gateway's own 502 and 503


async def test_a_429s_retry_after_sets_the_wait(
    router: Router, primary: FakeUpstream, sleeper: Sleeper
) -> None:
    primary.fail_next(1, 429, retry_after=1)
    await router.embed(ONLY_PRIMARY, TEXTS, None)
    assert sleeper.delays == [1.0]


async def test_retry_after_ms_wins_over_retry_after(
    router: Router, primary: FakeUpstream, sleeper: Sleeper
) -> None:
    primary.fail_next(1, 503, retry_after=1, retry_after_ms=250)
    await router.embed(ONLY_PRIMARY, TEXTS, None)
    assert sleeper.delays == [0.25]


async def test_a_400_is_raised_at_once_with_the_upstreams_status_and_message(
    router: Router, primary: FakeUpstream, secondary: FakeUpstream, sleeper: Sleeper
) -> None:
    primary.fail_next(1, 400, message="Invalid 'input': nope.")
    with pytest.raises(GatewayError) as raised:
        await router.embed(BOTH, TEXTS, None)
    assert (raised.value.status, raised.value.message) == (400, "Invalid 'input': nope.")
    assert (primary.request_count, secondary.request_count, sleeper.delays) == (1, 0, [])


@pytest.mark.parametrize("fault", ["drop", "503"])
async def test_a_failing_primary_fails_over_to_the_secondary_at_once(
    router: Router, primary: FakeUpstream, secondary: FakeUpstream, sleeper: Sleeper, fault: str
) -> None:
    if fault == "drop":
        primary.drop_next(100)
    else:
        primary.fail_next(100, 503)
    batch = await router.embed(BOTH, TEXTS, None)
    assert batch.vectors.shape == (2, DIMS)
    assert (primary.request_count, secondary.request_count) == (1, 1)
    assert (router.failovers, sleeper.delays) == (1, [])


async def test_when_every_attempt_fails_the_last_error_is_raised(
    router: Router, primary: FakeUpstream
) -> None:
    primary.fail_next(100, 503)
    with pytest.raises(UpstreamError) as raised:
        await router.embed(ONLY_PRIMARY, TEXTS, None)
    assert raised.value.status == 502
    assert raised.value.response_headers()["x-should-retry"] == "true"
    assert primary.request_count == 3


async def test_max_attempts_count_per_deployment(
    make_router: RouterFactory, primary: FakeUpstream, secondary: FakeUpstream
) -> None:
    router = make_router(policy=RetryPolicy(max_total_attempts=100))
    primary.fail_next(100, 500)
    secondary.fail_next(100, 500)
    with pytest.raises(UpstreamError):
        await router.embed(BOTH, TEXTS, None)
    assert (primary.request_count, secondary.request_count) == (3, 3)


async def test_an_open_breaker_skips_its_provider(
    make_router: RouterFactory, primary: FakeUpstream, secondary: FakeUpstream
) -> None:
    router = make_router(threshold=2)
    primary.fail_next(2, 500)
    for _ in range(4):
        await router.embed(BOTH, TEXTS, None)
    assert primary.request_count == 2
    assert secondary.request_count == 4
    assert router.breaker_states() == {"primary": "open", "secondary": "closed"}


async def test_the_provider_is_probed_again_after_the_cooldown(
    make_router: RouterFactory, primary: FakeUpstream, clock: FakeClock
) -> None:
    router = make_router(threshold=2, cooldown=30.0)
    primary.fail_next(2, 500)
    for _ in range(3):
        await router.embed(BOTH, TEXTS, None)
    clock.advance(30.0)
    await router.embed(BOTH, TEXTS, None)
    assert primary.request_count == 3
    assert router.breaker_states()["primary"] == "closed"


async def test_every_breaker_open_answers_503_with_retry_after(
    make_router: RouterFactory, primary: FakeUpstream
) -> None:
    router = make_router(threshold=1, cooldown=30.0, policy=RetryPolicy(max_attempts=1))
    primary.fail_next(1, 500)
    with pytest.raises(UpstreamError):
        await router.embed(ONLY_PRIMARY, TEXTS, None)
    with pytest.raises(ServiceUnavailable) as raised:
        await router.embed(ONLY_PRIMARY, TEXTS, None)
    assert raised.value.message == f"no healthy deployment for model {NAME}"
    assert raised.value.response_headers() == {"retry-after": "30", "x-should-retry": "true"}
    assert primary.request_count == 1


async def test_a_retry_after_beyond_the_deadline_gives_up_at_once(
    make_router: RouterFactory, primary: FakeUpstream, sleeper: Sleeper
) -> None:
    router = make_router(policy=RetryPolicy(deadline=5.0))
    primary.fail_next(1, 429, retry_after=30)
    with pytest.raises(ServiceUnavailable) as raised:
        await router.embed(ONLY_PRIMARY, TEXTS, None)
    assert raised.value.headers == {"retry-after": "30"}
    assert (primary.request_count, sleeper.delays) == (1, [])


async def test_a_hanging_upstream_is_cut_at_the_deadline(
    make_router: RouterFactory, primary: FakeUpstream
) -> None:
    router = make_router(policy=RetryPolicy(deadline=0.1))
    primary.hang_next(100)
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout) as raised:
        await router.embed(ONLY_PRIMARY, TEXTS, None)
    assert time.monotonic() - started < 0.5
    assert raised.value.status == 504


async def test_the_deadline_counts_against_the_provider_that_hung(
    make_router: RouterFactory, primary: FakeUpstream
) -> None:
    router = make_router(threshold=1, policy=RetryPolicy(deadline=0.1))
    primary.hang_next(1)
    with pytest.raises(UpstreamTimeout):
        await router.embed(ONLY_PRIMARY, TEXTS, None)
    assert router.breaker_states()["primary"] == "open"


SCRIPTS: dict[str, Callable[[FakeUpstream], None]] = {
    "500": lambda fake: fake.fail_next(100, 500),
    "429": lambda fake: fake.fail_next(100, 429, retry_after=0),
    "400": lambda fake: fake.fail_next(1, 400),
    "401": lambda fake: fake.fail_next(100, 401),
    "drop": lambda fake: fake.drop_next(100),
    "hang": lambda fake: fake.hang_next(100),
}


@pytest.mark.parametrize("script", SCRIPTS)
async def test_no_error_carries_the_providers_api_key(
    make_router: RouterFactory, primary: FakeUpstream, script: str
) -> None:
    router = make_router(policy=RetryPolicy(deadline=0.1 if script == "hang" else 30.0))
    SCRIPTS[script](primary)
    with pytest.raises(GatewayError) as raised:
        await router.embed(ONLY_PRIMARY, TEXTS, None)
    error = raised.value
    assert primary.auth_headers[0] == f"Bearer {SECRET}"  # the key was in play
    seen = [str(error), error.message, error.body().decode(), repr(error.response_headers())]
    assert not [text for text in seen if SECRET in text]


def test_without_weights_deployments_keep_priority_order() -> None:
    assert deployment_order(BOTH.deployments, lambda: 0.5) == BOTH.deployments


def test_weights_draw_the_order_and_unweighted_deployments_follow() -> None:
    a, b = WeightedDeployment("a", NAME, 1.0), WeightedDeployment("b", NAME, 3.0)
    fallback = WeightedDeployment("c", NAME, 0.0)
    draws = iter([0.9, 0.5])  # keys: a 0.9**1 = 0.9, b 0.5**(1/3) ≈ 0.79
    assert deployment_order([fallback, a, b], lambda: next(draws)) == (a, b, fallback)
    draws = iter([0.5, 0.9])  # a 0.5, b ≈ 0.97
    assert deployment_order([fallback, a, b], lambda: next(draws)) == (b, a, fallback)


async def test_a_hung_attempt_fails_over_after_the_attempt_timeout(
    make_router: RouterFactory, primary: FakeUpstream, secondary: FakeUpstream
) -> None:
    router = make_router(policy=RetryPolicy(deadline=5.0, attempt_timeout=0.1))
    primary.hang_next(1)
    batch = await router.embed(BOTH, TEXTS, None)
    assert batch.vectors.shape == (2, DIMS)
    assert (primary.request_count, secondary.request_count) == (1, 1)


async def test_a_deployment_with_an_open_breaker_is_a_last_resort_after_others_fail(
    make_router: RouterFactory, primary: FakeUpstream, secondary: FakeUpstream
) -> None:
    router = make_router(threshold=1, policy=RetryPolicy(max_attempts=1))
    primary.fail_next(1, 500)
    await router.embed(BOTH, TEXTS, None)  # opens the primary's breaker; secondary answers
    secondary.fail_next(1, 500)
    batch = await router.embed(BOTH, TEXTS, None)
    assert batch.vectors.shape == (2, DIMS)
    assert (primary.request_count, secondary.request_count) == (2, 2)


async def test_a_call_makes_at_most_max_total_attempts_over_every_deployment(
    router: Router, primary: FakeUpstream, secondary: FakeUpstream
) -> None:
    primary.fail_next(100, 500)
    secondary.fail_next(100, 500)
    with pytest.raises(UpstreamError) as raised:
        await router.embed(BOTH, TEXTS, None)
    assert primary.request_count + secondary.request_count == 3
    assert raised.value.response_headers()["x-should-retry"] == "true"


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_credentials_are_never_retried_and_say_what_to_check(
    router: Router, primary: FakeUpstream, status: int
) -> None:
    primary.fail_next(100, status)
    with pytest.raises(ProviderMisconfigured) as raised:
        await router.embed(ONLY_PRIMARY, TEXTS, None)
    assert primary.request_count == 1
    assert raised.value.response_headers()["x-should-retry"] == "false"
    assert raised.value.message == (
        f"upstream provider primary refused the gateway's API key ({status}): check "
        "providers.primary.api_key in the config (PRIMARY_API_KEY in the shipped config.yaml)"
    )


async def test_refused_credentials_fail_over_to_another_deployment(
    router: Router, primary: FakeUpstream, secondary: FakeUpstream
) -> None:
    primary.fail_next(100, 401)
    batch = await router.embed(BOTH, TEXTS, None)
    assert batch.vectors.shape == (2, DIMS)
    assert (primary.request_count, secondary.request_count) == (1, 1)


async def test_a_provider_with_no_key_is_not_called_and_names_the_setting(
    primary: FakeUpstream,
) -> None:
    keyless = OpenAIProvider("nanogpt", ProviderSettings(base_url=primary.base_url))
    await keyless.start()
    try:
        with pytest.raises(ProviderMisconfigured) as raised:
            await Router({"nanogpt": keyless}).embed(model("nanogpt"), TEXTS, None)
    finally:
        await keyless.close()
    assert primary.request_count == 0
    assert raised.value.response_headers()["x-should-retry"] == "false"
    assert "set providers.nanogpt.api_key" in raised.value.message
    assert "NANOGPT_API_KEY" in raised.value.message


async def test_a_server_that_needs_no_key_is_called_without_one(primary: FakeUpstream) -> None:
    settings = ProviderSettings(base_url=primary.base_url, requires_api_key=False)
    keyless = OpenAIProvider("selfhosted", settings)
    await keyless.start()
    try:
        batch = await keyless.embed(NAME, TEXTS, None)
    finally:
        await keyless.close()
    assert (batch.vectors.shape, primary.auth_headers) == ((2, DIMS), [None])

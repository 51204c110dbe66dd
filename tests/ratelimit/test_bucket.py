"""The pure token-bucket arithmetic."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.ratelimit.bucket import (
    BucketRequest,
    BucketState,
    Decision,
    Limit,
    decide,
    go_duration,
    refill,
)

T0 = 100.0


def one(
    state: BucketState | None, limit: Limit, cost: float, now: float = T0
) -> tuple[Decision, BucketState]:
    decisions, states = decide([state], [BucketRequest("k", limit, cost)], now)
    return decisions[0], states[0]


def test_limit_helpers_default_burst_to_the_rate_count() -> None:
    assert Limit.per_second(5) == Limit(rate=5, burst=5)
    assert Limit.per_minute(120, burst=10) == Limit(rate=2, burst=10)


def test_a_limit_must_have_a_positive_rate_and_burst() -> None:
    with pytest.raises(ValueError):
        Limit(rate=0, burst=1)


def test_a_missing_bucket_is_full() -> None:
    assert refill(None, Limit.per_second(3), T0) == BucketState(tokens=3, updated_at=T0)


def test_a_full_bucket_admits_its_burst_then_denies() -> None:
    limit, state = Limit(rate=1, burst=3), None
    outcomes = []
    for _ in range(4):
        decision, state = one(state, limit, 1)
        outcomes.append(decision.allowed)
    assert outcomes == [True, True, True, False]


def test_tokens_refill_at_the_rate_over_an_injected_time_step() -> None:
    empty = BucketState(tokens=0, updated_at=T0)
    assert refill(empty, Limit(rate=2, burst=10), T0 + 1.5).tokens == 3


def test_refill_never_exceeds_the_burst() -> None:
    empty = BucketState(tokens=0, updated_at=T0)
    assert refill(empty, Limit(rate=2, burst=10), T0 + 3600).tokens == 10


def test_a_clock_that_goes_backwards_adds_no_tokens() -> None:
    state = BucketState(tokens=1, updated_at=T0)
    assert refill(state, Limit(rate=2, burst=10), T0 - 5) == state


def test_a_denied_request_charges_none_of_its_buckets() -> None:
    requests = [
        BucketRequest("requests", Limit(rate=1, burst=10), 1),
        BucketRequest("tokens", Limit(rate=1, burst=100), 100),
    ]
    low_tokens = BucketState(tokens=50, updated_at=T0)
    decisions, states = decide([None, low_tokens], requests, T0)
    assert [d.allowed for d in decisions] == [False, False]
    assert [s.tokens for s in states] == [10, 50]


def test_an_admitted_request_charges_every_bucket() -> None:
    requests = [
        BucketRequest("requests", Limit(rate=1, burst=10), 1),
        BucketRequest("tokens", Limit(rate=1, burst=100), 40),
    ]
    decisions, states = decide([None, None], requests, T0)
    assert all(d.allowed for d in decisions)
    assert [s.tokens for s in states] == [9, 60]


def test_a_cost_of_zero_passes_an_empty_bucket() -> None:
    decision, _ = one(BucketState(tokens=0, updated_at=T0), Limit(rate=1, burst=1), 0)
    assert decision.allowed


def test_a_cost_above_the_burst_is_denied_and_flagged() -> None:
    decision, _ = one(BucketState(tokens=4, updated_at=T0), Limit(rate=2, burst=10), 11)
    assert not decision.allowed
    assert decision.exceeds_burst
    assert decision.retry_after == 3  # time to fill the whole bucket: (10 - 4) / 2


def test_retry_after_is_when_the_cost_fits() -> None:
    limit = Limit(rate=4, burst=10)
    decision, state = one(BucketState(tokens=1, updated_at=T0), limit, 3)
    assert decision.retry_after == 0.5
    assert not one(state, limit, 3, T0 + 0.499)[0].allowed
    assert one(state, limit, 3, T0 + decision.retry_after)[0].allowed


def test_an_admitted_request_reports_remaining_and_reset() -> None:
    decision, _ = one(None, Limit(rate=2, burst=10), 4)
    assert (decision.remaining, decision.retry_after, decision.reset_after) == (6, 0, 2)
    assert decision.limit == 10


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (-1, "0s"),
        (1e-9, "1ms"),
        (0.02, "20ms"),
        (0.0201, "21ms"),
        (0.999, "999ms"),
        (0.9999, "1s"),
        (1, "1s"),
        (1.5, "1.5s"),
        (59.25, "59.25s"),
        (360, "6m0s"),
        (23 * 60 + 16.298, "23m16.298s"),
        (3600, "1h0m0s"),
        (3723, "1h2m3s"),
    ],
)
def test_go_duration_formats_like_openai_reset_headers(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


limits = st.builds(
    Limit,
    rate=st.floats(min_value=0.001, max_value=1e6),
    burst=st.floats(min_value=0.001, max_value=1e6),
)
steps = st.lists(
    st.tuples(st.floats(min_value=-10, max_value=1e4), st.floats(min_value=0, max_value=1e6)),
    max_size=30,
)


@given(limits, steps)
def test_tokens_stay_between_zero_and_the_burst(
    limit: Limit, script: list[tuple[float, float]]
) -> None:
    state, now = None, T0
    for dt, cost in script:
        now += dt
        decision, state = one(state, limit, cost, now)
        assert 0 <= state.tokens <= limit.burst
        assert decision.retry_after >= 0

"""Circuit breaker: closed → open → half_open (one probe) → closed or open again."""

from __future__ import annotations

import pytest

from gateway.breaker import CircuitBreaker
from tests.support.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def tripped(clock: FakeClock, threshold: int = 3, cooldown: float = 10.0) -> CircuitBreaker:
    breaker = CircuitBreaker(failure_threshold=threshold, cooldown=cooldown, clock=clock)
    for _ in range(threshold):
        breaker.record_failure()
    return breaker


def test_a_new_breaker_is_closed_and_allows_calls(clock: FakeClock) -> None:
    breaker = CircuitBreaker(clock=clock)
    assert breaker.state == "closed"
    assert breaker.allow()


def test_it_stays_closed_below_the_threshold(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "closed"


def test_only_consecutive_failures_count(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=2, clock=clock)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state == "closed"


def test_it_opens_at_the_threshold_and_refuses_calls(clock: FakeClock) -> None:
    breaker = tripped(clock)
    assert breaker.state == "open"
    assert not breaker.allow()


def test_it_turns_half_open_after_the_cooldown(clock: FakeClock) -> None:
    breaker = tripped(clock, cooldown=10.0)
    clock.advance(9.9)
    before = breaker.state
    clock.advance(0.1)
    assert (before, breaker.state) == ("open", "half_open")


def test_half_open_lets_exactly_one_probe_through(clock: FakeClock) -> None:
    breaker = tripped(clock)
    clock.advance(10.0)
    assert [breaker.allow() for _ in range(3)] == [True, False, False]


def test_a_successful_probe_closes_it(clock: FakeClock) -> None:
    breaker = tripped(clock)
    clock.advance(10.0)
    breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.allow()


def test_a_failed_probe_reopens_it_for_another_cooldown(clock: FakeClock) -> None:
    breaker = tripped(clock)
    clock.advance(10.0)
    breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open"
    clock.advance(9.9)
    assert not breaker.allow()


def test_a_probe_that_never_reports_is_replaced_after_a_cooldown(clock: FakeClock) -> None:
    breaker = tripped(clock)
    clock.advance(10.0)
    assert breaker.allow()
    clock.advance(10.0)
    assert breaker.allow()


def test_late_results_do_not_move_an_open_breaker(clock: FakeClock) -> None:
    breaker = tripped(clock)
    breaker.record_success()
    clock.advance(5.0)
    breaker.record_failure()
    clock.advance(5.0)
    assert breaker.state == "half_open"


def test_retry_in_counts_down_the_cooldown(clock: FakeClock) -> None:
    breaker = tripped(clock, cooldown=10.0)
    clock.advance(4.0)
    assert breaker.retry_in() == 6.0
    clock.advance(6.0)
    assert breaker.retry_in() == 0.0

"""Retry policy: full-jitter backoff, the upstream's retry-after, and which errors are retried."""

from __future__ import annotations

import pytest

from gateway.errors import (
    GatewayError,
    InvalidRequest,
    ServiceUnavailable,
    UpstreamError,
    UpstreamTimeout,
    upstream_client_error,
)
from gateway.upstream.retry import RetryPolicy, backoff, retry_delay, should_retry

POLICY = RetryPolicy(base_delay=0.1, max_delay=2.0)


def test_backoff_doubles_with_each_attempt() -> None:
    delays = [backoff(POLICY, n, lambda: 1.0) for n in range(4)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8])


def test_backoff_is_capped_at_max_delay() -> None:
    assert backoff(POLICY, 10, lambda: 1.0) == 2.0


def test_backoff_is_full_jitter_over_the_window() -> None:
    assert backoff(POLICY, 2, lambda: 0.0) == 0.0
    assert backoff(POLICY, 2, lambda: 0.25) == pytest.approx(0.1)


def test_retry_delay_honours_the_upstreams_retry_after() -> None:
    error = ServiceUnavailable("rate limited", retry_after=1.5)
    assert retry_delay(POLICY, 0, error, lambda: 0.5) == 1.5


def test_retry_delay_caps_retry_after_at_a_minute() -> None:
    error = ServiceUnavailable("rate limited", retry_after=600)
    assert retry_delay(POLICY, 0, error, lambda: 0.5) == 60.0


def test_retry_delay_backs_off_without_retry_after() -> None:
    assert retry_delay(POLICY, 1, UpstreamError("boom"), lambda: 0.5) == pytest.approx(0.1)


@pytest.mark.parametrize(
    "error",
    [UpstreamError("502"), ServiceUnavailable("429/503"), UpstreamTimeout("timeout")],
)
def test_connection_errors_timeouts_429_and_5xx_are_retried(error: GatewayError) -> None:
    assert should_retry(error)


@pytest.mark.parametrize(
    "error",
    [
        upstream_client_error(400, "bad input", "input", None),
        upstream_client_error(404, "no such model", "model", "model_not_found"),
        InvalidRequest("bad"),
        GatewayError("unknown"),
    ],
)
def test_client_errors_and_unmarked_errors_are_never_retried(error: GatewayError) -> None:
    assert not should_retry(error)

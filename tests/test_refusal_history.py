"""Rate-limited and upstream-failed requests in the spend history, end to end: through a real
gateway in front of a failing fake upstream, on every history backend, the usage report's
per-day counts equal exactly what the traffic produced."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway import errors, history
from gateway.accounting import refusal
from tests.support.background import BackgroundLoop
from tests.support.stack import Stack

SMALL = "text-embedding-3-small"
INTERNAL = "tok-internal-refusals"
DAY = 86_400
BURST = 3  # alpha's requests before its bucket runs dry (it never refills within a test)


def secret(name: str) -> str:
    return f"sk-refusals-{name}-secret"


def key(name: str, team: str, **extra: Any) -> dict[str, Any]:
    digest = hashlib.sha256(secret(name).encode()).hexdigest()
    return {"name": name, "id": f"key_{name}", "sha256": digest, "team": team, **extra}


def overrides() -> dict[str, Any]:
    throttled = {"requests_per_second": 0.0001, "requests_burst": BURST}
    few_tokens = {"tokens_per_minute": 0.0001, "tokens_burst": 5}
    keys = [
        key("alpha", "search", limits=throttled),
        key("beta", "ads"),
        key("gamma", "ads", limits=few_tokens),
    ]
    return {
        "auth": {"keys": keys, "internal_token": INTERNAL},
        "upstream": {"base_delay": 0.001, "max_delay": 0.002},
    }


def embed(stack: Stack, name: str, text: str) -> int:
    response = httpx.post(
        f"{stack.base_url}/embeddings",
        json={"model": SMALL, "input": text},
        headers={"Authorization": f"Bearer {secret(name)}"},
        timeout=30,
    )
    return response.status_code


def traffic(stack: Stack) -> Counter[tuple[str, int]]:
    """alpha past its request burst (429s before the model is read), gamma over its token
    burst (a 429 once the model is read), beta failed by the upstream twice (a 502 for its
    500s, a 503 for its 429s), and a wrong key (a 401 that belongs to no key)."""
    statuses: Counter[tuple[str, int]] = Counter()
    for i in range(BURST + 2):
        statuses["alpha", embed(stack, "alpha", f"alpha text {i}")] += 1
    statuses["gamma", embed(stack, "gamma", "far more than five tokens in this one text")] += 1
    statuses["beta", embed(stack, "beta", "beta served")] += 1
    for status in (500, 429):
        stack.upstream.fail_next(50, status)
        statuses["beta", embed(stack, "beta", f"beta failed by a {status}")] += 1
        stack.upstream.reset()
    statuses["nobody", embed(stack, "nobody", "a wrong key")] += 1
    return statuses


@pytest.fixture
def gateway(background: BackgroundLoop, backend: str) -> Iterator[Stack]:
    stack = Stack(background, backend, overrides())
    yield stack
    stack.close()


def usage(stack: Stack, token: str = INTERNAL) -> dict[str, Any]:
    today = int(time.time()) // DAY * DAY
    response = httpx.get(
        f"{stack.url}/v1/organization/usage/embeddings",
        params={"start_time": today, "group_by": "api_key_id,model"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def counted(page: dict[str, Any]) -> dict[tuple[str, str | None], tuple[int, int, int]]:
    return {
        (r["api_key_id"], r["model"]): (
            r["num_model_requests"],
            r["rate_limited"],
            r["upstream_errors"],
        )
        for bucket in page["data"]
        for r in bucket["results"]
    }


def test_the_report_counts_each_refusal_and_upstream_failure(gateway: Stack) -> None:
    statuses = traffic(gateway)
    assert statuses == {
        ("alpha", 200): BURST,
        ("alpha", 429): 2,
        ("gamma", 429): 1,
        ("beta", 200): 1,
        ("beta", 502): 1,
        ("beta", 503): 1,
        ("nobody", 401): 1,
    }
    assert counted(usage(gateway)) == {
        ("key_alpha", SMALL): (BURST, 0, 0),
        ("key_alpha", None): (0, 2, 0),  # refused from the headers alone: no model yet
        ("key_gamma", SMALL): (0, 1, 0),
        ("key_beta", SMALL): (1, 0, 2),
    }


def test_a_key_sees_only_its_own_refusals(gateway: Stack) -> None:
    traffic(gateway)
    assert counted(usage(gateway, secret("alpha"))) == {
        ("key_alpha", SMALL): (BURST, 0, 0),
        ("key_alpha", None): (0, 2, 0),
    }


@pytest.mark.parametrize(
    ("error", "counts"),
    [
        (errors.RateLimited("slow down"), history.RATE_LIMITED),
        (errors.InsufficientQuota("budget spent"), history.RATE_LIMITED),
        (errors.UpstreamError("500s"), history.UPSTREAM_ERROR),
        (errors.ServiceUnavailable("no healthy deployment"), history.UPSTREAM_ERROR),
        (errors.UpstreamTimeout("too slow"), history.UPSTREAM_ERROR),
        (
            errors.answered(errors.upstream_client_error(400, "too long", None, None), "400"),
            history.UPSTREAM_ERROR,
        ),
        (errors.InvalidRequest("bad body"), None),
        (errors.PermissionDenied("not your model"), None),
        (errors.ModelNotFound("nope"), None),
        (errors.PayloadTooLarge("too big"), None),
    ],
)
def test_which_failures_the_history_counts(
    error: errors.GatewayError, counts: history.Counts | None
) -> None:
    assert refusal(error) == counts

"""A hostile upstream: every broken answer is a failed attempt (502, retryable), never a vector,
never cached; after the upstream heals the same request gets the right vector (MISS, then HIT).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from tests.support.background import BackgroundLoop
from tests.support.fake_upstream import FakeUpstream, vector_for
from tests.support.hostile import BROKEN_ANSWERS, USAGE_ONLY
from tests.support.stack import Stack

SMALL = "text-embedding-3-small"
TEXTS = ["the first innocent text", "the second innocent text"]
FAST_FAILURE = {
    "upstream": {"max_attempts": 2, "max_total_attempts": 4, "base_delay": 0, "max_delay": 0}
}


@pytest.fixture
def hostile(background: BackgroundLoop) -> Iterator[Stack]:
    stack = Stack(background, "", FAST_FAILURE)
    yield stack
    stack.close()


def embed(stack: Stack, texts: list[str] = TEXTS) -> httpx.Response:
    body = {"model": SMALL, "input": texts, "encoding_format": "float"}
    return httpx.post(f"{stack.base_url}/embeddings", json=body, timeout=10)


def assert_right_vectors(response: httpx.Response, texts: list[str], cache: str) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["x-cache"] == cache
    got = [np.asarray(item["embedding"], dtype=np.float32) for item in response.json()["data"]]
    for vector, text in zip(got, texts, strict=True):
        np.testing.assert_array_equal(vector, vector_for(SMALL, text, 1536))


def assert_failed_attempt(response: httpx.Response) -> None:
    assert response.status_code == 502, response.text
    assert response.headers["x-should-retry"] == "true"


def heal_and_check(stack: Stack) -> None:
    stack.upstream.answer = None
    stack.upstream.redirect_to = None
    assert_right_vectors(embed(stack), TEXTS, "MISS")
    stack.drain()
    assert_right_vectors(embed(stack), TEXTS, "HIT")


@pytest.mark.parametrize("broken", sorted(set(BROKEN_ANSWERS) - USAGE_ONLY))
def test_a_broken_answer_is_a_502_and_is_never_cached(hostile: Stack, broken: str) -> None:
    hostile.upstream.answer = BROKEN_ANSWERS[broken]
    assert_failed_attempt(embed(hostile))
    assert hostile.upstream.request_count == 4  # two attempts on each of two deployments
    heal_and_check(hostile)


@pytest.mark.parametrize("broken", sorted(USAGE_ONLY))
def test_unusable_usage_falls_back_to_local_counts(hostile: Stack, broken: str) -> None:
    hostile.upstream.answer = BROKEN_ANSWERS[broken]
    response = embed(hostile)
    assert_right_vectors(response, TEXTS, "MISS")
    assert response.json()["usage"]["prompt_tokens"] == 8  # cl100k: 4 tokens each
    hostile.drain()
    assert embed(hostile).json()["usage"]["prompt_tokens"] == 8


def test_a_redirect_is_not_followed(hostile: Stack, background: BackgroundLoop) -> None:
    elsewhere = FakeUpstream()
    url = background.run(elsewhere.start())
    try:
        hostile.upstream.redirect_to = f"{url}/embeddings"
        assert_failed_attempt(embed(hostile))
        assert elsewhere.request_count == 0
        heal_and_check(hostile)
    finally:
        background.run(elsewhere.stop())

"""End to end through the official openai client: the gateway answers as the upstream would,
and serves what it has seen from the cache. Runs over the in-memory and the Redis cache."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import openai
import pytest

from tests.support.background import BackgroundLoop
from tests.support.fake_upstream import Vector, vector_for
from tests.support.stack import Stack

SMALL = "text-embedding-3-small"


OPEN_CLIENTS: list[openai.OpenAI] = []


def client(stack: Stack) -> openai.OpenAI:
    """A client closed after the test, so no socket of it is left for the garbage collector
    (whose ResourceWarning would fail whichever later test it happens to run in)."""
    made = openai.OpenAI(base_url=stack.base_url, api_key="unused", max_retries=0)
    OPEN_CLIENTS.append(made)
    return made


@pytest.fixture(autouse=True)
def close_clients() -> Iterator[None]:
    yield
    while OPEN_CLIENTS:
        OPEN_CLIENTS.pop().close()


def expected(text: str, model: str = SMALL, dims: int = 1536, keep: int | None = None) -> Vector:
    return vector_for(model, text, dims, keep)


def as_f32(embedding: object) -> Vector:
    return np.asarray(embedding, dtype=np.float32)


def assert_vectors(got: list[list[float]], texts: list[str]) -> None:
    """Exact float32 equality, position by position (JSON carries float32 shortest reprs)."""
    assert len(got) == len(texts)
    for embedding, text in zip(got, texts, strict=True):
        np.testing.assert_array_equal(as_f32(embedding), expected(text))


def post(stack: Stack, body: dict[str, object]) -> httpx.Response:
    return httpx.post(f"{stack.base_url}/embeddings", json=body, timeout=10)


def test_default_base64_call_returns_the_upstream_vectors_in_input_order(stack: Stack) -> None:
    texts = ["first", "second", "third"]
    response = client(stack).embeddings.create(model=SMALL, input=texts)
    assert [item.index for item in response.data] == [0, 1, 2]
    assert_vectors([item.embedding for item in response.data], texts)


def test_explicit_float_call_returns_float_lists(stack: Stack) -> None:
    response = client(stack).embeddings.create(model=SMALL, input="hello", encoding_format="float")
    assert_vectors([response.data[0].embedding], ["hello"])


async def test_async_client_gets_the_same_vectors(stack: Stack) -> None:
    async with openai.AsyncOpenAI(base_url=stack.base_url, api_key="unused") as async_client:
        response = await async_client.embeddings.create(model=SMALL, input=["a", "b"])
    assert_vectors([d.embedding for d in response.data], ["a", "b"])


def test_response_has_openai_shape_and_key_order(stack: Stack) -> None:
    response = post(stack, {"model": SMALL, "input": "hello"})
    body = response.json()
    assert list(body) == ["object", "data", "model", "usage"]
    assert list(body["data"][0]) == ["object", "index", "embedding"]
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] == 1
    assert response.headers["x-request-id"].startswith("req_")


def test_a_repeated_input_is_a_cache_hit_that_never_reaches_upstream(stack: Stack) -> None:
    first = post(stack, {"model": SMALL, "input": "repeat me"})
    stack.drain()
    second = post(stack, {"model": SMALL, "input": "repeat me"})
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert second.headers["x-cache-hits"] == "1/1"
    assert stack.upstream.inputs_embedded == 1
    assert first.json() == second.json()


def test_a_partly_cached_batch_sends_only_its_unique_misses_upstream(stack: Stack) -> None:
    post(stack, {"model": SMALL, "input": ["A", "B"]})
    stack.drain()
    stack.upstream.reset()
    batch = ["A", "C", "B", "C", "D"]
    response = post(stack, {"model": SMALL, "input": batch})
    assert response.headers["x-cache"] == "PARTIAL"
    assert response.headers["x-cache-hits"] == "2/5"
    assert dict(stack.upstream.inputs_seen) == {"C": 1, "D": 1}
    vectors = client(stack).embeddings.create(model=SMALL, input=batch).data
    assert_vectors([v.embedding for v in vectors], batch)


def test_float_and_base64_clients_share_one_entry(stack: Stack) -> None:
    floats = client(stack).embeddings.create(model=SMALL, input="x", encoding_format="float")
    stack.drain()
    default = client(stack).embeddings.create(model=SMALL, input="x")
    np.testing.assert_array_equal(
        as_f32(floats.data[0].embedding), as_f32(default.data[0].embedding)
    )
    assert stack.upstream.inputs_embedded == 1


def test_text_and_its_cl100k_token_ids_share_one_entry(stack: Stack) -> None:
    post(stack, {"model": SMALL, "input": "hello world"})
    stack.drain()
    response = post(stack, {"model": SMALL, "input": [[15339, 1917]]})
    assert response.headers["x-cache"] == "HIT"
    assert stack.upstream.inputs_embedded == 1


def test_token_arrays_for_other_models_are_decoded_to_text(stack: Stack) -> None:
    response = post(stack, {"model": "BAAI/bge-m3", "input": [[15339, 1917]]})
    assert response.status_code == 200
    assert dict(stack.upstream.inputs_seen) == {"hello world": 1}
    assert stack.upstream.requests[0]["input"] == ["hello world"]


def test_reduced_dimensions_are_derived_from_one_cached_full_vector(stack: Stack) -> None:
    small = client(stack).embeddings.create(model=SMALL, input="doc", dimensions=256)
    stack.drain()
    large = client(stack).embeddings.create(model=SMALL, input="doc", dimensions=512)
    assert stack.upstream.inputs_embedded == 1
    assert "dimensions" not in stack.upstream.requests[0]
    np.testing.assert_allclose(small.data[0].embedding, expected("doc", keep=256), atol=1e-7)
    np.testing.assert_allclose(large.data[0].embedding, expected("doc", keep=512), atol=1e-7)


def test_usage_is_the_same_for_a_hit_and_a_miss(stack: Stack) -> None:
    miss = post(stack, {"model": SMALL, "input": ["one two three", "four"]}).json()["usage"]
    stack.drain()
    hit = post(stack, {"model": SMALL, "input": ["one two three", "four"]}).json()["usage"]
    assert miss == hit == {"prompt_tokens": 4, "total_tokens": 4}


def test_upstream_usage_is_apportioned_across_inputs_by_local_counts(stack: Stack) -> None:
    stack.upstream.usage_multiplier = 2.0
    post(stack, {"model": SMALL, "input": ["one two three", "four"]})
    stack.drain()
    alone = post(stack, {"model": SMALL, "input": "one two three"}).json()["usage"]
    assert alone["prompt_tokens"] == 6


def test_misses_beyond_the_provider_batch_cap_are_split_into_several_calls(
    background: BackgroundLoop, backend: str
) -> None:
    stack = Stack(background, backend, {"providers": {"openai": {"max_batch": 2}}})
    try:
        texts = [f"text {i}" for i in range(5)]
        vectors = client(stack).embeddings.create(model=SMALL, input=texts).data
        assert stack.upstream.request_count == 3
        assert_vectors([v.embedding for v in vectors], texts)
    finally:
        stack.close()


def test_the_upstream_key_is_sent_as_a_bearer_token(stack: Stack) -> None:
    post(stack, {"model": SMALL, "input": "x"})
    assert stack.upstream.auth_headers == ["Bearer sk-upstream-openai-secret"]


def test_an_upstream_server_error_becomes_a_502_without_the_upstream_key(stack: Stack) -> None:
    stack.upstream.fail_next(10, status=500)
    response = post(stack, {"model": SMALL, "input": "x"})
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "upstream_error"
    assert response.headers["x-should-retry"] == "true"
    assert "secret" not in response.text


def test_an_upstream_client_error_keeps_its_status_and_message(stack: Stack) -> None:
    response = post(stack, {"model": SMALL, "input": [[100256]]})
    assert response.status_code == 400
    assert "Invalid token in prompt" in response.json()["error"]["message"]


def test_the_openai_client_raises_its_own_error_types(stack: Stack) -> None:
    with pytest.raises(openai.NotFoundError) as not_found:
        client(stack).embeddings.create(model="no-such-model", input="x")
    assert not_found.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        client(stack).embeddings.create(model=SMALL, input="")


def test_nanogpt_alias_route_serves_embeddings(stack: Stack) -> None:
    response = httpx.post(
        f"{stack.url}/api/v1/embeddings", json={"model": SMALL, "input": "x"}, timeout=10
    )
    assert_vectors([response.json()["data"][0]["embedding"]], ["x"])


def test_models_are_listed_in_openai_and_nanogpt_formats(stack: Stack) -> None:
    models = client(stack).models.list()
    assert len(models.data) == 17
    detailed = httpx.get(f"{stack.url}/api/v1/embedding-models").json()["data"]
    small = next(m for m in detailed if m["id"] == SMALL)
    assert small["dimensions"] == 1536
    assert small["supports_dimensions"] is True
    assert small["pricing"] == {"per_million_tokens": 0.02, "currency": "USD"}


def test_health_and_readiness_answer(stack: Stack) -> None:
    assert httpx.get(f"{stack.url}/healthz").status_code == 200
    assert httpx.get(f"{stack.url}/readyz").json()["status"] == "ready"

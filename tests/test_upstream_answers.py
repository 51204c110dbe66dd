"""Every upstream answer is validated before a vector is used: a Hypothesis property over
random answers, and the router treating any surprise as a failed attempt."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import replace
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gateway.auth import ANONYMOUS
from gateway.background import Background
from gateway.breaker import CircuitBreaker
from gateway.cache.memory import MemoryCache
from gateway.catalog import Catalog, Deployment, Model
from gateway.errors import GatewayError, UpstreamError
from gateway.fetch import ChunkedFetcher
from gateway.protocol import parse_embedding_request
from gateway.quota import TenantLimits
from gateway.ratelimit.memory import MemoryLimiter
from gateway.service import Caller, EmbeddingService
from gateway.settings import LimitSettings, RateLimitSettings, load
from gateway.tokens import Cl100k
from gateway.upstream import Inputs, UpstreamBatch
from gateway.upstream.openai import parse_embeddings
from gateway.upstream.retry import RetryPolicy
from gateway.upstream.router import Router
from tests.support.fake_upstream import vector_for
from tests.support.stack import CONFIG

MODEL = "BAAI/bge-m3"
DIMS = 1024
CATALOG = Catalog.from_settings(load(CONFIG, environ={}).models)
TOKENIZER = Cl100k()
CALLER = Caller(ANONYMOUS, "127.0.0.1", "shared")
Item = dict[str, Any]


def right_items(texts: list[str]) -> list[Item]:
    return [
        {"index": i, "embedding": base64.b64encode(vector_for(MODEL, t, DIMS).tobytes()).decode()}
        for i, t in enumerate(texts)
    ]


def _values(item: Item) -> Any:
    embedding = item["embedding"]
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding), dtype="<f4").astype(float)
    return np.asarray(embedding, dtype=float)


def _float_list(item: Item) -> Item:
    return item | {"embedding": _values(item).tolist()}


def _resized(item: Item, floats: int) -> Item:
    values = _values(item)
    values = values[:floats] if floats < 0 else np.concatenate([values, np.zeros(floats)])
    return item | {"embedding": base64.b64encode(values.astype("<f4").tobytes()).decode()}


def _with_value(item: Item, value: float) -> Item:
    values = _values(item).tolist()
    values[5] = value
    return item | {"embedding": values}


BREAKS: dict[str, Any] = {
    "index out of range": lambda item, n: item | {"index": n},
    "negative index": lambda item, n: item | {"index": -1},
    "index as text": lambda item, n: item | {"index": str(item.get("index", 0))},
    "index as bool": lambda item, n: item | {"index": bool(item.get("index"))},
    "one index missing": lambda item, n: {k: v for k, v in item.items() if k != "index"},
    "short base64": lambda item, n: _resized(item, -1),
    "long base64": lambda item, n: _resized(item, 1),
    "nan": lambda item, n: _with_value(item, float("nan")),
    "float32 overflow": lambda item, n: _with_value(item, 1e39),
    "nested": lambda item, n: item | {"embedding": [[0.1, 0.1]] * DIMS},
    "scalar": lambda item, n: item | {"embedding": 0.5},
    "null": lambda item, n: item | {"embedding": None},
    "empty": lambda item, n: item | {"embedding": []},
    "not an object": lambda item, n: [item["embedding"]],
}


INDEX_BREAKS = ("index out of range", "negative index", "index as text", "index as bool")


@st.composite
def answers(draw: st.DrawFn, texts: list[str]) -> tuple[bytes, bool]:
    """A body for ``texts`` and whether it is one the gateway must accept."""
    items: list[Any] = right_items(texts)
    if draw(st.booleans()):
        items = [_float_list(item) for item in items]
    original = [item["embedding"] for item in items]
    if draw(st.booleans()):
        items = draw(st.permutations(items))
    elif draw(st.booleans()):
        items = [{"embedding": item["embedding"]} for item in items]
    content_broken = collided = False
    for _ in range(draw(st.integers(0, 2))):
        if not items:
            break
        where = draw(st.integers(0, len(items) - 1))
        how = draw(st.sampled_from([*BREAKS, "duplicate", "drop", "index collision"]))
        if how == "index collision" and collided:
            continue  # two can swap two indexes into a permutation: wrong, yet indistinguishable
        collided |= how == "index collision"
        content_broken |= _break(items, where, how)
    # Without indexes only the order says which vector is whose: an answer whose intact vectors
    # arrive in another order (permuted, or a drop and a duplicate) is wrong in a way no one
    # could tell from the answer, so it is no test of the gateway.
    assume(content_broken or not _unindexed(items, len(texts)) or _embeddings(items) == original)
    body = orjson.dumps({"data": items, "usage": {"prompt_tokens": 3}})
    return body, not content_broken and _well_indexed(items, len(texts))


def _unindexed(items: list[Any], inputs: int) -> bool:
    return len(items) == inputs and all(isinstance(i, dict) and "index" not in i for i in items)


def _embeddings(items: list[Any]) -> list[Any]:
    return [item.get("embedding") for item in items]


def _break(items: list[Any], where: int, how: str) -> bool:
    """Break ``items`` in place; True when the break is in an embedding (always invalid)."""
    if not isinstance(items[where], dict) and how not in ("duplicate", "drop"):
        return False
    if how == "duplicate":
        items.append(items[where])
    elif how == "drop":
        items.pop(where)
    elif how == "index collision":
        items[where] = items[where] | {"index": (where + 1) % len(items)}
    elif how not in INDEX_BREAKS and how != "one index missing" and not _intact(items[where]):
        return True  # its embedding is broken already
    else:
        broken = BREAKS[how](items[where], len(items))
        if broken is None:
            return False
        in_embedding = how not in INDEX_BREAKS and how != "one index missing"
        items[where] = (
            broken | {"x_broken": True} if in_embedding and isinstance(broken, dict) else broken
        )
        return in_embedding
    return False


def _intact(item: Item) -> bool:
    return "x_broken" not in item  # an extra field, as providers add: ignored by the gateway


def _well_indexed(items: list[Any], inputs: int) -> bool:
    """One object per input, indexes exactly 0..n-1 or absent everywhere."""
    if len(items) != inputs or not all(isinstance(item, dict) for item in items):
        return False
    indexes = [item.get("index") for item in items]
    if all(index is None for index in indexes):
        return True
    return all(type(i) is int for i in indexes) and sorted(indexes) == list(range(inputs))


class ScriptedUpstream:
    name = "scripted"
    max_batch = 2048
    max_tokens_per_request = 300_000

    def __init__(self) -> None:
        self.body: bytes | None = None
        self.inputs = 0

    async def embed(self, model: str, inputs: Inputs, dimensions: int | None) -> UpstreamBatch:
        self.inputs += len(inputs)
        texts = [str(text) for text in inputs]
        body = self.body or orjson.dumps({"data": right_items(texts)})
        return parse_embeddings(body, len(inputs), self.name)

    async def start(self) -> None: ...

    async def close(self) -> None: ...


def service_for(upstream: ScriptedUpstream) -> tuple[EmbeddingService, Background]:
    router = Router({"nanogpt": upstream}, RetryPolicy(max_attempts=1))
    limits = TenantLimits(MemoryLimiter(), RateLimitSettings(LimitSettings(), LimitSettings()))
    background = Background()
    service = EmbeddingService(
        MemoryCache(1000, 60),
        ChunkedFetcher(router),
        limits=limits,
        tokenizer=TOKENIZER,
        key_prefix="gw",
        background=background,
    )
    return service, background


async def embed(service: EmbeddingService, background: Background, texts: list[str]) -> Any:
    body = orjson.dumps({"model": MODEL, "input": texts})
    try:
        result = await service.embed(parse_embedding_request(body, CATALOG), CALLER)
    except GatewayError as error:
        return error
    await background.drain()
    return result


@settings(max_examples=80, deadline=None)
@given(data=st.data(), texts=st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=4))
def test_any_answer_gives_the_right_vectors_or_an_error_and_only_right_ones_are_cached(
    data: st.DataObject, texts: list[str]
) -> None:
    texts = sorted(set(texts))
    body, valid = data.draw(answers(texts))
    upstream = ScriptedUpstream()
    service, background = service_for(upstream)

    async def scenario() -> None:
        upstream.body = body
        first = await embed(service, background, texts)
        upstream.body = None
        healed = await embed(service, background, texts)
        right = [vector_for(MODEL, t, DIMS).tobytes() for t in texts]
        if isinstance(first, GatewayError):
            assert not valid and first.status == 502
            assert healed.hits == 0  # nothing of the broken answer was cached
        else:
            assert valid and [bytes(v) for v in first.vectors] == right
            assert healed.hits == len(texts)
        assert [bytes(v) for v in healed.vectors] == right

    asyncio.run(scenario())


def test_indexes_absent_everywhere_are_positional() -> None:
    items = [{"embedding": item["embedding"]} for item in right_items(["a", "b"])]
    batch = parse_embeddings(orjson.dumps({"data": items}), 2, "p")
    assert batch.vectors[1].tobytes() == vector_for(MODEL, "b", DIMS).tobytes()


class Exploding:
    name = "exploding"
    max_batch = 2048
    max_tokens_per_request = 300_000

    async def embed(self, model: str, inputs: Inputs, dimensions: int | None) -> UpstreamBatch:
        raise RuntimeError("a bug on the upstream path")

    async def start(self) -> None: ...

    async def close(self) -> None: ...


def two_deployments() -> Model:
    base = CATALOG.get(MODEL)
    assert base is not None
    return replace(
        base, deployments=(Deployment("exploding", MODEL), Deployment("scripted", MODEL))
    )


async def test_an_unexpected_exception_is_a_failed_attempt_that_fails_over() -> None:
    breakers: dict[str, CircuitBreaker] = {}
    router = Router(
        {"exploding": Exploding(), "scripted": ScriptedUpstream()},
        RetryPolicy(max_attempts=1),
        breaker_factory=lambda name: breakers.setdefault(name, CircuitBreaker(1, 60)),
    )
    batch = await router.embed(two_deployments(), ["a"], None)
    assert batch.vectors[0].tobytes() == vector_for(MODEL, "a", DIMS).tobytes()
    assert (router.failovers, breakers["exploding"].state) == (1, "open")


async def test_a_wrong_dimension_is_a_retryable_failed_attempt() -> None:
    upstream = ScriptedUpstream()
    upstream.body = orjson.dumps({"data": [{"embedding": [0.5, 0.5]}]})
    router = Router({"nanogpt": upstream}, RetryPolicy(max_attempts=2, base_delay=0))
    only = CATALOG.get(MODEL)
    assert only is not None
    with pytest.raises(UpstreamError) as raised:
        await router.embed(only, ["a"], None)
    assert raised.value.response_headers()["x-should-retry"] == "true"
    assert upstream.inputs == 2

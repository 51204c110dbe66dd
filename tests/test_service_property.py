"""For any mix of cached, uncached and repeated inputs, the service answers exactly what a
cache-less gateway would, position by position."""

from __future__ import annotations

import asyncio

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.auth import ANONYMOUS
from gateway.background import Background
from gateway.cache.memory import MemoryCache
from gateway.catalog import Catalog, Model
from gateway.fetch import ChunkedFetcher
from gateway.protocol import parse_embedding_request
from gateway.quota import TenantLimits
from gateway.ratelimit.memory import MemoryLimiter
from gateway.service import Caller, EmbeddingService
from gateway.settings import LimitSettings, RateLimitSettings, load
from gateway.tokens import Cl100k
from gateway.upstream import Inputs, UpstreamBatch
from tests.support.fake_upstream import vector_for
from tests.support.stack import CONFIG

CATALOG = Catalog.from_settings(load(CONFIG, environ={}).models)
TOKENIZER = Cl100k()
BACKGROUND = Background()
CALLER = Caller(ANONYMOUS, "127.0.0.1", "shared")


class InProcessUpstream:
    """Deterministic vectors per text, with a small batch cap to force several chunks."""

    def __init__(self) -> None:
        self.inputs = 0

    def batch_limits(self, model: Model) -> tuple[int, int]:
        return 3, 300_000

    async def embed(self, model: Model, inputs: Inputs, dimensions: int | None) -> UpstreamBatch:
        self.inputs += len(inputs)
        texts = [str(item) for item in inputs]
        vectors = np.stack([vector_for(model.name, t, model.dimensions) for t in texts])
        return UpstreamBatch(vectors, None)


def run(service: EmbeddingService, texts: list[str]) -> list[bytes]:
    body = orjson.dumps({"model": "BAAI/bge-m3", "input": texts})

    async def embed_and_store() -> list[bytes]:
        result = await service.embed(parse_embedding_request(body, CATALOG), CALLER)
        await BACKGROUND.drain()
        return [bytes(v) for v in result.vectors]

    return asyncio.run(embed_and_store())


def service_with(cache: MemoryCache, upstream: InProcessUpstream) -> EmbeddingService:
    unlimited = TenantLimits(MemoryLimiter(), RateLimitSettings(LimitSettings(), LimitSettings()))
    fetcher = ChunkedFetcher(upstream)
    return EmbeddingService(
        cache,
        fetcher,
        limits=unlimited,
        tokenizer=TOKENIZER,
        key_prefix="gw",
        background=BACKGROUND,
    )


@settings(max_examples=60, deadline=None)
@given(
    warm=st.lists(st.sampled_from("abcdefg"), max_size=6),
    batch=st.lists(st.sampled_from("abcdefg"), min_size=1, max_size=20),
)
def test_cached_answers_equal_cacheless_answers(warm: list[str], batch: list[str]) -> None:
    cache, upstream = MemoryCache(1000, 60), InProcessUpstream()
    cached_service = service_with(cache, upstream)
    if warm:
        run(cached_service, warm)
    cacheless = run(service_with(MemoryCache(1000, 60), InProcessUpstream()), batch)
    before = upstream.inputs
    assert run(cached_service, batch) == cacheless
    assert upstream.inputs - before == len(set(batch) - set(warm))

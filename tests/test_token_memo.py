"""The token-id memo: per cache scope (no tenant's timing reveals another scope's texts),
filled only after admission, bounded in bytes."""

from __future__ import annotations

import asyncio

import numpy as np
import orjson
import pytest

from gateway.auth import ANONYMOUS
from gateway.background import Background
from gateway.cache.memory import MemoryCache
from gateway.catalog import Catalog
from gateway.errors import GatewayError, RateLimited
from gateway.fetch import ChunkedFetcher
from gateway.protocol import parse_embedding_request
from gateway.quota import TenantLimits
from gateway.ratelimit.memory import MemoryLimiter
from gateway.service import Caller, EmbeddingService
from gateway.settings import LimitSettings, RateLimitSettings, load
from gateway.tokenmemo import TokenMemo, entry_bytes
from gateway.tokens import Cl100k
from tests.support.stack import CONFIG
from tests.test_service_property import InProcessUpstream

CATALOG = Catalog.from_settings(load(CONFIG, environ={}).models)
TOKENIZER = Cl100k()


def test_a_text_remembered_in_one_scope_is_not_found_in_another() -> None:
    memo = TokenMemo()
    alice = memo.scoped("key:key_alice", TOKENIZER)
    first = alice.ids_bytes_many(["hello world"])
    assert np.frombuffer(first[0], dtype="<u4").tolist() == [15339, 1917]
    alice.remember()
    assert memo.get("key:key_alice", "hello world") == first[0]
    assert memo.get("key:key_bob", "hello world") is None
    bob = memo.scoped("key:key_bob", TOKENIZER)
    assert bob.ids_bytes_many(["hello world"]) == first
    assert memo.get("key:key_bob", "hello world") is None  # bob has not been admitted yet


def test_the_memo_stays_within_its_byte_bound() -> None:
    texts = [f"text number {i} " * 50 for i in range(200)]
    bound = 20 * entry_bytes(texts[0], TOKENIZER.ids_bytes(texts[0]))
    memo = TokenMemo(max_bytes=bound)
    view = memo.scoped("shared", TOKENIZER)
    view.ids_bytes_many(texts)
    view.remember()
    assert 0 < memo.bytes <= bound
    assert 15 <= len(memo) <= 20
    assert memo.get("shared", texts[-1]) is not None  # the oldest went first
    assert memo.get("shared", texts[0]) is None


def test_a_zero_bound_turns_the_memo_off() -> None:
    memo = TokenMemo(max_bytes=0)
    view = memo.scoped("shared", TOKENIZER)
    view.ids_bytes_many(["hello"])
    view.remember()
    assert (len(memo), memo.bytes) == (0, 0)


def test_a_refused_request_teaches_the_memo_nothing() -> None:
    memo = TokenMemo()
    # the service charges tokens (requests are charged from the headers, before it runs):
    # room for the first text's 2 tokens, not for the second's
    one_request = RateLimitSettings(
        LimitSettings(), LimitSettings(tokens_per_minute=0.001, tokens_burst=3)
    )
    service = EmbeddingService(
        MemoryCache(100, 60),
        ChunkedFetcher(InProcessUpstream()),
        limits=TenantLimits(MemoryLimiter(), one_request),
        tokenizer=TOKENIZER,
        key_prefix="gw",
        background=Background(),
        memo=memo,
    )
    caller = Caller(ANONYMOUS, "127.0.0.1", "key:anonymous")

    async def embed(text: str) -> None:
        body = orjson.dumps({"model": "text-embedding-3-small", "input": text})
        await service.embed(parse_embedding_request(body, CATALOG), caller)

    asyncio.run(embed("admitted text"))
    with pytest.raises(GatewayError) as refused:
        asyncio.run(embed("refused text"))
    assert isinstance(refused.value, RateLimited)
    assert memo.get("key:anonymous", "admitted text") is not None
    assert memo.get("key:anonymous", "refused text") is None

"""EmbeddingService: the request pipeline, talking only to injected parts.

canonicalise → keys → one cache read → plan (hits, unique misses) → fetch the unique misses
(coalesced, micro-batched, chunked: see fetch.py) → write new entries in the background →
merge in input order → derive reduced dimensions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway import batching, codec
from gateway.auth import Principal
from gateway.background import Background
from gateway.budgets.keeper import BudgetKeeper, Hold, Standing
from gateway.budgets.money import token_cost
from gateway.cache import Cache
from gateway.cache.lookup import CacheLookup, KeyParts
from gateway.cache_control import NONE, CacheControls
from gateway.canonical import Prepared, prepare
from gateway.catalog import Model
from gateway.codec import StorageFormat
from gateway.counting import Tokenizers
from gateway.decoded import DecodedEntries
from gateway.fairshare import OffLoop
from gateway.fetch import Fetcher, Miss
from gateway.protocol import EmbeddingRequest
from gateway.quota import Quota, TenantLimits
from gateway.tokenmemo import ScopedTokenizer, TokenMemo
from gateway.tokens import Cl100k

log = logging.getLogger("gateway.service")


@dataclass(frozen=True, slots=True)
class Caller:
    principal: Principal
    client_ip: str
    cache_scope: str
    quota: Quota = field(default_factory=Quota)  # what the request paid from its headers


@dataclass(frozen=True, slots=True)
class EmbeddingResult:
    """What one request got, and what it cost: every input is exactly one of a hit, a miss this
    request paid for, a duplicate of another input of the request, or coalesced (joined another
    request's fetch)."""

    vectors: list[bytes | memoryview]  # little-endian float32, at the requested dimensions
    prompt_tokens: int
    inputs: int
    hits: int
    misses: int
    deduplicated: int
    coalesced: int
    miss_tokens: int  # the upstream-reported tokens this request paid for
    upstream_seconds: float
    quota: Quota
    budget: Standing | None = None  # the caller's tightest budget after this request
    refreshed: bool = False  # Cache-Control: no-cache: nothing was served from the cache
    # The cache key of each vector, when the vectors are the stored ones (not derived).
    keys: Sequence[bytes] = ()

    @property
    def saved_tokens(self) -> int:
        return self.prompt_tokens - self.miss_tokens


def _result(
    vectors: list[bytes | memoryview],
    *,
    entries: Sequence[codec.Entry],
    fetched: Sequence[codec.Entry],
    batch_plan: batching.Plan,
    upstream_seconds: float,
    quota: Quota,
    budget: Standing | None,
    refreshed: bool,
    keys: Sequence[bytes],
) -> EmbeddingResult:
    own = [entry for entry in fetched if not entry.joined]
    return EmbeddingResult(
        vectors=vectors,
        prompt_tokens=sum(entry.tokens for entry in entries),
        inputs=len(entries),
        hits=batch_plan.hits,
        misses=len(own),
        deduplicated=batch_plan.duplicates,
        coalesced=len(fetched) - len(own),
        miss_tokens=sum(entry.tokens for entry in own),
        upstream_seconds=upstream_seconds,
        quota=quota,
        budget=budget,
        refreshed=refreshed,
        keys=keys,
    )


OFF_LOOP_CHARACTERS = 50_000
OWN_COUNTS_ON_LOOP = 16  # inputs: the local engine counts one in about 0.2 ms
# Vectors packed on the event loop in a compact or float16 write; larger writes are packed on a
# thread (compact costs ~25 µs a vector: 2,048 would hold the loop for ~50 ms).
PACK_ON_LOOP = 16


class EmbeddingService:
    def __init__(
        self,
        cache: Cache,
        fetcher: Fetcher,
        *,
        limits: TenantLimits,
        tokenizer: Cl100k,
        key_prefix: str,
        background: Background,
        memo: TokenMemo | None = None,
        tokenizers: Tokenizers | None = None,
        offload: OffLoop | None = None,
        budgets: BudgetKeeper | None = None,
        decoded: DecodedEntries | None = None,
        storage_format: StorageFormat = "raw",
    ) -> None:
        self._storage_format: StorageFormat = storage_format
        self._tokenizers = tokenizers or Tokenizers()
        self._cache = cache
        self.lookup = CacheLookup(cache, key_prefix)
        self._limits = limits
        self._fetcher = fetcher
        self._tokenizer = tokenizer
        self._memo = memo if memo is not None else TokenMemo()
        self._key_prefix = key_prefix
        self._background = background
        self._offload = offload or OffLoop(per_tenant=2)
        self._budgets = budgets
        self.decoded = decoded if decoded is not None else DecodedEntries(0)

    async def embed(
        self, request: EmbeddingRequest, caller: Caller, controls: CacheControls = NONE
    ) -> EmbeddingResult:
        model = request.model
        tokenizer = self._memo.scoped(caller.cache_scope, self._tokenizer)
        prepared = await self._prepare(request, tokenizer, caller.principal.key_id)
        tokens = await self._limits.admit_tokens(
            caller.principal, model.name, prepared.total_tokens
        )
        quota = caller.quota.with_tokens(tokens)
        tokenizer.remember()  # only an admitted request's texts are memoised
        fetch_dimensions = model.fetch_dimensions(request.dimensions)
        stored_dimensions = fetch_dimensions or model.dimensions
        parts = KeyParts(
            model.cache_id, caller.cache_scope, fetch_dimensions, prepared.kind, prepared.canonical
        )
        keys, values = await self.lookup.read(parts, refresh=controls.refresh)
        found = self.decoded.decode(keys, values, stored_dimensions)
        batch_plan = batching.plan(keys, found)
        hold = await self._reserve(caller, model, prepared, batch_plan)
        started = time.perf_counter()
        try:
            fetched = await self._fetch(
                model, prepared, batch_plan, keys, fetch_dimensions, scope=caller.cache_scope
            )
        except BaseException:
            if hold is not None and self._budgets is not None:
                self._background.spawn(self._budgets.release(hold))
            raise
        upstream_seconds = time.perf_counter() - started if fetched else 0.0
        budget = await self._settle(hold, model, fetched)
        if controls.store:
            self._store(keys, batch_plan, fetched, stored_dimensions, controls.ttl_seconds)
        entries = batching.merge(found, batch_plan, fetched)
        vectors = [entry.vector for entry in entries]
        stored = request.output_dimensions == stored_dimensions
        if not stored:
            vectors = list(
                codec.truncate_normalise(vectors, stored_dimensions, request.output_dimensions)
            )
        return _result(
            vectors,
            entries=entries,
            fetched=fetched,
            batch_plan=batch_plan,
            upstream_seconds=upstream_seconds,
            quota=quota,
            budget=budget,
            refreshed=controls.refresh,
            keys=keys if stored else (),
        )

    async def _reserve(
        self, caller: Caller, model: Model, prepared: Prepared, batch_plan: batching.Plan
    ) -> Hold | None:
        """After the cache lookup, so only misses cost: their estimated price is reserved on
        the key's and the team's budgets before anything goes upstream."""
        if self._budgets is None or caller.principal.internal:
            return None
        tokens = sum(prepared.counts[p] for p in batch_plan.fetch_positions)
        cost = token_cost(tokens, model.price_per_million)
        principal = caller.principal
        return await self._budgets.reserve(principal.key_id, principal.team, cost)

    async def _settle(
        self, hold: Hold | None, model: Model, fetched: Sequence[codec.Entry]
    ) -> Standing | None:
        """The upstream-reported tokens of this request's own fetches are what it paid."""
        if hold is None or self._budgets is None:
            return None
        paid = sum(entry.tokens for entry in fetched if not entry.joined)
        return await self._budgets.settle(hold, token_cost(paid, model.price_per_million))

    async def _prepare(
        self, request: EmbeddingRequest, tokenizer: ScopedTokenizer, tenant: str
    ) -> Prepared:
        """Tokenise and count; a large request does it on a thread (tiktoken and the local
        engine release the GIL), at most a few at once per tenant, so the event loop keeps
        serving others meanwhile."""
        if self._on_loop(request):
            return self._counted(request, tokenizer)
        return await self._offload.run(tenant, self._counted, request, tokenizer)

    def _on_loop(self, request: EmbeddingRequest) -> bool:
        if self._tokenizers.has_own(request.model) and len(request.inputs) > OWN_COUNTS_ON_LOOP:
            return False
        return sum(map(len, request.inputs)) < OFF_LOOP_CHARACTERS

    def _counted(self, request: EmbeddingRequest, tokenizer: ScopedTokenizer) -> Prepared:
        return self._tokenizers.judge(request.model, prepare(request, tokenizer))

    async def _fetch(
        self,
        model: Model,
        prepared: Prepared,
        batch_plan: batching.Plan,
        keys: Sequence[bytes],
        fetch_dimensions: int | None,
        *,
        scope: str,
    ) -> list[codec.Entry]:
        misses = [
            Miss(keys[p], prepared.forward[p], prepared.counts[p], scope)
            for p in batch_plan.fetch_positions
        ]
        if not misses:
            return []
        return await self._fetcher.fetch(model, fetch_dimensions, misses)

    def _store(
        self,
        keys: Sequence[bytes],
        batch_plan: batching.Plan,
        fetched: Sequence[codec.Entry],
        dimensions: int,
        ttl_seconds: int | None,
    ) -> None:
        if not fetched:
            return
        own = [
            (keys[group[0]], entry)
            for group, entry in zip(batch_plan.groups, fetched, strict=True)
            if not entry.joined  # the request that fetched it writes it
        ]
        if own:
            self._background.spawn(self._write(own, dimensions, ttl_seconds))

    async def _write(
        self, own: Sequence[tuple[bytes, codec.Entry]], dimensions: int, ttl_seconds: int | None
    ) -> None:
        vectors = [entry.vector for _, entry in own]
        tokens = [entry.tokens for _, entry in own]
        storage = self._storage_format
        if storage == "raw" or len(own) <= PACK_ON_LOOP:
            values = codec.pack_many(vectors, dimensions, tokens, storage)
        else:
            values = await asyncio.to_thread(codec.pack_many, vectors, dimensions, tokens, storage)
        await self._cache.set_many(
            [(key, value) for (key, _), value in zip(own, values, strict=True)], ttl_seconds
        )

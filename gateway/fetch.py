"""Fetching missing vectors upstream. The service hands a Fetcher the unique misses of one
request; fetchers compose (coalescing and micro-batching wrap the chunked fetcher)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway import batching
from gateway.catalog import Model
from gateway.codec import Entry
from gateway.errors import GatewayError, UpstreamError
from gateway.tokens import TokenIds
from gateway.upstream import Inputs, UpstreamBatch

log = logging.getLogger("gateway.fetch")

# Reported usage above this multiple of the local count (estimates are rough for some scripts)
# is not believed.
USAGE_SLACK = 16
USAGE_SLACK_PER_INPUT = 64


@dataclass(frozen=True, slots=True)
class Miss:
    key: bytes
    forward: str | TokenIds  # what the upstream is sent for this input
    tokens: int  # the local count, used to apportion the upstream's reported usage
    scope: str = "shared"  # the cache scope of the request: batches never mix scopes


def plausible_usage(reported: int | None, counts: Sequence[int]) -> int:
    """The upstream's token count, unless it is missing or far from the local counts (which
    then stand in, and the disagreement is logged)."""
    local = sum(counts)
    if reported is None:
        return local
    if not 0 <= reported <= USAGE_SLACK * local + USAGE_SLACK_PER_INPUT * len(counts):
        log.warning(
            "upstream reported %d tokens for %d counted locally; using ours", reported, local
        )
        return local
    return reported


def refused_request(error: BaseException) -> bool:
    """An upstream 4xx about the request's inputs (not retryable): it may name an input, so a
    combined call refused this way is resolved per request before anyone sees it."""
    return isinstance(error, GatewayError) and error.should_retry is False


class Fetcher(Protocol):
    async def fetch(
        self, model: Model, dimensions: int | None, misses: Sequence[Miss]
    ) -> list[Entry]: ...


class Upstream(Protocol):
    def batch_limits(self, model: Model) -> tuple[int, int]: ...

    async def embed(
        self, model: Model, inputs: Inputs, dimensions: int | None
    ) -> UpstreamBatch: ...


class ChunkedFetcher:
    """Splits misses into provider-sized calls, run concurrently; apportions reported usage."""

    def __init__(self, upstream: Upstream) -> None:
        self._upstream = upstream
        self.upstream_tokens = 0

    async def fetch(
        self, model: Model, dimensions: int | None, misses: Sequence[Miss]
    ) -> list[Entry]:
        max_items, max_tokens = self._upstream.batch_limits(model)
        chunks = batching.chunk([m.tokens for m in misses], max_items, max_tokens)
        results = await asyncio.gather(
            *(self._fetch_chunk(model, dimensions, misses[c.start : c.stop]) for c in chunks)
        )
        return [entry for chunk_entries in results for entry in chunk_entries]

    async def _fetch_chunk(
        self, model: Model, dimensions: int | None, misses: Sequence[Miss]
    ) -> list[Entry]:
        inputs: Inputs = [m.forward for m in misses]  # type: ignore[assignment]
        batch = await self._upstream.embed(model, inputs, dimensions)
        expected = dimensions or model.dimensions
        if batch.vectors.shape[1] != expected:
            raise UpstreamError(
                f"upstream returned {batch.vectors.shape[1]}-dimensional vectors for "
                f"{model.name}, expected {expected}"
            )
        counts = [m.tokens for m in misses]
        reported = plausible_usage(batch.prompt_tokens, counts)
        self.upstream_tokens += reported
        tokens = batching.apportion(reported, counts)
        buffer = memoryview(batch.vectors.astype("<f4", copy=False).tobytes())
        width = 4 * expected
        return [Entry(buffer[i * width : (i + 1) * width], tokens[i]) for i in range(len(misses))]

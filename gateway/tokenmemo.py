"""A memo of recent texts' cl100k token ids, so a repeated text skips the BPE.

The memo is a timing oracle (a remembered text tokenises faster), so it is kept per cache scope:
a lookup only ever sees texts admitted under the caller's own scope, exactly what the cache
scope already shares on purpose. It is filled only after a request is admitted (a refused
request teaches it nothing) and bounded in bytes, oldest first out.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence

from gateway.tokens import Cl100k, TokenIds

# The dict slot and the (scope, text) tuple of one entry, beyond its text and ids objects.
ENTRY_OVERHEAD = 160
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
MAX_CHARS = 2048  # longer texts are rarely repeated and cost the most memory


def entry_bytes(text: str, ids: bytes) -> int:
    return sys.getsizeof(text) + sys.getsizeof(ids) + ENTRY_OVERHEAD


class TokenMemo:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, max_chars: int = MAX_CHARS) -> None:
        self._entries: dict[tuple[str, str], bytes] = {}
        self._max_bytes = max_bytes
        self._max_chars = max_chars
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, scope: str, text: str) -> bytes | None:
        return self._entries.get((scope, text))

    def scoped(self, scope: str, tokenizer: Cl100k) -> ScopedTokenizer:
        return ScopedTokenizer(self, scope, tokenizer)

    def remember(self, scope: str, learned: Sequence[tuple[str, bytes]]) -> None:
        """Called on the event loop only; lookups may run on a worker thread meanwhile."""
        for text, ids in learned:
            size = entry_bytes(text, ids)
            if len(text) > self._max_chars or size > self._max_bytes:
                continue
            if self._entries.setdefault((scope, text), ids) is ids:
                self.bytes += size
        while self.bytes > self._max_bytes and self._entries:
            self._evict_oldest()

    def _evict_oldest(self) -> None:
        with contextlib.suppress(RuntimeError, StopIteration, KeyError):
            (scope, text), ids = next(iter(self._entries.items()))
            del self._entries[(scope, text)]
            self.bytes -= entry_bytes(text, ids)


class ScopedTokenizer:
    """One request's view of the memo: reads its scope's entries, and records what it had to
    tokenise until ``remember`` (after admission) hands it to the memo."""

    def __init__(self, memo: TokenMemo, scope: str, tokenizer: Cl100k) -> None:
        self._memo = memo
        self._scope = scope
        self._tokenizer = tokenizer
        self._learned: list[tuple[str, bytes]] = []

    def ids_bytes_many(self, texts: Sequence[str]) -> list[bytes]:
        lookup, scope, encode = self._memo.get, self._scope, self._tokenizer.ids_bytes
        found: list[bytes] = []
        for text in texts:
            ids = lookup(scope, text)
            if ids is None:
                ids = encode(text)
                self._learned.append((text, ids))
            found.append(ids)
        return found

    def decode(self, ids: TokenIds) -> str:
        return self._tokenizer.decode(ids)

    def remember(self) -> None:
        self._memo.remember(self._scope, self._learned)
        self._learned = []

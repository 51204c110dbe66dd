"""Cache keys: SHA-256 over a length-prefixed canonical form of one input (pure).

Never the raw request bytes, never `encoding_format` or `user`, never a 64-bit hash. The version
prefix retires every entry at once when the stored format changes; a model's `cache_id` retires
one model's entries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

KEY_VERSION = "v2"  # v2: values carry a CRC32 (codec.py)
TEXT = b"s"
TOKEN_IDS = b"t"


def _frame(part: bytes) -> bytes:
    return len(part).to_bytes(8, "little") + part


def key_hasher(scope: str, cache_id: str, dimensions: int | None) -> hashlib._Hash:
    """A hasher primed with everything the inputs of one request share."""
    hasher = hashlib.sha256()
    for part in (KEY_VERSION, scope, cache_id, "full" if dimensions is None else str(dimensions)):
        hasher.update(_frame(part.encode()))
    return hasher


def cache_keys(
    prefix: str, primed: hashlib._Hash, kind: bytes, canonical: Sequence[bytes]
) -> list[bytes]:
    head = f"{prefix}:e:{KEY_VERSION}:".encode()
    keys = []
    for item in canonical:
        hasher = primed.copy()
        hasher.update(_frame(kind))
        hasher.update(_frame(item))
        keys.append(head + hasher.hexdigest().encode())
    return keys

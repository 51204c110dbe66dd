"""Cache keys: SHA-256 over a length-prefixed canonical form of one input (pure).

Never the raw request bytes, never `encoding_format` or `user`, never a 64-bit hash. The version
prefix retires every entry at once when the stored format changes; a model's `cache_id` retires
one model's entries.

A key reads ``{prefix}:e:{version}:{tag}:{generation}:{sha256}``: the model's tag (a short hash of
its cache id) and its generation stand in clear, so a purge is one increment of the generation
(every old key becomes unreachable at once), and a store can tell which model an entry belongs to.
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


def model_tag(cache_id: str) -> str:
    """A short, fixed-form name for a model's cache id (which may hold ':' or '/') inside keys."""
    return hashlib.sha256(cache_id.encode()).hexdigest()[:16]


def key_model(key: bytes) -> tuple[str, int]:
    """The model tag and generation a cache key was made for; ("", 0) for any other key."""
    parts = key.rsplit(b":", 3)
    if len(parts) != 4 or not parts[2].isdigit():
        return "", 0
    return parts[1].decode(errors="replace"), int(parts[2])


def cache_keys(
    prefix: str,
    primed: hashlib._Hash,
    kind: bytes,
    canonical: Sequence[bytes],
    *,
    tag: str,
    generation: int,
) -> list[bytes]:
    head = f"{prefix}:e:{KEY_VERSION}:{tag}:{generation}:".encode()
    keys = []
    for item in canonical:
        hasher = primed.copy()
        hasher.update(_frame(kind))
        hasher.update(_frame(item))
        keys.append(head + hasher.hexdigest().encode())
    return keys

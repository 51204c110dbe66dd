"""Stored cache values: a 16-byte header and the raw little-endian float32 vector (pure).

    header   magic ``EV2\\0``, dimensions, token count, CRC32 (uint32 little-endian each)
    CRC32    over the first 12 header bytes and the vector, checked on every read

One entry serves float and base64 clients: base64 is encoded straight from the stored bytes.
A value is a miss, and is overwritten by the next fetch, when its magic, dimensions, length or
checksum disagree, when it holds a non-finite float, or when its token count is implausible.
Values of the older format (``EV1``, under ``v1`` keys) are misses.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

_MAGIC = b"EV2\x00"
_HEADER = struct.Struct("<4sIII")  # magic, dimensions, token count, crc32
_CHECKED = struct.Struct("<4sII")  # the header bytes the checksum covers
HEADER_SIZE = _HEADER.size
# No single input is this long (OpenAI's cap is 8,191 tokens): a larger count is corruption.
MAX_ENTRY_TOKENS = 1 << 21


@dataclass(frozen=True, slots=True)
class Entry:
    vector: bytes | memoryview  # little-endian float32
    tokens: int
    # Fetched for another request already in flight (coalesced), not by this one.
    joined: bool = field(default=False, compare=False)


def pack(vector: bytes | memoryview, dimensions: int, tokens: int) -> bytes:
    checked = _CHECKED.pack(_MAGIC, dimensions, tokens)
    return checked + struct.pack("<I", zlib.crc32(vector, zlib.crc32(checked))) + vector


def unpack(value: bytes | None, dimensions: int) -> Entry | None:
    if not isinstance(value, bytes) or len(value) != HEADER_SIZE + 4 * dimensions:
        return None
    magic, stored_dimensions, tokens, crc = _HEADER.unpack_from(value)
    if magic != _MAGIC or stored_dimensions != dimensions or tokens > MAX_ENTRY_TOKENS:
        return None
    view = memoryview(value)
    payload = view[HEADER_SIZE:]
    if zlib.crc32(payload, zlib.crc32(view[: _CHECKED.size])) != crc:
        return None
    if not np.isfinite(np.frombuffer(payload, dtype="<f4")).all():
        return None
    return Entry(payload, tokens)


def truncate_normalise(
    vectors: Sequence[bytes | memoryview], dimensions: int, keep: int
) -> list[memoryview]:
    """`v[:keep] / ||v[:keep]||` per vector, in float64, returned as float32 bytes."""
    full = np.frombuffer(b"".join(vectors), dtype="<f4").reshape(len(vectors), dimensions)
    prefix = full[:, :keep].astype(np.float64)
    norms = np.linalg.norm(prefix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    buffer = memoryview((prefix / norms).astype("<f4").tobytes())
    width = 4 * keep
    return [buffer[i * width : (i + 1) * width] for i in range(len(vectors))]

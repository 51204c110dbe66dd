"""Stored cache values: a 12-byte header and the raw little-endian float32 vector (pure).

One entry serves float and base64 clients: base64 is encoded straight from the stored bytes.
A value whose magic, dimensions or length disagree with what the model expects is a miss.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

_MAGIC = b"EV1\x00"
_HEADER = struct.Struct("<4sII")  # magic, dimensions, token count
HEADER_SIZE = _HEADER.size


@dataclass(frozen=True, slots=True)
class Entry:
    vector: bytes | memoryview  # little-endian float32
    tokens: int
    # Fetched for another request already in flight (coalesced), not by this one.
    joined: bool = field(default=False, compare=False)


def pack(vector: bytes | memoryview, dimensions: int, tokens: int) -> bytes:
    return _HEADER.pack(_MAGIC, dimensions, tokens) + vector


def unpack(value: bytes | None, dimensions: int) -> Entry | None:
    if value is None or len(value) != HEADER_SIZE + 4 * dimensions:
        return None
    magic, stored_dimensions, tokens = _HEADER.unpack_from(value)
    if magic != _MAGIC or stored_dimensions != dimensions:
        return None
    return Entry(memoryview(value)[HEADER_SIZE:], tokens)


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

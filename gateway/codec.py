"""Stored cache values: a 16-byte header and the vector in its storage format (pure).

    header   magic ``EV2`` and the storage format (0 raw, 1 compact, 2 float16: see
             gateway/storage_formats.py), dimensions, token count, CRC32 (uint32 LE each)
    CRC32    over the first 12 header bytes and the payload as stored, checked on every read

A raw entry is the little-endian float32 vector itself, served without a copy: base64 is
encoded straight from the stored bytes. Each entry is read by the format its header names, so
entries written under different settings are read together. A value is a miss, and is
overwritten by the next fetch, when its magic, dimensions, length or checksum disagree, when
its payload does not decode to exactly its dimensions, when it holds a non-finite float, or
when its token count is implausible. Values of the older format (``EV1``, under ``v1`` keys)
are misses.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from gateway import storage_formats
from gateway.storage_formats import FORMAT_CODES, StorageFormat

__all__ = ["StorageFormat"]

_MAGICS: dict[StorageFormat, bytes] = {
    storage: b"EV2" + bytes([code]) for storage, code in FORMAT_CODES.items()
}
_FORMATS = {magic: storage for storage, magic in _MAGICS.items()}
_MAGIC = _MAGICS["raw"]
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


def pack(
    vector: bytes | memoryview, dimensions: int, tokens: int, storage: StorageFormat = "raw"
) -> bytes:
    if storage == "raw":
        return _packed(_MAGIC, vector, dimensions, tokens)
    return pack_many([vector], dimensions, [tokens], storage)[0]


def pack_many(
    vectors: Sequence[bytes | memoryview],
    dimensions: int,
    tokens: Sequence[int],
    storage: StorageFormat = "raw",
) -> list[bytes]:
    """Each vector in ``storage``, or raw where that format would not hold it faithfully."""
    encoded = storage_formats.encode(vectors, dimensions, storage)
    return [
        _packed(_MAGICS[written], payload, dimensions, count)
        for (written, payload), count in zip(encoded, tokens, strict=True)
    ]


def _packed(magic: bytes, payload: bytes | memoryview, dimensions: int, tokens: int) -> bytes:
    checked = _CHECKED.pack(magic, dimensions, tokens)
    return checked + struct.pack("<I", zlib.crc32(payload, zlib.crc32(checked))) + payload


def stored_format(value: bytes | None) -> StorageFormat | None:
    """The format a value's header names (None: no value of this gateway's)."""
    return _FORMATS.get(value[:4]) if isinstance(value, bytes) else None


def unpack(value: bytes | None, dimensions: int) -> Entry | None:
    if isinstance(value, bytes) and len(value) != HEADER_SIZE + 4 * dimensions:
        return _unpack_formatted([value], dimensions)[0]
    return _unpack_raw(value, dimensions)


def unpack_many(values: Sequence[bytes | None], dimensions: int) -> list[Entry | None]:
    """The entries of one read: raw ones one by one, without a copy, as ever; the others
    decoded together, one batch per format."""
    found = [_unpack_raw(value, dimensions) for value in values]
    if all(found):
        return found  # raw hits only, the common case: one more pass, in C
    raw_size = HEADER_SIZE + 4 * dimensions
    formatted = [i for i, value in enumerate(values) if value and len(value) != raw_size]
    if not formatted:
        return found
    decoded = _unpack_formatted([values[i] for i in formatted], dimensions)
    for position, entry in zip(formatted, decoded, strict=True):
        found[position] = entry
    return found


def _unpack_raw(value: bytes | None, dimensions: int) -> Entry | None:
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


Checked = tuple[StorageFormat, int, memoryview]  # format, tokens, payload


def _unpack_formatted(values: Sequence[bytes | None], dimensions: int) -> list[Entry | None]:
    groups: dict[StorageFormat, list[tuple[int, int, memoryview]]] = {}
    for row, value in enumerate(values):
        checked = _checked(value, dimensions)
        if checked is not None:
            storage, tokens, payload = checked
            groups.setdefault(storage, []).append((row, tokens, payload))
    found: list[Entry | None] = [None] * len(values)
    for storage, group in groups.items():
        vectors = _decoded(storage, [payload for _, _, payload in group], dimensions)
        for (row, tokens, _), vector in zip(group, vectors, strict=True):
            if vector is not None:
                found[row] = Entry(vector, tokens)
    return found


def _checked(value: bytes | None, dimensions: int) -> Checked | None:
    """A compact or float16 value's format, token count and payload, where its header and
    checksum hold (raw values are `_unpack_raw`'s)."""
    if not isinstance(value, bytes) or len(value) < HEADER_SIZE:
        return None
    magic, stored_dimensions, tokens, crc = _HEADER.unpack_from(value)
    storage = _FORMATS.get(magic)
    if storage in (None, "raw") or stored_dimensions != dimensions or tokens > MAX_ENTRY_TOKENS:
        return None
    view = memoryview(value)
    payload = view[HEADER_SIZE:]
    if not storage_formats.payload_fits(storage, len(payload), dimensions):
        return None
    if zlib.crc32(payload, zlib.crc32(view[: _CHECKED.size])) != crc:
        return None
    return storage, tokens, payload


def _decoded(
    storage: StorageFormat, payloads: Sequence[memoryview], dimensions: int
) -> list[memoryview | None]:
    matrix, valid = storage_formats.decode(storage, payloads, dimensions)
    buffer = matrix.reshape(-1).view(np.uint8).data
    width = 4 * dimensions
    return [
        buffer[row * width : (row + 1) * width] if ok else None
        for row, ok in enumerate(valid.tolist())
    ]


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

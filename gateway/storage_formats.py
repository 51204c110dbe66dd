"""How a cached vector's bytes are laid out (pure): `cache.storage_format` picks the layout of
new entries; the header of each entry names its own (gateway/codec.py).

    raw      the little-endian float32 bytes as they are (the default; served without a copy)
    compact  lossless: the float32 bytes split into their four byte planes (byte 0 of every
             float, then byte 1, byte 2, byte 3). The first three planes hold mantissa bits,
             close to random, and are kept as they are; the fourth (sign and high exponent
             bits: a few distinct values across an embedding) is Huffman-coded by zlib (raw
             deflate). A unit 1536-dim vector: about 5.2 KB instead of 6 KB.
    float16  IEEE half precision, widened to float32 on read: half the bytes. Written only
             where every component fits (|x| <= 65,504) and the cosine to the original is at
             least MIN_FLOAT16_COSINE; any other vector is stored raw. For a unit vector each
             component is off by at most 2^-12 and the cosine is about 1 - 1e-7.

Vectors are encoded and decoded a batch of one format at a time: one numpy pass per batch.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

StorageFormat = Literal["raw", "compact", "float16"]
FORMAT_CODES: dict[StorageFormat, int] = {"raw": 0, "compact": 1, "float16": 2}
MIN_FLOAT16_COSINE = 0.9999

Payload = bytes | memoryview
Encoded = tuple[StorageFormat, Payload]
Matrix = npt.NDArray[np.float32]
Mask = npt.NDArray[np.bool_]

# Raw deflate (the checksum is the header's), Huffman codes only: the exponent plane has no
# repeats for LZ77 to find, and searching for them would double the cost of a write.
_WINDOW_BITS = -15


def payload_fits(storage: StorageFormat, size: int, dimensions: int) -> bool:
    if storage == "compact":
        return 3 * dimensions < size < 4 * dimensions
    return size == (2 if storage == "float16" else 4) * dimensions


def encode(vectors: Sequence[Payload], dimensions: int, storage: StorageFormat) -> list[Encoded]:
    """Each float32 vector in ``storage``, or raw where that format would not serve it."""
    if storage == "raw" or not vectors:
        return [("raw", vector) for vector in vectors]
    matrix = np.frombuffer(b"".join(vectors), dtype="<f4").reshape(len(vectors), dimensions)
    return _ENCODERS[storage](matrix, vectors)


def _encode_compact(matrix: Matrix, vectors: Sequence[Payload]) -> list[Encoded]:
    planes = np.ascontiguousarray(
        matrix.view(np.uint8).reshape(*matrix.shape, 4).transpose(0, 2, 1)
    )
    size = matrix.itemsize * matrix.shape[1]
    encoded: list[Encoded] = []
    for row, vector in zip(planes, vectors, strict=True):
        payload = row[:3].tobytes() + _deflate(row[3].tobytes())
        encoded.append(("compact", payload) if len(payload) < size else ("raw", vector))
    return encoded


def _deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(1, zlib.DEFLATED, _WINDOW_BITS, 8, zlib.Z_HUFFMAN_ONLY)
    return compressor.compress(data) + compressor.flush()


def _encode_float16(matrix: Matrix, vectors: Sequence[Payload]) -> list[Encoded]:
    with np.errstate(over="ignore"):  # out of range: inf, refused below
        half = matrix.astype("<f2")
    fits = np.isfinite(half).all(axis=1) & (_cosines(matrix, half) >= MIN_FLOAT16_COSINE)
    return [
        ("float16", row.tobytes()) if fit else ("raw", vector)
        for row, fit, vector in zip(half, fits, vectors, strict=True)
    ]


def _cosines(matrix: Matrix, half: npt.NDArray[np.float16]) -> npt.NDArray[np.float64]:
    """Per row, the cosine of the original to its float16 (1 where both are the same)."""
    original, rounded = matrix.astype(np.float64), half.astype(np.float64)
    dots = np.einsum("ij,ij->i", original, rounded)
    norms = np.linalg.norm(original, axis=1) * np.linalg.norm(rounded, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cosines = np.nan_to_num(dots / norms, nan=0.0, posinf=0.0, neginf=0.0)
    return np.where((original == rounded).all(axis=1), 1.0, cosines)


_ENCODERS: dict[StorageFormat, Callable[[Matrix, Sequence[Payload]], list[Encoded]]] = {
    "compact": _encode_compact,
    "float16": _encode_float16,
}


def decode(
    storage: StorageFormat, payloads: Sequence[memoryview], dimensions: int
) -> tuple[Matrix, Mask]:
    """The float32 vectors of checksummed payloads of one format, and which rows decoded to
    finite floats (the others are misses)."""
    matrix, decoded = _DECODERS[storage](payloads, dimensions)
    return matrix, decoded & np.isfinite(matrix).all(axis=1)


def _decode_compact(payloads: Sequence[memoryview], dimensions: int) -> tuple[Matrix, Mask]:
    low = 3 * dimensions
    parts: list[Payload] = []
    decoded = np.ones(len(payloads), dtype=bool)
    for row, payload in enumerate(payloads):
        exponents = _inflate(payload[low:], dimensions)
        if exponents is None:
            decoded[row], exponents = False, bytes(dimensions)
        parts += (payload[:low], exponents)
    planes = np.frombuffer(b"".join(parts), dtype=np.uint8).reshape(len(payloads), 4, dimensions)
    floats = np.empty((len(payloads), dimensions, 4), dtype=np.uint8)
    for plane in range(4):  # four strided copies: faster than one transposing copy of bytes
        floats[:, :, plane] = planes[:, plane]
    return floats.view("<f4").reshape(len(payloads), dimensions), decoded


def _inflate(stream: memoryview, size: int) -> bytes | None:
    """Exactly ``size`` bytes from a whole deflate stream, or None; never more than size + 1
    bytes of memory, whatever the stream claims."""
    inflater = zlib.decompressobj(_WINDOW_BITS)
    try:
        data = inflater.decompress(stream, size + 1)
    except zlib.error:
        return None
    if len(data) != size or not inflater.eof or inflater.unused_data:
        return None
    return data


def _decode_float16(payloads: Sequence[memoryview], dimensions: int) -> tuple[Matrix, Mask]:
    half = np.frombuffer(b"".join(payloads), dtype="<f2").reshape(len(payloads), dimensions)
    return half.astype("<f4"), np.ones(len(payloads), dtype=bool)


_DECODERS: dict[StorageFormat, Callable[[Sequence[memoryview], int], tuple[Matrix, Mask]]] = {
    "compact": _decode_compact,
    "float16": _decode_float16,
}

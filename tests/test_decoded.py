"""Checked and rendered hot entries are reused only for the very bytes they were made from,
and only for the key (so the cache scope) they were read under."""

from __future__ import annotations

import base64

import numpy as np
import orjson

from gateway import codec, protocol
from gateway.decoded import DecodedEntries, render

DIMS = 8
VECTOR = np.linspace(-1, 1, DIMS, dtype="<f4").tobytes()
VALUE = codec.pack(VECTOR, DIMS, 3)


class CountingDecode:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, value: bytes | None, dimensions: int) -> codec.Entry | None:
        self.calls += 1
        return codec.unpack(value, dimensions)


def test_the_same_bytes_again_are_not_checked_again() -> None:
    decode = CountingDecode()
    decoded = DecodedEntries(1 << 20, decode)
    first = decoded.decode([b"k"], [VALUE], DIMS)
    again = decoded.decode([b"k"], [bytes(bytearray(VALUE))], DIMS)  # equal, not identical
    assert first == again and first[0] is again[0]
    assert decode.calls == 1


def test_changed_bytes_under_a_remembered_key_are_checked_and_fail() -> None:
    decoded = DecodedEntries(1 << 20)
    decoded.decode([b"k"], [VALUE], DIMS)
    corrupted = VALUE[:-1] + bytes([VALUE[-1] ^ 1])
    assert decoded.decode([b"k"], [corrupted], DIMS) == [None]


def test_a_remembered_value_under_another_key_is_checked_on_its_own() -> None:
    decode = CountingDecode()
    decoded = DecodedEntries(1 << 20, decode)
    decoded.decode([b"scope-a"], [VALUE], DIMS)
    decoded.decode([b"scope-b"], [VALUE], DIMS)
    assert decode.calls == 2


def test_a_miss_is_not_remembered() -> None:
    decoded = DecodedEntries(1 << 20)
    assert decoded.decode([b"k"], [None], DIMS) == [None]
    assert len(decoded) == 0


def test_renderings_are_what_the_response_writes() -> None:
    decoded = DecodedEntries(1 << 20)
    (entry,) = decoded.decode([b"k"], [VALUE], DIMS)
    assert entry is not None
    for encoding in ("float", "base64"):
        remembered = decoded.fragments([b"k"], [entry.vector], encoding)
        assert remembered == decoded.fragments([b"k"], [entry.vector], encoding)
        assert remembered == [render(VECTOR, encoding)]
    body = orjson.loads(protocol.embedding_body("m", [render(VECTOR, "base64")], 3))
    assert base64.b64decode(body["data"][0]["embedding"]) == VECTOR


def test_a_vector_that_is_not_the_remembered_one_is_rendered_afresh() -> None:
    decoded = DecodedEntries(1 << 20)
    decoded.decode([b"k"], [VALUE], DIMS)
    other = np.ones(DIMS, dtype="<f4").tobytes()
    assert decoded.fragments([b"k"], [other], "float") == [render(other, "float")]


def test_the_memory_is_bounded_in_bytes_least_recently_used_first_out() -> None:
    decode = CountingDecode()
    decoded = DecodedEntries(3 * (len(VALUE) + 2), decode)
    for name in (b"k1", b"k2", b"k3"):
        decoded.decode([name], [VALUE], DIMS)
    decoded.decode([b"k1"], [VALUE], DIMS)  # k2 is now the least recently used
    decoded.decode([b"k4"], [VALUE], DIMS)
    assert len(decoded) == 3 and decoded.bytes <= 3 * (len(VALUE) + 2)
    checked = decode.calls
    decoded.decode([b"k1", b"k3", b"k4"], [VALUE] * 3, DIMS)
    assert decode.calls == checked
    decoded.decode([b"k2"], [VALUE], DIMS)
    assert decode.calls == checked + 1


def test_zero_bytes_remembers_nothing() -> None:
    decoded = DecodedEntries(0)
    assert decoded.decode([b"k"], [VALUE], DIMS)[0] is not None
    assert len(decoded) == 0

"""Checked and rendered cache values, remembered per key: a hot hit skips both.

A value read from the cache is checked before it is served (header, length, CRC32, finite
floats: codec.unpack) and rendered before it is sent (base64 text, or JSON floats): for a
64-input hit that was most of the request's CPU. Both depend on the value's bytes alone, so they
are remembered by cache key beside the bytes they were made from, and reused only when the store
answers those very bytes again (compared in full, a memcmp). There is nothing to invalidate: a
purge, delete, refresh or expiry changes what the store answers, and the memory is then not
used. Cache keys carry the cache scope, so nothing is shared beyond what the cache itself
shares. Bounded by bytes (values and renderings), least recently used first out.
"""

from __future__ import annotations

import base64
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import orjson

from gateway import codec

Encoding = Literal["float", "base64"]
Decode = Callable[[bytes | None, int], codec.Entry | None]


def render(vector: bytes | memoryview, encoding: Encoding) -> bytes:
    """One embedding as it appears in the response JSON: a quoted base64 string or an array."""
    if encoding == "base64":
        return b'"' + base64.b64encode(vector) + b'"'
    return orjson.dumps(np.frombuffer(vector, dtype="<f4"), option=orjson.OPT_SERIALIZE_NUMPY)


class _Held:
    __slots__ = ("base64", "dimensions", "entry", "floats", "value")

    def __init__(self, value: bytes, dimensions: int, entry: codec.Entry) -> None:
        self.value = value
        self.dimensions = dimensions
        self.entry = entry
        self.base64: bytes | None = None
        self.floats: bytes | None = None


class DecodedEntries:
    def __init__(self, max_bytes: int, decode: Decode = codec.unpack) -> None:
        self._held: OrderedDict[bytes, _Held] = OrderedDict()
        self._max_bytes = max_bytes
        self._bytes = 0
        self._decode = decode

    def decode(
        self, keys: Sequence[bytes], values: Sequence[bytes | None], dimensions: int
    ) -> list[codec.Entry | None]:
        """``decode`` of each value, remembered for the key while the same bytes come back."""
        return [self._one(key, value, dimensions) for key, value in zip(keys, values, strict=True)]

    def _one(self, key: bytes, value: bytes | None, dimensions: int) -> codec.Entry | None:
        held = self._held.get(key) if value is not None else None
        if held is not None and held.dimensions == dimensions and held.value == value:
            self._held.move_to_end(key)
            return held.entry
        entry = self._decode(value, dimensions)
        if entry is not None and value is not None and self._max_bytes > 0:
            self._forget(key)
            self._held[key] = _Held(value, dimensions, entry)
            self._grow(len(key) + len(value))
        return entry

    def fragments(
        self,
        keys: Sequence[bytes],
        vectors: Sequence[bytes | memoryview],
        encoding: Encoding,
    ) -> list[bytes]:
        """Each vector rendered for the response; ``keys`` (empty: none) name the cache entry
        each vector came from, whose rendering is remembered when it is that entry's vector."""
        if not keys:
            return [render(vector, encoding) for vector in vectors]
        return [self._fragment(k, v, encoding) for k, v in zip(keys, vectors, strict=True)]

    def _fragment(self, key: bytes, vector: bytes | memoryview, encoding: Encoding) -> bytes:
        held = self._held.get(key)
        if held is None or held.entry.vector is not vector:
            return render(vector, encoding)
        if encoding == "base64":
            if held.base64 is None:
                held.base64 = render(vector, encoding)
                self._grow(len(held.base64))
            return held.base64
        if held.floats is None:
            held.floats = render(vector, encoding)
            self._grow(len(held.floats))
        return held.floats

    def _grow(self, size: int) -> None:
        self._bytes += size
        while self._bytes > self._max_bytes and self._held:
            self._forget(next(iter(self._held)))

    def _forget(self, key: bytes) -> None:
        held = self._held.pop(key, None)
        if held is not None:
            self._bytes -= len(key) + len(held.value) + _size(held.base64) + _size(held.floats)

    def __len__(self) -> int:
        return len(self._held)

    @property
    def bytes(self) -> int:
        return self._bytes


def _size(rendering: bytes | None) -> int:
    return 0 if rendering is None else len(rendering)

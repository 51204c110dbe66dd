from __future__ import annotations

import numpy as np

from gateway import codec
from gateway.keys import TEXT, TOKEN_IDS, cache_keys, key_hasher, key_model, model_tag


def key(
    scope: str = "shared",
    cache_id: str = "m",
    dims: int | None = None,
    kind: bytes = TEXT,
    item: bytes = b"hello",
) -> bytes:
    hasher = key_hasher(scope, cache_id, dims)
    return cache_keys("gw", hasher, kind, [item], tag=model_tag(cache_id), generation=0)[0]


def test_keys_are_namespaced_versioned_sha256() -> None:
    prefix, kind, version, tag, generation, digest = key().split(b":")
    assert (prefix, kind, version, len(digest)) == (b"gw", b"e", b"v2", 64)
    assert (tag.decode(), generation) == (model_tag("m"), b"0")


def test_a_key_names_its_model_tag_and_generation() -> None:
    hasher = key_hasher("shared", "BAAI/bge:m3", None)
    made = cache_keys("a:b", hasher, TEXT, [b"x"], tag=model_tag("BAAI/bge:m3"), generation=7)
    assert key_model(made[0]) == (model_tag("BAAI/bge:m3"), 7)
    assert key_model(b"gw:some:other:key") == key_model(b"plain") == ("", 0)


def test_every_part_of_the_key_matters() -> None:
    variants = {
        key(),
        key(scope="team:a"),
        key(cache_id="m2"),
        key(dims=256),
        key(kind=TOKEN_IDS),
        key(item=b"hello "),
    }
    assert len(variants) == 6


def test_length_prefixing_prevents_boundary_collisions() -> None:
    assert key(scope="ab", cache_id="c") != key(scope="a", cache_id="bc")


def test_a_packed_vector_unpacks_to_its_bytes_and_tokens() -> None:
    vector = np.arange(4, dtype="<f4").tobytes()
    entry = codec.unpack(codec.pack(vector, 4, 7), 4)
    assert entry is not None
    assert (bytes(entry.vector), entry.tokens) == (vector, 7)


def test_a_value_of_the_wrong_size_or_header_is_a_miss() -> None:
    value = codec.pack(np.zeros(4, dtype="<f4").tobytes(), 4, 1)
    assert codec.unpack(value, 8) is None
    assert codec.unpack(value[:-1], 4) is None
    assert codec.unpack(b"XXXX" + value[4:], 4) is None
    assert codec.unpack(None, 4) is None


def test_a_stored_vector_is_the_float32_bytes_plus_a_small_header() -> None:
    assert len(codec.pack(bytes(6144), 1536, 3)) == 6144 + codec.HEADER_SIZE


def test_truncate_normalise_returns_unit_prefixes() -> None:
    vectors = [np.array([3, 4, 12], dtype="<f4").tobytes()]
    (reduced,) = codec.truncate_normalise(vectors, 3, 2)
    np.testing.assert_allclose(np.frombuffer(reduced, dtype="<f4"), [0.6, 0.8])

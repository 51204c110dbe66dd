"""Broken upstream answers, one per way a provider's success body can lie (pure).

Each builds a 200 body for a validated call from the right vectors, then breaks it. The fake
upstream serves one when its ``broken`` switch names it.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Callable
from typing import Any, Final

import numpy as np
import orjson

from tests.support.fake_upstream import EmbeddingCall, Vector, _full_vector, truncate


def _vectors(call: EmbeddingCall) -> list[Vector]:
    full = [_full_vector(call.model, text, call.native_dims) for text in call.texts]
    return full if call.dimensions is None else [truncate(v, call.dimensions) for v in full]


def _b64(values: Vector) -> str:
    return base64.b64encode(values.astype("<f4").tobytes()).decode("ascii")


def _body(call: EmbeddingCall, data: list[dict[str, Any]], tokens: int | None = None) -> bytes:
    used = call.tokens if tokens is None else tokens
    usage = {"prompt_tokens": used, "total_tokens": used}
    body = {"object": "list", "data": data, "model": call.model, "usage": usage}
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def _items(embeddings: list[Any]) -> list[dict[str, Any]]:
    return [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(embeddings)]


def unequal_base64(call: EmbeddingCall) -> bytes:
    """One float moves from the first item to the second: 1535 + 1537 floats, 3072 in all."""
    joined = np.concatenate(_vectors(call))
    width = len(joined) // len(call.texts)
    cuts = [0, width - 1, *range(2 * width, len(joined), width), len(joined)]
    parts = [joined[a:b] for a, b in itertools.pairwise(cuts)]
    return _body(call, _items([_b64(p) for p in parts if len(p)]))


def duplicate_index(call: EmbeddingCall) -> bytes:
    """Two items (the last two, or one repeated) both say ``index: 0``."""
    data = _items([_b64(v) for v in _vectors(call)])
    if len(data) == 1:
        data.append(dict(data[0]))
    data[-1]["index"] = 0
    return _body(call, data)


def reversed_every_index_zero(call: EmbeddingCall) -> bytes:
    data = _items([_b64(v) for v in _vectors(call)])[::-1]
    return _body(call, [item | {"index": 0} for item in data])


def three_dimensional(call: EmbeddingCall) -> bytes:
    return _body(call, _items([[[float(x), float(x)] for x in v] for v in _vectors(call)]))


def nan_in_base64(call: EmbeddingCall) -> bytes:
    vectors = [v.copy() for v in _vectors(call)]
    vectors[0][7] = np.nan
    return _body(call, _items([_b64(v) for v in vectors]))


def float_overflow(call: EmbeddingCall) -> bytes:
    """1e39 in a float list: finite as JSON, infinite as float32."""
    lists = [[float(x) for x in v] for v in _vectors(call)]
    lists[0][3] = 1e39
    return _body(call, _items(lists))


def negative_usage(call: EmbeddingCall) -> bytes:
    return _body(call, _items([_b64(v) for v in _vectors(call)]), tokens=-5)


def huge_usage(call: EmbeddingCall) -> bytes:
    return _body(call, _items([_b64(v) for v in _vectors(call)]), tokens=2**40)


def scalar_embedding(call: EmbeddingCall) -> bytes:
    return _body(call, _items([0.5 for _ in call.texts]))


BROKEN_ANSWERS: Final[dict[str, Callable[[EmbeddingCall], bytes]]] = {
    "unequal_base64": unequal_base64,
    "duplicate_index": duplicate_index,
    "reversed_every_index_zero": reversed_every_index_zero,
    "three_dimensional": three_dimensional,
    "nan_in_base64": nan_in_base64,
    "float_overflow": float_overflow,
    "negative_usage": negative_usage,
    "huge_usage": huge_usage,
    "scalar_embedding": scalar_embedding,
}
# Answers whose vectors are right and only the usage lies: served, with local token counts.
USAGE_ONLY: Final = frozenset({"negative_usage", "huge_usage"})

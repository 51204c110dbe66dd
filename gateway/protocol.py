"""The OpenAI embeddings wire format: request validation and response bodies (pure).

Messages follow OpenAI's own wording (see the contract's section 1.4), because clients match
substrings such as "array length must be 2048 or less" to split batches and retry.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence, Sized
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import orjson

from gateway import jsonscan
from gateway.catalog import Catalog, Model
from gateway.errors import InvalidRequest, ModelNotFound, TokensPerRequestExceeded
from gateway.tokens import MAX_TOKEN_ID, TokenIds

MAX_INPUTS = 2048
MAX_TOKENS_PER_REQUEST = 300_000
# A body with more values than this is refused unparsed: no valid request comes near it, and
# parsing makes an object of every value. Twice the token limit, so a request a little over it
# still gets OpenAI's exact message, counted after parsing.
MAX_JSON_VALUES = 2 * MAX_TOKENS_PER_REQUEST
# Tokenising is the costly step before any limit can be checked, so text is capped first: 300,000
# tokens (OpenAI's per-request maximum) rarely take more than 4 characters each.
MAX_TOTAL_CHARACTERS = 4_000_000
EncodingFormat = Literal["float", "base64"]

_INVALID_INPUT = (
    "'$.input' is invalid. Please check the API reference: "
    "https://platform.openai.com/docs/api-reference."
)
_NOT_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON.)"
)


@dataclass(frozen=True, slots=True)
class TokenRows:
    """Token lists parsed out of process (`gateway.bodyparse`): every list's ids in one flat
    little-endian uint32 buffer, and each list's length; `single`: the input was one list of
    ids, not a list of lists. Checked here all at once instead of list by list."""

    flat: np.ndarray
    lengths: np.ndarray
    single: bool = False


@dataclass(frozen=True, slots=True)
class TooManyValues:
    """A body refused before parsing: it holds at least `values` JSON values."""

    values: int


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    model: Model
    inputs: Sequence[str] | Sequence[TokenIds]
    token_input: bool
    encoding_format: EncodingFormat
    dimensions: int | None
    user: str | None

    @property
    def output_dimensions(self) -> int:
        return self.dimensions or self.model.dimensions


def parse_embedding_request(body: bytes, catalog: Catalog) -> EmbeddingRequest:
    return embedding_request(load_json(body), catalog)


def load_json(body: bytes) -> Any:
    """The parsed body; None if it is not JSON; `TooManyValues` if it holds more values than
    any valid request (for a body that is not JSON either, the count is a guess)."""
    return too_many_values(body) or parse_json(body)


def too_many_values(body: bytes) -> TooManyValues | None:
    # Each value after the first takes a comma and a character at least: a shorter body, or
    # one with fewer commas in all, cannot hold too many.
    if len(body) > 2 * MAX_JSON_VALUES and body.count(b",") >= MAX_JSON_VALUES:
        values = jsonscan.structural_commas(body) + 1
        if values > MAX_JSON_VALUES:
            return TooManyValues(values)
    return None


def parse_json(body: bytes) -> Any:
    """The parsed body, or None if it is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def embedding_request(data: Any, catalog: Catalog) -> EmbeddingRequest:
    """Validates a parsed body (None: it was not JSON); token lists may already be arrays."""
    if data is None:
        raise InvalidRequest(_NOT_JSON)
    if isinstance(data, TooManyValues):
        raise TokensPerRequestExceeded(
            f"Requested {data.values} values or more, max {MAX_TOKENS_PER_REQUEST} tokens per "
            "request"
        )
    if not isinstance(data, dict):
        raise InvalidRequest("Invalid request body: expected a JSON object.")
    model = _model(data.get("model"), catalog)
    inputs, token_input = _inputs(data)
    return EmbeddingRequest(
        model=model,
        inputs=inputs,
        token_input=token_input,
        encoding_format=_encoding_format(data.get("encoding_format")),
        dimensions=_dimensions(data.get("dimensions"), model),
        user=_user(data.get("user")),
    )


def _model(value: Any, catalog: Catalog) -> Model:
    if value is None or value == "":
        raise InvalidRequest("you must provide a model parameter")
    if not isinstance(value, str):
        raise InvalidRequest(f"{_repr(value)} is not of type 'string' - 'model'")
    model = catalog.get(value)
    if model is None:
        raise ModelNotFound(value)
    return model


def _inputs(data: dict[str, Any]) -> tuple[list[str] | list[TokenIds], bool]:
    if "input" not in data:
        raise InvalidRequest(
            "Missing required parameter: 'input'.", param="input", code="missing_required_parameter"
        )
    raw = data["input"]
    if isinstance(raw, TokenRows):
        return _rows(raw), True
    if isinstance(raw, np.ndarray):  # one token list, parsed out of process
        return [_token_ids(raw)], True
    if isinstance(raw, str):
        return _texts([raw]), False
    if not isinstance(raw, list):
        raise InvalidRequest(_INVALID_INPUT)
    if not raw:
        raise InvalidRequest("Invalid 'input': input cannot be an empty array.")
    first = raw[0]
    if isinstance(first, int) and not isinstance(first, bool):
        return [_token_ids(raw)], True
    _check_count(raw)
    if isinstance(first, str):
        return _texts(raw), False
    if isinstance(first, list | np.ndarray):
        return [_token_ids(item) for item in raw], True
    raise InvalidRequest(_INVALID_INPUT)


def _check_count(items: Sized) -> None:
    if len(items) > MAX_INPUTS:
        raise InvalidRequest(f"Invalid 'input': array length must be {MAX_INPUTS} or less.")


def _texts(items: list[Any]) -> list[str]:
    for item in items:
        if type(item) is not str:
            raise InvalidRequest(_INVALID_INPUT)
        if not item:
            raise InvalidRequest("Invalid 'input': input cannot be an empty string.")
    characters = sum(map(len, items))
    if characters > MAX_TOTAL_CHARACTERS:
        raise InvalidRequest(
            f"Requested {characters} characters of input, max {MAX_TOTAL_CHARACTERS} per request."
        )
    return items


def _token_ids(item: Any) -> TokenIds:
    ids = item if isinstance(item, np.ndarray) else _array(item)
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise InvalidRequest(_INVALID_INPUT)
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high > MAX_TOKEN_ID:
        raise InvalidRequest(
            f"Invalid token in prompt: {low if low < 0 else high}. Minimum value is 0, "
            f"maximum value is {MAX_TOKEN_ID} (inclusive)."
        )
    return ids.astype("<u4", copy=False)


def _rows(rows: TokenRows) -> list[TokenIds]:
    if not rows.single:
        _check_count(rows.lengths)
    lengths, flat = rows.lengths, rows.flat
    valid = (
        flat.dtype.str == "<u4"
        and len(lengths) > 0
        and int(lengths.min()) > 0
        and int(lengths.sum()) == flat.size
        and int(flat.max()) <= MAX_TOKEN_ID
    )
    if not valid:  # bodyparse sends only valid lists this way: never a client's doing
        raise InvalidRequest(_INVALID_INPUT)
    ends = np.cumsum(lengths).tolist()  # views by plain slicing: np.split took 5x as long
    return [flat[start:end] for start, end in zip([0, *ends[:-1]], ends, strict=True)]


def _array(item: Any) -> np.ndarray:
    if not isinstance(item, list) or not item or bool in set(map(type, item)):
        raise InvalidRequest(_INVALID_INPUT)
    try:
        return np.asarray(item)
    except (ValueError, OverflowError):
        raise InvalidRequest(_INVALID_INPUT) from None


def _encoding_format(value: Any) -> EncodingFormat:
    if value is None or value == "float":
        return "float"
    if value == "base64":
        return "base64"
    shown = value if isinstance(value, str) else _repr(value)
    # OpenAI's recorded answer names the field in the message only: param and code are null.
    raise InvalidRequest(
        f"Invalid value for 'encoding_format' = {shown}. Supported values: ['float', 'base64']."
    )


def _dimensions(value: Any, model: Model) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{_repr(value)} is not of type 'integer' - 'dimensions'")
    if value < 1:
        raise InvalidRequest(f"{value} is less than the minimum of 1 - 'dimensions'")
    if not model.supports_dimensions:
        raise InvalidRequest("This model does not support specifying dimensions.")
    if value > model.dimensions:
        raise InvalidRequest(
            f"Invalid 'dimensions': {value}. Must be less than or equal to {model.dimensions}.",
            param="dimensions",
        )
    return value


def _user(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"{_repr(value)} is not of type 'string' - 'user'")
    return value


def _repr(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= 64 else text[:61] + "..."


def embedding_response(
    model_name: str,
    vectors: Sequence[bytes | memoryview],
    dimensions: int,
    encoding_format: EncodingFormat,
    prompt_tokens: int,
) -> bytes:
    """The response for ``vectors`` (little-endian float32, ``dimensions`` each)."""
    if encoding_format == "base64":
        fragments = [b'"' + base64.b64encode(v) + b'"' for v in vectors]
    else:
        matrix = np.frombuffer(b"".join(vectors), dtype="<f4").reshape(len(vectors), dimensions)
        fragments = [orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY) for row in matrix]
    return embedding_body(model_name, fragments, prompt_tokens)


def embedding_body(model_name: str, fragments: Sequence[bytes], prompt_tokens: int) -> bytes:
    """The response around embeddings already rendered as JSON values (a quoted base64 string
    or an array of floats each), byte for byte what orjson writes for the whole object: large
    batches make no per-vector dict, and a remembered rendering is copied once."""
    pieces = [b'{"object":"list","data":[']
    for index, fragment in enumerate(fragments):
        pieces += (b'{"object":"embedding","index":%d,"embedding":' % index, fragment, b"},")
    if fragments:
        pieces[-1] = b"}"
    usage = b'"usage":{"prompt_tokens":%d,"total_tokens":%d}}' % (prompt_tokens, prompt_tokens)
    pieces += (b'],"model":', orjson.dumps(model_name), b",", usage)
    return b"".join(pieces)


def models_list(models: Iterable[Model], created: int) -> bytes:
    data = [_model_object(m, created) for m in models]
    return orjson.dumps({"object": "list", "data": data})


def model_object(model: Model, created: int) -> bytes:
    """One model, as OpenAI's ``GET /v1/models/{model}`` answers it."""
    return orjson.dumps(_model_object(model, created))


def _model_object(model: Model, created: int) -> dict[str, Any]:
    return {"id": model.name, "object": "model", "created": created, "owned_by": model.owned_by}


def embedding_models_list(models: Iterable[Model], created: int) -> bytes:
    data = [_embedding_model(m, created) for m in models]
    return orjson.dumps({"object": "list", "data": data})


def _embedding_model(model: Model, created: int) -> dict[str, Any]:
    return {
        "id": model.name,
        "object": "model",
        "created": created,
        "owned_by": model.owned_by,
        "name": model.display_name,
        "description": model.description,
        "dimensions": model.dimensions,
        "supports_dimensions": model.supports_dimensions,
        "max_tokens": model.max_tokens,
        "pricing": {"per_million_tokens": model.price_per_million, "currency": "USD"},
    }

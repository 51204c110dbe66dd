"""The framework's limit: a bare aiohttp handler answering pre-built bytes.

It serves exactly what the gateway answered for a single-input hit (body and headers, captured
by the benchmark into ``--responses DIR``), choosing the float or base64 answer by the request
body, on the same event loop (uvloop when importable) and with access logs off, as the gateway.

    python -m bench.bare --port N --responses DIR
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiohttp import web


@dataclass(frozen=True, slots=True)
class Canned:
    body: bytes
    headers: dict[str, str]


def save(directory: Path, encoding: str, body: bytes, headers: dict[str, str]) -> None:
    (directory / f"{encoding}.body").write_bytes(body)
    (directory / f"{encoding}.headers.json").write_bytes(orjson.dumps(headers))


def load(directory: Path, encoding: str) -> Canned:
    headers = orjson.loads((directory / f"{encoding}.headers.json").read_bytes())
    return Canned((directory / f"{encoding}.body").read_bytes(), headers)


def make_app(float_answer: Canned, base64_answer: Canned) -> web.Application:
    async def embeddings(request: web.Request) -> web.Response:
        body = await request.read()
        canned = base64_answer if b'"base64"' in body else float_answer
        return web.Response(body=canned.body, headers=canned.headers)

    app = web.Application()
    app.router.add_post("/v1/embeddings", embeddings)
    return app


def _install_uvloop() -> None:
    try:
        import uvloop  # noqa: PLC0415 - optional, as in the gateway
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A bare aiohttp handler with canned answers.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--responses", type=Path, required=True)
    args = parser.parse_args(argv)
    app = make_app(load(args.responses, "float"), load(args.responses, "base64"))
    _install_uvloop()
    web.run_app(app, host=args.host, port=args.port, reuse_port=True, print=None, access_log=None)


if __name__ == "__main__":
    main()

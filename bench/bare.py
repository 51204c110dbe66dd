"""The framework's limit: a bare aiohttp handler answering pre-built bytes.

It serves exactly what the gateway answered to each request the benchmark sends it (body and
headers, captured by the benchmark into ``--responses DIR``): the answer is picked by the
request body, so a 64-input float request gets the gateway's own 64-vector float answer. It
runs on the same event loop (uvloop when importable) and with access logs off; several share a
port with SO_REUSEPORT, as the gateway's workers do.

    python -m bench.bare --port N --responses DIR
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiohttp import web


@dataclass(frozen=True, slots=True)
class Canned:
    body: bytes
    headers: dict[str, str]


def save(directory: Path, name: str, request: bytes, answer: Canned) -> None:
    """One request and the gateway's answer to it, under `name`."""
    (directory / f"{name}.request").write_bytes(request)
    (directory / f"{name}.body").write_bytes(answer.body)
    (directory / f"{name}.headers.json").write_bytes(orjson.dumps(answer.headers))


def load(directory: Path) -> dict[bytes, Canned]:
    """Every saved answer, by the request body it answers."""
    answers = {}
    for request in sorted(directory.glob("*.request")):
        name = request.stem
        headers = orjson.loads((directory / f"{name}.headers.json").read_bytes())
        answers[request.read_bytes()] = Canned((directory / f"{name}.body").read_bytes(), headers)
    return answers


def make_app(answers: Mapping[bytes, Canned]) -> web.Application:
    async def embeddings(request: web.Request) -> web.Response:
        canned = answers.get(await request.read())
        if canned is None:
            return web.Response(status=404, text="no canned answer for this request body")
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
    app = make_app(load(args.responses))
    _install_uvloop()
    web.run_app(app, host=args.host, port=args.port, reuse_port=True, print=None, access_log=None)


if __name__ == "__main__":
    main()

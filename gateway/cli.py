"""`python -m gateway serve [--config PATH] [--host HOST] [--port PORT]`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from aiohttp import web

from gateway.app import build_app
from gateway.settings import SettingsError, load


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="embedding-gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument(
        "--config",
        default=os.environ.get("GATEWAY_CONFIG", "config.yaml"),
        help="YAML configuration (default: $GATEWAY_CONFIG or ./config.yaml)",
    )
    serve.add_argument("--host", help="bind address (default: server.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: server.port, 8080)")
    return parser


def _install_uvloop() -> None:
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def serve(args: argparse.Namespace) -> int:
    try:
        settings = load(args.config)
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.server.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    _install_uvloop()
    host = args.host or settings.server.host
    port = settings.server.port if args.port is None else args.port
    logging.getLogger("gateway").info("listening on http://%s:%d", host, port)
    web.run_app(
        build_app(settings),
        host=host,
        port=port,
        print=None,
        shutdown_timeout=settings.server.shutdown_timeout,
        access_log=None,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return 2

"""`python -m gateway serve [--config PATH] [--host HOST] [--port PORT]`."""

from __future__ import annotations

import argparse
import asyncio
import functools
import ipaddress
import logging
import os
import secrets
import sys
from collections.abc import Sequence
from typing import Any

from gateway import server
from gateway.admin import cli as keys_cli
from gateway.app import build_app
from gateway.quota import per_worker
from gateway.settings import Settings, SettingsError, backend, hash_key, load
from gateway.workers import Supervisor


def _config_option() -> dict[str, Any]:
    return {
        "default": os.environ.get("GATEWAY_CONFIG", "config.yaml"),
        "help": "YAML configuration (default: $GATEWAY_CONFIG or ./config.yaml)",
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="embedding-gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", **_config_option())
    serve.add_argument("--host", help="bind address (default: server.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: server.port, 8080)")
    serve.add_argument(
        "--workers", type=int, default=1, help="processes sharing the port (default: 1)"
    )
    serve.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="allow binding a non-loopback address with no API keys configured",
    )
    hash_cmd = commands.add_parser(
        "hash-key", help="print the sha256 to put in auth.keys (a new key when none is given)"
    )
    hash_cmd.add_argument("key", nargs="?", help="an existing key (default: generate one)")
    keys_cli.add_parser(commands, _config_option())
    return parser


def hash_key_command(args: argparse.Namespace) -> int:
    key = args.key or "sk-gw-" + secrets.token_urlsafe(32)
    if not args.key:
        print(f"key:    {key}")
    print(f"sha256: {hash_key(key)}")
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _install_uvloop() -> None:
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _settings(config: str) -> Settings | None:
    try:
        settings = load(config)
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return None
    logging.basicConfig(
        level=settings.server.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    return settings


def serve(args: argparse.Namespace) -> int:
    settings = _settings(args.config)
    if settings is None:
        return 2
    host = args.host or settings.server.host
    if not settings.auth.keys and not _is_loopback(host) and not args.allow_unauthenticated:
        print(
            f"refusing to serve {host} with no API keys configured: add auth.keys or "
            "GATEWAY_API_KEYS, or pass --allow-unauthenticated",
            file=sys.stderr,
        )
        return 2
    port = settings.server.port if args.port is None else args.port
    logging.getLogger("gateway").info(
        "listening on http://%s:%d with %d worker(s)", host, port, args.workers
    )
    if args.workers <= 1:
        run_worker(args.config, host, port, settings)
        return 0
    target = functools.partial(run_worker, args.config, host, port, workers=args.workers)
    return Supervisor(args.workers, target, settings.server.shutdown_timeout).run()


def run_worker(
    config: str, host: str, port: int, settings: Settings | None = None, workers: int = 1
) -> None:
    """One serving process; SIGTERM stops accepting and lets in-flight requests finish."""
    settings = settings or _settings(config)
    if settings is None:
        raise SystemExit(2)
    if workers > 1 and backend(settings, "limiter") != "redis":
        logging.getLogger("gateway").info(
            "no Redis: each of %d workers enforces 1/%d of every rate limit", workers, workers
        )
        settings = per_worker(settings, workers)
    _install_uvloop()
    server.run(build_app(settings, workers), host, port, settings.server.shutdown_timeout)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    if args.command == "keys":
        settings = _settings(args.config)
        return 2 if settings is None else keys_cli.keys_command(args, settings)
    return hash_key_command(args)

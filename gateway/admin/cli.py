"""`python -m gateway keys create|list|rotate|revoke`: the admin API's key calls for operators,
straight on the configured key store (no running gateway needed). Running gateways pick the
change up within their refresh interval. Output is the admin API's JSON."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from typing import Any

import orjson

from gateway.admin.audit import audit
from gateway.apikeys import views
from gateway.apikeys.admin import KeyAdmin
from gateway.apikeys.requests import KeyChanges, parse_changes
from gateway.cache_control import CONTROLS
from gateway.catalog import Catalog
from gateway.errors import GatewayError
from gateway.settings import Settings
from gateway.store import StoreUnavailable
from gateway.stores import Backends, build_backends, build_key_store

LIMIT_OPTIONS = ("requests_per_second", "requests_burst", "tokens_per_minute", "tokens_burst")


def add_parser(commands: Any, config_option: dict[str, Any]) -> None:
    keys = commands.add_parser("keys", help="create, list, rotate or revoke API keys")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="a new key; its secret is printed only once")
    create.add_argument("--name", required=True)
    create.add_argument("--team", default="")
    create.add_argument("--model", action="append", default=[], help="allowed model (repeat)")
    create.add_argument(
        "--cache-control",
        action="append",
        choices=CONTROLS,
        dest="cache_controls",
        help="a per-request cache control the key may send (repeat; default: no-store)",
    )
    for option in LIMIT_OPTIONS:
        create.add_argument("--" + option.replace("_", "-"), type=float, dest=option)
    actions.add_parser("list", help="every key, config keys first (never a secret)")
    rotate = actions.add_parser("rotate", help="a new secret for a key")
    rotate.add_argument("key_id")
    rotate.add_argument("--grace-seconds", type=float, default=0.0)
    revoke = actions.add_parser("revoke", help="revoke a key everywhere")
    revoke.add_argument("key_id")
    for action in (create, actions.choices["list"], rotate, revoke):
        action.add_argument("--config", **config_option)


def _changes(args: argparse.Namespace, admin: KeyAdmin) -> KeyChanges:
    limits = {k: getattr(args, k) for k in LIMIT_OPTIONS if getattr(args, k) is not None}
    body: dict[str, Any] = {"name": args.name, "team": args.team, "limits": limits}
    if args.model:
        body["models"] = args.model
    if args.cache_controls:
        body["cache_controls"] = args.cache_controls
    return parse_changes(body, admin.model_names, create=True)


async def _act(args: argparse.Namespace, admin: KeyAdmin) -> tuple[Any, str | None]:
    if args.action == "create":
        key, secret = await admin.create(_changes(args, admin))
        return views.key_object(key, None, value=secret), key.id
    if args.action == "rotate":
        key, secret = await admin.rotate(args.key_id, args.grace_seconds)
        return views.key_object(key, None, value=secret), key.id
    if args.action == "revoke":
        return views.deleted_object(await admin.revoke(args.key_id)), args.key_id
    keys, used = await admin.list(), await admin.last_used()
    return [views.key_object(key, used.get(key.id)) for key in keys], None


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    backends = build_backends(settings)
    catalog = Catalog.from_settings(settings.models)
    admin = KeyAdmin(build_key_store(backends), settings.auth.keys, [m.name for m in catalog])
    status, key_id = 200, getattr(args, "key_id", None)
    try:
        body, key_id = await _act(args, admin)
        print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
    except (GatewayError, StoreUnavailable) as exc:
        status = exc.status if isinstance(exc, GatewayError) else 503
        print(f"error: {exc}", file=sys.stderr)
    finally:
        audit(f"api_key.{args.action}", {"cli": getpass.getuser()}, key_id, status)
        await Backends.close(backends)
    return 0 if status == 200 else 1


def keys_command(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_run(args, settings))

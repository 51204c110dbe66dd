"""One JSON line per admin action on the `gateway.audit` logger: who, what, on which object,
how it ended. Never a secret: callers pass ids and names only.

`Audited` wraps each organization API handler: the internal token first, a store outage as a
503, and the audit line however the call ended."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from gateway.admin.access import require_internal
from gateway.auth import parse_networks
from gateway.errors import GatewayError, ServiceUnavailable
from gateway.middleware import REQUEST_ID
from gateway.pacing import ClientAddresses
from gateway.settings import AuthSettings
from gateway.store import StoreUnavailable

audit_log = logging.getLogger("gateway.audit")

Outcome = tuple[int, dict[str, Any], str | None]  # status, body, the id of what was acted on
Work = Callable[[web.Request], Awaitable[Outcome]]
Handler = Callable[[web.Request], Awaitable[web.Response]]


def audit(action: str, actor: dict[str, str], key_id: str | None, status: int) -> None:
    """The line of an action on an API key (the CLI writes it too)."""
    write({"audit": action, "actor": actor, "key_id": key_id, "status": status})


def write(line: dict[str, Any]) -> None:
    audit_log.info(orjson.dumps(line).decode())


class Audited:
    """`subject`: the route's match-info name of what is acted on, also the line's field name
    (key_id, model, project_id); `store`: named in the 503 while it is unavailable;
    `auth_off`: whether the gateway has no keys now. Without keys and without an internal token
    every figure is open to anyone, and so are the reads marked `read_only` (never a change)."""

    def __init__(
        self,
        auth: AuthSettings,
        *,
        subject: str,
        store: str,
        auth_off: Callable[[], bool] = lambda: False,
    ) -> None:
        self._token = auth.internal_token.encode()
        self._addresses = ClientAddresses(parse_networks(auth.trusted_proxies))
        self._subject = subject
        self._store = store
        self._auth_off = auth_off

    def __call__(self, action: str, work: Work, *, read_only: bool = False) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            status, subject, who = 500, request.match_info.get(self._subject), "refused"
            try:
                who = self._credential(request, read_only)
                status, body, subject = await work(request)
                return web.json_response(body, status=status)
            except GatewayError as exc:
                status = exc.status
                raise
            except StoreUnavailable:
                status = 503
                raise ServiceUnavailable(
                    f"The {self._store} store is unavailable; please retry shortly.",
                    headers={"retry-after": "1"},
                ) from None
            finally:
                actor = {
                    "credential": who,
                    "ip": self._ip(request),
                    "request_id": request[REQUEST_ID],
                }
                write({"audit": action, "actor": actor, self._subject: subject, "status": status})

        return handle

    def _credential(self, request: web.Request, read_only: bool) -> str:
        if read_only and not self._token and self._auth_off():
            return "anyone (auth off)"
        require_internal(request, self._token)
        return "internal token"

    def _write(
        self, action: str, request: web.Request, who: str, subject: str | None, status: int
    ) -> None:
        actor = {"credential": who, "ip": self._ip(request), "request_id": request[REQUEST_ID]}
        write({"audit": action, "actor": actor, self._subject: subject, "status": status})

    def _ip(self, request: web.Request) -> str:
        return self._addresses.of(request)  # worked out already when the request was paced

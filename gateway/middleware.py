"""The HTTP edge around every handler: request id, the one error envelope, request metrics and
one JSON access-log line per request (no secrets, no input text; see accesslog.py)."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway.accesslog import AccessLog
from gateway.errors import (
    GatewayError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
)
from gateway.metrics import Metrics
from gateway.pacing import ClientAddresses, StartPacer
from gateway.ratelimit.repeats import HeldAnswers

log = logging.getLogger("gateway.http")

REQUEST_ID = web.RequestKey("request_id", str)
# What handlers learned about the request, for the access log and metrics (model, key, ...).
FACTS = web.RequestKey("facts", dict[str, Any])
# Seconds to hold the answer once the request has left its slots (ratelimit/repeats.py).
HOLD = web.RequestKey("hold", float)


def error_response(error: GatewayError) -> web.Response:
    return web.Response(
        status=error.status,
        body=error.body(),
        content_type="application/json",
        headers=error.response_headers(),
    )


def _from_http_exception(exc: web.HTTPException) -> GatewayError:
    if isinstance(exc, web.HTTPNotFound):
        return NotFound("Unknown request URL. Please check the URL and method.")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return MethodNotAllowed(
            f"Method {exc.method} is not allowed for this URL.", headers={"Allow": allowed}
        )
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return PayloadTooLarge("The request body is too large.")
    error = InvalidRequest(exc.reason)
    error.status = exc.status
    return error


# A refused request whose unread body is at most this big is drained (briefly: the server's
# lingering time), so the client reads its answer on a connection it may keep; a bigger one
# closes the connection instead of reading the body.
DRAIN_AT_MOST = 64 * 1024


def _refusal(request: web.Request, error: GatewayError) -> web.Response:
    if error.hold:
        request[HOLD] = error.hold
    response = error_response(error)
    if not request.content.is_eof() and (request.content_length or 2**63) > DRAIN_AT_MOST:
        response.force_close()
    return response


async def _respond(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GatewayError as exc:
        return _refusal(request, exc)
    except web.HTTPException as exc:
        return _refusal(request, _from_http_exception(exc))
    except ConnectionResetError:  # the client went away mid-request: aiohttp drops it quietly
        raise
    except Exception as exc:  # the last line of defence: a 500 envelope, never a trace
        log.error("unhandled %s in %s %s", type(exc).__name__, request.method, request.path)
        return error_response(
            GatewayError("The server had an error while processing your request.")
        )


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


_UNGATED = frozenset({"/healthz", "/readyz", "/metrics"})


class Admission:
    """Each client's requests start a few per event-loop turn (pacing.py); at most `limit`
    requests are in flight, the rest get a 503 at once instead of a queue."""

    def __init__(self, limit: int, pacer: StartPacer, addresses: ClientAddresses) -> None:
        self.limit = limit
        self.in_flight = 0
        self._pacer = pacer
        self._addresses = addresses

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in _UNGATED:
            return await _respond(request, handler)
        await self._pacer.turn(self._addresses.of(request))
        if self.in_flight >= self.limit:
            busy = ServiceUnavailable(
                "The gateway is at capacity; please retry shortly.", headers={"retry-after": "1"}
            )
            return error_response(busy)
        self.in_flight += 1
        try:
            return await _respond(request, handler)
        finally:
            self.in_flight -= 1


def request_context(
    metrics: Metrics, admission: Admission, access: AccessLog, held: HeldAnswers
) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        request[REQUEST_ID] = request_id = "req_" + os.urandom(16).hex()
        facts: dict[str, Any] = {}
        request[FACTS] = facts
        response = await admission(request, handler)
        if HOLD in request:
            await held.hold(request[HOLD])
        response.headers["x-request-id"] = request_id
        seconds = time.perf_counter() - started
        route = _route(request)
        metrics.request(route, facts.get("model", ""), response.status, seconds)
        if access.enabled:
            facts |= {"method": request.method, "route": route, "status": response.status}
            access.write(request_id, seconds, facts)
        return response

    return middleware

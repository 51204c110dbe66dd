"""The HTTP edge around every handler: request id and the one error envelope."""

from __future__ import annotations

import logging
import os

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.errors import (
    GatewayError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
)

log = logging.getLogger("gateway.http")

REQUEST_ID = web.RequestKey("request_id", str)


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
        return MethodNotAllowed(f"Method {exc.method} is not allowed for this URL.")
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return PayloadTooLarge("The request body is too large.")
    error = InvalidRequest(exc.reason)
    error.status = exc.status
    return error


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = "req_" + os.urandom(16).hex()
    request[REQUEST_ID] = request_id
    try:
        response = await handler(request)
    except GatewayError as exc:
        response = error_response(exc)
    except web.HTTPException as exc:
        response = error_response(_from_http_exception(exc))
    except Exception as exc:  # the last line of defence: a 500 envelope, never a trace
        log.error("unhandled %s in %s %s", type(exc).__name__, request.method, request.path)
        response = error_response(
            GatewayError("The server had an error while processing your request.")
        )
    response.headers["x-request-id"] = request_id
    return response

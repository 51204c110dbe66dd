"""Who may call the organization API: the internal (admin) token, compared in constant time."""

from __future__ import annotations

import hmac

from aiohttp import web

from gateway.auth import presented_key
from gateway.errors import AuthenticationFailed

NEEDS_TOKEN = "The organization API needs the internal (admin) token."
TURNED_OFF = "The organization API is off: set auth.internal_token (GATEWAY_INTERNAL_TOKEN)."


def require_internal(request: web.Request, token: bytes) -> None:
    """Raise a 401 unless the request presents ``token`` (and one is configured)."""
    if not token:
        raise AuthenticationFailed(TURNED_OFF)
    presented = presented_key(
        request.headers.get("Authorization"), request.headers.get("x-api-key")
    )
    if not hmac.compare_digest((presented or "").encode(), token):
        raise AuthenticationFailed(NEEDS_TOKEN, code="invalid_api_key")

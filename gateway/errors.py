"""One error tree, rendered as OpenAI's envelope ``{"error": {message, type, param, code}}``.

    GatewayError                      500 server_error
    ├── InvalidRequest                400 invalid_request_error
    │   └── TokensPerRequestExceeded  400 max_tokens_per_request
    ├── AuthenticationFailed          401 invalid_request_error
    ├── PermissionDenied              403 invalid_request_error
    ├── ModelNotFound                 404 invalid_request_error / model_not_found
    ├── NotFound                      404 invalid_request_error (routes)
    ├── MethodNotAllowed              405 invalid_request_error
    ├── RequestTimeout                408 invalid_request_error (a stalled body)
    ├── PayloadTooLarge               413 invalid_request_error
    ├── RateLimited                   429 requests|tokens / rate_limit_exceeded
    ├── InsufficientQuota             429 insufficient_quota (a spent budget)
    ├── UpstreamError                 502 upstream_error
    │   └── ProviderMisconfigured      502 upstream_error, never retried (the gateway's credentials)
    ├── ServiceUnavailable            503 service_unavailable
    └── UpstreamTimeout               504 upstream_error

Everything a client can see leaves through ``GatewayError.body()``: no other path writes an
error, so no stack trace or secret can reach a response.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import orjson


class GatewayError(Exception):
    status = 500
    type = "server_error"
    default_code: str | None = None
    should_retry: bool | None = None
    retry_after: float | None = None  # seconds the upstream asked us to wait, when it said
    # What the provider itself answered, for the upstream metric: its HTTP status, or timeout,
    # unreachable, invalid (an answer that failed validation), no_key. None: not a provider's.
    upstream_status: str | None = None
    hold: float = 0.0  # seconds to hold the answer: a repeat the client did not wait for

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.headers = dict(headers or {})
        self.retry_after = retry_after

    def envelope(self) -> dict[str, dict[str, str | None]]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def body(self) -> bytes:
        # OpenAI's validation errors are pretty-printed with a 2-space indent and a newline;
        # orjson writes the same bytes as json.dumps(indent=2, ensure_ascii=False), 15x faster.
        return orjson.dumps(self.envelope(), option=orjson.OPT_INDENT_2) + b"\n"

    def response_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.should_retry is not None:
            headers["x-should-retry"] = "true" if self.should_retry else "false"
        return headers


AnyError = TypeVar("AnyError", bound=GatewayError)


def answered(error: AnyError, upstream_status: str) -> AnyError:
    """``error``, labelled with what the provider itself answered (see GatewayError)."""
    error.upstream_status = upstream_status
    return error


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    should_retry = False


class TokensPerRequestExceeded(InvalidRequest):
    type = "max_tokens_per_request"
    default_code = "max_tokens_per_request"


class AuthenticationFailed(GatewayError):
    status = 401
    type = "invalid_request_error"
    should_retry = False


class PermissionDenied(GatewayError):
    status = 403
    type = "invalid_request_error"
    should_retry = False


class ModelNotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    default_code = "model_not_found"
    should_retry = False

    def __init__(self, model: str) -> None:
        # As OpenAI's recorded answer: the message names the model, param is null.
        super().__init__(f"The model `{model}` does not exist or you do not have access to it.")


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    default_code = "unknown_url"
    should_retry = False


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    default_code = "method_not_allowed"
    should_retry = False


class RequestTimeout(GatewayError):
    status = 408
    type = "invalid_request_error"
    default_code = "request_timeout"
    should_retry = True


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    default_code = "request_too_large"
    should_retry = False


class RateLimited(GatewayError):
    status = 429
    type = "requests"
    default_code = "rate_limit_exceeded"
    should_retry = True
    scope = "key"  # which bucket ran dry: ip, key or model


class InsufficientQuota(GatewayError):
    """OpenAI's answer to an exhausted quota; retrying before the budget resets cannot help."""

    status = 429
    type = "insufficient_quota"
    default_code = "insufficient_quota"
    should_retry = False


class UpstreamError(GatewayError):
    status = 502
    type = "upstream_error"
    should_retry = True


class ProviderMisconfigured(UpstreamError):
    """The gateway's own provider credentials are missing or refused: no retry can fix that,
    only its operator (the router still fails over to another deployment)."""

    default_code = "upstream_credentials"
    should_retry = False


class ServiceUnavailable(GatewayError):
    status = 503
    type = "service_unavailable"
    should_retry = True


class UpstreamTimeout(GatewayError):
    status = 504
    type = "upstream_error"
    default_code = "upstream_timeout"
    should_retry = True


def upstream_client_error(
    status: int, message: str, param: str | None, code: str | None
) -> GatewayError:
    """An upstream 4xx about the request keeps its status and message."""
    error = GatewayError(message, param=param, code=code)
    error.status = status
    error.type = "invalid_request_error"
    error.should_retry = False
    return error

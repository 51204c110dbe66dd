"""The HTTP server around the app: aiohttp's, with two changes at the connection level.

- Every error aiohttp's own parser answers (a 100 KB header, a bad request line, ...) is an
  OpenAI envelope with a fixed message: nothing of the request is echoed back or logged.
- A connection that has not sent a whole request head `server.header_timeout` seconds after
  it opened (or after its last response) is closed: aiohttp's keep-alive timer is armed from
  the connection's start and closes it while no request is being handled.
- A body the gateway did not read (the request was refused from its headers) is drained for at
  most one second when it is small, so the client reads its answer on a connection it may keep;
  a big one is not read at all: the connection closes once the answer is written (middleware.py).
  Clients that send a whole body before reading (httpx, the OpenAI SDKs) meet a reset while
  writing and then read the answer already delivered to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from gateway.errors import GatewayError, InvalidRequest, PayloadTooLarge
from gateway.settings import ServerSettings

log = logging.getLogger("gateway.http")

SERVER_SETTINGS = web.AppKey("server_settings", ServerSettings)


def http_error(status: int) -> GatewayError:
    """The envelope for a request the HTTP layer could not take; echoes nothing of it."""
    if status == 413:
        return PayloadTooLarge("The request body is too large.")
    if 400 <= status < 500:
        error: GatewayError = InvalidRequest("The request could not be parsed as HTTP.")
        error.status = status
        return error
    return GatewayError("The server had an error while processing your request.")


class EnvelopeRequestHandler(RequestHandler):
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if isinstance(exc, ConnectionError):  # the client left: nobody will read an answer
            return web.Response(status=499)
        log.info("HTTP-level error %d (%s)", status, type(exc).__name__ if exc else "-")
        if request.writer.output_size > 0:  # a response has begun: nothing more can be said
            raise ConnectionError("response already started")
        error = http_error(status)
        response = web.Response(
            status=error.status, body=error.body(), content_type="application/json"
        )
        response.force_close()
        return response

    async def finish_response(
        self, request: BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        answered = await super().finish_response(request, resp, start_time)
        if not resp.keep_alive and not request.content.is_eof():
            # aiohttp would read and drop the rest of the body for its lingering time: for a
            # flood of big refused bodies that reading is most of the process's work
            self.force_close()
        return answered


class EnvelopeServer(web.Server):
    def __call__(self) -> RequestHandler:
        return EnvelopeRequestHandler(self, loop=self._loop, **self._kwargs)


class GatewayRunner(web.AppRunner):
    """An AppRunner whose connections answer HTTP-level errors as envelopes and close after
    the app's header timeout (from `SERVER_SETTINGS`, when the app has it)."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        server = app.get(SERVER_SETTINGS)
        if server is not None:
            kwargs.setdefault("keepalive_timeout", server.header_timeout)
        kwargs.setdefault("lingering_time", 1.0)
        kwargs.setdefault("access_log", None)  # the gateway writes its own (accesslog.py)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return EnvelopeServer(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            **self._kwargs,
        )


async def serve(app: web.Application, host: str, port: int, shutdown_timeout: float) -> None:
    """Serve until SIGTERM/SIGINT (which raise GracefulExit out of the loop), then clean up."""
    runner = GatewayRunner(app, handle_signals=True, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_port=True).start()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def run(app: web.Application, host: str, port: int, shutdown_timeout: float) -> None:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    task = loop.create_task(serve(app, host, port, shutdown_timeout))
    try:
        with contextlib.suppress(web.GracefulExit, KeyboardInterrupt):
            loop.run_until_complete(task)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(task)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

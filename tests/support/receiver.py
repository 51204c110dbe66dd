"""A real HTTP receiver for webhooks on a loopback port: records every POST, can fail or hang."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web


class Receiver:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        self.fail_next = 0  # answer 503 to this many POSTs first
        self.hang_next = 0  # never answer this many POSTs
        self.attempts = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        if self.hang_next:
            self.hang_next -= 1
            await asyncio.sleep(3600)
        if self.fail_next:
            self.fail_next -= 1
            return web.Response(status=503)
        body = await request.read()
        self.raw.append(body)
        self.received.append(orjson.loads(body))
        return web.Response(status=204)

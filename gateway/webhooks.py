"""Webhook delivery: JSON POSTs to configured URLs, off the request path, with a timeout per
attempt and a few retries with backoff. A full queue drops the newest alert with a warning
rather than holding memory or a request."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import aiohttp
import orjson
from yarl import URL

log = logging.getLogger("gateway.webhooks")

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class WebhookSender:
    def __init__(
        self,
        urls: Sequence[str],
        *,
        timeout: float = 5.0,
        max_attempts: int = 3,
        base_delay: float = 0.5,
        max_queued: int = 1000,
    ) -> None:
        self._urls = tuple(urls)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_attempts = max_attempts
        self._base_delay = base_delay
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(max_queued)
        self.delivered = 0
        self.failed = 0

    @property
    def enabled(self) -> bool:
        return bool(self._urls)

    def send(self, payload: dict[str, Any]) -> None:
        if not self._urls:
            return
        try:
            self._queue.put_nowait(orjson.dumps(payload))
        except asyncio.QueueFull:
            log.warning("webhook queue full: an alert was dropped")

    async def run(self) -> None:
        """Deliver until cancelled (the app's lifecycle runs it as a task)."""
        async with aiohttp.ClientSession(timeout=self._timeout) as session:
            while True:
                body = await self._queue.get()
                await asyncio.gather(*(self._deliver(session, url, body) for url in self._urls))
                self._queue.task_done()

    async def join(self) -> None:
        """Wait until everything queued so far was delivered or given up on."""
        await self._queue.join()

    async def _deliver(self, session: aiohttp.ClientSession, url: str, body: bytes) -> None:
        for attempt in range(self._max_attempts):
            if attempt:
                await asyncio.sleep(self._base_delay * 2 ** (attempt - 1))
            outcome = await self._attempt(session, url, body)
            if outcome is None:
                self.delivered += 1
                return
            if outcome not in RETRYABLE_STATUSES and outcome != 0:
                break
        self.failed += 1
        log.warning("webhook to %s failed after %d attempt(s)", _origin(url), attempt + 1)

    async def _attempt(self, session: aiohttp.ClientSession, url: str, body: bytes) -> int | None:
        """None when delivered; else the status, or 0 for no answer."""
        headers = {"Content-Type": "application/json", "User-Agent": "embedding-gateway"}
        try:
            async with session.post(url, data=body, headers=headers) as response:
                return None if 200 <= response.status < 300 else response.status
        except (aiohttp.ClientError, TimeoutError):
            return 0


def _origin(url: str) -> str:
    """Logs name the receiver's host, never a token that may sit in its path or query."""
    parsed = URL(url)
    return f"{parsed.scheme}://{parsed.host}:{parsed.port}"

"""Request starts paced per client IP: at most `per_turn` requests of one client begin their
work in one turn of the event loop; the rest wait for the following turns, in order.

Every tenant's requests share one event loop. When one client opens hundreds of requests at
once, all of them became ready in the same turn: each is authenticated, charged and answered
in that turn, and a request of another tenant that needed that turn (its limiter reply, its
cache read) waited for all of them, then again in the next. Paced, a burst of one client takes
a few of each turn, and the requests of everyone else go on interleaved with it. A client
alone loses nothing: an idle loop turns over in microseconds.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque

from aiohttp import web

from gateway.auth import Networks, client_ip, forwarded_for

CLIENT_IP = web.RequestKey("client_ip", str)


class StartPacer:
    def __init__(self, per_turn: int) -> None:
        self.per_turn = per_turn  # 0: no pacing
        self._started: Counter[str] = Counter()  # this turn's starts
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}
        self._turn_ends = False  # the end of this turn is scheduled

    async def turn(self, client: str) -> None:
        """Returns when `client` may start one more request."""
        if self.per_turn <= 0:
            return
        if client not in self._waiting and self._started[client] < self.per_turn:
            self._start(client)
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(client, deque()).append(waiter)
        self._end_turn_soon()
        await waiter

    @property
    def waiting(self) -> int:
        return sum(map(len, self._waiting.values()))

    def _start(self, client: str) -> None:
        self._started[client] += 1
        self._end_turn_soon()

    def _end_turn_soon(self) -> None:
        if not self._turn_ends:
            self._turn_ends = True
            asyncio.get_running_loop().call_soon(self._next_turn)

    def _next_turn(self) -> None:
        """Runs once per turn while anything started or waits: lets the next few of each
        waiting client go (those that gave up meanwhile are skipped)."""
        self._turn_ends = False
        self._started.clear()
        for client, queue in list(self._waiting.items()):
            while queue and self._started[client] < self.per_turn:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    self._start(client)
            if not queue:
                del self._waiting[client]


class ClientAddresses:
    """A request's client IP (`auth.client_ip`), worked out once per request: pacing and the
    handlers both need it. Not remembered across requests: whether an address was seen lately
    would show in the time a request takes, and one tenant would learn of another's."""

    def __init__(self, trusted: Networks) -> None:
        self._trusted = trusted

    def of(self, request: web.Request) -> str:
        if CLIENT_IP in request:
            return request[CLIENT_IP]
        forwarded = forwarded_for(request.headers.getall("X-Forwarded-For", []))
        ip = client_ip(request.remote, forwarded, self._trusted)
        request[CLIENT_IP] = ip
        return ip

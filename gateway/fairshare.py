"""A bounded share of the process per tenant: in-flight requests per key and per IP, CPU-heavy
work on threads per key, a minimum upload rate per body and a maximum one per tenant, so one
tenant's slow or heavy requests can never take what another needs."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, ParamSpec, TypeVar

from aiohttp import web

from gateway.bodyparse import ParsePool, Upload
from gateway.errors import PayloadTooLarge, RateLimited, RequestTimeout

P = ParamSpec("P")
T = TypeVar("T")

SLOW_BODY = "The request body arrived too slowly."
LATE_BODY = "The request body did not arrive in time."
BURST_BYTES = 4 * 1024 * 1024  # of a tenant's bodies that arrive without waiting
IDLE_SWEEP = 256  # tenants remembered before those no longer paced are forgotten
GRACE_SPREAD = 0.5  # each body's grace is 1 to 1.5 times the setting


def spread_grace() -> float:
    return random.uniform(1.0, 1.0 + GRACE_SPREAD)


def share_of(limit: int, setting: int, fraction: float = 0.25) -> int:
    """The setting, or (0) a fraction of the process-wide limit, at least 1."""
    return setting if setting > 0 else max(1, int(limit * fraction))


class InFlight:
    """Counts requests in flight per key and per IP; over a cap, a 429 at once."""

    def __init__(self, per_key: int, per_ip: int) -> None:
        self.per_key = per_key
        self.per_ip = per_ip
        self._keys: Counter[str] = Counter()
        self._ips: Counter[str] = Counter()

    @contextlib.contextmanager
    def enter(self, key: str | None, ip: str) -> Iterator[None]:
        """`key` None: no key to share by (auth is off), only the IP's share applies."""
        if key is not None and self._keys[key] >= self.per_key:
            raise _busy("key", self.per_key)
        if self._ips[ip] >= self.per_ip:
            raise _busy("IP address", self.per_ip)
        if key is not None:
            self._keys[key] += 1
        self._ips[ip] += 1
        try:
            yield
        finally:
            if key is not None:
                _release(self._keys, key)
            _release(self._ips, ip)


def _release(counts: Counter[str], name: str) -> None:
    counts[name] -= 1
    if counts[name] <= 0:
        del counts[name]  # idle tenants leave no entry behind


def _busy(scope: str, cap: int) -> RateLimited:
    error = RateLimited(
        f"Too many concurrent requests for this {scope}: at most {cap} may be in flight. "
        "Please retry when one has finished.",
        headers={"retry-after": "1"},
    )
    error.type = "requests"
    return error


class OffLoop:
    """CPU-heavy steps (parsing, tokenising) on threads, and the largest bodies' parsing in a
    process of its own, at most `per_tenant` at once per key, so one tenant's huge requests queue
    behind each other instead of filling the pool."""

    def __init__(self, per_tenant: int, parse_processes: int = 0) -> None:
        self.per_tenant = per_tenant
        self.parser = ParsePool(parse_processes)
        self._gates: dict[str, asyncio.Semaphore] = {}
        self._users: Counter[str] = Counter()

    async def run(self, tenant: str, work: Callable[P, T], *args: P.args, **kw: P.kwargs) -> T:
        async with self.turn(tenant):
            return await asyncio.to_thread(work, *args, **kw)

    async def on_thread(self, work: Callable[P, T], *args: P.args, **kw: P.kwargs) -> T:
        """`work` on a thread, for a caller that holds its tenant's turn."""
        return await asyncio.to_thread(work, *args, **kw)

    async def parse_elsewhere(self, body: bytes) -> Any:
        """The body parsed in a pool process (see `gateway.bodyparse`), for `protocol`, for a
        caller that holds its tenant's turn."""
        return await self.parser.parse(body)

    async def parse_upload_elsewhere(self, upload: Upload) -> Any:
        """`parse_elsewhere` of a body `upload` hands over chunk by chunk as it arrives."""
        return await self.parser.parse_upload(upload)

    def close(self) -> None:
        self.parser.close()

    @contextlib.asynccontextmanager
    async def turn(self, tenant: str) -> AsyncIterator[None]:
        """One of the tenant's `per_tenant` places for heavy work; waits for one."""
        gate = self._gates.setdefault(tenant, asyncio.Semaphore(self.per_tenant))
        self._users[tenant] += 1
        try:
            async with gate:
                yield
        finally:
            _release(self._users, tenant)
            if tenant not in self._users:
                del self._gates[tenant]


class UploadPace:
    """Each tenant's request bodies, all of them together, arrive no faster than `rate`
    bytes/s beyond `burst` bytes at once (a cell-rate algorithm): one tenant sending body
    after body cannot fill the event loop, nor the parse process, that every tenant shares,
    while a large request now and then is never slowed. 0: no cap."""

    def __init__(self, rate: float, burst: int = BURST_BYTES) -> None:
        self.rate = rate
        self.burst = burst
        self._paid_until: dict[str, float] = {}

    def wait(self, tenant: str, size: int, now: float) -> float:
        """Seconds the tenant's next bytes wait, now that `size` more have arrived."""
        if self.rate <= 0:
            return 0.0
        if len(self._paid_until) > IDLE_SWEEP:
            self._forget_idle(now)
        paid_until = max(self._paid_until.get(tenant, now), now) + size / self.rate
        self._paid_until[tenant] = paid_until
        return max(0.0, paid_until - now - self.burst / self.rate)

    def settle(self, tenant: str, now: float) -> None:
        """After a body: a tenant whose bytes are all paid for leaves no entry behind."""
        if self._paid_until.get(tenant, now) <= now:
            self._paid_until.pop(tenant, None)

    def _forget_idle(self, now: float) -> None:
        for tenant in [t for t, until in self._paid_until.items() if until <= now]:
            del self._paid_until[tenant]


class BodyReader:
    """Reads a request body, cutting it off (408) as soon as it falls behind `min_rate` bytes/s
    after a `grace` period, and at `timeout` in any case; and no faster than its tenant's
    `UploadPace` allows (31 MB over loopback took the event loop for 40 ms at a time).

    Each body's grace is stretched by a random factor (`spread`): a hundred slow bodies opened
    at once (or paced by their sender to fall behind together) would otherwise all be cut off
    in the same event-loop turn, and every other request would wait behind a hundred 408s."""

    def __init__(
        self,
        *,
        max_bytes: int,
        min_rate: float,
        grace: float,
        timeout: float,
        max_rate: float = 0.0,
        spread: Callable[[], float] = spread_grace,
    ) -> None:
        self.max_bytes = max_bytes
        self.min_rate = min_rate
        self.grace = grace
        self.timeout = timeout
        self.pace = UploadPace(max_rate)
        self._spread = spread

    async def read(self, request: web.Request, tenant: str) -> bytes:
        if request.content_length is not None and request.content_length > self.max_bytes:
            raise PayloadTooLarge("The request body is too large.")
        if request.content.is_eof():  # already all here: no timer needed, only its pace
            body = await request.read()
            await self._paced(tenant, len(body))
            return body
        chunks: list[bytes] = []
        await self._read_paced(request, tenant, chunks.append)
        return b"".join(chunks)

    async def read_into(
        self, request: web.Request, tenant: str, write: Callable[[bytes], object]
    ) -> int:
        """The body handed to `write` chunk by chunk as it arrives (never held whole here);
        its size."""
        if request.content_length is not None and request.content_length > self.max_bytes:
            raise PayloadTooLarge("The request body is too large.")
        return await self._read_paced(request, tenant, write)

    async def _read_paced(
        self, request: web.Request, tenant: str, write: Callable[[bytes], object]
    ) -> int:
        loop = asyncio.get_running_loop()
        started, size, grace = loop.time(), 0, self.grace * self._spread()
        try:
            while True:
                chunk = await self._next_chunk(request, started, grace, size)
                if not chunk:
                    return size
                size += len(chunk)
                if size > self.max_bytes:
                    raise PayloadTooLarge("The request body is too large.")
                write(chunk)
                await self._paced(tenant, len(chunk))  # the rest waits in TCP's flow control
        finally:
            self.pace.settle(tenant, loop.time())

    async def _paced(self, tenant: str, size: int) -> None:
        if (ahead := self.pace.wait(tenant, size, asyncio.get_running_loop().time())) > 0:
            await asyncio.sleep(ahead)

    def cutoff(self, started: float, grace: float, size: int) -> tuple[float, str]:
        """When a body that has sent `size` bytes is cut off, and why."""
        late = started + self.timeout
        if self.min_rate <= 0:
            return late, LATE_BODY
        paced = started + grace + size / self.min_rate
        return (paced, SLOW_BODY) if paced < late else (late, LATE_BODY)

    async def _next_chunk(
        self, request: web.Request, started: float, grace: float, size: int
    ) -> bytes:
        """Waits until the body would fall behind the minimum rate, or the overall timeout."""
        deadline, message = self.cutoff(started, grace, size)
        try:
            async with asyncio.timeout_at(deadline):
                return await request.content.readany()
        except TimeoutError:
            raise RequestTimeout(message) from None

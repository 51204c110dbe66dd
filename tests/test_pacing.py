"""Request starts paced per client: one client's burst takes a few starts of each event-loop
turn, everyone else's requests start at once."""

from __future__ import annotations

import asyncio
import itertools

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from gateway.auth import parse_networks
from gateway.pacing import CLIENT_IP, ClientAddresses, StartPacer

BURSTING, OTHER = "203.0.113.66", "192.0.2.10"


class TurnCounter:
    """Counts the event loop's turns while it runs."""

    def __init__(self) -> None:
        self.turn = 0
        self._running = True
        asyncio.get_running_loop().call_soon(self._tick)

    def _tick(self) -> None:
        self.turn += 1
        if self._running:
            asyncio.get_running_loop().call_soon(self._tick)

    def stop(self) -> None:
        self._running = False


async def start_all(pacer: StartPacer, clients: list[str]) -> list[tuple[str, int]]:
    """(client, turn it started in) for requests arriving together, in start order."""
    counter, started = TurnCounter(), []

    async def request(client: str) -> None:
        await pacer.turn(client)
        started.append((client, counter.turn))

    await asyncio.gather(*(request(client) for client in clients))
    counter.stop()
    return started


async def test_a_clients_burst_starts_one_request_per_turn() -> None:
    started = await start_all(StartPacer(1), [BURSTING] * 5)
    turns = [turn for _, turn in started]
    assert len(set(turns)) == 5  # each in a turn of its own


async def test_the_share_per_turn_is_a_setting() -> None:
    started = await start_all(StartPacer(2), [BURSTING] * 6)
    per_turn = [len(list(group)) for _, group in itertools.groupby(t for _, t in started)]
    assert per_turn == [2, 2, 2]


async def test_another_client_starts_in_the_first_turn_behind_a_burst() -> None:
    started = await start_all(StartPacer(1), [BURSTING] * 50 + [OTHER])
    first_turn = started[0][1]
    assert (OTHER, first_turn) in started
    assert [client for client, _ in started].index(OTHER) <= 1


async def test_without_pacing_everything_starts_at_once() -> None:
    started = await start_all(StartPacer(0), [BURSTING] * 5)
    assert len({turn for _, turn in started}) == 1


async def test_a_request_that_gave_up_waiting_takes_no_start() -> None:
    pacer = StartPacer(1)
    first, gave_up, waits = (asyncio.ensure_future(pacer.turn(BURSTING)) for _ in range(3))
    await asyncio.sleep(0)  # one turn: the first starts, the other two wait
    assert first.done() and not waits.done()
    gave_up.cancel()
    await asyncio.sleep(0)  # the next turn's start goes to the one still waiting
    await asyncio.sleep(0)
    assert waits.done() and gave_up.cancelled() and pacer.waiting == 0


def request_from(peer: str, forwarded: str | None = None) -> web.Request:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    request = make_mocked_request("POST", "/v1/embeddings", headers=headers)
    request._transport_peername = (peer, 1234)
    return request


def test_the_client_ip_is_the_nearest_untrusted_hop() -> None:
    addresses = ClientAddresses(parse_networks(["10.0.0.0/8"]))
    behind_proxy = request_from("10.0.0.5", "198.51.100.1, 203.0.113.9")
    assert addresses.of(behind_proxy) == "203.0.113.9"
    assert addresses.of(request_from("198.51.100.7", "1.2.3.4")) == "198.51.100.7"


def test_the_client_ip_is_worked_out_once_per_request() -> None:
    addresses = ClientAddresses(parse_networks(["10.0.0.0/8"]))
    request = request_from("10.0.0.5", "203.0.113.9")
    assert addresses.of(request) == addresses.of(request) == request[CLIENT_IP] == "203.0.113.9"

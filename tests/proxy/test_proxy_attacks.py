"""Attacks on reverse_proxy: a broken upstream, a hostile client, a slow one.

Each test names the attack it performs.  Upstreams are scripted raw sockets
(``tests/proxy/raw.py``) that send exactly the bytes a broken or malicious
server would, so the proxy's framing and pooling are judged byte by byte.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import anyio
import anyio.to_thread
import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asgikit import mount, router
from asgikit._httpx import httpx
from asgikit.proxy import reverse_proxy
from asgikit.testing import AsyncTestClient
from asgikit.types import ASGIApp, Message, Receive, Scope
from tests.conftest import SendRecorder, body_receive, disconnect_after, make_scope, run_app
from tests.proxy.raw import Handler, RawServer, ok, read_request

SMUGGLED = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED"


def smuggler(first: bytes, later: bool) -> tuple[Handler, threading.Event]:
    """Answers the first request with ``first`` plus a whole smuggled response.

    With ``later`` the smuggled bytes go in a second write after the answer,
    so they arrive after the proxy has seen the end of the first response.
    Every other request on any connection gets ``genuine``.
    """
    sent = threading.Event()

    def handler(sock: socket.socket, index: int) -> None:
        if index == 1 and read_request(sock):
            if later:
                sock.sendall(first)
                sock.sendall(SMUGGLED)
            else:
                sock.sendall(first + SMUGGLED)
            sent.set()
        while read_request(sock):
            sock.sendall(ok(b"genuine"))

    return handler, sent


FIRST_ANSWERS = {
    "head_with_a_body": ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
    "204_with_a_body": ("GET", b"HTTP/1.1 204 No Content\r\n\r\nhello"),
    "304_with_a_body": ("GET", b"HTTP/1.1 304 Not Modified\r\n\r\nhello"),
    "more_than_content_length": ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhello"),
    "after_the_last_chunk": (
        "GET",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n0\r\n\r\nhello",
    ),
}


async def check_no_mixing(
    raw_server: Callable[[Handler], RawServer], case: str, later: bool
) -> None:
    method, first = FIRST_ANSWERS[case]
    handler, sent = smuggler(first, later)
    server = raw_server(handler)
    with anyio.fail_after(10):
        async with AsyncTestClient(reverse_proxy(server.url)) as client:
            await client.request(method, "/victim-1")
            assert await anyio.to_thread.run_sync(sent.wait, 5)
            second = await client.get("/victim-2")
    assert second.content == b"genuine"
    assert server.connections == 2


async def test_upstream_body_on_head_never_reaches_the_next_client(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    await check_no_mixing(raw_server, "head_with_a_body", later=False)
    await check_no_mixing(raw_server, "head_with_a_body", later=True)


async def test_upstream_body_on_204_never_reaches_the_next_client(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    await check_no_mixing(raw_server, "204_with_a_body", later=False)
    await check_no_mixing(raw_server, "204_with_a_body", later=True)


async def test_upstream_body_on_304_never_reaches_the_next_client(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    await check_no_mixing(raw_server, "304_with_a_body", later=False)
    await check_no_mixing(raw_server, "304_with_a_body", later=True)


async def test_bytes_past_content_length_never_reach_the_next_client(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    await check_no_mixing(raw_server, "more_than_content_length", later=False)
    await check_no_mixing(raw_server, "more_than_content_length", later=True)


async def test_bytes_past_the_last_chunk_never_reach_the_next_client(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    await check_no_mixing(raw_server, "after_the_last_chunk", later=False)
    await check_no_mixing(raw_server, "after_the_last_chunk", later=True)


# -- a hostile client ---------------------------------------------------------


def echo_head(sock: socket.socket, index: int) -> None:
    """Answers every request with its own head, so a test sees what went upstream."""
    while head := read_request(sock):
        sock.sendall(ok(head + b"\r\n"))


async def drive(proxy: ASGIApp, scope: Scope, receive: Receive | None = None) -> SendRecorder:
    """Run ``proxy`` once on a hand-built scope (an HTTP client would tidy it up)."""
    with anyio.fail_after(10):
        sent = await run_app(proxy, scope, receive)
        await proxy.aclose()  # type: ignore[attr-defined]
    return sent


SPOOFABLE = {
    "x-real-ip": "6.6.6.6",
    "x-forwarded-port": "31337",
    "x-forwarded-prefix": "/spoofed-prefix",
    "x-original-url": "/spoofed-original",
    "x-rewrite-url": "/spoofed-rewrite",
    "x-forwarded-host": "spoofed.example",
    "x-forwarded-scheme": "spoofed-scheme",
    "x-forwarded-ssl": "on",
    "x-url-scheme": "spoofed-url-scheme",
    "front-end-https": "on",
    "x-client-ip": "6.6.6.7",
    "true-client-ip": "6.6.6.8",
    "x-forwarded-server": "spoofed-server",
    "x-original-host": "spoofed-original-host",
}


async def test_client_written_x_real_ip_port_prefix_and_original_url_never_reach_the_upstream(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    server = raw_server(echo_head)
    headers = [(b"host", b"gateway.example")]
    headers += [(name.encode(), value.encode()) for name, value in SPOOFABLE.items()]
    scope = make_scope(
        "GET", "/x", headers=headers, client=("192.0.2.7", 5000), server=("10.0.0.1", 8443)
    )
    scope["root_path"] = ""
    sent = await drive(reverse_proxy(server.url), scope)
    upstream_head = sent.body.decode("latin-1").lower()
    for value in SPOOFABLE.values():
        assert value not in upstream_head, value
    # Set by the proxy from what it knows, as nginx's conventions have it.
    assert "\r\nx-real-ip: 192.0.2.7\r\n" in upstream_head
    assert "\r\nx-forwarded-port: 8443\r\n" in upstream_head
    assert "\r\nx-forwarded-host: gateway.example\r\n" in upstream_head


async def test_each_request_gets_its_own_forwarding_values_never_a_previous_clients(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    # The proxy's own forwarding values are cached per client, host, port
    # and mount: one client's must never show up in another's request.
    server = raw_server(echo_head)
    proxy = reverse_proxy(server.url)
    cases = [
        ("192.0.2.1", b"one.example", 8443, "/a"),
        ("2001:db8::2", b"two.example:8080", 443, ""),
        ("192.0.2.1", b"bad host", 80, ""),
        ("192.0.2.1", b"one.example", 8443, "/a"),
    ]
    for client_ip, host, port, root in cases:
        scope = make_scope(
            "GET", "/x", headers=[(b"host", host)], client=(client_ip, 1), server=("s", port)
        )
        scope["root_path"] = root
        scope["path"] = root + "/x"
        sent = await run_app(proxy, scope)
        head = sent.body.decode("latin-1").lower()
        node = f'"[{client_ip}]"' if ":" in client_ip else client_ip
        assert f"\r\nx-real-ip: {client_ip}\r\n" in head
        assert f"\r\nx-forwarded-port: {port}\r\n" in head
        assert head.count("\r\nx-forwarded-prefix:") == (1 if root else 0)
        if host == b"bad host":
            assert "x-forwarded-host" not in head
            assert f"\r\nforwarded: for={node};proto=http\r\n" in head
        else:
            quoted = f'"{host.decode()}"' if b":" in host else host.decode()
            assert f"\r\nx-forwarded-host: {host.decode()}\r\n" in head
            assert f"\r\nforwarded: for={node};host={quoted};proto=http\r\n" in head
    await proxy.aclose()  # type: ignore[attr-defined]


async def test_forwarded_prefix_is_the_root_path_the_proxy_is_mounted_at(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    server = raw_server(echo_head)
    headers = [(b"host", b"gateway.example"), (b"x-forwarded-prefix", b"/spoofed")]
    scope = make_scope("GET", "/api/x", headers=headers, root_path="/api")
    sent = await drive(reverse_proxy(server.url), scope)
    upstream_head = sent.body.decode("latin-1").lower()
    assert upstream_head.startswith("get /x http/1.1\r\n")
    assert "\r\nx-forwarded-prefix: /api\r\n" in upstream_head
    assert "spoofed" not in upstream_head


async def test_without_add_forwarded_the_forwarding_headers_pass_untouched(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    # add_forwarded=False: an outer balancer owns these headers.
    server = raw_server(echo_head)
    headers = [(b"host", b"gateway.example"), (b"x-real-ip", b"198.51.100.1")]
    sent = await drive(
        reverse_proxy(server.url, add_forwarded=False), make_scope("GET", "/", headers=headers)
    )
    assert "\r\nx-real-ip: 198.51.100.1\r\n" in sent.body.decode("latin-1").lower()


CLIMBING_PATHS = [
    ("/api/..;/admin", b"/api/..;/admin"),
    ("/api/..;jsessionid=1/admin", b"/api/..;jsessionid=1/admin"),
    ("/api/..\\admin", b"/api/..%5cadmin"),
    ("/api/..\\admin", b"/api/..%5Cadmin"),
    ("/api/..\\admin", b"/api/..\\admin"),
    ("/api/.\\admin", b"/api/.%5cadmin"),
    ("/api/../admin", b"/api/%2e%2e/admin"),
    ("/api/../admin", b"/api/.%2e/admin"),
    ("/api/../admin", b"/api/%2e./admin"),
    ("/api/..\\admin", b"/api/%2e%2e%5cadmin"),
    ("/api/a\\..\\..\\admin", b"/api/a%5c..%5c..%5cadmin"),
    ("/api/%2e%2e/admin", b"/api/%252e%252e/admin"),  # decoded twice by a lenient upstream
    ("/api/..%5cadmin", b"/api/..%255cadmin"),
    ("/api/..%3b/admin", b"/api/..%253b/admin"),
]


async def test_dot_segment_variants_with_semicolon_backslash_and_encoding_are_refused(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    server = raw_server(echo_head)
    for path, raw in CLIMBING_PATHS:
        proxy = router(mount("/api", reverse_proxy(f"{server.url}/v1")))
        scope = make_scope("GET", path, headers=[(b"host", b"gateway")], raw_path=raw)
        sent = await drive_router(proxy, scope)
        assert sent.status == 400, raw
    assert server.connections == 0


ODD_TARGETS = [
    b"/plain/path?q=1&r=two",
    b"/a{b}|c^d`e",
    b"/a%7Bb%zz%",
    b'/q?x="y"<z>',
    b"/.well-known/x",
    b"/sub-delims!$&'()*+,;=:@",
]


def _target_sent(head: bytes) -> bytes:
    return head.split(b"\r\n", 1)[0].split(b" ")[1]


async def test_targets_go_upstream_exactly_as_httpx_would_send_them(
    raw_server: Callable[[Handler], RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The proxy's own transport takes the target as it is when httpx would
    # leave it unchanged, and asks httpx's URL otherwise: either way the
    # upstream sees what a client passed in (httpx all along) sends.
    import asgikit.proxy.http as proxy_http

    parsed: list[str] = []
    real = proxy_http._upstream_url

    def counting(options: Any, target: str) -> Any:
        parsed.append(target)
        return real(options, target)

    monkeypatch.setattr(proxy_http, "_upstream_url", counting)
    server = raw_server(echo_head)
    targets = []
    for raw in ODD_TARGETS:
        path, _, query = raw.partition(b"?")
        seen = []
        for client in (None, httpx.AsyncClient()):
            decoded = unquote(path.decode("latin-1"))
            scope = make_scope("GET", decoded, headers=[(b"host", b"h.example")])
            scope["raw_path"] = path
            scope["query_string"] = query
            sent = await drive(reverse_proxy(server.url, client=client), scope)
            assert sent.status == 200, raw
            seen.append(_target_sent(sent.body))
            if client is not None:
                await client.aclose()
        assert seen[0] == seen[1], raw
        targets.append(seen[0])
    assert targets[:4] == [
        b"/plain/path?q=1&r=two",
        b"/a%7Bb%7D|c^d%60e",
        b"/a%7Bb%zz%",
        b"/q?x=%22y%22%3Cz%3E",
    ]
    # The plain ones never built a URL on the proxy's own transport.
    own_transport_parses = [target for target in parsed if "plain" in target]
    assert len(own_transport_parses) == 1  # the passed client's request only


async def test_dotted_names_that_do_not_climb_still_go_through(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    server = raw_server(echo_head)
    proxy = reverse_proxy(server.url)
    for path in ("/a/...", "/a/..x", "/a/.well-known/x", "/a/x..;y", "/file.tar.gz"):
        scope = make_scope("GET", path, headers=[(b"host", b"gateway")])
        sent = await run_app(proxy, scope)
        assert sent.status == 200, path
    await proxy.aclose()  # type: ignore[attr-defined]


async def drive_router(app: ASGIApp, scope: Scope) -> SendRecorder:
    with anyio.fail_after(10):
        return await run_app(app, scope)


async def test_content_length_with_transfer_encoding_from_the_client_is_400(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    # RFC 9112 §6.1: both at once is a smuggling attempt or an error; a
    # proxy must not forward the Content-Length, and asgikit refuses it.
    server = raw_server(echo_head)
    headers = [(b"host", b"g"), (b"content-length", b"3"), (b"transfer-encoding", b"chunked")]
    sent = await drive(
        reverse_proxy(server.url),
        make_scope("POST", "/", headers=headers),
        body_receive(b"abc", b"defgh"),
    )
    assert sent.status == 400
    assert (b"connection", b"close") in sent.headers  # RFC 9112 §6.3: framing in doubt
    assert server.connections == 0


async def test_conflicting_or_malformed_content_lengths_from_the_client_are_400(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    server = raw_server(echo_head)
    for lengths in ([b"3", b"4"], [b"3, 4"], [b"-1"], [b"+3"], [b"0x3"], [b""]):
        headers = [(b"host", b"g")] + [(b"content-length", value) for value in lengths]
        sent = await drive(
            reverse_proxy(server.url),
            make_scope("POST", "/", headers=headers),
            body_receive(b"abc"),
        )
        assert sent.status == 400, lengths
    assert server.connections == 0


async def test_a_body_longer_than_its_content_length_is_400_not_500(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    # A server should not let this through; the proxy must still not crash on it.
    server = raw_server(echo_head)
    headers = [(b"host", b"g"), (b"content-length", b"3")]
    sent = await drive(
        reverse_proxy(server.url),
        make_scope("POST", "/", headers=headers),
        body_receive(b"abc", b"defgh"),
    )
    assert sent.status == 400


async def test_two_host_headers_are_400_and_never_forwarded(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    # RFC 9112 §3.2: a request with more than one Host field is refused.
    server = raw_server(echo_head)
    for preserve_host in (False, True):
        headers = [(b"host", b"public.example"), (b"host", b"internal.example")]
        sent = await drive(
            reverse_proxy(server.url, preserve_host=preserve_host),
            make_scope("GET", "/", headers=headers),
        )
        assert sent.status == 400
    assert server.connections == 0


INJECTED_HEADERS = {
    "crlf_in_a_value": (b"x-note", b"a\r\nX-Injected: 1"),
    "lf_in_a_value": (b"x-note", b"a\nX-Injected: 1"),
    "cr_in_a_value": (b"x-note", b"a\rb"),
    "nul_in_a_value": (b"x-note", b"a\x00b"),
    "leading_space": (b"x-note", b" a"),
    "trailing_tab": (b"x-note", b"a\t"),
    "newline_in_a_name": (b"x-a\nx-injected", b"1"),
    "colon_in_a_name": (b"x-a:b", b"1"),
    "space_in_a_name": (b"x a", b"1"),
    "empty_name": (b"", b"1"),
}


@pytest.fixture(params=[True, False], ids=["own-header-check", "h11-header-check"])
def header_check(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    # With and without h11's private ``_parsed`` shortcut (an h11 without it
    # checks every header itself): the same answers either way.
    from asgikit.proxy import _transport

    monkeypatch.setattr(_transport, "_H11_PARSED", _transport._H11_PARSED and request.param)


@pytest.mark.parametrize("header", INJECTED_HEADERS.values(), ids=list(INJECTED_HEADERS))
@pytest.mark.usefixtures("header_check")
async def test_header_injection_through_a_hand_built_scope_is_400_and_never_forwarded(
    raw_server: Callable[[Handler], RawServer], header: tuple[bytes, bytes]
) -> None:
    # A server or a middleware in front could hand over headers no parser
    # would: none is written upstream, where it could split the request.
    server = raw_server(echo_head)
    headers = [(b"host", b"gateway.example"), header, (b"x-after", b"2")]
    sent = await drive(reverse_proxy(server.url), make_scope("GET", "/", headers=headers))
    assert sent.status == 400
    assert server.connections == 0


@pytest.mark.usefixtures("header_check")
async def test_header_values_with_inner_whitespace_and_obs_text_go_through_byte_for_byte(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    server = raw_server(echo_head)
    values = [b"a  b\tc", b"caf\xe9", b"", b"!#$%&'*+-.^_`|~"]
    headers = [(b"host", b"gateway.example")]
    headers += [(b"x-v%d" % index, value) for index, value in enumerate(values)]
    sent = await drive(reverse_proxy(server.url), make_scope("GET", "/", headers=headers))
    assert sent.status == 200
    for index, value in enumerate(values):
        assert b"\r\nx-v%d: %s\r\n" % (index, value) in sent.body


# -- a broken upstream, answered with a status ---------------------------------


async def test_upstream_204_with_a_body_is_502_and_its_connection_closed(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    def handler(sock: socket.socket, index: int) -> None:
        while read_request(sock):
            if index == 1:
                sock.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello")
            else:
                sock.sendall(ok(b"genuine"))

    server = raw_server(handler)
    with anyio.fail_after(10):
        async with AsyncTestClient(reverse_proxy(server.url)) as client:
            broken = await client.get("/")
            after = await client.get("/")
    assert broken.status_code == 502
    assert after.content == b"genuine"
    assert server.connections == 2


# -- slow clients --------------------------------------------------------------


def stalled_body(*chunks: bytes, pause: float | None = None) -> Receive:
    """``chunks`` with ``more_body``, then nothing more (``pause=None``) or one byte per pause."""
    messages: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": True} for chunk in chunks
    ]

    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        if pause is None:
            await anyio.sleep_forever()
        await anyio.sleep(pause)
        return {"type": "http.request", "body": b"x", "more_body": True}

    return receive


async def test_stalled_request_bodies_cannot_exhaust_the_upstream_pool(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    # Four clients start a body and stall, on a pool of two connections;
    # each is cut off (408) and frees its connection, and a normal client
    # behind them gets through instead of a 503.
    server = raw_server(echo_head)
    proxy = reverse_proxy(server.url, max_connections=2, pool_timeout=8, body_timeout=0.2)
    stalled: list[int] = []
    normal: list[int] = []
    headers = [(b"host", b"g"), (b"content-length", b"100")]

    async def stall() -> None:
        scope = make_scope("POST", "/upload", headers=headers)
        stalled.append((await run_app(proxy, scope, stalled_body(b"a" * 10))).status)

    async def ordinary() -> None:
        await anyio.wait_all_tasks_blocked()
        normal.append(
            (await run_app(proxy, make_scope("GET", "/", headers=[(b"host", b"g")]))).status
        )

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            for _ in range(4):
                group.start_soon(stall)
            group.start_soon(ordinary)
        await proxy.aclose()  # type: ignore[attr-defined]
    assert stalled == [408] * 4
    assert normal == [200]


async def test_a_body_trickling_past_the_deadline_is_cut_off_with_408(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    # One byte every 20 ms never trips the idle timeout; the deadline ends it.
    server = raw_server(echo_head)
    proxy = reverse_proxy(server.url, deadline=0.3, body_timeout=5)
    headers = [(b"host", b"g"), (b"content-length", b"100000")]
    sent = await drive(
        proxy, make_scope("POST", "/", headers=headers), stalled_body(b"a", pause=0.02)
    )
    assert sent.status == 408
    assert (b"connection", b"close") in sent.headers


async def test_a_client_that_never_sends_its_body_gets_408_without_reaching_the_upstream(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    server = raw_server(echo_head)
    headers = [(b"host", b"g"), (b"content-length", b"5")]
    sent = await drive(
        reverse_proxy(server.url, body_timeout=0.1),
        make_scope("POST", "/", headers=headers),
        stalled_body(),
    )
    assert sent.status == 408
    assert server.connections == 0


async def test_an_upstream_past_the_deadline_is_504(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    done = threading.Event()

    def silent(sock: socket.socket, index: int) -> None:
        read_request(sock)
        done.wait(10)

    server = raw_server(silent)
    try:
        sent = await drive(reverse_proxy(server.url, deadline=0.2), make_scope("GET", "/"))
    finally:
        done.set()
    assert sent.status == 504


# -- an option is applied or refused, never ignored ------------------------------


def silent_upstream(
    raw_server: Callable[[Handler], RawServer],
) -> tuple[RawServer, threading.Event]:
    """An upstream that reads the request and never answers (until released)."""
    release = threading.Event()

    def silent(sock: socket.socket, index: int) -> None:
        read_request(sock)
        release.wait(10)

    return raw_server(silent), release


async def test_a_timeout_given_with_a_client_applies_to_its_requests(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    server, release = silent_upstream(raw_server)
    try:
        with anyio.fail_after(8):
            async with (
                httpx.AsyncClient(timeout=30) as own,
                AsyncTestClient(reverse_proxy(server.url, client=own, timeout=0.2)) as client,
            ):
                response = await client.get("/")
    finally:
        release.set()
    assert response.status_code == 504


async def test_a_client_passed_without_timeout_keeps_its_own(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    server, release = silent_upstream(raw_server)
    try:
        with anyio.fail_after(8):
            async with (
                httpx.AsyncClient(timeout=httpx.Timeout(30, read=0.2)) as own,
                AsyncTestClient(reverse_proxy(server.url, client=own)) as client,
            ):
                response = await client.get("/")
    finally:
        release.set()
    assert response.status_code == 504


@pytest.mark.parametrize(
    "option",
    [
        {"max_connections": 5},
        {"max_keepalive_connections": 5},
        {"keepalive_expiry": 1.0},
        {"verify": False},
    ],
)
async def test_pool_options_with_a_passed_client_are_refused_not_ignored(
    option: dict[str, Any],
) -> None:
    async with httpx.AsyncClient() as own:
        with pytest.raises(TypeError, match=next(iter(option))):
            reverse_proxy("http://upstream", client=own, **option)


# -- the fixes, attacked once more -------------------------------------------------


async def test_a_chunk_longer_than_sent_never_hands_the_rest_to_the_next_client(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    # The chunk claims 32 bytes and the smuggled response fills them: the
    # first answer is wrong (garbage in, garbage out), the second is genuine.
    handler, sent = smuggler(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n20\r\nshort\r\n", later=False
    )
    server = raw_server(handler)
    with anyio.fail_after(10):
        async with AsyncTestClient(reverse_proxy(server.url)) as client:
            async with client.stream("GET", "/victim-1") as first:
                with contextlib.suppress(httpx.HTTPError):
                    await first.aread()
            assert await anyio.to_thread.run_sync(sent.wait, 5)
            second = await client.get("/victim-2")
    assert second.content == b"genuine"
    assert server.connections == 2


async def test_a_late_answer_to_a_timed_out_request_never_reaches_the_next_client(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    release = threading.Event()

    def late(sock: socket.socket, index: int) -> None:
        if index == 1 and read_request(sock):
            release.wait(10)
            sock.sendall(ok(b"late answer for the first client"))
        while read_request(sock):
            sock.sendall(ok(b"genuine"))

    server = raw_server(late)
    with anyio.fail_after(10):
        async with AsyncTestClient(reverse_proxy(server.url, timeout=0.2)) as client:
            timed_out = await client.get("/first")
            release.set()
            second = await client.get("/second")
    assert timed_out.status_code == 504
    assert second.content == b"genuine"


async def test_after_a_502_for_garbage_the_next_request_gets_a_clean_connection(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    def garbage_first(sock: socket.socket, index: int) -> None:
        while read_request(sock):
            sock.sendall(b"NOT HTTP AT ALL\r\n\r\n" + SMUGGLED if index == 1 else ok(b"genuine"))

    server = raw_server(garbage_first)
    with anyio.fail_after(10):
        async with AsyncTestClient(reverse_proxy(server.url)) as client:
            broken = await client.get("/")
            second = await client.get("/")
    assert broken.status_code == 502
    assert second.content == b"genuine"


async def test_upstream_closing_mid_body_truncates_and_the_next_request_is_clean(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    def cut(sock: socket.socket, index: int) -> None:
        while read_request(sock):
            if index == 1:
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
                return
            sock.sendall(ok(b"genuine"))

    server = raw_server(cut)
    proxy = reverse_proxy(server.url)
    with anyio.fail_after(10):
        first = await run_app(proxy, make_scope("GET", "/", headers=[(b"host", b"g")]))
        second = await run_app(proxy, make_scope("GET", "/", headers=[(b"host", b"g")]))
        await proxy.aclose()  # type: ignore[attr-defined]
    assert first.status == 200
    assert not first.complete  # never a short body that looks whole
    assert second.body == b"genuine"


async def test_a_client_vanishing_mid_upload_never_leaves_its_body_on_a_pooled_connection(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    server = raw_server(echo_head)
    proxy = reverse_proxy(server.url)
    upload = [(b"host", b"g"), (b"content-length", b"100")]
    with anyio.fail_after(10):
        gone = await run_app(
            proxy, make_scope("POST", "/", headers=upload), disconnect_after(b"ab")
        )
        after = await run_app(proxy, make_scope("GET", "/next", headers=[(b"host", b"g")]))
        await proxy.aclose()  # type: ignore[attr-defined]
    assert [m for m in gone.messages if m["type"] == "http.response.start"] == []
    assert after.body.startswith(b"GET /next HTTP/1.1\r\n")
    assert server.connections == 2


async def test_the_deadline_never_cuts_a_response_that_has_started(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    # A download or an event stream outlives the deadline: it bounds the
    # request phase only, and ``timeout`` each read after that.
    release = threading.Event()

    def streaming(sock: socket.socket, index: int) -> None:
        read_request(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfirst")
        release.wait(10)
        sock.sendall(b"later")

    server = raw_server(streaming)
    with anyio.fail_after(10):
        async with (
            AsyncTestClient(reverse_proxy(server.url, deadline=1.0)) as client,
            client.stream("GET", "/") as response,
        ):
            chunks = response.aiter_raw()
            assert await anext(chunks) == b"first"
            await anyio.sleep(1.5)  # past the deadline
            release.set()
            rest = b"".join([chunk async for chunk in chunks])
    assert rest == b"later"


async def test_smuggled_bytes_the_event_loop_read_ahead_never_reach_the_next_client(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    # On asyncio, anyio's socket stream reads ahead into its own queue: bytes
    # that arrive just after a response may sit there, where neither h11 nor
    # a poll of the socket sees them.  Twenty rounds make the race likely.
    smuggled = threading.Semaphore(0)

    def handler(sock: socket.socket, index: int) -> None:
        # No Nagle delay: the smuggled bytes must leave before the next request
        # arrives (after it, no HTTP/1.1 client could tell them from its answer).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while head := read_request(sock):
            if head.startswith(b"HEAD"):
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
                sock.sendall(SMUGGLED)
                smuggled.release()
            else:
                sock.sendall(ok(b"genuine"))

    server = raw_server(handler)
    answers: list[bytes] = []
    with anyio.fail_after(20):
        async with AsyncTestClient(reverse_proxy(server.url)) as client:
            for _ in range(20):
                await client.head("/")
                assert await anyio.to_thread.run_sync(smuggled.acquire, True, 5)
                answers.append((await client.get("/")).content)
    assert answers == [b"genuine"] * 20


# -- attacks on the asyncio protocol, the light scopes and the header fast path --


async def test_a_post_reset_after_part_of_its_body_left_is_never_sent_again(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    # RFC 9110 §9.2.2: a proxy must not retry a non-idempotent request on its
    # own.  A kept-alive connection reset while the body is still being
    # written is not "nothing written": the upstream has read part of it.
    heads: list[bytes] = []

    def reset_mid_post(sock: socket.socket, index: int) -> None:
        data = b""
        while True:
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, data = data.partition(b"\r\n\r\n")
            heads.append(head.split(b"\r\n")[0])
            if not head.startswith(b"POST"):
                sock.sendall(ok(b"warm"))
                continue
            sock.recv(65536)  # some of the body, then a reset
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return

    server = raw_server(reset_mid_post)
    # A small receive window, so that the proxy's write is still under way.
    server.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    proxy = reverse_proxy(server.url)
    size = 8 << 20  # past the kernel's send buffer (4 MiB at most by default)
    upload = [(b"host", b"g"), (b"content-length", b"%d" % size)]
    with anyio.fail_after(20):
        warm = await run_app(proxy, make_scope("GET", "/", headers=[(b"host", b"g")]))
        post = await run_app(proxy, make_scope("POST", "/pay", headers=upload), body=b"x" * size)
        await proxy.aclose()  # type: ignore[attr-defined]
    assert warm.body == b"warm"
    assert post.status == 502
    assert heads == [b"GET / HTTP/1.1", b"POST /pay HTTP/1.1"]


@pytest.mark.usefixtures("header_check")
async def test_header_values_as_bytearray_or_memoryview_go_through_as_h11_takes_them(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    # A middleware in front may build a value as a bytearray: h11 takes any
    # bytes-like value, so the fast path must not turn it into a 500.
    server = raw_server(echo_head)
    headers: list[tuple[bytes, Any]] = [(b"host", b"gateway.example")]
    headers += [(b"x-array", bytearray(b"one")), (b"x-view", memoryview(b"two"))]
    sent = await drive(reverse_proxy(server.url), make_scope("GET", "/", headers=headers))
    assert sent.status == 200
    assert b"\r\nx-array: one\r\nx-view: two\r\n" in sent.body


_HEADER_BYTES = b'aZ09-!#|~ \t\r\n\x00\x0b\x0c\x1f\x7f\x80\xff:;"(),/'
_header_piece = st.lists(
    st.sampled_from([bytes([c]) for c in _HEADER_BYTES]) | st.binary(min_size=1, max_size=1),
    max_size=8,
).map(b"".join)


def _upstream_head(headers: list[tuple[bytes, bytes]], fast: bool) -> bytes | str:
    # What h11 writes for these headers, or that it refused them.
    from asgikit.proxy import _transport

    saved = _transport._H11_PARSED
    _transport._H11_PARSED = saved and fast
    try:
        event = _transport.request_head("GET", b"/", [(b"host", b"h"), *headers])
        return h11.Connection(h11.CLIENT).send(event) or b""
    except h11.LocalProtocolError:
        return "refused"
    finally:
        _transport._H11_PARSED = saved


@settings(max_examples=500)
@given(st.lists(st.tuples(_header_piece, _header_piece), max_size=6))
def test_hypothesis_the_header_fast_path_refuses_and_writes_exactly_what_h11_does(
    headers: list[tuple[bytes, bytes]],
) -> None:
    # Random names and values (CR, LF, NUL, obs-fold, high bytes, empty ones):
    # refused by both checks or written upstream byte for byte the same.
    assert _upstream_head(headers, fast=True) == _upstream_head(headers, fast=False)


@pytest.mark.parametrize(("size", "status"), [(90 * 1024, 200), (110 * 1024, 502)])
async def test_a_response_head_past_100_kib_is_502_however_fast_it_arrives(
    raw_server: Callable[[Handler], RawServer], size: int, status: int
) -> None:
    # The limit holds when the whole head comes in one read, as the asyncio
    # protocol hands over everything it buffered (up to 256 KiB).
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
    head += b"x-filler: %s\r\n" % (b"f" * 1000) * (size // 1012)

    def big_head(sock: socket.socket, index: int) -> None:
        while read_request(sock):
            sock.sendall(head + b"\r\nok")

    server = raw_server(big_head)
    sent = await drive(
        reverse_proxy(server.url), make_scope("GET", "/", headers=[(b"host", b"g")])
    )
    assert sent.status == status


def test_distinct_long_host_headers_never_pin_their_bytes_in_the_forwarding_cache() -> None:
    # The forwarding values are cached per client, Host and mount (1024
    # entries): a client sending a new 16 KiB Host each time must not make
    # the cache hold 16 MiB.  A Host past 255 bytes is never a valid one.
    import gc
    import tracemalloc

    from asgikit.proxy._headers import upstream_request_headers

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for index in range(1100):
            host = b"%05d" % index + b"h" * (16 * 1024)
            scope = make_scope("GET", "/", headers=[(b"host", host)])
            out = upstream_request_headers(
                scope, b"upstream", preserve_host=False, add_forwarded=True
            )
            assert b"x-forwarded-host" not in dict(out)
            del scope, out, host
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert retained < 2 * 1024 * 1024, retained


async def test_an_endless_stream_of_1xx_answers_is_502_not_held_to_the_deadline(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    # Interim answers count toward the 100 KiB head: a server that sends
    # them without end holds the connection no longer than that.
    def interim_forever(sock: socket.socket, index: int) -> None:
        read_request(sock)
        while True:  # until the proxy closes the connection
            sock.sendall(b"HTTP/1.1 102 Processing\r\n\r\n" * 16)

    server = raw_server(interim_forever)
    sent = await drive(
        reverse_proxy(server.url, deadline=3), make_scope("GET", "/", headers=[(b"host", b"g")])
    )
    assert sent.status == 502


async def test_an_upstream_answer_framed_two_ways_goes_down_without_its_content_length(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    # RFC 9112 §6.3: Transfer-Encoding overrides Content-Length, and an
    # intermediary "MUST first remove the received Content-Length field".
    # Relayed, "Content-Length: 2" over a 5-byte body would split the
    # response on a downstream connection whose server trusts the header.
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
    answer += b"5\r\nhello\r\n0\r\n\r\n"

    def two_framings(sock: socket.socket, index: int) -> None:
        while read_request(sock):
            sock.sendall(answer)

    server = raw_server(two_framings)
    sent = await drive(
        reverse_proxy(server.url), make_scope("GET", "/", headers=[(b"host", b"g")])
    )
    assert sent.status == 200
    assert sent.header(b"content-length") == []
    assert sent.body == b"hello"

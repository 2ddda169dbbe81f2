"""Attacks on proxy_headers: what a client writes must never become what the app believes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from asgikit.middleware.proxy_headers import proxy_headers
from asgikit.responses import JSONResponse
from asgikit.types import Receive, Scope, Send
from tests.conftest import make_scope, run_app

pytestmark = pytest.mark.anyio


async def record(scope: Scope, receive: Receive, send: Send) -> None:
    host = [v.decode("latin-1") for k, v in scope["headers"] if k.lower() == b"host"]
    names = sorted({k.decode("latin-1").lower() for k, _ in scope["headers"]})
    client = list(scope["client"]) if scope.get("client") else None
    body = {"client": client, "scheme": scope["scheme"], "host": host, "names": names}
    await JSONResponse(body)(scope, receive, send)


async def view(
    sent_headers: list[tuple[bytes, bytes]],
    peer: str | None = "127.0.0.1",
    **options: Any,
) -> dict[str, Any]:
    scope = make_scope(
        headers=[(b"host", b"internal:8000"), *sent_headers],
        client=None if peer is None else (peer, 4000),
    )
    sent = await run_app(proxy_headers(record, **options), scope)
    assert sent.status == 200, sent.body
    result: dict[str, Any] = json.loads(sent.body)
    return result


# -- holes found by this review ---------------------------------------------


@pytest.mark.parametrize(
    ("trusted", "peer"),
    [
        ("127.0.0.1", "::ffff:127.0.0.1"),  # a dual-stack socket ("::") reports v4 peers so
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("10.0.0.1", "::ffff:a00:1"),
        ("10.0.0.1", "::FFFF:10.0.0.1"),
    ],
)
async def test_an_ipv4_mapped_peer_is_the_ipv4_address_it_maps(trusted: str, peer: str) -> None:
    result = await view([(b"x-forwarded-for", b"1.2.3.4")], peer=peer, trusted_hosts=trusted)
    assert result["client"] == ["1.2.3.4", 0]


async def test_an_ipv4_mapped_trusted_hop_is_skipped_like_its_ipv4_address() -> None:
    header = [(b"x-forwarded-for", b"6.6.6.6, 1.2.3.4, ::ffff:10.0.0.2")]
    result = await view(header, trusted_hosts=["127.0.0.1", "10.0.0.2"])
    assert result["client"] == ["1.2.3.4", 0]


# -- defences that hold ------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "client", "scheme"),
    [
        # The right-most untrusted hop is the client, whatever is left of it.
        ([(b"x-forwarded-for", b"6.6.6.6, 1.2.3.4")], ["1.2.3.4", 0], "http"),
        (
            [(b"x-forwarded-for", b"6.6.6.6"), (b"x-forwarded-for", b"1.2.3.4")],
            ["1.2.3.4", 0],
            "http",
        ),
        (
            [(b"X-Forwarded-For", b"6.6.6.6"), (b"x-forwarded-for", b"1.2.3.4")],
            ["1.2.3.4", 0],
            "http",
        ),
        ([(b"x-forwarded-for", b"1.2.3.4, 127.0.0.1")], ["1.2.3.4", 0], "http"),
        # Unknown, obfuscated, empty or malformed hops: no client, never one further left.
        ([(b"x-forwarded-for", b"6.6.6.6, unknown")], None, "http"),
        ([(b"x-forwarded-for", b"6.6.6.6, _hidden")], None, "http"),
        ([(b"x-forwarded-for", b"6.6.6.6,")], None, "http"),
        ([(b"x-forwarded-for", b"6.6.6.6, , 127.0.0.1")], None, "http"),
        ([(b"x-forwarded-for", b"6.6.6.6, 01.2.3.4")], None, "http"),
        ([(b"x-forwarded-for", b"6.6.6.6, 1.2.3.4:99999")], None, "http"),
        ([(b"x-forwarded-for", b"6.6.6.6, 1.2.3.4\x00")], None, "http"),
        ([(b"x-forwarded-for", b"6.6.6.6, 10.0.0.1%eth0")], None, "http"),
        ([(b"x-forwarded-for", b"6.6.6.6, example.com")], None, "http"),
        # IPv6 spellings.
        ([(b"x-forwarded-for", b"[2001:db8::1]:443")], ["2001:db8::1", 443], "http"),
        ([(b"x-forwarded-for", b"2001:DB8::1")], ["2001:db8::1", 0], "http"),
        ([(b"x-forwarded-for", b"[2001:db8::1")], None, "http"),
        ([(b"x-forwarded-for", b"[2001:db8::1]x")], None, "http"),
        # Proto: the same hop's value, lower-cased; anything else is ignored.
        (
            [(b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-proto", b"HTTPS")],
            ["1.2.3.4", 0],
            "https",
        ),
        (
            [(b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-proto", b"https, http")],
            ["1.2.3.4", 0],
            "http",
        ),
        ([(b"x-forwarded-proto", b"javascript")], ["127.0.0.1", 4000], "http"),
        ([(b"x-forwarded-proto", b"https ")], ["127.0.0.1", 4000], "https"),
        ([(b"x-forwarded-proto", b"http s")], ["127.0.0.1", 4000], "http"),
        # The other family is never read.
        ([(b"forwarded", b"for=6.6.6.6;proto=https")], ["127.0.0.1", 4000], "http"),
        ([(b"Forwarded", b"for=6.6.6.6;proto=https")], ["127.0.0.1", 4000], "http"),
    ],
)
async def test_x_forwarded_table(
    headers: list[tuple[bytes, bytes]], client: list[Any] | None, scheme: str
) -> None:
    result = await view(headers)
    assert (result["client"], result["scheme"]) == (client, scheme)
    assert "forwarded" not in result["names"]


@pytest.mark.parametrize(
    ("header", "client", "scheme", "host"),
    [
        (
            b'for="[2001:db8::1]:80";proto=https;host=example.com',
            ["2001:db8::1", 80],
            "https",
            "example.com",
        ),
        (b"for=6.6.6.6;proto=https, for=1.2.3.4", ["1.2.3.4", 0], "http", "internal:8000"),
        (b'for="1.2.3.4, for=6.6.6.6"', None, "http", "internal:8000"),  # a quoted comma
        (b'for="\\1\\.2.3.4"', ["1.2.3.4", 0], "http", "internal:8000"),  # quoted-pair escapes
        (b'for="1.2.3.4', None, "http", "internal:8000"),  # an open quote
        (b"for=1.2.3.4;for=6.6.6.6", None, "http", "internal:8000"),  # a parameter twice
        (b"for=1.2.3.4;host=evil.com/x", None, "http", "internal:8000"),  # not a token
        (b'for=1.2.3.4;host="evil.com/x"', ["1.2.3.4", 0], "http", "internal:8000"),
        (b'for=1.2.3.4;host="evil@good"', ["1.2.3.4", 0], "http", "internal:8000"),
        (b"for=1.2.3.4;proto=javascript", ["1.2.3.4", 0], "http", "internal:8000"),
        (b"for=6.6.6.6;proto=https, for=unknown", None, "http", "internal:8000"),
        (b"for=1.2.3.4;host=a:99999", ["1.2.3.4", 0], "http", "internal:8000"),
    ],
)
async def test_forwarded_table(
    header: bytes, client: list[Any] | None, scheme: str, host: str
) -> None:
    sent = [(b"forwarded", header), (b"x-forwarded-for", b"6.6.6.6")]
    result = await view(sent, headers="forwarded")
    assert (result["client"], result["scheme"], result["host"]) == (client, scheme, [host])
    assert "x-forwarded-for" not in result["names"]


@pytest.mark.parametrize(
    ("port", "host"),
    [
        (b"8443", "example.com:8443"),
        (b"0443", "example.com:443"),
        (b"443abc", "example.com"),
        (b"\xc2\xb2", "example.com"),
        (b"99999", "example.com"),
        (b"-1", "example.com"),
        (b"", "example.com"),
        (b"1" * 5000, "example.com"),
    ],
)
async def test_x_forwarded_port_garbage_is_ignored(port: bytes, host: str) -> None:
    sent = [
        (b"x-forwarded-for", b"1.2.3.4"),
        (b"x-forwarded-host", b"example.com"),
        (b"x-forwarded-port", port),
    ]
    assert (await view(sent, forwarded_host=True))["host"] == [host]


@pytest.mark.parametrize(
    "value", [b"evil.com/x", b"evil@good", b"good\\evil", b"a b", b"good:99999", b"[v1.x]", b""]
)
async def test_a_malformed_x_forwarded_host_is_ignored(value: bytes) -> None:
    sent = [(b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-host", value)]
    assert (await view(sent, forwarded_host=True))["host"] == ["internal:8000"]


async def test_x_forwarded_host_is_removed_unless_read() -> None:
    sent = [(b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-host", b"evil.com")]
    result = await view(sent)
    assert result["host"] == ["internal:8000"]
    assert "x-forwarded-host" not in result["names"]


async def test_an_untrusted_peer_or_a_scope_without_client_changes_nothing() -> None:
    sent = [(b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-proto", b"https")]
    assert (await view(sent, peer="8.8.8.8"))["client"] == ["8.8.8.8", 4000]
    result = await view(sent, peer=None)
    assert (result["client"], result["scheme"]) == (None, "http")


@pytest.mark.parametrize(
    ("proto", "scheme"), [(b"https", "wss"), (b"http", "ws"), (b"WSS", "wss")]
)
async def test_a_websocket_gets_a_websocket_scheme(proto: bytes, scheme: str) -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    scope = make_scope(
        type="websocket",
        scheme="ws",
        headers=[(b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-proto", proto)],
    )
    await proxy_headers(app)(scope, None, None)  # type: ignore[arg-type]
    assert seen[0]["scheme"] == scheme


async def test_a_long_hop_list_is_cut_to_its_right_end() -> None:
    # 50,000 hops: the work is one split, and only the right-most 64 are looked at.
    chain = b", ".join([b"6.6.6.6"] * 50_000 + [b"1.2.3.4"] + [b"127.0.0.1"] * 10)
    assert (await view([(b"x-forwarded-for", chain)]))["client"] == ["1.2.3.4", 0]
    forwarded = b", ".join([b'for="_x;y=\\"z"'] * 50_000 + [b"for=1.2.3.4"])
    result = await view([(b"forwarded", forwarded)], headers="forwarded")
    assert result["client"] == ["1.2.3.4", 0]


async def test_two_host_headers_are_refused_whatever_their_case() -> None:
    scope = make_scope(headers=[(b"host", b"a"), (b"Host", b"b")])
    sent = await run_app(proxy_headers(record), scope)
    assert sent.status == 400

"""proxy_headers: Forwarded and X-Forwarded-* believed only from trusted peers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asgikit.middleware.proxy_headers import parse_forwarded, parse_node, proxy_headers
from asgikit.responses import JSONResponse
from asgikit.types import Receive, Scope, Send
from tests.conftest import make_scope, run_app
from tests.servers.live import serve

seen: list[Scope] = []


async def record(scope: Scope, receive: Receive, send: Send) -> None:
    seen.append(scope)
    host = next((v for k, v in scope["headers"] if k == b"host"), b"").decode()
    client = list(scope["client"]) if scope.get("client") else None
    body = {"client": client, "scheme": scope["scheme"], "host": host}
    await JSONResponse(body)(scope, receive, send)


async def view(
    headers: list[tuple[bytes, bytes]], peer: str = "10.0.0.1", **options: Any
) -> dict[str, Any]:
    options.setdefault("trusted_hosts", ["10.0.0.0/8", "192.168.1.1"])
    scope = make_scope(headers=[(b"host", b"internal:8000"), *headers], client=(peer, 4000))
    original = dict(scope)
    sent = await run_app(proxy_headers(record, **options), scope)
    assert scope == original  # the server's scope is never changed
    import json

    result: dict[str, Any] = json.loads(sent.body)
    return result


async def test_untrusted_peer_headers_are_ignored() -> None:
    result = await view(
        [(b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-proto", b"https")], peer="8.8.8.8"
    )
    assert result == {"client": ["8.8.8.8", 4000], "scheme": "http", "host": "internal:8000"}


async def test_x_forwarded_set_client_scheme_and_host() -> None:
    result = await view(
        [
            (b"x-forwarded-for", b"203.0.113.9"),
            (b"x-forwarded-proto", b"https"),
            (b"x-forwarded-host", b"example.com"),
        ]
    )
    assert result == {"client": ["203.0.113.9", 0], "scheme": "https", "host": "example.com"}


async def test_client_is_the_right_most_untrusted_hop() -> None:
    # The client wrote "6.6.6.6"; 198.51.100.7 connected to our trusted proxy 10.1.1.1.
    header = b"6.6.6.6, 198.51.100.7, 10.1.1.1"
    result = await view([(b"x-forwarded-for", header)])
    assert result["client"] == ["198.51.100.7", 0]


async def test_all_hops_trusted_gives_the_left_most() -> None:
    result = await view([(b"x-forwarded-for", b"10.9.9.9, 10.1.1.1")])
    assert result["client"] == ["10.9.9.9", 0]


async def test_x_forwarded_port_goes_into_host() -> None:
    result = await view([(b"x-forwarded-host", b"example.com"), (b"x-forwarded-port", b"8443")])
    assert result["host"] == "example.com:8443"
    alone = await view([(b"x-forwarded-port", b"9000")])
    assert alone["host"] == "internal:9000"


async def test_forwarded_is_preferred_and_quoted_ipv6_parsed() -> None:
    result = await view(
        [
            (b"forwarded", b'for="[2001:db8::1]:4711";proto=https;host=example.com'),
            (b"x-forwarded-for", b"1.1.1.1"),
        ]
    )
    assert result == {"client": ["2001:db8::1", 4711], "scheme": "https", "host": "example.com"}


async def test_forwarded_walks_elements_from_the_right() -> None:
    header = (
        b"for=6.6.6.6;proto=http, for=198.51.100.7;proto=https;host=shop.example, for=10.2.2.2"
    )
    result = await view([(b"forwarded", header)])
    assert result == {"client": ["198.51.100.7", 0], "scheme": "https", "host": "shop.example"}


@pytest.mark.parametrize("value", [b"for=unknown", b"for=_hidden", b'for="unbalanced', b"for=a=b"])
async def test_unknown_or_malformed_client_hop_gives_no_client(value: bytes) -> None:
    result = await view([(b"forwarded", value)])
    assert result["client"] is None


async def test_forwarded_without_for_keeps_the_client() -> None:
    result = await view([(b"forwarded", b"proto=https")])
    assert result["client"] == ["10.0.0.1", 4000]
    assert result["scheme"] == "https"


async def test_bad_proto_and_host_values_are_ignored() -> None:
    result = await view(
        [(b"x-forwarded-proto", b"gopher"), (b"x-forwarded-host", b"evil.com/path")]
    )
    assert result["scheme"] == "http"
    assert result["host"] == "internal:8000"


async def test_websocket_scheme_becomes_wss() -> None:
    scope = make_scope(
        type="websocket",
        scheme="ws",
        client=("127.0.0.1", 1),
        headers=[(b"x-forwarded-proto", b"https")],
    )
    seen.clear()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    await proxy_headers(app)(scope, None, None)  # type: ignore[arg-type]
    assert seen[0]["scheme"] == "wss"


async def test_star_unix_and_ipv4_mapped_peers() -> None:
    header = [(b"x-forwarded-for", b"1.2.3.4")]
    assert (await view(header, peer="8.8.8.8", trusted_hosts="*"))["client"] == ["1.2.3.4", 0]
    assert (await view(header, peer="::ffff:10.0.0.5"))["client"] == ["1.2.3.4", 0]
    scope = make_scope(headers=header, client=None)
    sent = await run_app(proxy_headers(record, trusted_hosts="unix:"), scope)
    assert b'"1.2.3.4"' in sent.body


def test_invalid_trusted_hosts_are_refused_when_built() -> None:
    with pytest.raises(ValueError):
        proxy_headers(record, trusted_hosts=["not-an-ip"])
    with pytest.raises(ValueError):
        proxy_headers(record, trusted_hosts="10.0.0.0/33")


def test_parse_node_and_forwarded() -> None:
    assert parse_node("192.0.2.60") == ("192.0.2.60", 0)
    assert parse_node("[2001:db8::1]:80") == ("2001:db8::1", 80)
    assert parse_node("2001:db8::1") == ("2001:db8::1", 0)
    assert parse_node("1.2.3.4:_abc") == ("1.2.3.4", 0)
    assert parse_node("1.2.3.4:99999") is None
    assert parse_node("unknown") is None
    assert parse_forwarded('for="a\\"b";by=x, ,for=1.2.3.4') == [
        {"for": 'a"b', "by": "x"},
        None,
        {"for": "1.2.3.4"},
    ]
    assert parse_forwarded("for=1.2.3.4;for=5.6.7.8") == [None]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.binary(max_size=40))
async def test_any_forwarding_headers_never_give_a_500(forwarded: bytes, xff: bytes) -> None:
    for name in (b"forwarded", b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-port"):
        scope = make_scope(
            headers=[(name, forwarded), (b"x-forwarded-proto", xff)], client=("127.0.0.1", 1)
        )
        sent = await run_app(proxy_headers(record), scope)
        assert sent.status == 200


@settings(max_examples=300)
@given(st.text(max_size=120))
def test_parse_forwarded_never_raises(header: str) -> None:
    for element in parse_forwarded(header):
        assert element is None or all(isinstance(v, str) for v in element.values())


def test_through_uvicorn_with_httpx() -> None:
    # uvicorn's own proxy header handling is turned off to see ours.
    app = proxy_headers(record, trusted_hosts=["127.0.0.1"])
    with serve(app, lifespan="off", proxy_headers=False) as base:
        response = httpx.get(
            base, headers={"x-forwarded-for": "203.0.113.5", "x-forwarded-proto": "https"}
        )
    assert response.json()["client"] == ["203.0.113.5", 0]
    assert response.json()["scheme"] == "https"


@pytest.mark.parametrize("node", ["192.0.2.1:\u00b2", "[2001:db8::1]:\u00b9\u00b2"])
def test_a_port_of_non_ascii_digits_is_malformed_not_an_error(node: str) -> None:
    # "²".isdigit() is true, but int("²") raises.
    assert parse_node(node) is None

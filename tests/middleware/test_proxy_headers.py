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
    sent_headers: list[tuple[bytes, bytes]], peer: str = "10.0.0.1", **options: Any
) -> dict[str, Any]:
    options.setdefault("trusted_hosts", ["10.0.0.0/8", "192.168.1.1"])
    headers = [(b"host", b"internal:8000"), *sent_headers]
    scope = make_scope(headers=headers, client=(peer, 4000))
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
        ],
        forwarded_host=True,
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
    result = await view(
        [(b"x-forwarded-host", b"example.com"), (b"x-forwarded-port", b"8443")],
        forwarded_host=True,
    )
    assert result["host"] == "example.com:8443"
    alone = await view([(b"x-forwarded-port", b"9000")], forwarded_host=True)
    assert alone["host"] == "internal:9000"


async def test_forwarded_family_parses_quoted_ipv6() -> None:
    result = await view(
        [
            (b"forwarded", b'for="[2001:db8::1]:4711";proto=https;host=example.com'),
            (b"x-forwarded-for", b"1.1.1.1"),
        ],
        headers="forwarded",
    )
    assert result == {"client": ["2001:db8::1", 4711], "scheme": "https", "host": "example.com"}


async def test_forwarded_walks_elements_from_the_right() -> None:
    header = (
        b"for=6.6.6.6;proto=http, for=198.51.100.7;proto=https;host=shop.example, for=10.2.2.2"
    )
    result = await view([(b"forwarded", header)], headers="forwarded")
    assert result == {"client": ["198.51.100.7", 0], "scheme": "https", "host": "shop.example"}


@pytest.mark.parametrize("value", [b"for=unknown", b"for=_hidden", b'for="unbalanced', b"for=a=b"])
async def test_unknown_or_malformed_client_hop_gives_no_client(value: bytes) -> None:
    result = await view([(b"forwarded", value)], headers="forwarded")
    assert result["client"] is None


async def test_forwarded_without_for_keeps_the_client() -> None:
    result = await view([(b"forwarded", b"proto=https")], headers="forwarded")
    assert result["client"] == ["10.0.0.1", 4000]
    assert result["scheme"] == "https"


async def test_bad_proto_and_host_values_are_ignored() -> None:
    result = await view(
        [(b"x-forwarded-proto", b"gopher"), (b"x-forwarded-host", b"evil.com/path")],
        forwarded_host=True,
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
    with pytest.raises(ValueError, match="not-an-ip"):
        proxy_headers(record, trusted_hosts=["not-an-ip"])
    with pytest.raises(ValueError, match="CIDR"):
        proxy_headers(record, trusted_hosts="10.0.0.0/33")
    with pytest.raises(ValueError, match="forwarded_host"):
        proxy_headers(record, headers="forwarded", forwarded_host=True)


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
        for family in ("x-forwarded", "forwarded"):
            app = proxy_headers(record, headers=family)  # type: ignore[arg-type]
            sent = await run_app(app, scope)
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


# --- One header family, named by the operator (issue 12 #1) -------------------


async def seen_headers(
    sent_headers: list[tuple[bytes, bytes]], peer: str = "10.0.0.1", **options: Any
) -> list[tuple[bytes, bytes]]:
    options.setdefault("trusted_hosts", ["10.0.0.0/8"])
    seen.clear()
    headers = [(b"host", b"internal:8000"), *sent_headers]
    scope = make_scope(headers=headers, client=(peer, 4000))
    await run_app(proxy_headers(record, **options), scope)
    return [(k, v) for k, v in seen[-1]["headers"] if k != b"host"]


async def test_client_written_forwarded_header_is_ignored_with_x_forwarded_family() -> None:
    # nginx as the README sets it up: X-Forwarded-* appended/set, the client's
    # own Forwarded header passed through untouched.
    result = await view(
        [
            (b"forwarded", b"for=127.0.0.1;proto=https;host=admin.internal"),
            (b"x-forwarded-for", b"198.51.100.7"),
            (b"x-forwarded-proto", b"http"),
            (b"x-forwarded-host", b"shop.example"),
        ],
        forwarded_host=True,
    )
    assert result == {"client": ["198.51.100.7", 0], "scheme": "http", "host": "shop.example"}


async def test_client_written_forwarded_header_alone_changes_nothing_by_default() -> None:
    result = await view([(b"forwarded", b"for=127.0.0.1;proto=https;host=admin.internal")])
    assert result == {"client": ["10.0.0.1", 4000], "scheme": "http", "host": "internal:8000"}


async def test_client_written_forwarded_header_is_removed_before_the_app() -> None:
    spoofed = [(b"forwarded", b"for=127.0.0.1"), (b"Forwarded", b"for=127.0.0.2")]
    kept = [(b"x-forwarded-for", b"198.51.100.7")]
    assert await seen_headers([*spoofed, *kept]) == kept
    # From an untrusted peer too: the app never reads a family nobody vouches for.
    assert await seen_headers([*spoofed, *kept], peer="8.8.8.8") == kept


async def test_client_written_x_forwarded_headers_are_ignored_with_forwarded_family() -> None:
    result = await view(
        [
            (b"x-forwarded-for", b"127.0.0.1"),
            (b"x-forwarded-proto", b"https"),
            (b"x-forwarded-host", b"admin.internal"),
            (b"x-forwarded-port", b"443"),
            (b"forwarded", b"for=198.51.100.7;proto=http;host=shop.example"),
        ],
        headers="forwarded",
    )
    assert result == {"client": ["198.51.100.7", 0], "scheme": "http", "host": "shop.example"}


async def test_client_written_x_forwarded_headers_alone_change_nothing_with_forwarded_family() -> (
    None
):
    spoofed = [
        (b"x-forwarded-for", b"127.0.0.1"),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-host", b"admin.internal"),
        (b"x-forwarded-by", b"10.0.0.1"),
        (b"X-Forwarded-Ssl", b"on"),
    ]
    result = await view(spoofed, headers="forwarded")
    assert result == {"client": ["10.0.0.1", 4000], "scheme": "http", "host": "internal:8000"}
    kept = [(b"forwarded", b"for=198.51.100.7")]
    assert await seen_headers([*spoofed, *kept], headers="forwarded") == kept
    assert await seen_headers([*spoofed, *kept], peer="8.8.8.8", headers="forwarded") == kept


@pytest.mark.parametrize("family", ["x-forwarded", "forwarded"])
async def test_spoofed_left_hops_lose_to_the_right_most_untrusted_hop_through_trusted_proxies(
    family: str,
) -> None:
    # client 198.51.100.7 -> edge 10.0.0.3 -> nginx 10.0.0.2 -> app (peer 10.0.0.1);
    # the client wrote two hops of its own on the left.
    if family == "forwarded":
        headers = [
            (
                b"forwarded",
                b"for=127.0.0.1;proto=https;host=admin.internal, for=10.9.9.9;proto=https",
            ),
            (b"forwarded", b"for=198.51.100.7;proto=http;host=shop.example"),
            (b"forwarded", b"for=10.0.0.3;proto=http, for=10.0.0.2;proto=http"),
        ]
    else:
        headers = [
            (b"x-forwarded-for", b"127.0.0.1, 10.9.9.9"),
            (b"x-forwarded-for", b"198.51.100.7, 10.0.0.3, 10.0.0.2"),
            (b"x-forwarded-proto", b"https, https, http, http, http"),
            (b"x-forwarded-host", b"admin.internal, x, shop.example, y, z"),
        ]
    options: dict[str, Any] = {"headers": family}
    if family == "x-forwarded":
        options["forwarded_host"] = True
    result = await view(headers, **options)
    assert result == {"client": ["198.51.100.7", 0], "scheme": "http", "host": "shop.example"}


@pytest.mark.parametrize(
    "value",
    [
        b"for=_hidden, for=10.0.0.2",
        b"for=unknown, for=10.0.0.2",
        b'for="[::1]:x", for=10.0.0.2',
        b"for=127.0.0.1;for=127.0.0.2, for=10.0.0.2",
        b'for=127.0.0.1;proto="https, for=10.0.0.2',
        b"for=127.0.0.1 , ; , for=10.0.0.2",
    ],
)
async def test_obfuscated_or_invalid_forwarded_hop_gives_no_client_not_a_left_hop(
    value: bytes,
) -> None:
    result = await view([(b"forwarded", value)], headers="forwarded")
    assert result["client"] is None
    assert result["scheme"] == "http"
    assert result["host"] == "internal:8000"


@pytest.mark.parametrize(
    "value",
    [b"unknown, 10.0.0.2", b"127.0.0.1 x, 10.0.0.2", b"_hidden, 10.0.0.2", b", 10.0.0.2"],
)
async def test_obfuscated_or_invalid_x_forwarded_hop_gives_no_client_not_a_left_hop(
    value: bytes,
) -> None:
    result = await view([(b"x-forwarded-for", b"127.0.0.1, " + value)])
    assert result["client"] is None


@pytest.mark.parametrize("family", ["X-Forwarded", "both", "", "x_forwarded", "rfc7239"])
def test_unknown_header_family_is_refused_when_built(family: str) -> None:
    with pytest.raises(ValueError, match="'x-forwarded' or 'forwarded'"):
        proxy_headers(record, headers=family)  # type: ignore[arg-type]


def spoofing_stack(inner: Any, family: str = "x-forwarded") -> Any:
    from asgikit.middleware.https_redirect import https_redirect
    from asgikit.middleware.trusted_host import trusted_host

    return proxy_headers(
        trusted_host(https_redirect(inner), allowed_hosts=["shop.example"]),
        trusted_hosts=["10.0.0.1"],
        headers=family,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("family", "spoofed", "honest"),
    [
        (
            "x-forwarded",
            (b"forwarded", b"proto=https;host=shop.example"),
            [(b"x-forwarded-proto", b"http"), (b"x-forwarded-host", b"evil.example")],
        ),
        (
            "forwarded",
            (b"x-forwarded-proto", b"https"),
            [(b"forwarded", b"for=198.51.100.7;proto=http;host=shop.example")],
        ),
    ],
)
async def test_https_redirect_and_trusted_host_are_not_bypassed_through_the_other_family(
    family: str, spoofed: tuple[bytes, bytes], honest: list[tuple[bytes, bytes]]
) -> None:
    scope = make_scope(
        headers=[(b"host", b"internal:8000"), spoofed, *honest], client=("10.0.0.1", 4000)
    )
    sent = await run_app(spoofing_stack(record, family), scope)
    if family == "x-forwarded":
        assert sent.status == 400  # the host the balancer vouches for is not allowed
    else:
        assert sent.status == 307
        assert sent.header(b"location") == [b"https://shop.example/"]


async def test_client_written_x_forwarded_host_is_ignored_unless_the_balancer_sets_it() -> None:
    # nginx as the README sets it up sets Host, X-Forwarded-For and -Proto, and
    # passes a client's X-Forwarded-Host and -Port through.
    spoofed = [(b"x-forwarded-host", b"admin.internal"), (b"x-forwarded-port", b"8443")]
    honest = [(b"x-forwarded-for", b"198.51.100.7"), (b"x-forwarded-proto", b"https")]
    result = await view([*spoofed, *honest])
    assert result == {"client": ["198.51.100.7", 0], "scheme": "https", "host": "internal:8000"}
    assert await seen_headers([*spoofed, *honest]) == honest


@pytest.mark.parametrize("family", ["x-forwarded", "forwarded"])
async def test_duplicate_host_headers_are_refused(family: str) -> None:
    scope = make_scope(
        headers=[(b"host", b"shop.example"), (b"Host", b"admin.internal")],
        client=("10.0.0.1", 4000),
    )
    app = proxy_headers(record, trusted_hosts=["10.0.0.1"], headers=family)  # type: ignore[arg-type]
    assert (await run_app(app, scope)).status == 400


def test_client_written_forwarded_header_is_ignored_under_uvicorn() -> None:
    app = proxy_headers(record, trusted_hosts=["127.0.0.1"])
    with serve(app, lifespan="off", proxy_headers=False) as base:
        response = httpx.get(
            base,
            headers={
                "forwarded": "for=10.66.66.66;proto=https;host=admin.internal",
                "x-forwarded-host": "admin.internal",
                "x-forwarded-for": "203.0.113.5",
            },
        )
    body = response.json()
    assert body["client"] == ["203.0.113.5", 0]
    assert body["scheme"] == "http"
    assert body["host"] != "admin.internal"

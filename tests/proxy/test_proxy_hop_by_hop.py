"""The proxy's header rules: hop-by-hop removal (RFC 9110 §7.6.1) and forwarding headers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asgikit import JSONResponse, Request, Response, route, router
from asgikit.proxy import reverse_proxy
from asgikit.proxy._headers import (
    HOP_BY_HOP,
    drop_hop_by_hop,
    forwarded_element,
    forwarded_node,
    upstream_request_headers,
)
from asgikit.testing import TestClient
from tests.conftest import make_scope
from tests.servers.live import serve

HOP_NAMES = sorted(name.decode() for name in HOP_BY_HOP)


# -- hop-by-hop --------------------------------------------------------------


def test_hop_by_hop_and_connection_listed_fields_are_dropped_in_order() -> None:
    headers = [
        (b"Connection", b"keep-alive, X-Private ,x-other"),
        (b"Set-Cookie", b"a=1"),
        (b"Keep-Alive", b"timeout=5"),
        (b"x-private", b"secret"),
        (b"Transfer-Encoding", b"chunked"),
        (b"X-Other", b"o"),
        (b"set-cookie", b"b=2"),
        (b"upgrade", b"h2c"),
        (b"x-end", b"kept"),
    ]
    assert drop_hop_by_hop(headers) == [
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
        (b"x-end", b"kept"),
    ]


def test_connection_cannot_strip_the_host_or_the_forwarding_trail() -> None:
    headers = [
        (b"connection", b"host, x-forwarded-for, forwarded, content-length"),
        (b"host", b"example.com"),
        (b"x-forwarded-for", b"192.0.2.1"),
        (b"forwarded", b"for=192.0.2.1"),
        (b"content-length", b"3"),
    ]
    assert drop_hop_by_hop(headers) == headers[1:]


hop_name = st.sampled_from(HOP_NAMES).map(
    lambda name: "".join(c.upper() if i % 2 else c for i, c in enumerate(name))
)
other_name = st.from_regex(r"x-[a-z0-9]{1,8}", fullmatch=True)
value = st.from_regex(r"[!-~]([ !-~]{0,20}[!-~])?", fullmatch=True)


@st.composite
def header_sets(draw: st.DrawFn) -> tuple[list[tuple[str, str]], set[str]]:
    """Random headers, some hop-by-hop, and a ``Connection`` listing some of the others."""
    others = draw(st.lists(other_name, min_size=1, max_size=8, unique=True))
    pairs = draw(st.lists(st.tuples(st.one_of(hop_name, st.sampled_from(others)), value)))
    listed = draw(st.lists(st.sampled_from(others), max_size=3))
    if listed:
        position = draw(st.integers(0, len(pairs)))
        pairs.insert(position, ("Connection", " , ".join(listed)))
    # Every name any Connection header lists (hop_name can draw one too).
    named = {
        token.strip().lower()
        for name, val in pairs
        if name.lower() == "connection"
        for token in val.split(",")
    }
    return pairs, named


@given(header_sets())
def test_hypothesis_hop_by_hop_always_removed_everything_else_kept(
    case: tuple[list[tuple[str, str]], set[str]],
) -> None:
    pairs, listed = case
    raw = [(name.encode(), val.encode()) for name, val in pairs]
    expected = [
        (name.lower().encode(), val.encode())
        for name, val in pairs
        if name.lower() not in HOP_NAMES and name.lower() not in listed
    ]
    assert drop_hop_by_hop(raw) == expected


# -- Forwarded nodes and elements (RFC 7239) ---------------------------------


@pytest.mark.parametrize(
    ("host", "port", "node"),
    [
        ("192.0.2.43", None, "192.0.2.43"),
        ("2001:DB8::1", None, "[2001:db8::1]"),
        ("2001:db8::1", 8080, "[2001:db8::1]:8080"),
        ("192.0.2.43", "_port", "192.0.2.43:_port"),
        ("_hidden", None, "_hidden"),
        ("unknown", None, "unknown"),
        (None, None, "unknown"),
        ("/run/app.sock", None, "unknown"),
        ("testclient", None, "unknown"),
        ("192.0.2.43", "bad port", "192.0.2.43"),
        ("192.0.2.43", 70000, "192.0.2.43"),
    ],
)
def test_forwarded_node(host: str | None, port: int | str | None, node: str) -> None:
    assert forwarded_node(host, port) == node


def test_forwarded_element_quotes_what_is_not_a_token() -> None:
    element = forwarded_element(
        for_=forwarded_node("2001:db8::1"), host="example.com:8443", proto="https"
    )
    assert element == 'for="[2001:db8::1]";host="example.com:8443";proto=https'
    assert forwarded_element(for_="_x", by="unknown") == "by=unknown;for=_x"
    assert forwarded_element(host='a"b\\c') == 'host="a\\"b\\\\c"'


# -- the request target -------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "raw_path", "root_path", "query", "target"),
    [
        ("/api/a/b", b"/api/a%2Fb", "/api", b"x=%20", "/base/a%2Fb?x=%20"),
        ("/api", b"/api", "/api", b"", "/base/"),
        ("/%61pi/x", b"/%2561pi/x", "/%61pi", b"", "/base/x"),
        ("/api/caf\u00e9", b"/api/caf\xc3\xa9", "/api", b"q=\xff#", "/base/caf%C3%A9?q=%FF%23"),
        ("/api/rewritten", b"/api/original", "/api", b"", "/base/rewritten"),
        ("/old-style", b"/old-style", "/api", b"", "/base/old-style"),
    ],
)
def test_upstream_target(
    path: str, raw_path: bytes, root_path: str, query: bytes, target: str
) -> None:
    proxy: Any = reverse_proxy("http://backend/base/")
    scope = make_scope(path=path, raw_path=raw_path, root_path=root_path, query_string=query)
    assert proxy.options.target(scope) == target


# -- the request headers sent upstream ---------------------------------------


def upstream_headers(**options: Any) -> list[tuple[bytes, bytes]]:
    scope = make_scope(
        headers=[
            (b"host", b"public.example"),
            (b"x-forwarded-for", b"198.51.100.1"),
            (b"x-forwarded-for", b"198.51.100.2"),
            (b"x-forwarded-proto", b"spoofed"),
            (b"forwarded", b"for=198.51.100.1"),
            (b"accept", b"*/*"),
        ],
        scheme="https",
        client=("2001:db8::7", 5000),
    )
    settings_ = {"preserve_host": False, "add_forwarded": True, **options}
    return upstream_request_headers(scope, b"backend:8000", **settings_)


def test_forwarding_headers_are_appended_or_replaced() -> None:
    assert upstream_headers() == [
        (b"host", b"backend:8000"),
        (b"accept", b"*/*"),
        (b"x-forwarded-for", b"198.51.100.1, 198.51.100.2, 2001:db8::7"),
        (b"x-real-ip", b"2001:db8::7"),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-host", b"public.example"),
        (b"x-forwarded-port", b"80"),
        (b"forwarded", b'for=198.51.100.1, for="[2001:db8::7]";host=public.example;proto=https'),
    ]


def test_preserve_host_and_no_forwarding_headers() -> None:
    headers = upstream_headers(preserve_host=True, add_forwarded=False)
    assert headers[0] == (b"host", b"public.example")
    assert (b"x-forwarded-proto", b"spoofed") in headers  # untouched, not ours to judge
    assert not any(name == b"x-forwarded-host" for name, _ in headers)


def test_an_invalid_host_is_not_forwarded() -> None:
    scope = make_scope(headers=[(b"host", b"bad host/path")])
    headers = upstream_request_headers(scope, b"up", preserve_host=False, add_forwarded=True)
    assert not any(name == b"x-forwarded-host" for name, _ in headers)
    assert (b"forwarded", b"for=127.0.0.1;proto=http") in headers


# -- end to end: arbitrary headers through a proxy to a real upstream ---------


async def echo_headers(request: Request) -> Response:
    pairs = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.scope["headers"]]
    return JSONResponse(pairs)


@pytest.fixture(scope="module")
def proxy_client() -> Iterator[TestClient]:
    with (
        serve(router(route("/", echo_headers))) as upstream,
        TestClient(reverse_proxy(upstream, add_forwarded=False)) as client,
    ):
        yield client


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(header_sets())
def test_hypothesis_through_the_proxy(
    proxy_client: TestClient, case: tuple[list[tuple[str, str]], set[str]]
) -> None:
    pairs, listed = case
    seen = proxy_client.get("/", headers=pairs).json()
    names = {name for name, _ in seen}
    assert not names & set(HOP_NAMES)
    assert not names & listed
    expected = [
        [name.lower(), val]
        for name, val in pairs
        if name.lower() not in HOP_NAMES and name.lower() not in listed
    ]
    assert [pair for pair in seen if pair[0].startswith("x-")] == expected

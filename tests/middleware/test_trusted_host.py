"""trusted_host: exact and *.domain patterns; 400 for every other Host; www redirect."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asgikit.middleware.trusted_host import trusted_host
from asgikit.responses import PlainTextResponse
from asgikit.testing import TestClient
from asgikit.types import Receive, Scope, Send
from tests.conftest import make_scope, run_app
from tests.servers.live import serve


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("hello")(scope, receive, send)


def status_for(host: bytes | None, **options: object) -> int:
    app = trusted_host(hello, **{"allowed_hosts": ["example.com", "*.example.org"], **options})  # type: ignore[arg-type]
    headers = [] if host is None else [(b"host", host)]
    import anyio

    async def go() -> int:
        return (await run_app(app, make_scope(headers=headers))).status

    return anyio.run(go)


@pytest.mark.parametrize(
    "host",
    [
        b"example.com",
        b"EXAMPLE.com",
        b"example.com:8000",
        b"example.com.",
        b"a.example.org",
        b"a.b.example.org:443",
    ],
)
def test_allowed_hosts_pass(host: bytes) -> None:
    assert status_for(host) == 200


@pytest.mark.parametrize(
    "host",
    [
        b"example.com.evil.com",
        b"evil.com",
        b"",
        None,
        b"example.org",
        b"evilexample.org",
        b"sub.example.com",
        b"example.com:abc",
        b"exa mple.com",
        b"example.com@evil.com",
        b"[::1]",
        b"\xff",
    ],
)
def test_other_hosts_get_400(host: bytes | None) -> None:
    assert status_for(host) == 400


def test_star_allows_any_host() -> None:
    assert status_for(b"anything.test", allowed_hosts=["*"]) == 200


def test_www_redirect_keeps_path_query_and_port() -> None:
    app = trusted_host(hello, allowed_hosts=["www.example.com"])
    client = TestClient(app, base_url="http://example.com:8080", follow_redirects=False)
    response = client.get("/a/b?x=1")
    assert response.status_code == 307
    assert response.headers["location"] == "http://www.example.com:8080/a/b?x=1"
    no_redirect = trusted_host(hello, allowed_hosts=["www.example.com"], www_redirect=False)
    assert TestClient(no_redirect, base_url="http://example.com").get("/").status_code == 400


def test_invalid_patterns_are_refused_when_built() -> None:
    with pytest.raises(TypeError):
        trusted_host(hello, allowed_hosts="example.com")  # type: ignore[arg-type]
    for pattern in ["example.com:80", "ex*ample.com", "*.", "*..", "a b", "*.a:1"]:
        with pytest.raises(ValueError, match="pattern"):
            trusted_host(hello, allowed_hosts=[pattern])


async def test_websocket_handshake_with_bad_host_is_refused() -> None:
    app = trusted_host(hello, allowed_hosts=["example.com"])
    sent = await run_app(app, make_scope(type="websocket", headers=[(b"host", b"evil.com")]))
    assert sent.messages == [{"type": "websocket.close", "code": 1008}]


async def test_excluded_path_skips_the_check() -> None:
    app = trusted_host(hello, allowed_hosts=["example.com"], exclude=["/health"])
    sent = await run_app(app, make_scope(path="/health", headers=[(b"host", b"10.0.0.7")]))
    assert sent.status == 200


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=60))
async def test_any_host_bytes_give_200_or_400(host: bytes) -> None:
    app = trusted_host(hello, allowed_hosts=["example.com", "*.example.org"])
    sent = await run_app(app, make_scope(headers=[(b"host", host)]))
    assert sent.status in (200, 400)


def test_through_uvicorn_with_httpx() -> None:
    with serve(trusted_host(hello, allowed_hosts=["127.0.0.1"]), lifespan="off") as base:
        assert httpx.get(base).status_code == 200
        assert httpx.get(base, headers={"host": "evil.com"}).status_code == 400


@pytest.mark.parametrize(
    "hosts",
    [
        [b"example.com", b"evil.com"],
        [b"evil.com", b"example.com"],
        [b"example.com", b"example.com"],
    ],
)
async def test_duplicate_host_headers_are_answered_400(hosts: list[bytes]) -> None:
    # RFC 9112 §3.2: a gateway and its upstream must never pick different ones.
    app = trusted_host(hello, allowed_hosts=["example.com"])
    headers = [(b"host", hosts[0]), (b"Host", hosts[1])]
    assert (await run_app(app, make_scope(headers=headers))).status == 400
    star = trusted_host(hello, allowed_hosts=["*"])
    assert (await run_app(star, make_scope(headers=headers))).status == 400


@pytest.mark.parametrize(
    "host", [b"example.com:65536", b"example.com:99999", b"example.com:1\xc2\xb2"]
)
async def test_port_out_of_range_is_answered_400(host: bytes) -> None:
    app = trusted_host(hello, allowed_hosts=["example.com"])
    assert (await run_app(app, make_scope(headers=[(b"host", host)]))).status == 400

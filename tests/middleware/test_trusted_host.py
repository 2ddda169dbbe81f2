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


# -- Parity with Starlette's tests/middleware/test_trusted_host.py ------------
# Deliberate differences: allowed_hosts has no default (Starlette: ["*"]);
# a port past 65535 is a malformed Host (400; Starlette ignores the port);
# IPvFuture literals ("[v1.foo]") are refused as patterns and as hosts; two
# Host headers are answered 400.


def test_subdomain_pattern_and_exact_name_through_the_test_client() -> None:
    app = trusted_host(hello, allowed_hosts=["testserver", "*.testserver"])
    assert TestClient(app).get("/").status_code == 200
    assert TestClient(app, base_url="http://subdomain.testserver").get("/").status_code == 200
    assert TestClient(app, base_url="http://invalidhost").get("/").status_code == 400


@pytest.mark.parametrize(
    ("host", "status"),
    [
        (b"[::1]", 200),
        (b"[::1]:8000", 200),
        (b"[:::]", 400),
        (b"[::ffff:999.999.999.999]", 400),
        (b"[2001:db8::1]", 400),
        (b"[::1", 400),
        (b"[::1]evil.example.com", 400),
        (b"[::1]@attacker", 400),
        (b"[::1].", 400),
        (b"[::1]:evil", 400),
        (b"[::1]:", 400),
        (b"[v1.foo]", 400),
        (b"api_service", 200),
        (b"api_service:000080", 200),
        (b"api_service:65535", 200),
        (b"api_service:65536", 400),
        (b"api_service:100000", 400),
        (b"api_service:", 400),
        (b"api_service:8000", 200),
        (b"api_service/evil", 400),
        (b"api_service?evil", 400),
        (b"api_service#evil", 400),
        (b"api_service@attacker", 400),
        (b"api service", 400),
    ],
)
async def test_ip_literals_ports_and_delimiters(host: bytes, status: int) -> None:
    app = trusted_host(hello, allowed_hosts=["[::1]", "api_service", "*.example.com"])
    assert (await run_app(app, make_scope(headers=[(b"host", host)]))).status == status


def test_allowed_hosts_is_required_and_ipvfuture_patterns_are_refused() -> None:
    with pytest.raises(TypeError):
        trusted_host(hello)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="pattern"):
        trusted_host(hello, allowed_hosts=["[v1.foo]"])


def test_www_redirect_is_followed_to_the_allowed_name() -> None:
    client = TestClient(
        trusted_host(hello, allowed_hosts=["www.example.com"]), base_url="https://example.com"
    )
    response = client.get("/")
    assert response.status_code == 200
    assert str(response.url) == "https://www.example.com/"


async def test_patterns_and_hosts_compare_without_case() -> None:
    app = trusted_host(hello, allowed_hosts=["Example.com", "*.Example.ORG"])
    for host in (b"example.COM", b"a.EXAMPLE.org"):
        assert (await run_app(app, make_scope(headers=[(b"host", host)]))).status == 200

"""host(): patterns with ports and capitals, case-insensitive names, numeric ports.

Parity with Starlette's host tests in ``tests/test_routing.py``.  Deliberate
differences: a pattern with a port (``api.example.org:8443``) matches only
that port (compared as a number; no port in Host means the scheme's
default), where Starlette ignores the port of the pattern; a Host whose port
is not a valid TCP port (``:evil``, ``:65536``) never matches, where
Starlette ignores a port past 65535; ``url_path_for`` through a host gives
the path only (an asgikit reverse URL is a path, never an absolute URL);
IPvFuture literals (``[v1.foo]``) are not valid hosts.
"""

from __future__ import annotations

import pytest

from asgikit.requests import Request
from asgikit.responses import PlainTextResponse, Response
from asgikit.routing import host, route, router, url_path_for
from asgikit.testing import TestClient
from asgikit.types import Receive, Scope, Send
from tests.conftest import make_scope, run_app


async def sub(request: Request) -> Response:
    return PlainTextResponse(str(request.path_params.get("sub", "-")))


def reply(text: str) -> object:
    async def endpoint(request: Request) -> Response:
        return PlainTextResponse(text)

    endpoint.__name__ = text
    return endpoint


def mixed_hosts() -> object:
    return router(
        host("www.example.org", router(route("/", reply("home")), route("/users", reply("all")))),
        host("api.example.org", router(route("/users", reply("api users"))), name="api"),
        host("Port.Example.org:3600", router(route("/", reply("port home"))), name="port"),
        host("{sub}.Example.org", router(route("/", sub))),
    )


async def status_and_text(app: object, host_value: bytes, scheme: str = "http") -> tuple[int, str]:
    scope = make_scope(headers=[(b"host", host_value)], scheme=scheme)
    sent = await run_app(app, scope)  # type: ignore[arg-type]
    return sent.status, sent.body.decode()


@pytest.mark.parametrize(
    ("host_value", "scheme", "expected"),
    [
        (b"port.example.org:3600", "http", "port home"),
        (b"PORT.example.ORG:3600", "http", "port home"),
        (b"port.example.org:03600", "http", "port home"),
        (b"www.example.org", "http", "home"),
        (b"WWW.Example.Org:8080", "http", "home"),
        (b"Shop.example.ORG", "http", "shop"),
    ],
)
async def test_pattern_with_port_or_capitals_matches(
    host_value: bytes, scheme: str, expected: str
) -> None:
    assert await status_and_text(mixed_hosts(), host_value, scheme) == (200, expected)


@pytest.mark.parametrize(
    "host_value", [b"port.example.org:5600", b"port.example.org", b"port.example.org:36000"]
)
async def test_pattern_with_port_does_not_match_another_port(host_value: bytes) -> None:
    # Falls through to "{sub}.Example.org" (which ignores the port): not the port app.
    assert await status_and_text(mixed_hosts(), host_value) == (200, "port")


async def test_pattern_port_443_matches_an_https_host_without_port() -> None:
    app = router(host("secure.example.org:443", router(route("/", reply("secure")))))
    assert await status_and_text(app, b"secure.example.org", "https") == (200, "secure")
    assert (await status_and_text(app, b"secure.example.org", "http"))[0] == 404


@pytest.mark.parametrize(
    "host_value",
    [
        b"api.example.org:evil",
        b"api.example.org:65536",
        b"api.example.org:100000",
        b"api.example.org:-1",
        b"api.example.org:8080:80",
        b"[:::]",
        b"api.example.org/x",
        b"api.example.org@evil",
        b"",
    ],
)
async def test_host_with_an_invalid_port_or_form_never_matches(host_value: bytes) -> None:
    app = router(
        host("api.example.org", router(route("/", reply("api")))),
        host("{sub}.example.org", router(route("/", sub))),
    )
    assert (await status_and_text(app, host_value))[0] == 404


async def test_missing_host_never_matches() -> None:
    app = router(host("{sub}.example.org", router(route("/", sub))))
    assert (await run_app(app, make_scope(headers=[]))).status == 404


async def test_host_port_with_leading_zeros_matches_a_pattern_without_port() -> None:
    app = router(host("api.example.org", router(route("/", reply("api")))))
    assert await status_and_text(app, b"api.example.org:000080") == (200, "api")


async def test_ip_literal_patterns() -> None:
    app = router(
        host("[::1]", PlainTextResponse("loopback")),
        host("[2001:DB8::1]", PlainTextResponse("documentation")),
        host("127.0.0.1:8000", PlainTextResponse("v4")),
    )
    assert await status_and_text(app, b"[::1]:8000") == (200, "loopback")
    assert await status_and_text(app, b"[2001:db8::1]") == (200, "documentation")
    assert await status_and_text(app, b"127.0.0.1:8000") == (200, "v4")


def test_host_routing_through_the_test_client() -> None:
    client = TestClient(mixed_hosts(), base_url="https://api.example.org")
    assert client.get("/users").text == "api users"
    assert client.get("/").status_code == 404  # the api host has no "/"
    client = TestClient(mixed_hosts(), base_url="https://port.example.org:3600")
    assert client.get("/").text == "port home"
    assert client.get("/users").status_code == 404


@pytest.mark.parametrize(
    "pattern", ["api.example.org:evil", "api.example.org:65536", "a:1:2", "api.example.org:"]
)
def test_invalid_host_pattern_is_refused_when_built(pattern: str) -> None:
    with pytest.raises(ValueError, match="host pattern"):
        router(host(pattern, router()))


async def test_reverse_url_through_a_host_is_the_path() -> None:
    found: list[str] = []

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        found.append(url_path_for(scope, "api:users"))
        found.append(url_path_for(scope, "port:port home"))
        await PlainTextResponse("")(scope, receive, send)

    app = router(
        route("/", endpoint),
        host("api.example.org", router(route("/users", reply("users"))), name="api"),
        host("port.example.org:3600", router(route("/", reply("port home"))), name="port"),
    )
    await run_app(app, make_scope(headers=[(b"host", b"x")]))
    assert found == ["/users", "/"]


def test_a_host_entry_matches_by_the_same_rule_as_the_router() -> None:
    from asgikit.routes import Host

    entry = Host("API.example.org:8443", PlainTextResponse("x"))
    scope = {"type": "http", "scheme": "https", "headers": [(b"host", b"api.EXAMPLE.org:08443")]}
    assert entry.match_host(scope) == {}
    scope["headers"] = [(b"host", b"api.example.org:evil")]
    assert entry.match_host(scope) is None

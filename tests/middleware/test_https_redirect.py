"""https_redirect: http -> https and ws -> wss, same host, path and query."""

from __future__ import annotations

import httpx
import pytest

from asgikit.middleware.https_redirect import https_redirect
from asgikit.responses import PlainTextResponse
from asgikit.testing import TestClient
from asgikit.types import Receive, Scope, Send
from tests.conftest import make_scope, run_app
from tests.servers.live import serve


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("hello")(scope, receive, send)


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("http://example.com", "https://example.com/p/a%20th?q=1&r=2"),
        ("http://example.com:80", "https://example.com/p/a%20th?q=1&r=2"),
        ("http://example.com:8080", "https://example.com:8080/p/a%20th?q=1&r=2"),
    ],
)
def test_http_redirects_to_https_keeping_host_path_and_query(base: str, expected: str) -> None:
    client = TestClient(https_redirect(hello), base_url=base, follow_redirects=False)
    response = client.post("/p/a th?q=1&r=2")
    assert response.status_code == 307
    assert response.headers["location"] == expected


def test_https_requests_reach_the_app_and_308_by_option() -> None:
    assert (
        TestClient(https_redirect(hello), base_url="https://example.com").get("/").text == "hello"
    )
    client = TestClient(
        https_redirect(hello, status_code=308),
        base_url="http://example.com",
        follow_redirects=False,
    )
    assert client.get("/").status_code == 308
    with pytest.raises(ValueError, match="redirect"):
        https_redirect(hello, status_code=200)


async def test_websocket_redirects_to_wss_through_the_http_response_extension() -> None:
    scope = make_scope(
        type="websocket",
        scheme="ws",
        path="/chat",
        query_string=b"room=1",
        headers=[(b"host", b"example.com")],
        extensions={"websocket.http.response": {}},
    )
    sent = await run_app(https_redirect(hello), scope)
    start = sent.messages[0]
    assert start["type"] == "websocket.http.response.start"
    assert (b"location", b"wss://example.com/chat?room=1") in start["headers"]


async def test_excluded_and_lifespan_scopes_pass_through() -> None:
    sent = await run_app(https_redirect(hello, exclude=["/health"]), make_scope(path="/health"))
    assert sent.status == 200
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    await https_redirect(app)({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert seen == ["lifespan"]


def test_through_uvicorn_with_httpx() -> None:
    with serve(https_redirect(hello), lifespan="off") as base:
        response = httpx.get(base + "/x?y=1", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == base.replace("http://", "https://") + "/x?y=1"


@pytest.mark.parametrize(
    "hosts",
    [
        [b"example.com", b"evil.example"],
        [b"example.com", b"example.com"],
        [b"example.com:65536"],
        [b"example.com:99999"],
        [b"example.com:evil"],
        [b"evil.example/x"],
    ],
)
async def test_duplicate_or_invalid_host_is_answered_400_not_redirected(
    hosts: list[bytes],
) -> None:
    scope = make_scope(headers=[(b"host", h) for h in hosts])
    sent = await run_app(https_redirect(hello), scope)
    assert sent.status == 400
    assert sent.header(b"location") == []


async def test_no_host_and_no_server_address_is_answered_400_not_sent_to_localhost() -> None:
    scope = make_scope(headers=[])
    del scope["server"]
    sent = await run_app(https_redirect(hello), scope)
    assert sent.status == 400


async def test_no_host_redirects_to_the_server_address() -> None:
    # An HTTP/1.0 client may send no Host: the server's own address is all there is.
    scope = make_scope(headers=[], server=("192.0.2.8", 8080))
    sent = await run_app(https_redirect(hello), scope)
    assert sent.status == 307
    assert sent.header(b"location") == [b"https://192.0.2.8:8080/"]


async def test_highest_port_is_kept() -> None:
    scope = make_scope(headers=[(b"host", b"example.com:65535")])
    sent = await run_app(https_redirect(hello), scope)
    assert sent.header(b"location") == [b"https://example.com:65535/"]


# -- Parity with Starlette's tests/middleware/test_https_redirect.py ----------
# Deliberate difference: a malformed Host (a port past 65535, "[:::]") is
# answered 400 even when the server's address is known, where Starlette
# redirects to the server's address (the address a proxy connects to, not the
# one the client asked for); without a server address both answer 400.


@pytest.mark.parametrize(
    ("base", "host", "location"),
    [
        ("http://testserver", None, "https://testserver/"),
        ("http://testserver:80", None, "https://testserver/"),
        ("http://testserver:443", None, "https://testserver/"),
        ("http://testserver:123", None, "https://testserver:123/"),
        ("http://testserver", "testserver:000080", "https://testserver/"),
        ("http://[::1]", None, "https://[::1]/"),
        ("http://[::1]:8443", None, "https://[::1]:8443/"),
    ],
)
def test_redirect_locations(base: str, host: str | None, location: str) -> None:
    client = TestClient(https_redirect(hello), base_url=base, follow_redirects=False)
    response = client.get("/", headers={"host": host} if host else None)
    assert response.status_code == 307
    assert response.headers["location"] == location


@pytest.mark.parametrize("host", ["testserver:65536", "[:::]"])
@pytest.mark.parametrize("server", [True, False])
def test_malformed_host_is_400_with_or_without_server(host: str, server: bool) -> None:
    inner = https_redirect(hello)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if not server:
            scope.pop("server", None)
        await inner(scope, receive, send)

    response = TestClient(app, follow_redirects=False).get("/", headers={"host": host})
    assert response.status_code == 400
    assert response.text == "Invalid host header"

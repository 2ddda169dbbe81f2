"""Attacks on the URLs asgikit builds: https_redirect's Location and url_path_for."""

from __future__ import annotations

from typing import Any

import pytest

from asgikit.middleware.https_redirect import https_redirect
from asgikit.requests import Request
from asgikit.responses import PlainTextResponse, Response
from asgikit.routing import route, router
from asgikit.types import Receive, Scope, Send
from tests.conftest import make_scope, run_app

pytestmark = pytest.mark.anyio


async def ok(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("ok")(scope, receive, send)


async def show(request: Request) -> Response:
    return PlainTextResponse("")


ROUTES = router(
    route("/u/{name}/settings", show, name="settings"),
    route("/files/{rest:path}", show, name="files"),
)


# -- holes found by this review ---------------------------------------------


@pytest.mark.parametrize("value", ["..", "."])
def test_a_dot_segment_value_is_refused_by_the_str_convertor(value: str) -> None:
    # Browsers resolve "." and ".." (and %2e spellings) in a URL's path, so
    # "/u/../settings" would lead to "/settings": another route, chosen by
    # whoever picked the value (a user name, say).
    with pytest.raises(ValueError, match="dot segment"):
        ROUTES.url_path_for("settings", name=value)


@pytest.mark.parametrize("value", ["..", "a/../b", "a/..", "./a", "a/./b", "../../admin"])
def test_a_dot_segment_value_is_refused_by_the_path_convertor(value: str) -> None:
    with pytest.raises(ValueError, match="dot segment"):
        ROUTES.url_path_for("files", rest=value)


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("settings", {"name": "..."}, "/u/.../settings"),
        ("settings", {"name": ".hidden"}, "/u/.hidden/settings"),
        ("settings", {"name": "%2e%2e"}, "/u/%252e%252e/settings"),
        ("settings", {"name": "a b?#"}, "/u/a%20b%3F%23/settings"),
        ("settings", {"name": "\r\nx"}, "/u/%0D%0Ax/settings"),
        ("files", {"rest": "a/..b/c."}, "/files/a/..b/c."),
        ("files", {"rest": "a\\..\\b"}, "/files/a%5C..%5Cb"),
        ("files", {"rest": "a/%2e%2e/b"}, "/files/a/%252e%252e/b"),
        ("files", {"rest": ""}, "/files/"),
    ],
)
def test_values_that_only_look_like_dot_segments_are_encoded(
    name: str, params: dict[str, Any], expected: str
) -> None:
    assert ROUTES.url_path_for(name, **params) == expected


# -- defences that hold ------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "query", "host", "location"),
    [
        ("//evil.example", b"", b"good", b"https://good//evil.example"),
        ("/\\evil.example", b"", b"good", b"https://good/%5Cevil.example"),
        ("/%2F%2Fevil", b"", b"good", b"https://good/%252F%252Fevil"),
        ("/\r\nSet-Cookie: a=b", b"", b"good", b"https://good/%0D%0ASet-Cookie:%20a=b"),
        ("/x", b"a=1\r\nSet-Cookie: b", b"good", b"https://good/x?a=1%0D%0ASet-Cookie:%20b"),
        ("/x", b"#frag", b"good", b"https://good/x?%23frag"),
        ("/x", b"", b"good:80", b"https://good/x"),
        ("/x", b"", b"good:8080", b"https://good:8080/x"),
        ("/x", b"", b"[::1]:80", b"https://[::1]/x"),
        ("/x", b"", b"GOOD.example", b"https://GOOD.example/x"),
    ],
)
async def test_https_redirect_location_stays_on_the_requested_host(
    path: str, query: bytes, host: bytes, location: bytes
) -> None:
    scope = make_scope(path=path, query_string=query, headers=[(b"host", host)])
    sent = await run_app(https_redirect(ok), scope)
    assert sent.status == 307
    assert sent.header(b"location") == [location]


@pytest.mark.parametrize(
    "headers",
    [
        [(b"host", b"evil@good")],
        [(b"host", b"good/evil")],
        [(b"host", b"good\\evil")],
        [(b"host", b"good:99999")],
        [(b"host", b"good:")],
        [(b"host", b"good"), (b"host", b"evil")],
        [(b"host", b"good"), (b"Host", b"evil")],
    ],
)
async def test_https_redirect_refuses_a_host_it_cannot_trust(
    headers: list[tuple[bytes, bytes]],
) -> None:
    sent = await run_app(https_redirect(ok), make_scope(headers=headers))
    assert sent.status == 400
    assert sent.header(b"location") == []


async def test_without_host_or_server_address_there_is_no_guessed_redirect() -> None:
    sent = await run_app(https_redirect(ok), make_scope(server=None))
    assert sent.status == 400


@pytest.mark.parametrize("scheme", ["https", "wss"])
async def test_secure_requests_pass(scheme: str) -> None:
    kind = "websocket" if scheme == "wss" else "http"
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    scope = make_scope(type=kind, scheme=scheme, headers=[(b"host", b"good")])
    await https_redirect(app)(scope, None, None)  # type: ignore[arg-type]
    assert len(seen) == 1

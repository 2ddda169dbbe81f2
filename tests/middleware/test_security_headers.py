"""security_headers: defaults, HSTS on https only, CSP by option, the app's own headers kept."""

from __future__ import annotations

import httpx
import pytest

from asgikit.middleware.security_headers import security_headers
from asgikit.responses import PlainTextResponse
from asgikit.testing import TestClient
from asgikit.types import Receive, Scope, Send
from tests.middleware._fast_send import messages_through
from tests.servers.live import serve


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("hello", headers={"x-frame-options": "SAMEORIGIN"})(
        scope, receive, send
    )


def test_defaults_are_added_and_the_apps_header_kept() -> None:
    response = TestClient(security_headers(hello)).get("/")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert response.headers["cross-origin-opener-policy"] == "same-origin"
    assert response.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert "strict-transport-security" not in response.headers
    assert "content-security-policy" not in response.headers


def test_hsts_only_over_https_and_csp_by_option() -> None:
    app = security_headers(
        hello,
        hsts_max_age=31536000,
        hsts_include_subdomains=True,
        content_security_policy="default-src 'self'",
        referrer_policy=None,
    )
    secure = TestClient(app, base_url="https://example.com").get("/")
    assert secure.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    assert secure.headers["content-security-policy"] == "default-src 'self'"
    assert "referrer-policy" not in secure.headers
    plain = TestClient(app).get("/")
    assert "strict-transport-security" not in plain.headers


def test_bad_values_are_refused_when_built() -> None:
    with pytest.raises(ValueError):
        security_headers(hello, content_security_policy="a\r\nSet-Cookie: x=1")
    with pytest.raises(ValueError, match="hsts_max_age"):
        security_headers(hello, hsts_preload=True)


def test_excluded_path_gets_nothing() -> None:
    response = TestClient(security_headers(hello, exclude=["/embed"])).get("/embed")
    assert "x-content-type-options" not in response.headers


def test_through_uvicorn_with_httpx() -> None:
    with serve(security_headers(hello), lifespan="off") as base:
        assert httpx.get(base).headers["x-content-type-options"] == "nosniff"


async def test_an_app_header_with_upper_case_letters_is_kept_and_not_doubled() -> None:
    from tests.conftest import make_scope, run_app

    async def shouting(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"X-Frame-Options", b"SAMEORIGIN"), (b"Content-Type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"hi"})

    sent = await run_app(security_headers(shouting), make_scope())
    names = [name.lower() for name, _ in sent.start["headers"]]
    assert names.count(b"x-frame-options") == 1
    assert (b"X-Frame-Options", b"SAMEORIGIN") in sent.start["headers"]
    assert b"x-content-type-options" in names


async def test_the_apps_send_hands_back_the_servers_awaitable_and_copies_the_start() -> None:
    sent = await messages_through(security_headers)
    names = [name for name, _ in sent[0]["headers"]]
    assert names[:2] == [b"content-type", b"x-content-type-options"]
    assert len(names) == 5

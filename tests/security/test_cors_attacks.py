"""Attacks on cors: origins that must not be allowed, and headers that must not leak."""

from __future__ import annotations

import pytest

from asgikit.middleware.cors import cors
from asgikit.types import Receive, Scope, Send
from tests.conftest import make_scope, run_app

pytestmark = pytest.mark.anyio

GOOD = b"https://good.example"


async def echoing_upstream(scope: Scope, receive: Receive, send: Send) -> None:
    """An app (or an upstream behind reverse_proxy) with its own, lax, CORS headers."""
    origin = next((v for k, v in scope["headers"] if k == b"origin"), b"*")
    headers = [
        (b"access-control-allow-origin", origin),
        (b"access-control-allow-credentials", b"true"),
        (b"access-control-expose-headers", b"x-secret"),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"private"})


def layer(**options: object) -> object:
    options.setdefault("allow_origins", [GOOD.decode()])
    return cors(echoing_upstream, allow_credentials=True, **options)  # type: ignore[arg-type]


CORS_NAMES = {
    b"access-control-allow-origin",
    b"access-control-allow-credentials",
    b"access-control-expose-headers",
}


async def test_a_refused_origin_gets_none_of_the_apps_own_cors_headers() -> None:
    # cors in front of an upstream is the gateway's policy: an upstream that
    # echoes every origin with credentials must not open it to evil.example.
    sent = await run_app(layer(), make_scope(headers=[(b"origin", b"https://evil.example")]))
    assert sent.status == 200
    assert not CORS_NAMES & {k for k, _ in sent.headers}
    assert sent.header(b"vary") == [b"Origin"]


async def test_a_regex_refused_origin_gets_none_of_the_apps_own_cors_headers() -> None:
    app = layer(allow_origin_regex=r"https://[a-z]+\.good\.example")
    for origin in (b"https://evil.example", b"https://a.good.example.evil.example", b"null"):
        sent = await run_app(app, make_scope(headers=[(b"origin", origin)]))
        assert not CORS_NAMES & {k for k, _ in sent.headers}, origin
    sent = await run_app(app, make_scope(headers=[(b"origin", b"https://a.good.example")]))
    assert sent.header(b"access-control-allow-origin") == [b"https://a.good.example"]


async def test_an_allowed_origin_gets_the_layers_headers_not_the_apps() -> None:
    sent = await run_app(layer(), make_scope(headers=[(b"origin", GOOD)]))
    assert sent.header(b"access-control-allow-origin") == [GOOD]
    assert sent.header(b"access-control-allow-credentials") == [b"true"]
    assert sent.header(b"access-control-expose-headers") == []


@pytest.mark.parametrize(
    "origin",
    [
        b"null",
        b"HTTPS://GOOD.EXAMPLE",  # browsers serialise lower-case: not this one
        b"https://good.example/",
        b"https://good.example:443",
        b"http://good.example",
        b"https://good.example.evil.example",
        b"https://evil.example/https://good.example",
        b"https://good.example\n",
        b" https://good.example",
        b"",
        b"*",
    ],
)
async def test_origins_that_are_not_the_listed_one_are_refused(origin: bytes) -> None:
    app = layer()
    simple = await run_app(app, make_scope(headers=[(b"origin", origin)]))
    assert simple.header(b"access-control-allow-origin") == []
    preflight = await run_app(
        app,
        make_scope(
            "OPTIONS", headers=[(b"origin", origin), (b"access-control-request-method", b"GET")]
        ),
    )
    assert preflight.status == 400


async def test_two_origin_headers_allow_neither() -> None:
    headers = [(b"origin", GOOD), (b"origin", b"https://evil.example")]
    sent = await run_app(layer(), make_scope(headers=headers))
    assert sent.header(b"access-control-allow-origin") == []


@pytest.mark.parametrize(
    ("requested", "status"),
    [
        (b"x-a", 200),
        (b"X-A, Content-Type", 200),
        (b"x-a," * 20_000, 200),  # a long list is one linear pass
        (b"x-b", 400),
        (b"x a", 400),
        (b"x-a\x00", 400),
        (b"x-a, x\r\nb", 400),
        (b"x-a;", 400),
    ],
)
async def test_preflight_request_headers(requested: bytes, status: int) -> None:
    app = cors(echoing_upstream, allow_origins=[GOOD.decode()], allow_headers=["x-a"])
    headers = [
        (b"origin", GOOD),
        (b"access-control-request-method", b"GET"),
        (b"access-control-request-headers", requested),
    ]
    assert (await run_app(app, make_scope("OPTIONS", headers=headers))).status == status


@pytest.mark.parametrize(
    ("method", "status"),
    [(b"GET", 200), (b"get", 400), (b"GET ", 400), (b"", 400), (b"G\x00T", 400), (b"PUT", 400)],
)
async def test_preflight_methods_are_exact_tokens(method: bytes, status: int) -> None:
    app = cors(echoing_upstream, allow_origins=[GOOD.decode()])
    headers = [(b"origin", GOOD), (b"access-control-request-method", method)]
    assert (await run_app(app, make_scope("OPTIONS", headers=headers))).status == status


def test_a_wildcard_with_credentials_is_refused_when_built() -> None:
    with pytest.raises(ValueError, match="allow_origin_regex"):
        cors(echoing_upstream, allow_origins=["*", "https://a.example"], allow_credentials=True)

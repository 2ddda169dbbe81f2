"""Every middleware as a drop-in inside Starlette, FastAPI and Litestar (and Django's handler).

Each framework gets the same small app (JSON data, a body echo, a session
read/write through the framework's own ``request.session``, a failing route,
a WebSocket) and one asgikit middleware the way that framework takes
middleware: Starlette's ``Middleware(mw, **options)`` (app by position),
FastAPI's ``add_middleware(mw, **options)`` and Litestar's
``DefineMiddleware(mw, **options)`` (app by keyword).  Each test then checks
what the middleware is for, through ``asgikit.testing.TestClient``.

Litestar answers an exception from a handler with its own exception
middleware, which it places *inside* user middleware; so for ``server_errors``
and ``exception_handlers`` the Litestar app raises from a small layer below
ours instead (what escapes Litestar's own handling is what they see there).
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi import Request as FRequest
from fastapi import WebSocket as FWebSocket
from litestar import Litestar, MediaType, get, post, websocket
from litestar import Request as LRequest
from litestar import WebSocket as LWebSocket
from litestar.middleware import DefineMiddleware
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request as SRequest
from starlette.responses import JSONResponse as SJSON
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket as SWebSocket

from asgikit.exceptions import WebSocketDisconnect
from asgikit.middleware.body_limit import body_limit
from asgikit.middleware.compress import compress
from asgikit.middleware.cors import cors
from asgikit.middleware.csrf import csrf
from asgikit.middleware.exception_handlers import exception_handlers
from asgikit.middleware.https_redirect import https_redirect
from asgikit.middleware.proxy_headers import proxy_headers
from asgikit.middleware.rate_limit import rate_limit
from asgikit.middleware.request_id import request_id
from asgikit.middleware.security_headers import security_headers
from asgikit.middleware.server_errors import server_errors
from asgikit.middleware.sessions import sessions
from asgikit.middleware.telemetry import telemetry
from asgikit.middleware.timeout import timeout
from asgikit.middleware.timing import timing
from asgikit.middleware.trusted_host import trusted_host
from asgikit.middleware.websocket_origin import websocket_origin
from asgikit.requests import Request
from asgikit.responses import JSONResponse, PlainTextResponse
from asgikit.testing import TestClient, WebSocketDenialResponse
from asgikit.types import ASGIApp, Receive, Scope, Send

SITE = "https://site.example"
EVIL = "https://evil.example"
BIG = {"items": ["some repeated text"] * 100}
CLIENT = ("127.0.0.1", 5000)

MiddlewareEntry = tuple[Callable[..., Any], dict[str, Any]]

# -- the same app in each framework ------------------------------------------------


def raise_below(scope: Scope) -> None:
    """What the failing route raises, by path (shared by every framework)."""
    if scope.get("path") == "/boom":
        raise RuntimeError("boom")
    if scope.get("path") == "/lookup":
        raise KeyError("missing")


def failing_layer(app: ASGIApp) -> ASGIApp:
    """A layer raising for /boom and /lookup before the framework's own handling."""

    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        raise_below(scope)
        await app(scope, receive, send)

    return failing


def starlette_routes() -> list[Any]:
    async def data(request: SRequest) -> SJSON:
        return SJSON(BIG)

    async def info(request: SRequest) -> SJSON:
        return SJSON(info_of(request.url.scheme, request.client, request.scope))

    async def echo(request: SRequest) -> SJSON:
        return SJSON({"size": len(await request.body())})

    async def session_set(request: SRequest) -> SJSON:
        request.session["value"] = request.query_params["value"]
        return SJSON({})

    async def session_get(request: SRequest) -> SJSON:
        return SJSON(dict(request.session))

    async def boom(request: SRequest) -> SJSON:
        raise_below(request.scope)
        raise AssertionError("unreachable")

    async def ws(socket: SWebSocket) -> None:
        await socket.accept()
        await socket.send_text("hi")
        await socket.close()

    return [
        Route("/data", data),
        Route("/info", info),
        Route("/echo", echo, methods=["POST"]),
        Route("/session/set", session_set),
        Route("/session", session_get),
        Route("/boom", boom),
        Route("/lookup", boom),
        WebSocketRoute("/ws", ws),
    ]


def info_of(scheme: str, client: Any, scope: Scope) -> dict[str, Any]:
    return {
        "scheme": scheme,
        "client": client.host if client else None,
        "request_id": scope.get("asgikit.request_id"),
    }


def build_starlette(entries: list[MiddlewareEntry]) -> ASGIApp:
    middleware = [Middleware(mw, **options) for mw, options in entries]  # type: ignore[arg-type]
    return Starlette(routes=starlette_routes(), middleware=middleware)  # type: ignore[return-value]


def build_fastapi(entries: list[MiddlewareEntry]) -> ASGIApp:
    api = FastAPI()

    @api.get("/data")
    async def data() -> dict[str, list[str]]:
        return BIG

    @api.get("/info")
    async def info(request: FRequest) -> dict[str, Any]:
        return info_of(request.url.scheme, request.client, request.scope)

    @api.post("/echo")
    async def echo(request: FRequest) -> dict[str, int]:
        return {"size": len(await request.body())}

    @api.get("/session/set")
    async def session_set(request: FRequest, value: str) -> dict[str, str]:
        request.session["value"] = value
        return {}

    @api.get("/session")
    async def session_get(request: FRequest) -> dict[str, Any]:
        return dict(request.session)

    @api.get("/boom")
    @api.get("/lookup")
    async def boom(request: FRequest) -> None:
        raise_below(request.scope)

    @api.websocket("/ws")
    async def ws(socket: FWebSocket) -> None:
        await socket.accept()
        await socket.send_text("hi")
        await socket.close()

    # add_middleware puts each new one outermost: add innermost first.
    for mw, options in reversed(entries):
        api.add_middleware(mw, **options)  # type: ignore[arg-type]
    return api  # type: ignore[return-value]


def build_litestar(entries: list[MiddlewareEntry]) -> ASGIApp:
    @get("/data")
    async def data() -> dict[str, list[str]]:
        return BIG

    @get("/info")
    async def info(request: LRequest[Any, Any, Any]) -> dict[str, Any]:
        return info_of(request.url.scheme, request.client, request.scope)  # type: ignore[arg-type]

    @post("/echo", status_code=200)
    async def echo(request: LRequest[Any, Any, Any]) -> dict[str, int]:
        return {"size": len(await request.body())}

    @get("/session/set")
    async def session_set(request: LRequest[Any, Any, Any]) -> dict[str, str]:
        request.session["value"] = request.query_params["value"]
        return {}

    @get("/session")
    async def session_get(request: LRequest[Any, Any, Any]) -> dict[str, Any]:
        return dict(request.session)

    @get(["/boom", "/lookup"], media_type=MediaType.TEXT)
    async def boom() -> str:
        return "not reached: the layer below the middleware raises"

    @websocket("/ws")
    async def ws(socket: LWebSocket[Any, Any, Any]) -> None:
        await socket.accept()
        await socket.send_text("hi")
        await socket.close()

    middleware = [DefineMiddleware(mw, **options) for mw, options in entries]
    middleware.append(DefineMiddleware(failing_layer))
    return Litestar(  # type: ignore[return-value]
        route_handlers=[data, info, echo, session_set, session_get, boom, ws],
        middleware=middleware,
    )


FRAMEWORKS: dict[str, Callable[[list[MiddlewareEntry]], ASGIApp]] = {
    "starlette": build_starlette,
    "fastapi": build_fastapi,
    "litestar": build_litestar,
}

# -- what each middleware is for ---------------------------------------------------


def check_cors(client: TestClient) -> None:
    response = client.get("/data", headers={"origin": SITE})
    assert response.headers["access-control-allow-origin"] == SITE
    assert "Origin" in response.headers["vary"]
    assert (
        "access-control-allow-origin" not in client.get("/data", headers={"origin": EVIL}).headers
    )
    preflight = client.options(
        "/data", headers={"origin": SITE, "access-control-request-method": "POST"}
    )
    assert preflight.status_code == 200
    assert "POST" in preflight.headers["access-control-allow-methods"]
    refused = client.options(
        "/data", headers={"origin": SITE, "access-control-request-method": "DELETE"}
    )
    assert refused.status_code == 400


def check_compress(client: TestClient) -> None:
    with client.stream("GET", "/data", headers={"accept-encoding": "gzip"}) as response:
        raw = b"".join(response.iter_raw())
    assert response.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in response.headers["vary"]
    assert int(response.headers["content-length"]) == len(raw)
    assert gzip.decompress(raw).startswith(b'{"items":')
    plain = client.get("/data", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.json() == BIG


def check_sessions(client: TestClient) -> None:
    stored = client.get("/session/set", params={"value": "kept"})
    assert stored.status_code == 200
    assert "httponly" in stored.headers["set-cookie"].lower()
    assert client.get("/session").json() == {"value": "kept"}
    client.cookies.clear()
    client.cookies.set("session", "tampered.value")
    assert client.get("/session").json() == {}


def check_trusted_host(client: TestClient) -> None:
    assert client.get("/data").status_code == 200
    assert client.get("/data", headers={"host": "example.com.evil.com"}).status_code == 400


def check_https_redirect(client: TestClient) -> None:
    response = client.get("/info?x=1")
    assert response.status_code == 307
    assert response.headers["location"] == "https://testserver/info?x=1"
    assert client.get("https://testserver/info").json()["scheme"] == "https"


def check_proxy_headers(client: TestClient) -> None:
    forwarded = client.get(
        "/info", headers={"x-forwarded-for": "203.0.113.7", "x-forwarded-proto": "https"}
    ).json()
    assert forwarded["client"] == "203.0.113.7"
    assert forwarded["scheme"] == "https"
    assert client.get("/info").json()["client"] == "127.0.0.1"


def check_request_id(client: TestClient) -> None:
    response = client.get("/info")
    generated = response.headers["x-request-id"]
    assert response.json()["request_id"] == generated
    echoed = client.get("/info", headers={"x-request-id": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    refused = client.get("/info", headers={"x-request-id": "bad id\x7f"})
    assert refused.headers["x-request-id"] != "bad id\x7f"


def check_body_limit(client: TestClient) -> None:
    assert client.post("/echo", content=b"x" * 10).json() == {"size": 10}
    assert client.post("/echo", content=b"x" * 11).status_code == 413

    def chunks() -> Iterator[bytes]:
        yield b"x" * 8
        yield b"x" * 8

    assert client.post("/echo", content=chunks()).status_code == 413


def check_timeout(client: TestClient) -> None:
    # Within its limits a request is untouched, and a WebSocket passes through;
    # the 408/503 answers are pinned in test_timeout.py, where time is in hand.
    assert client.get("/data").status_code == 200
    assert client.post("/echo", content=b"x" * 20).json() == {"size": 20}
    with client.websocket_connect("/ws", headers={"origin": SITE}) as ws:
        assert ws.receive_text() == "hi"


def check_security_headers(client: TestClient) -> None:
    headers = client.get("https://testserver/data").headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert headers["strict-transport-security"] == "max-age=3600"


def check_rate_limit(client: TestClient) -> None:
    first = client.get("/data")
    assert first.headers["ratelimit-policy"] == '"default";q=2;w=3600'
    assert first.headers["ratelimit"] == '"default";r=1;t=1800'
    assert client.get("/data").status_code == 200
    refused = client.get("/data")
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1800"
    # Litestar builds app middleware once per route, so /ws may count on its own.
    for _ in range(2):
        try:
            with client.websocket_connect("/ws") as ws:
                assert ws.receive_text() == "hi"
        except (WebSocketDenialResponse, WebSocketDisconnect):
            pass
    with pytest.raises((WebSocketDenialResponse, WebSocketDisconnect)):
        client.websocket_connect("/ws").__enter__()


def check_timing(client: TestClient) -> None:
    assert re.fullmatch(r"app;dur=\d+(\.\d+)?", client.get("/data").headers["server-timing"])


def _otel_exporter() -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    exporter.provider = provider  # type: ignore[attr-defined]
    return exporter


OTEL = _otel_exporter()


def check_telemetry(client: TestClient) -> None:
    OTEL.clear()
    assert client.get("/data").status_code == 200
    [span] = OTEL.get_finished_spans()
    assert span.name == "GET /data"  # the framework's own route template
    assert span.attributes["http.route"] == "/data"


def check_csrf(client: TestClient) -> None:
    token = client.get("/data").cookies["csrftoken"]
    cross_site = client.post("/echo", content=b"x", headers={"origin": EVIL})
    assert cross_site.status_code == 403
    assert "CSRF" in cross_site.text
    assert client.post("/echo", content=b"x").status_code == 403  # no token
    allowed = client.post("/echo", content=b"xy", headers={"x-csrf-token": token})
    assert allowed.json() == {"size": 2}


def check_websocket_origin(client: TestClient) -> None:
    with client.websocket_connect("/ws", headers={"origin": SITE}) as ws:
        assert ws.receive_text() == "hi"
    with (
        pytest.raises((WebSocketDenialResponse, WebSocketDisconnect)),
        client.websocket_connect("/ws", headers={"origin": EVIL}) as ws,
    ):
        ws.receive_text()


def check_server_errors(client: TestClient) -> None:
    response = client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {"handled_by": "asgikit", "error": "RuntimeError"}
    assert client.get("/data").status_code == 200


def check_exception_handlers(client: TestClient) -> None:
    response = client.get("/lookup")
    assert response.status_code == 409
    assert response.text == "lookup failed: 'missing'"
    assert client.get("/data").status_code == 200


async def on_error(request: Request, exc: Exception) -> ASGIApp:
    return JSONResponse({"handled_by": "asgikit", "error": type(exc).__name__}, 500)


async def on_lookup(request: Request, exc: Exception) -> ASGIApp:
    return PlainTextResponse(f"lookup failed: {exc}", 409)


@dataclass
class Case:
    middleware: Callable[..., Any]
    check: Callable[[TestClient], None]
    options: dict[str, Any] = field(default_factory=dict)
    client: dict[str, Any] = field(default_factory=dict)


CASES: dict[str, Case] = {
    "cors": Case(cors, check_cors, {"allow_origins": [SITE], "allow_methods": ["GET", "POST"]}),
    "compress": Case(compress, check_compress, {"minimum_size": 100}),
    "sessions": Case(sessions, check_sessions, {"secret_key": "s" * 32}),
    "trusted_host": Case(trusted_host, check_trusted_host, {"allowed_hosts": ["testserver"]}),
    "https_redirect": Case(https_redirect, check_https_redirect),
    "proxy_headers": Case(proxy_headers, check_proxy_headers, {"trusted_hosts": ["127.0.0.1"]}),
    "request_id": Case(request_id, check_request_id),
    "body_limit": Case(body_limit, check_body_limit, {"max_size": 10}),
    "security_headers": Case(security_headers, check_security_headers, {"hsts_max_age": 3600}),
    "timing": Case(timing, check_timing),
    "rate_limit": Case(rate_limit, check_rate_limit, {"limits": "2/hour"}),
    "telemetry": Case(telemetry, check_telemetry, {"tracer_provider": OTEL.provider}),
    "timeout": Case(timeout, check_timeout, {"request": 30.0, "body_idle": 30.0}),
    "csrf": Case(csrf, check_csrf, {"secret_key": "c" * 32}),
    "websocket_origin": Case(
        websocket_origin, check_websocket_origin, {"allowed_origins": [SITE]}
    ),
    "server_errors": Case(
        server_errors,
        check_server_errors,
        {"handler": on_error},
        {"raise_server_exceptions": False},
    ),
    "exception_handlers": Case(
        exception_handlers, check_exception_handlers, {"handlers": {LookupError: on_lookup}}
    ),
}


@pytest.mark.parametrize("framework", sorted(FRAMEWORKS))
@pytest.mark.parametrize("name", sorted(CASES))
def test_middleware_works_as_a_drop_in(name: str, framework: str) -> None:
    case = CASES[name]
    app = FRAMEWORKS[framework]([(case.middleware, case.options)])
    with TestClient(app, client=CLIENT, follow_redirects=False, **case.client) as client:  # type: ignore[arg-type]
        case.check(client)


def test_every_middleware_of_the_package_has_an_interop_case() -> None:
    import asgikit.middleware as package

    modules = {
        path.stem
        for path in __import__("pathlib").Path(package.__file__).parent.glob("*.py")
        if not path.stem.startswith("_")
    }
    # http_middleware builds middleware from a function; session_stores are stores.
    assert modules - {"http_middleware", "session_stores"} == set(CASES)


# -- Django's ASGI handler ----------------------------------------------------------


def django_app() -> ASGIApp:
    django = pytest.importorskip("django")
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="d" * 50,
            ALLOWED_HOSTS=["testserver"],
            ROOT_URLCONF=__name__,
            MIDDLEWARE=[],
            INSTALLED_APPS=[],
            DATABASES={},
            USE_TZ=True,
        )
        django.setup()
    from django.core.handlers.asgi import ASGIHandler

    return ASGIHandler()  # type: ignore[return-value]


def _django_data(request: Any) -> Any:
    from django.http import JsonResponse

    return JsonResponse(BIG)


def _urlpatterns() -> list[Any]:
    try:
        from django.urls import path
    except ImportError:
        return []
    return [path("data", _django_data)]


urlpatterns = _urlpatterns()


def test_cors_and_compress_around_djangos_asgi_handler() -> None:
    app = cors(compress(django_app(), minimum_size=100), allow_origins=[SITE])
    with TestClient(app) as client:
        with client.stream(
            "GET", "/data", headers={"origin": SITE, "accept-encoding": "gzip"}
        ) as response:
            raw = b"".join(response.iter_raw())
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == SITE
        assert response.headers["content-encoding"] == "gzip"
        assert gzip.decompress(raw).startswith(b'{"items":')
        preflight = client.options(
            "/data", headers={"origin": SITE, "access-control-request-method": "GET"}
        )
        assert preflight.status_code == 200
        other = client.get("/data", headers={"origin": EVIL})
        assert "access-control-allow-origin" not in other.headers
        assert other.json() == BIG

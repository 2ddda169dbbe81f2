"""The scenarios ``callgrind.py`` measures: one request, and the apps that answer it.

Each scenario is a request (scope and body), the status every app must
answer with, and a set of named app factories.  A factory imports what its
framework needs only when called, so that a child process measuring the raw
app does not pay for importing Starlette.  The first app of a scenario is
its floor: the ratios are taken against it.

Factories return ``(app, startup)``: ``startup`` is ``None`` or a coroutine
function to await on the benchmark's loop before the first request
(BlackSheep's ``Application.start``).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread
from _harness import header_layer

Startup = Callable[[], Awaitable[Any]] | None
Factory = Callable[[], tuple[Any, Startup]]

ORIGIN = "https://example.com"
FILLER = [f"/section{i}/{{item:int}}" for i in range(18)]  # + /users + / = 20 routes
ECHO = json.dumps(
    {"items": [{"id": i, "name": f"item-{i}", "tags": ["a", "b"]} for i in range(24)]},
    separators=(",", ":"),
).encode()
FILE_SIZES = {"file-1k": 1024, "file-1m": 1024 * 1024}
_FILES: dict[int, Path] = {}


def data_file(size: int) -> Path:
    """A file of ``size`` bytes, made once per process (removed at exit by the OS's tmp)."""
    if size not in _FILES:
        directory = Path(tempfile.mkdtemp(prefix="asgikit-cg-"))
        path = directory / f"{size}.bin"
        path.write_bytes(bytes(range(256)) * (size // 256))
        _FILES[size] = path
    return _FILES[size]


def small_json(user_id: int) -> dict[str, Any]:
    return {"id": user_id, "name": "user"}


def dumps(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


# --- raw ASGI: the floor ------------------------------------------------------------

_HELLO = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"13")]
_NOT_FOUND = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"9")]


async def _send_json(send: Any, body: bytes, extra: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        *extra,
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _read_whole(path: Path) -> bytes:
    with open(path, "rb") as file:
        return file.read()


async def raw_app(scope: Any, receive: Any, send: Any) -> None:
    """Hand-written ASGI for every scenario: the floor for pure Python."""
    path = scope["path"]
    if path == "/":
        await send({"type": "http.response.start", "status": 200, "headers": _HELLO})
        await send({"type": "http.response.body", "body": b"Hello, world!"})
    elif path.startswith("/users/") and path[7:].isdigit():
        await _send_json(send, dumps(small_json(int(path[7:]))))
    elif path == "/mw/small":
        origin = next((v for k, v in scope["headers"] if k == b"origin"), None)
        extra = [(b"vary", b"Accept-Encoding, Origin"), (b"x-layer", b"1")]
        if origin == ORIGIN.encode():
            extra.append((b"access-control-allow-origin", origin))
        await _send_json(send, dumps(small_json(7)), tuple(extra))
    elif path == "/echo":
        await _send_json(send, dumps(json.loads(await _read_body(receive))))
    elif path.startswith("/file-"):
        size = FILE_SIZES[path[1:]]
        # What a plain app does: the whole file read in one worker-thread hop.
        data = await anyio.to_thread.run_sync(_read_whole, data_file(size))
        headers = [
            (b"content-type", b"application/octet-stream"),
            (b"content-length", b"%d" % len(data)),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        chunk = 256 * 1024
        if len(data) <= chunk:
            await send({"type": "http.response.body", "body": data})
        else:
            view = memoryview(data)
            for start in range(0, len(data), chunk):
                more = start + chunk < len(data)
                body = bytes(view[start : start + chunk])
                await send({"type": "http.response.body", "body": body, "more_body": more})
    else:
        # A miss: the comparisons above found nothing.
        await send({"type": "http.response.start", "status": 404, "headers": _NOT_FOUND})
        await send({"type": "http.response.body", "body": b"Not Found"})


def raw() -> tuple[Any, Startup]:
    return raw_app, None


# --- asgikit ------------------------------------------------------------------------


def _asgikit_routes(prefix: str = "") -> list[Any]:
    from asgikit import JSONResponse, PlainTextResponse, Request, route
    from asgikit.files import FileResponse

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("Hello, world!")

    async def user(request: Request) -> JSONResponse:
        return JSONResponse(small_json(request.path_params["id"]))

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse(await request.json())

    async def other(request: Request) -> PlainTextResponse:
        return PlainTextResponse("other")

    def file_endpoint(size: int) -> Any:
        path = data_file(size)

        async def file(request: Request) -> FileResponse:
            return FileResponse(path, media_type="application/octet-stream")

        return file

    return [
        route("/", hello),
        *[route(path, other) for path in FILLER],
        route(prefix + "/users/{id:int}", user),
        route("/echo", echo, methods=["POST"]),
        *[route("/" + name, file_endpoint(size)) for name, size in FILE_SIZES.items()],
    ]


def asgikit_app() -> tuple[Any, Startup]:
    from asgikit import router

    return router(*_asgikit_routes()), None


def asgikit_fast_echo() -> tuple[Any, Startup]:
    """The echo with the fast codec both ways: ``request.json()`` as it would read with it."""
    from asgikit import Request, route, router
    from asgikit._json import loads
    from asgikit.responses import FastJSONResponse

    async def echo(request: Request) -> FastJSONResponse:
        # What request.json() does once requests.py decodes with asgikit._json.loads.
        return FastJSONResponse(loads(await request.body()))

    return router(route("/echo", echo, methods=["POST"])), None


def asgikit_fast_decode_echo() -> tuple[Any, Startup]:
    """The echo with only ``request.json()``'s side fast (``JSONResponse`` stays stdlib)."""
    from asgikit import JSONResponse, Request, route, router
    from asgikit._json import loads

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse(loads(await request.body()))

    return router(route("/echo", echo, methods=["POST"])), None


def asgikit_prebuilt_not_found() -> tuple[Any, Startup]:
    """The router's 404 sent as prepared messages: what routes.not_found could do."""
    from asgikit import router
    from asgikit.responses import wants_json

    headers = [(b"content-length", b"9"), (b"content-type", b"text/plain; charset=utf-8")]

    async def not_found(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or wants_json(scope):
            raise NotImplementedError  # not what this scenario sends
        await send({"type": "http.response.start", "status": 404, "headers": list(headers)})
        body = b"" if scope["method"] == "HEAD" else b"Not Found"
        await send({"type": "http.response.body", "body": body})

    return router(*_asgikit_routes(), not_found=not_found), None


def asgikit_layered() -> tuple[Any, Startup]:
    from asgikit import JSONResponse, Request, route, router
    from asgikit.middleware.compress import compress
    from asgikit.middleware.cors import cors

    async def small(request: Request) -> JSONResponse:
        return JSONResponse(small_json(7))

    inner = router(route("/mw/small", small))
    return cors(compress(header_layer(inner)), allow_origins=[ORIGIN]), None


def asgikit_mounted() -> tuple[Any, Startup]:
    """``/users/{id:int}`` two mounts deep: ``/a`` then ``/b``, each beside filler routes."""
    from asgikit import JSONResponse, PlainTextResponse, Request, mount, route, router

    async def user(request: Request) -> JSONResponse:
        return JSONResponse(small_json(request.path_params["id"]))

    async def other(request: Request) -> PlainTextResponse:
        return PlainTextResponse("other")

    fill = [route(path, other) for path in FILLER[:6]]
    inner = router(*fill, route("/users/{id:int}", user))
    middle = router(*fill, mount("/b", inner))
    return router(*fill, mount("/a", middle)), None


def asgikit_top_level() -> tuple[Any, Startup]:
    """The mounted route's twin at top level: ``/a/b/users/{id:int}`` among the same filler."""
    from asgikit import JSONResponse, PlainTextResponse, Request, route, router

    async def user(request: Request) -> JSONResponse:
        return JSONResponse(small_json(request.path_params["id"]))

    async def other(request: Request) -> PlainTextResponse:
        return PlainTextResponse("other")

    fill = [route(path, other) for path in FILLER[:6]]
    return router(*fill, route("/a/b/users/{id:int}", user)), None


def asgikit_wrap_send_layer() -> tuple[Any, Startup]:
    app, _ = asgikit_app()
    return header_layer(app), None


def asgikit_edit_start_layer() -> tuple[Any, Startup]:
    """The header layer on asgikit's cheapest shape: a prepared edit of the start message."""
    from asgikit._send import edit_start
    from asgikit.middleware._http import HeaderEdit

    app, _ = asgikit_app()
    edit = HeaderEdit(add=[(b"x-layer", b"1")]).message

    async def layered(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        await app(scope, receive, edit_start(send, edit))

    return layered, None


def asgikit_plain_send_layer() -> tuple[Any, Startup]:
    """The header layer as asgikit's own are written: its ``send`` a plain function."""
    app, _ = asgikit_app()
    pair = [(b"x-layer", b"1")]

    async def layered(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        def tagged(message: Any) -> Any:
            if message["type"] == "http.response.start":
                message = {**message}
                message["headers"] = [*message.get("headers", ()), *pair]
            return send(message)

        await app(scope, receive, tagged)

    return layered, None


def asgikit_http_middleware() -> tuple[Any, Startup]:
    from asgikit import http_middleware

    app, _ = asgikit_app()

    async def add_layer(request: Any, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers["x-layer"] = "1"
        return response

    return http_middleware(add_layer, app), None


def _asgikit_with(layer: Callable[[Any], Any]) -> Factory:
    def factory() -> tuple[Any, Startup]:
        app, _ = asgikit_app()
        return layer(app), None

    return factory


def _rate_limited(**options: Any) -> Callable[[Any], Any]:
    def layer(app: Any) -> Any:
        from asgikit.middleware.rate_limit import rate_limit

        return rate_limit(app, limits="1000000/minute", **options)

    return layer


def _request_id(app: Any) -> Any:
    from asgikit.middleware.request_id import request_id

    return request_id(app)


def _security_headers(app: Any) -> Any:
    from asgikit.middleware.security_headers import security_headers

    return security_headers(app)


def _timing(app: Any) -> Any:
    from asgikit.middleware.timing import timing

    return timing(app)


# --- Starlette ----------------------------------------------------------------------


def _starlette_routes(prefix: str = "") -> list[Any]:
    from starlette.requests import Request as SRequest
    from starlette.responses import FileResponse as SFile
    from starlette.responses import JSONResponse as SJSON
    from starlette.responses import PlainTextResponse as SText
    from starlette.routing import Route

    async def hello(request: SRequest) -> SText:
        return SText("Hello, world!")

    async def user(request: SRequest) -> SJSON:
        return SJSON(small_json(request.path_params["id"]))

    async def echo(request: SRequest) -> SJSON:
        return SJSON(await request.json())

    async def other(request: SRequest) -> SText:
        return SText("other")

    def file_endpoint(size: int) -> Any:
        path = data_file(size)

        async def file(request: SRequest) -> SFile:
            return SFile(path, media_type="application/octet-stream")

        return file

    return [
        Route("/", hello),
        *[Route(path, other) for path in FILLER],
        Route(prefix + "/users/{id:int}", user),
        Route("/echo", echo, methods=["POST"]),
        *[Route("/" + name, file_endpoint(size)) for name, size in FILE_SIZES.items()],
    ]


def starlette_app(middleware: list[Any] | None = None) -> tuple[Any, Startup]:
    from starlette.applications import Starlette

    return Starlette(routes=_starlette_routes(), middleware=middleware), None


def starlette_layered() -> tuple[Any, Startup]:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.cors import CORSMiddleware
    from starlette.middleware.gzip import GZipMiddleware
    from starlette.requests import Request as SRequest
    from starlette.responses import JSONResponse as SJSON
    from starlette.routing import Route

    async def small(request: SRequest) -> SJSON:
        return SJSON(small_json(7))

    return Starlette(
        routes=[Route("/mw/small", small)],
        middleware=[
            Middleware(CORSMiddleware, allow_origins=[ORIGIN]),
            Middleware(GZipMiddleware, minimum_size=500, compresslevel=6),
            Middleware(header_layer),
        ],
    ), None


def starlette_mounted() -> tuple[Any, Startup]:
    from starlette.applications import Starlette
    from starlette.requests import Request as SRequest
    from starlette.responses import JSONResponse as SJSON
    from starlette.responses import PlainTextResponse as SText
    from starlette.routing import Mount, Route

    async def user(request: SRequest) -> SJSON:
        return SJSON(small_json(request.path_params["id"]))

    async def other(request: SRequest) -> SText:
        return SText("other")

    fill = [Route(path, other) for path in FILLER[:6]]
    inner = Mount("/b", routes=[*fill, Route("/users/{id:int}", user)])
    return Starlette(routes=[*fill, Mount("/a", routes=[*fill, inner])]), None


def starlette_top_level() -> tuple[Any, Startup]:
    from starlette.applications import Starlette
    from starlette.requests import Request as SRequest
    from starlette.responses import JSONResponse as SJSON
    from starlette.responses import PlainTextResponse as SText
    from starlette.routing import Route

    async def user(request: SRequest) -> SJSON:
        return SJSON(small_json(request.path_params["id"]))

    async def other(request: SRequest) -> SText:
        return SText("other")

    fill = [Route(path, other) for path in FILLER[:6]]
    return Starlette(routes=[*fill, Route("/a/b/users/{id:int}", user)]), None


def starlette_base_http_middleware() -> tuple[Any, Startup]:
    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware

    async def add_layer(request: Any, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers["x-layer"] = "1"
        return response

    return starlette_app([Middleware(BaseHTTPMiddleware, dispatch=add_layer)])


def starlette_wrap_send_layer() -> tuple[Any, Startup]:
    from starlette.middleware import Middleware

    return starlette_app([Middleware(header_layer)])


# --- Litestar and BlackSheep (their own modules: they resolve annotations at run time) ---


def litestar_app() -> tuple[Any, Startup]:
    from _litestar_app import build

    return build()


def blacksheep_app() -> tuple[Any, Startup]:
    from _blacksheep_app import build

    return build()


def blacksheep_layered() -> tuple[Any, Startup]:
    from _blacksheep_app import build_layered

    return build_layered()


# --- the table ----------------------------------------------------------------------


@dataclass
class Scenario:
    """One request and the apps measured answering it (the first is the floor)."""

    title: str
    method: str
    path: str
    apps: dict[str, Factory]
    body: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    status: int = 200
    n: int = 1000
    # Work in worker threads: counted only by whole runs (callgrind's
    # --toggle-collect follows the thread that enters the function).
    threads: bool = False


_MW_HEADERS = [(b"origin", ORIGIN.encode()), (b"accept-encoding", b"gzip")]
_PEERS: dict[str, Factory] = {
    "starlette": starlette_app,
    "litestar": litestar_app,
    "blacksheep": blacksheep_app,
}

SCENARIOS: dict[str, Scenario] = {
    "hello": Scenario("hello text", "GET", "/", {"raw": raw, "asgikit": asgikit_app, **_PEERS}),
    "json": Scenario(
        "JSON, int path parameter, 20 routes",
        "GET",
        "/users/123",
        {"raw": raw, "asgikit": asgikit_app, **_PEERS},
    ),
    "middleware": Scenario(
        "JSON behind CORS + compress + header layer (small: not compressed)",
        "GET",
        "/mw/small",
        {
            "raw": raw,
            "asgikit": asgikit_layered,
            "starlette": starlette_layered,
            "blacksheep": blacksheep_layered,
        },
        headers=_MW_HEADERS,
    ),
    "echo": Scenario(
        f"JSON echo ({len(ECHO)} bytes)",
        "POST",
        "/echo",
        {
            "raw": raw,
            "asgikit": asgikit_app,
            "asgikit-fast": asgikit_fast_echo,
            "asgikit-fast-decode": asgikit_fast_decode_echo,
            **_PEERS,
        },
        body=ECHO,
        headers=[(b"content-type", b"application/json")],
        n=400,
    ),
    "miss": Scenario(
        "404 miss in a 20-route table",
        "GET",
        "/nothing/here",
        {
            "raw": raw,
            "asgikit": asgikit_app,
            "asgikit, prepared 404": asgikit_prebuilt_not_found,
            **_PEERS,
        },
        status=404,
    ),
    "mount": Scenario(
        "a route two mounts deep vs the same route at top level",
        "GET",
        "/a/b/users/123",
        {
            "asgikit-top": asgikit_top_level,
            "asgikit-mounted": asgikit_mounted,
            "starlette-top": starlette_top_level,
            "starlette-mounted": starlette_mounted,
        },
    ),
    "http_middleware": Scenario(
        "a header layer: wrap_send vs http_middleware vs BaseHTTPMiddleware (JSON route)",
        "GET",
        "/users/123",
        {
            "asgikit": asgikit_app,
            "asgikit+edit_start": asgikit_edit_start_layer,
            "asgikit+wrap_send": asgikit_wrap_send_layer,
            "asgikit+http_middleware": asgikit_http_middleware,
            "starlette": starlette_app,
            "starlette+wrap_send": starlette_wrap_send_layer,
            "starlette+BaseHTTPMiddleware": starlette_base_http_middleware,
        },
        n=500,
    ),
    "file-1k": Scenario(
        "1 KiB FileResponse (raw: the file read in one worker-thread hop)",
        "GET",
        "/file-1k",
        {"raw": raw, "asgikit": asgikit_app, **_PEERS},
        n=300,
        threads=True,
    ),
    "file-1m": Scenario(
        "1 MiB FileResponse (raw: the file read in one worker-thread hop)",
        "GET",
        "/file-1m",
        {"raw": raw, "asgikit": asgikit_app, **_PEERS},
        n=30,
        threads=True,
    ),
    "rate_limit": Scenario(
        "rate_limit (memory store) around the JSON route",
        "GET",
        "/users/123",
        {
            "asgikit": asgikit_app,
            "+rate_limit": _asgikit_with(_rate_limited()),
            "+rate_limit headers=False": _asgikit_with(_rate_limited(headers=False)),
        },
    ),
    "header_layers": Scenario(
        "asgikit's header middleware around the JSON route",
        "GET",
        "/users/123",
        {
            "asgikit": asgikit_app,
            "+wrap_send layer": asgikit_wrap_send_layer,
            "+edit_start layer": asgikit_edit_start_layer,
            "+plain-function send layer": asgikit_plain_send_layer,
            "+request_id": _asgikit_with(_request_id),
            "+security_headers": _asgikit_with(_security_headers),
            "+timing": _asgikit_with(_timing),
            "+rate_limit": _asgikit_with(_rate_limited()),
        },
    ),
}


def scope_for(scenario: Scenario) -> dict[str, Any]:
    """The HTTP scope of ``scenario``'s request."""
    headers = [(b"host", b"bench.local"), *scenario.headers]
    if scenario.body:
        headers.append((b"content-length", b"%d" % len(scenario.body)))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": scenario.method,
        "scheme": "http",
        "path": scenario.path,
        "raw_path": scenario.path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
        "extensions": {},
    }


__all__ = ["SCENARIOS", "Scenario", "scope_for"]

"""One ASGI app, built only from asgikit pieces, that the server matrix runs everywhere.

``tests/servers/test_matrix.py`` starts it under each server (uvicorn with
httptools and with h11, hypercorn on asyncio and on trio, granian, daphne)
and speaks to it with httpx, curl and the ``websockets`` client.  It covers:
routing with typed path parameters, a JSON echo, a streamed response,
server-sent events, files with byte ranges (``FileResponse`` and
``static_files``), multipart uploads, a WebSocket echo with a subprotocol and
a close code, a refused handshake, lifespan with state, and ``cors`` +
``compress`` around a route.

Pieces that other work in progress has not landed yet are optional: the app
builds without them and ``/features`` says what is there, so the tests can
skip what is missing instead of failing to import.

``ASGIKIT_CONFORMANCE_DIR`` (environment) names the directory with the files
to serve; without it a temporary one is made.  Either way the app writes
``data.bin`` (256 KiB of ``bytes(range(256))`` repeated) and ``hello.txt``
there if they are missing.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from asgikit.lifespan import lifespan
from asgikit.requests import Request
from asgikit.responses import JSONResponse, PlainTextResponse, Response
from asgikit.routes import BaseRoute
from asgikit.routing import mount, route, router, websocket_route
from asgikit.streaming import StreamingResponse
from asgikit.types import ASGIApp, Message, Receive, Scope, Send
from asgikit.websockets import WebSocket

FEATURES: dict[str, bool] = {}


def _optional(module: str, name: str) -> Any:
    """``module.name`` if it imports, else ``None`` (recorded in ``FEATURES``)."""
    try:
        value = getattr(__import__(module, fromlist=[name]), name)
    except (ImportError, AttributeError):
        value = None
    FEATURES[f"{module}.{name}"] = value is not None
    return value


FileResponse = _optional("asgikit.files", "FileResponse")
static_files = _optional("asgikit.staticfiles", "static_files")
EventSourceResponse = _optional("asgikit.sse", "EventSourceResponse")
cors = _optional("asgikit.middleware.cors", "cors")
compress = _optional("asgikit.middleware.compress", "compress")
UploadFile = _optional("asgikit.forms", "UploadFile")

DATA = bytes(range(256)) * 1024  # 256 KiB: more than one 64 KiB chunk
DATA_DIR = Path(os.environ.get("ASGIKIT_CONFORMANCE_DIR") or tempfile.mkdtemp(prefix="asgikit-"))
DATA_DIR.mkdir(parents=True, exist_ok=True)
if not (DATA_DIR / "data.bin").exists():
    (DATA_DIR / "data.bin").write_bytes(DATA)
if not (DATA_DIR / "hello.txt").exists():
    (DATA_DIR / "hello.txt").write_text("hello from a static file\n")


# -- lifespan with state --------------------------------------------------------


@asynccontextmanager
async def resources() -> AsyncIterator[dict[str, Any]]:
    yield {"started": "yes", "hits": []}


# -- plain HTTP -----------------------------------------------------------------


async def index(request: Request) -> Response:
    return PlainTextResponse("conformance")


async def describe_scope(request: Request) -> Response:
    """What the server put in the scope: version, spec version, extensions."""
    scope = request.scope
    return JSONResponse(
        {
            "http_version": scope.get("http_version"),
            "spec_version": scope.get("asgi", {}).get("spec_version"),
            "extensions": sorted((scope.get("extensions") or {}).keys()),
            "has_state": "state" in scope,
            "root_path": scope.get("root_path", ""),
            "raw_path": scope.get("raw_path", b"").decode("latin-1"),
        }
    )


async def features(request: Request) -> Response:
    return JSONResponse(FEATURES)


async def lifespan_state(request: Request) -> Response:
    state = request.state
    started = getattr(state, "started", None)
    hits = getattr(state, "hits", None)
    if hits is not None:
        hits.append(1)
    return JSONResponse({"started": started, "hits": None if hits is None else len(hits)})


async def typed(request: Request) -> Response:
    params = request.path_params
    return JSONResponse({k: [type(v).__name__, str(v)] for k, v in params.items()})


async def echo(request: Request) -> Response:
    return JSONResponse(await request.json())


async def stream(request: Request) -> Response:
    count = min(int(request.query_params.get("n", "5")), 1000)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(count):
            yield f"chunk {i}\n".encode()
            await anyio.sleep(0)

    return StreamingResponse(chunks(), media_type="text/plain")


#: Per-token gates for ``/gate/{token}``: the stream's second chunk waits for
#: ``POST /gate/{token}/open``, so a server that buffered the first one would
#: time out instead of answering.
GATES: dict[str, anyio.Event] = {}
COUNTERS = {"endless_closed": 0}


async def gated(request: Request) -> Response:
    gate = GATES.setdefault(request.path_params["token"], anyio.Event())

    async def chunks() -> AsyncIterator[bytes]:
        yield b"first;"
        opened = False
        with anyio.move_on_after(10):
            await gate.wait()
            opened = True
        yield b"second" if opened else b"timed out"

    return StreamingResponse(chunks(), media_type="text/plain")


async def open_gate(request: Request) -> Response:
    GATES.setdefault(request.path_params["token"], anyio.Event()).set()
    return PlainTextResponse("opened")


async def endless(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"x" * 1024
                await anyio.sleep(0.01)
        finally:
            COUNTERS["endless_closed"] += 1

    return StreamingResponse(chunks(), media_type="application/octet-stream")


async def counters(request: Request) -> Response:
    return JSONResponse(COUNTERS)


async def events(request: Request) -> Response:
    count = min(int(request.query_params.get("n", "3")), 1000)

    async def items() -> AsyncIterator[dict[str, Any]]:
        for i in range(count):
            yield {"event": "tick", "id": str(i), "data": {"n": i}}
        yield {"event": "multi", "data": "line one\nline two"}

    return EventSourceResponse(items(), ping=None)  # type: ignore[no-any-return]


async def data_file(request: Request) -> Response:
    return FileResponse(DATA_DIR / "data.bin", filename="data.bin")  # type: ignore[no-any-return]


async def upload(request: Request) -> Response:
    fields: dict[str, Any] = {}
    files: dict[str, Any] = {}
    async with request.form(max_file_size=64 * 1024 * 1024) as form:
        for name, value in form.multi_items():
            if isinstance(value, str):
                fields[name] = value
                continue
            digest = hashlib.sha256()
            size = 0
            while chunk := await value.read(64 * 1024):
                digest.update(chunk)
                size += len(chunk)
            files[name] = {
                "filename": value.filename,
                "content_type": value.content_type,
                "size": size,
                "sha256": digest.hexdigest(),
            }
    return JSONResponse({"fields": fields, "files": files})


async def big_json(request: Request) -> Response:
    return JSONResponse({"items": [{"id": i, "name": f"item {i}"} for i in range(100)]})


# -- WebSockets -----------------------------------------------------------------


async def ws_echo(websocket: WebSocket) -> None:
    """Echo text and bytes; ``close:CODE:REASON`` closes with that code and reason."""
    offered = [p for p in websocket.subprotocols if p in ("conformance.v2", "conformance.v1")]
    await websocket.accept(subprotocol=offered[0] if offered else None)
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is not None and text.startswith("close:"):
            _, code, reason = text.split(":", 2)
            await websocket.close(int(code), reason)
            return
        if text is not None:
            await websocket.send_text(text)
        else:
            await websocket.send_bytes(message["bytes"])


async def ws_state(websocket: WebSocket) -> None:
    """Send the lifespan state and the path parameters, then wait for the client to close.

    Not closing from here as well: the two closing handshakes would cross, and
    hypercorn's trio worker then writes the reply to the client's close while
    the app's own close is being written, which kills the worker
    (``trio.BusyResourceError``) on a loaded machine.
    """
    await websocket.accept()
    started = getattr(websocket.state, "started", None)
    await websocket.send_json(
        {
            "started": started,
            "room": websocket.path_params["room"],
            "extensions": sorted((websocket.scope.get("extensions") or {}).keys()),
        }
    )
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


async def ws_deny(websocket: WebSocket) -> None:
    await websocket.deny(401, "who are you?", headers={"www-authenticate": "Bearer"})


# -- assembly -------------------------------------------------------------------


def _header_layer(app: ASGIApp) -> ASGIApp:
    """A trivial pure-ASGI middleware: adds ``x-layer: 1`` to HTTP responses."""

    async def layered(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"], (b"x-layer", b"1")]}
            await send(message)

        await app(scope, receive, tagged)

    return layered


def build() -> ASGIApp:
    """The conformance app; optional pieces are left out when not importable."""
    routes: list[BaseRoute] = [
        route("/", index),
        route("/scope", describe_scope),
        route("/features", features),
        route("/state", lifespan_state),
        route("/typed/int/{value:int}", typed),
        route("/typed/float/{value:float}", typed),
        route("/typed/uuid/{value:uuid}", typed),
        route("/typed/path/{value:path}", typed),
        route("/typed/str/{value}", typed),
        route("/echo", echo, methods=["POST"]),
        route("/stream", stream),
        route("/gate/{token}", gated),
        route("/gate/{token}/open", open_gate, methods=["POST"]),
        route("/endless", endless),
        route("/counters", counters),
        route("/upload", upload, methods=["POST"]),
        websocket_route("/ws", ws_echo),
        websocket_route("/ws/state/{room}", ws_state),
        websocket_route("/ws/deny", ws_deny),
    ]
    if EventSourceResponse is not None:
        routes.append(route("/events", events))
    if FileResponse is not None:
        routes.append(route("/file", data_file))
    if static_files is not None:
        routes.append(mount("/static", static_files(DATA_DIR), name="static"))
    layered: ASGIApp = router(route("/json", big_json))
    layered = _header_layer(layered)
    if compress is not None:
        layered = compress(layered, minimum_size=100)
    if cors is not None:
        layered = cors(layered, allow_origins=["https://example.com"])
    routes.append(mount("/layered", layered))
    return lifespan(router(*routes), resources)


app = build()

"""The apps ``bench_uvicorn.py`` and ``bench_memory.py`` serve: raw ASGI, asgikit, Starlette.

Each answers ``GET /`` with a short text and ``GET /users/{id:int}`` (in a
table of 20 routes) with a small JSON object, identically, and serves the
files ``/files/1k.bin`` and ``/files/1m.bin`` (made on import in a temporary
folder), and the same under ``/static/``: the raw apps read them whole
(``raw_app`` on the event loop, ``raw_thread_app`` in one worker-thread hop,
as the in-process floor does), the frameworks use ``FileResponse`` and their
static files app (``asgikit_on_loop_app``: with ``read_on_loop``).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import anyio.to_thread

from asgikit import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    Request,
    mount,
    route,
    router,
    static_files,
)

FILES = Path(tempfile.gettempdir()) / "asgikit-bench-files"
FILES.mkdir(exist_ok=True)
for _name, _size in (("1k.bin", 1024), ("1m.bin", 1024 * 1024)):
    if not (FILES / _name).is_file() or (FILES / _name).stat().st_size != _size:
        (FILES / _name).write_bytes(os.urandom(_size))

FILLER = [f"/section{i}/{{item:int}}" for i in range(18)]  # + / and /users: 20 routes
_FILE_PATHS = {f"/{kind}/{name}" for kind in ("files", "static") for name in ("1k.bin", "1m.bin")}
HELLO_HEADERS = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"13")]


async def raw_app(scope: Any, receive: Any, send: Any) -> None:
    """Hand-written ASGI: the floor for pure Python."""
    if scope["type"] != "http":
        return  # lifespan: returning says "not supported"
    path = scope["path"]
    if path == "/":
        await send({"type": "http.response.start", "status": 200, "headers": HELLO_HEADERS})
        await send({"type": "http.response.body", "body": b"Hello, world!"})
        return
    if path.startswith("/users/") and path[7:].isdigit():
        body = json.dumps(
            {"id": int(path[7:]), "name": "user"}, ensure_ascii=False, separators=(",", ":")
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    if path in _FILE_PATHS:
        await _send_bytes(send, (FILES / path.rpartition("/")[2]).read_bytes())
        return
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def raw_thread_app(scope: Any, receive: Any, send: Any) -> None:
    """``raw_app``, but a file is read in one worker-thread hop, not on the event loop."""
    if scope["type"] == "http" and scope["path"] in _FILE_PATHS:
        path = FILES / scope["path"].rpartition("/")[2]
        await _send_bytes(send, await anyio.to_thread.run_sync(path.read_bytes))
        return
    await raw_app(scope, receive, send)


async def _send_bytes(send: Any, data: bytes) -> None:
    headers = [
        (b"content-type", b"application/octet-stream"),
        (b"content-length", str(len(data)).encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def _hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("Hello, world!")


async def _user(request: Request) -> JSONResponse:
    return JSONResponse({"id": request.path_params["id"], "name": "user"})


async def _other(request: Request) -> PlainTextResponse:
    return PlainTextResponse("other")


async def _file(request: Request) -> FileResponse:
    return FileResponse(FILES / request.path_params["name"])


asgikit_app = router(
    route("/", _hello),
    *[route(path, _other) for path in FILLER],
    route("/users/{id:int}", _user),
    route("/files/{name}", _file),
    mount("/static", static_files(FILES)),
)


async def _file_on_loop(request: Request) -> FileResponse:
    return FileResponse(FILES / request.path_params["name"], read_on_loop=64 * 1024)


# The files only, with the opt-in ``read_on_loop``: a small file is read on the event loop.
try:
    asgikit_on_loop_app = router(
        route("/files/{name}", _file_on_loop),
        mount("/static", static_files(FILES, read_on_loop=64 * 1024)),
    )
except TypeError:  # an asgikit from before read_on_loop (bench_uvicorn.py --before)
    asgikit_on_loop_app = asgikit_app


def _starlette() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request as SRequest
    from starlette.responses import FileResponse as SFile
    from starlette.responses import JSONResponse as SJSON
    from starlette.responses import PlainTextResponse as SText
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    async def hello(request: SRequest) -> SText:
        return SText("Hello, world!")

    async def user(request: SRequest) -> SJSON:
        return SJSON({"id": request.path_params["id"], "name": "user"})

    async def other(request: SRequest) -> SText:
        return SText("other")

    async def file(request: SRequest) -> SFile:
        return SFile(FILES / request.path_params["name"])

    return Starlette(
        routes=[
            Route("/", hello),
            *[Route(path, other) for path in FILLER],
            Route("/users/{id:int}", user),
            Route("/files/{name}", file),
            Mount("/static", StaticFiles(directory=FILES)),
        ]
    )


starlette_app = _starlette()


# -- JSON behind CORS + compress + a header layer (small: not compressed) ----------
# The apps of callgrind's "middleware" scenario, served as they are measured
# there: the raw app writes the same headers by hand.
def _layered() -> tuple[Any, Any, Any]:
    import _scenarios

    async def raw(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":  # lifespan: returning says "not supported"
            await _scenarios.raw_app(scope, receive, send)

    return raw, _scenarios.asgikit_layered()[0], _scenarios.starlette_layered()[0]


raw_layered_app, asgikit_layered_app, starlette_layered_app = _layered()

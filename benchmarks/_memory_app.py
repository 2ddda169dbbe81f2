"""The asgikit app ``bench_memory.py`` runs under uvicorn to measure peak memory.

- ``POST /upload``: a multipart form read with ``request.form()`` (files
  spool to disk); answers the total file bytes.
- ``POST /stream``: the raw body read with ``request.stream()``, counted.
- ``GET /download``: ``FileResponse`` of the file named by ``MEMORY_FILE``.
- ``/ws``: a WebSocket that is accepted and then waits for the client to leave.
- ``GET /events``: an SSE stream that sends one event, then stays open.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import anyio

from asgikit import PlainTextResponse, Request, WebSocket, route, router, websocket_route
from asgikit.files import FileResponse
from asgikit.forms import UploadFile
from asgikit.sse import EventSourceResponse


async def upload(request: Request) -> PlainTextResponse:
    total = 0
    async with request.form(max_body_size=None, max_file_size=None) as form:
        for _, value in form.multi_items():
            if isinstance(value, UploadFile):
                total += value.size or 0
    return PlainTextResponse(str(total))


async def stream(request: Request) -> PlainTextResponse:
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
    return PlainTextResponse(str(total))


async def download(request: Request) -> FileResponse:
    return FileResponse(os.environ["MEMORY_FILE"])


async def idle(websocket: WebSocket) -> None:
    await websocket.accept()
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


async def events(request: Request) -> EventSourceResponse:
    async def one_then_wait() -> AsyncIterator[dict[str, Any]]:
        yield {"event": "hello", "data": "connected"}
        await anyio.sleep_forever()

    return EventSourceResponse(one_then_wait(), ping=None)


async def status(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = router(
    route("/", status),
    route("/upload", upload, methods=["POST"]),
    route("/stream", stream, methods=["POST"]),
    route("/download", download),
    route("/events", events),
    websocket_route("/ws", idle),
)


async def raw_ws_app(scope: Any, receive: Any, send: Any) -> None:
    """A hand-written idle WebSocket app (and a plain HTTP answer): the server's own cost."""
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
    elif scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass

"""The app the real-server real-time tests run: the showcase's chat and clock, plus probes.

``BROADCAST_URL`` (environment) picks the broadcast backend (in memory by
default; ``redis://...`` to share the chat between processes).
``SHUTDOWN_MARKER`` names a file that a stream's ``finally`` appends to, so
a test can tell after the process is gone that the generator was closed.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import resource
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from asgikit.broadcast import Broadcast, MessagesLost, SlowSubscriber
from asgikit.exceptions import WebSocketDisconnect
from asgikit.lifespan import lifespan
from asgikit.requests import Request
from asgikit.responses import HTMLResponse, JSONResponse, PlainTextResponse
from asgikit.routing import route, router, websocket_route
from asgikit.sse import EventSourceResponse, last_event_id
from asgikit.streaming import StreamingResponse
from asgikit.websockets import WebSocket

TEMPLATES = Path(__file__).resolve().parents[2] / "examples" / "templates"
broadcast = Broadcast(os.environ.get("BROADCAST_URL"), max_queue=64)
counters: dict[str, int] = {
    "ws_open": 0,
    "ws_closed": 0,
    "sse_open": 0,
    "sse_closed": 0,
    "stream_open": 0,
    "stream_closed": 0,
    "feed_closed": 0,
}


def mark(what: str) -> None:
    counters[what] += 1
    marker = os.environ.get("SHUTDOWN_MARKER")
    if marker:
        with open(marker, "a") as file:
            file.write(what + "\n")


# -- showcase: a chat room over WebSockets ----------------------------------


async def chat_page(request: Request) -> HTMLResponse:
    return HTMLResponse((TEMPLATES / "chat.html").read_text("utf-8"))


async def chat_socket(websocket: WebSocket) -> None:
    channel = "chat:" + websocket.path_params["room"]
    await websocket.accept()
    async with broadcast.subscribe(channel) as subscription, anyio.create_task_group() as group:

        async def forward() -> None:
            try:
                while True:
                    try:
                        async for event in subscription:
                            await websocket.send_text(str(event.message))
                        break
                    except MessagesLost:
                        # Redis was away: messages may be missing; say so.
                        await websocket.send_json({"type": "gap"})
            except SlowSubscriber:
                await websocket.close(1013, "too slow, reconnect")
            except WebSocketDisconnect:
                pass  # the client left; the receive loop below ends too
            group.cancel_scope.cancel()

        group.start_soon(forward)
        # Subscribed: tell the client that it will see every message from now on.
        await websocket.send_json({"type": "joined"})
        async for message in websocket.iter_json():
            if not isinstance(message, dict):
                continue
            name = str(message.get("name", "guest"))[:40]
            text = str(message.get("text", ""))[:1000]
            await broadcast.publish(channel, json.dumps({"name": name, "text": text}))
        group.cancel_scope.cancel()


# -- showcase: a live clock over server-sent events -------------------------


async def clock_page(request: Request) -> HTMLResponse:
    return HTMLResponse((TEMPLATES / "clock.html").read_text("utf-8"))


async def clock_events(request: Request) -> EventSourceResponse:
    interval = min(max(float(request.query_params.get("interval", "1")), 0.05), 10.0)
    start = int(last_event_id(request) or 0) if (last_event_id(request) or "").isdigit() else 0

    async def ticks() -> AsyncIterator[dict[str, Any]]:
        counters["sse_open"] += 1
        try:
            n = start
            while True:
                n += 1
                now = datetime.datetime.now().strftime("%H:%M:%S.%f")[:-3]
                yield {"event": "tick", "id": str(n), "data": {"time": now, "n": n}}
                await anyio.sleep(interval)
        finally:
            mark("sse_closed")

    return EventSourceResponse(ticks(), ping=5)


# -- probes for the tests ---------------------------------------------------


async def echo(websocket: WebSocket) -> None:
    offered = [p for p in websocket.subprotocols if p in ("chat.v2", "chat.v1")]
    await websocket.accept(subprotocol=offered[0] if offered else None)
    counters["ws_open"] += 1
    try:
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
    finally:
        mark("ws_closed")


async def feed(websocket: WebSocket) -> None:
    """Push only: forwards a channel and never reads from the client."""
    await websocket.accept()
    try:
        async with broadcast.subscribe("feed") as subscription:
            await websocket.send_json({"type": "joined"})
            async for event in subscription:
                await websocket.send_text(str(event.message))
    finally:
        mark("feed_closed")


async def refuse(websocket: WebSocket) -> None:
    await websocket.close()


async def deny(websocket: WebSocket) -> None:
    await websocket.deny(401, "who are you?", headers={"www-authenticate": "Bearer"})


async def endless_stream(request: Request) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        counters["stream_open"] += 1
        try:
            while True:
                yield b"x" * 64
                await anyio.sleep(0.01)
        finally:
            mark("stream_closed")

    return StreamingResponse(body(), media_type="text/plain")


async def state(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            **counters,
            "pid": os.getpid(),
            "tasks": len(asyncio.all_tasks()),
            "fds": len(os.listdir("/proc/self/fd")),
            "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        }
    )


async def home(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


@asynccontextmanager
async def run_broadcast() -> AsyncIterator[None]:
    async with broadcast:
        yield


app = lifespan(
    router(
        route("/", home),
        route("/state", state),
        route("/stream", endless_stream),
        route("/chat/{room}", chat_page, name="chat"),
        websocket_route("/chat/{room}/ws", chat_socket, name="chat_ws"),
        route("/clock/", clock_page, name="clock"),
        route("/clock/events", clock_events, name="clock_events"),
        websocket_route("/echo", echo),
        websocket_route("/feed", feed),
        websocket_route("/refuse", refuse),
        websocket_route("/deny", deny),
    ),
    run_broadcast,
)

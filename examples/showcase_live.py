"""The showcase's real-time corner: a chat room over WebSockets and a clock over SSE.

The chat fans out through a ``Broadcast``: in memory by default, or through
Redis when ``BROADCAST_URL=redis://...`` is set, so a room works across
several server processes behind a load balancer.  After a Redis outage
the chat goes on and tells its clients (``{"type": "gap"}``) that messages
may have been lost; the page shows that as a line of its own.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio

from asgikit import EventSourceResponse, HTMLResponse, Request, WebSocket
from asgikit.broadcast import Broadcast, MessagesLost, SlowSubscriber
from asgikit.exceptions import WebSocketDisconnect
from asgikit.sse import last_event_id
from asgikit.websockets import WebSocketState

PAGES = Path(__file__).resolve().parent / "templates"


def make_broadcast() -> Broadcast:
    """One per running app (entered in its lifespan, found in ``state.broadcast``)."""
    return Broadcast(os.environ.get("BROADCAST_URL") or None, max_queue=64)


async def chat_page(request: Request) -> HTMLResponse:
    return HTMLResponse((PAGES / "chat.html").read_text("utf-8"))


async def chat_socket(websocket: WebSocket) -> None:
    """Everyone in ``/chat/{room}`` sees what anyone there says.

    The server sends ``{"type": "joined"}`` once subscribed, each message as
    ``{"name", "text"}``, and ``{"type": "gap"}`` where messages may be missing.
    """
    channel = "chat:" + websocket.path_params["room"]
    broadcast: Broadcast = websocket.state.broadcast
    await websocket.accept()
    async with broadcast.subscribe(channel) as subscription, anyio.create_task_group() as group:

        async def forward() -> None:
            try:
                while True:
                    try:
                        async for event in subscription:
                            if websocket.application_state is not WebSocketState.CONNECTED:
                                break  # closed meanwhile (say, for a malformed message)
                            await websocket.send_text(str(event.message))
                        break
                    except MessagesLost:
                        # Redis was away and is back: what was said meanwhile
                        # is gone. The room goes on; the page shows the hole.
                        await websocket.send_json({"type": "gap"})
            except SlowSubscriber:
                await websocket.close(1013, "too slow, reconnect")
            except WebSocketDisconnect:
                pass
            group.cancel_scope.cancel()

        group.start_soon(forward)
        await websocket.send_json({"type": "joined"})
        async for message in websocket.iter_json():
            if isinstance(message, dict):
                name = str(message.get("name", "guest"))[:40]
                text = str(message.get("text", ""))[:1000]
                await broadcast.publish(channel, json.dumps({"name": name, "text": text}))
        group.cancel_scope.cancel()


async def clock_page(request: Request) -> HTMLResponse:
    return HTMLResponse((PAGES / "clock.html").read_text("utf-8"))


async def clock_events(request: Request) -> EventSourceResponse:
    """A tick a second (``?interval=`` from 0.05 to 10 s), resumed from ``Last-Event-ID``."""
    try:
        interval = min(max(float(request.query_params.get("interval", "1")), 0.05), 10.0)
    except ValueError:
        interval = 1.0
    resumed = last_event_id(request) or ""
    start = int(resumed) if resumed.isdigit() and len(resumed) < 12 else 0

    async def ticks() -> AsyncIterator[dict[str, Any]]:
        n = start
        while True:
            n += 1
            now = datetime.datetime.now().strftime("%H:%M:%S")
            yield {"event": "tick", "id": str(n), "data": {"time": now, "n": n}}
            await anyio.sleep(interval)

    return EventSourceResponse(ticks(), ping=15)

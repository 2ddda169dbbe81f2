"""asgikit: a pure-ASGI micro-toolkit.  Every piece is a standalone ASGI app.

Names are imported lazily (PEP 562): ``from asgikit import cors`` loads the
CORS module and the core it needs, and nothing else.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "stack": "asgikit.composition",
    "router": "asgikit.routing",
    "route": "asgikit.routing",
    "websocket_route": "asgikit.routing",
    "mount": "asgikit.routing",
    "host": "asgikit.routing",
    "url_path_for": "asgikit.routing",
    "Request": "asgikit.requests",
    "WebSocket": "asgikit.websockets",
    "WebSocketDisconnect": "asgikit.exceptions",
    "HTTPException": "asgikit.exceptions",
    "Response": "asgikit.responses",
    "PlainTextResponse": "asgikit.responses",
    "HTMLResponse": "asgikit.responses",
    "JSONResponse": "asgikit.responses",
    "RedirectResponse": "asgikit.responses",
    "StreamingResponse": "asgikit.streaming",
    "BackgroundTask": "asgikit.background",
    "BackgroundTasks": "asgikit.background",
    "lifespan": "asgikit.lifespan",
}

if TYPE_CHECKING:
    from asgikit.background import BackgroundTask, BackgroundTasks
    from asgikit.composition import stack
    from asgikit.exceptions import HTTPException, WebSocketDisconnect
    from asgikit.lifespan import lifespan
    from asgikit.requests import Request
    from asgikit.responses import (
        HTMLResponse,
        JSONResponse,
        PlainTextResponse,
        RedirectResponse,
        Response,
    )
    from asgikit.routing import host, mount, route, router, url_path_for, websocket_route
    from asgikit.streaming import StreamingResponse
    from asgikit.websockets import WebSocket

__all__ = [
    "BackgroundTask",
    "BackgroundTasks",
    "HTMLResponse",
    "HTTPException",
    "JSONResponse",
    "PlainTextResponse",
    "RedirectResponse",
    "Request",
    "Response",
    "StreamingResponse",
    "WebSocket",
    "WebSocketDisconnect",
    "host",
    "lifespan",
    "mount",
    "route",
    "router",
    "stack",
    "url_path_for",
    "websocket_route",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'asgikit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return [*globals(), *_EXPORTS]

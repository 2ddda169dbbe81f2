"""asgikit: a pure-ASGI micro-toolkit.  Every piece is a standalone ASGI app.

Names are imported lazily (PEP 562): ``from asgikit import cors`` loads the
CORS module and the core it needs, and nothing else.
"""

from __future__ import annotations

import importlib
import sys as _sys
import types as _types
from typing import TYPE_CHECKING, Any

from asgikit._version import __version__ as __version__

_EXPORTS: dict[str, str] = {
    "stack": "asgikit.composition",
    "router": "asgikit.routing",
    "route": "asgikit.routing",
    "websocket_route": "asgikit.routing",
    "mount": "asgikit.routing",
    "host": "asgikit.routing",
    "url_path_for": "asgikit.routing",
    "NoMatchFound": "asgikit.routing",
    "Convertor": "asgikit.convertors",
    "register_convertor": "asgikit.convertors",
    "Request": "asgikit.requests",
    "WebSocket": "asgikit.websockets",
    "HTTPException": "asgikit.exceptions",
    "WebSocketDisconnect": "asgikit.exceptions",
    "Response": "asgikit.responses",
    "PlainTextResponse": "asgikit.responses",
    "HTMLResponse": "asgikit.responses",
    "JSONResponse": "asgikit.responses",
    "RedirectResponse": "asgikit.responses",
    "StreamingResponse": "asgikit.streaming",
    "EventSourceResponse": "asgikit.sse",
    "ServerSentEvent": "asgikit.sse",
    "FileResponse": "asgikit.files",
    "BackgroundTask": "asgikit.background",
    "BackgroundTasks": "asgikit.background",
    "FormData": "asgikit.forms",
    "UploadFile": "asgikit.forms",
    "Broadcast": "asgikit.broadcast",
    "lifespan": "asgikit.lifespan",
    "static_files": "asgikit.staticfiles",
    "cors": "asgikit.middleware.cors",
    "compress": "asgikit.middleware.compress",
    "sessions": "asgikit.middleware.sessions",
    "trusted_host": "asgikit.middleware.trusted_host",
    "https_redirect": "asgikit.middleware.https_redirect",
    "proxy_headers": "asgikit.middleware.proxy_headers",
    "server_errors": "asgikit.middleware.server_errors",
    "request_id": "asgikit.middleware.request_id",
    "body_limit": "asgikit.middleware.body_limit",
    "security_headers": "asgikit.middleware.security_headers",
    "timing": "asgikit.middleware.timing",
    "telemetry": "asgikit.middleware.telemetry",
    "timeout": "asgikit.middleware.timeout",
    "csrf": "asgikit.middleware.csrf",
    "websocket_origin": "asgikit.middleware.websocket_origin",
    "exception_handlers": "asgikit.middleware.exception_handlers",
    "http_middleware": "asgikit.middleware.http_middleware",
    "rate_limit": "asgikit.middleware.rate_limit",
    "authentication": "asgikit.authentication",
    "requires": "asgikit.authentication",
}

if TYPE_CHECKING:
    from asgikit.authentication import authentication, requires
    from asgikit.background import BackgroundTask, BackgroundTasks
    from asgikit.broadcast import Broadcast
    from asgikit.composition import stack
    from asgikit.convertors import Convertor, register_convertor
    from asgikit.exceptions import HTTPException, WebSocketDisconnect
    from asgikit.files import FileResponse
    from asgikit.forms import FormData, UploadFile
    from asgikit.lifespan import lifespan
    from asgikit.middleware.body_limit import body_limit
    from asgikit.middleware.compress import compress
    from asgikit.middleware.cors import cors
    from asgikit.middleware.csrf import csrf
    from asgikit.middleware.exception_handlers import exception_handlers
    from asgikit.middleware.http_middleware import http_middleware
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
    from asgikit.responses import (
        HTMLResponse,
        JSONResponse,
        PlainTextResponse,
        RedirectResponse,
        Response,
    )
    from asgikit.routing import (
        NoMatchFound,
        host,
        mount,
        route,
        router,
        url_path_for,
        websocket_route,
    )
    from asgikit.sse import EventSourceResponse, ServerSentEvent
    from asgikit.staticfiles import static_files
    from asgikit.streaming import StreamingResponse
    from asgikit.websockets import WebSocket

__all__ = [
    "BackgroundTask",
    "BackgroundTasks",
    "Broadcast",
    "Convertor",
    "EventSourceResponse",
    "FileResponse",
    "FormData",
    "HTMLResponse",
    "HTTPException",
    "JSONResponse",
    "NoMatchFound",
    "PlainTextResponse",
    "RedirectResponse",
    "Request",
    "Response",
    "ServerSentEvent",
    "StreamingResponse",
    "UploadFile",
    "WebSocket",
    "WebSocketDisconnect",
    "authentication",
    "body_limit",
    "compress",
    "cors",
    "csrf",
    "exception_handlers",
    "host",
    "http_middleware",
    "https_redirect",
    "lifespan",
    "mount",
    "proxy_headers",
    "rate_limit",
    "register_convertor",
    "request_id",
    "requires",
    "route",
    "router",
    "security_headers",
    "server_errors",
    "sessions",
    "stack",
    "static_files",
    "telemetry",
    "timeout",
    "timing",
    "trusted_host",
    "url_path_for",
    "websocket_origin",
    "websocket_route",
]


class _Package(_types.ModuleType):
    """The package module, guarding names that are also submodule names.

    ``asgikit.lifespan`` and ``asgikit.authentication`` are both a function
    and the module that holds it.  Importing the module would bind it over
    the function on the package; the function wins here.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, _types.ModuleType) and _EXPORTS.get(name) == f"{__name__}.{name}":
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'asgikit' has no attribute {name!r}")
    loaded = importlib.import_module(module)
    value = getattr(loaded, name)
    if module == f"{__name__}.{name}":
        # ``import asgikit.authentication as auth`` binds what the package
        # holds under that name: the function.  It carries its module's
        # public names, so ``auth.BaseUser`` works as type checkers say.
        for public in getattr(loaded, "__all__", ()):
            if public != name:
                setattr(value, public, getattr(loaded, public))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return [*globals(), *_EXPORTS]

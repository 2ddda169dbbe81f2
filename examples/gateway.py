"""A small API gateway: own routes, plus two upstreams behind one origin.

- ``/`` and ``/healthz`` are served here;
- ``/api/...`` goes to an HTTP service, with CORS answered and request
  bodies limited here, before the upstream sees anything;
- ``/ws/...`` goes to a WebSocket server.

The upstreams come from the environment::

    GATEWAY_API_UPSTREAM=http://127.0.0.1:8001 \\
    GATEWAY_WS_UPSTREAM=http://127.0.0.1:8002 \\
    GATEWAY_ALLOW_ORIGINS=http://localhost:3000 \\
        uvicorn examples.gateway:app

``/api/users?id=1`` reaches the API service as ``/users?id=1``.  The router
forwards lifespan to both proxies, so each opens its connection pool on
startup and closes it on shutdown.  Needs ``pip install 'asgikit-toolkit[proxy]'``.
"""

from __future__ import annotations

import os

from asgikit import JSONResponse, PlainTextResponse, Request, mount, route, router, stack, timeout
from asgikit.middleware.body_limit import body_limit
from asgikit.middleware.cors import cors
from asgikit.proxy import reverse_proxy

API_UPSTREAM = os.environ.get("GATEWAY_API_UPSTREAM", "http://127.0.0.1:8001")
WS_UPSTREAM = os.environ.get("GATEWAY_WS_UPSTREAM", "http://127.0.0.1:8002")
ALLOW_ORIGINS = os.environ.get("GATEWAY_ALLOW_ORIGINS", "http://localhost:3000").split(",")
MAX_BODY = int(os.environ.get("GATEWAY_MAX_BODY", str(10 * 1024 * 1024)))


async def home(request: Request) -> PlainTextResponse:
    return PlainTextResponse("gateway: /api/ -> HTTP service, /ws/ -> WebSocket service\n")


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", "api": API_UPSTREAM, "ws": WS_UPSTREAM})


api = stack(
    # A client that trickles its body is cut off (408) before it can hold an
    # upstream connection for long; WebSockets pass through.
    timeout(request=60.0, body_idle=15.0),
    cors(
        allow_origins=ALLOW_ORIGINS,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=["authorization", "content-type"],
        allow_credentials=True,
    ),
    body_limit(max_size=MAX_BODY),
    reverse_proxy(API_UPSTREAM, timeout=30.0),
)

app = router(
    route("/", home),
    route("/healthz", health),
    mount("/api", api),
    mount("/ws", reverse_proxy(WS_UPSTREAM)),
)

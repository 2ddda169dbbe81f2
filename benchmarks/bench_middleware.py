"""Middleware benchmark: JSON behind cors + compress + one header middleware.

The same stack three ways, in the same run, in-process (see _harness.py):

- raw: one hand-written ASGI app doing the same work (origin check, gzip,
  the four security headers) with no layering at all — the floor;
- asgikit: ``cors`` + ``compress`` + ``security_headers`` around a router;
- starlette: ``CORSMiddleware`` + ``GZipMiddleware`` + a pure-ASGI header
  middleware (the fast way Starlette's docs recommend) around a Starlette app.

gzip level 6 everywhere (Starlette's default is 9, which would only widen the
gap).  Two requests: a cross-origin GET asking for gzip (compression is then
most of the cost, for everybody), and the same without ``Accept-Encoding``
(pure middleware overhead).  Run:

    .venv/bin/python benchmarks/bench_middleware.py
"""

from __future__ import annotations

import json
import sys
import zlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import compare, http_scope, machine, report

from asgikit.middleware.compress import compress
from asgikit.middleware.cors import cors
from asgikit.middleware.security_headers import security_headers
from asgikit.responses import JSONResponse
from asgikit.routing import route, router

SITE = b"https://site.example"
DATA = {"items": [{"id": i, "name": f"item {i}", "tags": ["a", "b"]} for i in range(25)]}
SECURITY = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]

# --- raw ASGI: everything inline ----------------------------------------------------


async def raw_app(scope: Any, receive: Any, send: Any) -> None:
    origin = accept = None
    for name, value in scope["headers"]:
        if name == b"origin":
            origin = value
        elif name == b"accept-encoding":
            accept = value
    body = json.dumps(DATA, ensure_ascii=False, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json")]
    if accept is not None and b"gzip" in accept:
        z = zlib.compressobj(6, zlib.DEFLATED, 31)
        body = z.compress(body) + z.flush()
        headers += [(b"content-encoding", b"gzip"), (b"vary", b"Accept-Encoding, Origin")]
    else:
        headers.append((b"vary", b"Origin"))
    headers.append((b"content-length", str(len(body)).encode()))
    if origin == SITE:
        headers.append((b"access-control-allow-origin", origin))
    headers += SECURITY
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# --- asgikit ------------------------------------------------------------------------


async def data(request: Any) -> JSONResponse:
    return JSONResponse(DATA)


asgikit_app = cors(
    compress(security_headers(router(route("/data", data))), compresslevel=6),
    allow_origins=[SITE.decode()],
)

# --- Starlette ----------------------------------------------------------------------


def starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.cors import CORSMiddleware
    from starlette.middleware.gzip import GZipMiddleware
    from starlette.responses import JSONResponse as StarletteJSON
    from starlette.routing import Route

    class HeaderMiddleware:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await self.app(scope, receive, send)
                return

            async def add(message: Any) -> None:
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message["headers"], *SECURITY]}
                await send(message)

            await self.app(scope, receive, add)

    async def endpoint(request: Any) -> StarletteJSON:
        return StarletteJSON(DATA)

    return Starlette(
        routes=[Route("/data", endpoint)],
        middleware=[
            Middleware(CORSMiddleware, allow_origins=[SITE.decode()]),
            Middleware(GZipMiddleware, compresslevel=6),
            Middleware(HeaderMiddleware),
        ],
    )


def main() -> None:
    apps = {"raw": raw_app, "asgikit": asgikit_app, "starlette": starlette_app()}
    print(f"## Middleware stack ({machine()})\n")
    for title, headers in [
        ("cross-origin GET, gzip", [(b"origin", SITE), (b"accept-encoding", b"gzip")]),
        ("cross-origin GET, no compression", [(b"origin", SITE)]),
    ]:
        scope = http_scope("GET", "/data", headers=headers)
        print(report(title, compare(apps, scope)))
        print()


if __name__ == "__main__":
    main()

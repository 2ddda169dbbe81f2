"""Core benchmark: asgikit vs raw ASGI vs Starlette, in-process, same run.

Scenarios (issue 2): hello text; JSON with an ``int`` path parameter in a
table of 24 routes; a ~1 KB JSON body echo.  Run:

    .venv/bin/python benchmarks/bench_core.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import compare, http_scope, machine, report

from asgikit import JSONResponse, PlainTextResponse, Request, route, router

# --- raw ASGI: the pure-Python floor -------------------------------------------------

RAW_TEXT_HEADERS = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"13")]


async def raw_app(scope: Any, receive: Any, send: Any) -> None:
    path = scope["path"]
    if path == "/":
        await send({"type": "http.response.start", "status": 200, "headers": RAW_TEXT_HEADERS})
        await send({"type": "http.response.body", "body": b"Hello, world!"})
        return
    if path.startswith("/users/") and scope["method"] == "GET":
        tail = path[7:]
        if tail.isdigit():
            body = json.dumps({"id": int(tail), "name": "user"}, separators=(",", ":")).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
    if path == "/echo" and scope["method"] == "POST":
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        data = json.loads(b"".join(chunks))
        body = json.dumps(data, separators=(",", ":")).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})


# --- asgikit --------------------------------------------------------------------------


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("Hello, world!")


async def user(request: Request) -> JSONResponse:
    return JSONResponse({"id": request.path_params["id"], "name": "user"})


async def echo(request: Request) -> JSONResponse:
    return JSONResponse(await request.json())


async def other(request: Request) -> PlainTextResponse:
    return PlainTextResponse("other")


FILLER = [f"/section{i}/{{item:int}}" for i in range(20)]

asgikit_app = router(
    route("/", hello),
    *[route(path, other, name=f"filler{i}") for i, path in enumerate(FILLER)],
    route("/items/{slug}", other, name="items"),
    route("/users/{id:int}", user),
    route("/echo", echo, methods=["POST"]),
)

# --- Starlette --------------------------------------------------------------------------


def starlette_apps() -> tuple[Any, Any]:
    from starlette.applications import Starlette
    from starlette.requests import Request as SRequest
    from starlette.responses import JSONResponse as SJSON
    from starlette.responses import PlainTextResponse as SText
    from starlette.routing import Route, Router

    async def s_hello(request: SRequest) -> SText:
        return SText("Hello, world!")

    async def s_user(request: SRequest) -> SJSON:
        return SJSON({"id": request.path_params["id"], "name": "user"})

    async def s_echo(request: SRequest) -> SJSON:
        return SJSON(await request.json())

    async def s_other(request: SRequest) -> SText:
        return SText("other")

    routes = [
        Route("/", s_hello),
        *[Route(path, s_other, name=f"filler{i}") for i, path in enumerate(FILLER)],
        Route("/items/{slug}", s_other),
        Route("/users/{id:int}", s_user),
        Route("/echo", s_echo, methods=["POST"]),
    ]
    return Starlette(routes=routes), Router(routes=routes)


def main() -> None:
    starlette_app, starlette_router = starlette_apps()
    apps = {
        "raw": raw_app,
        "asgikit": asgikit_app,
        "starlette": starlette_app,
        "starlette-router": starlette_router,
    }
    payload = json.dumps(
        {"items": [{"id": i, "name": f"item-{i}", "tags": ["a", "b"]} for i in range(24)]}
    ).encode()
    scenarios = [
        ("hello text", http_scope("GET", "/"), b""),
        ("JSON, int path parameter, 24 routes", http_scope("GET", "/users/123"), b""),
        (
            f"JSON echo ({len(payload)} bytes)",
            http_scope("POST", "/echo", headers=[(b"content-type", b"application/json")]),
            payload,
        ),
    ]
    print(f"Machine: {machine()}\n")
    for title, scope, body in scenarios:
        timings = compare(apps, scope, body)
        print(report(title, timings))
        print()


if __name__ == "__main__":
    main()

"""The asgikit showcase: one small real app that uses every piece that has landed.

Run it with ``bash scripts/showcase.sh`` and open http://127.0.0.1:8000.
There is no application object: the app is a ``stack`` of layers around a
``router``, and every piece below is an ASGI app of its own.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

from asgikit import (
    HTMLResponse,
    HTTPException,
    JSONResponse,
    RedirectResponse,
    Request,
    StreamingResponse,
    lifespan,
    mount,
    route,
    router,
    stack,
)

HOME = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>asgikit showcase</title></head>
<body>
<h1>asgikit showcase</h1>
<ul>
  <li><a href="{users}">the users API</a> (JSON, typed path parameters, reverse URLs)</li>
  <li><a href="/stream">a streamed response</a></li>
  <li><a href="/health">health</a> (lifespan state)</li>
</ul>
</body>
</html>
"""


@asynccontextmanager
async def resources() -> AsyncIterator[dict[str, Any]]:
    users = {1: {"id": 1, "name": "Ada", "email": "ada@example.com"}}
    yield {"started": time.time(), "users": users}


async def home(request: Request) -> HTMLResponse:
    return HTMLResponse(HOME.format(users=request.url_for("api:users")))


async def health(request: Request) -> JSONResponse:
    uptime = time.time() - request.state.started
    return JSONResponse({"status": "ok", "uptime": round(uptime, 3)})


async def list_users(request: Request) -> JSONResponse:
    users = list(request.state.users.values())
    return JSONResponse({"users": users, "total": len(users)})


async def get_user(request: Request) -> JSONResponse:
    user = request.state.users.get(request.path_params["user_id"])
    if user is None:
        raise HTTPException(404, "No such user")
    return JSONResponse(user)


async def create_user(request: Request) -> JSONResponse:
    data = await request.json()
    if not isinstance(data, dict) or not data.get("name") or not data.get("email"):
        raise HTTPException(422, "name and email are required")
    users = request.state.users
    user = {"id": max(users, default=0) + 1, "name": data["name"], "email": data["email"]}
    users[user["id"]] = user
    return JSONResponse(user, status_code=201)


async def stream(request: Request) -> StreamingResponse:
    async def lines() -> AsyncIterator[str]:
        for number in range(1, 6):
            yield f"line {number}\n"
            await anyio.sleep(0.2)

    return StreamingResponse(lines(), media_type="text/plain")


async def old_users(request: Request) -> RedirectResponse:
    return RedirectResponse(request.url_for("api:users"), status_code=302)


api = router(
    route("/users", list_users, name="users"),
    route("/users", create_user, methods=["POST"], name="create_user"),
    route("/users/{user_id:int}", get_user, name="user"),
)

app = stack(
    lifespan(handler=resources),
    router(
        route("/", home),
        route("/health", health),
        route("/stream", stream),
        route("/redirect", old_users),
        mount("/api", api, name="api"),
    ),
)

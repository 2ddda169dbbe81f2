"""A Flask (WSGI) app mounted under an asgikit router, through a2wsgi.

    pip install 'asgikit-toolkit[wsgi]' flask
    uvicorn examples.wsgi_mount:app

``/`` is asgikit; everything below ``/flask`` is the Flask app, which sees
the mount as its ``SCRIPT_NAME`` (``request.script_root`` and ``url_for``
give ``/flask/...``), streams its generator responses, and reads uploads as
they arrive.  The router's lifespan still runs for the whole app, and its
state reaches Flask through ``environ["asgi.scope"]``.  a2wsgi runs the WSGI
app in a thread pool on asyncio (not trio).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

from a2wsgi import WSGIMiddleware
from flask import Flask, Response, request, url_for

from asgikit import JSONResponse, Request, lifespan, mount, route, router

flask_app = Flask(__name__)


@flask_app.get("/where")
def where() -> dict[str, Any]:
    state = request.environ["asgi.scope"].get("state", {})
    return {
        "script_root": request.script_root,
        "path": request.path,
        "url_for": url_for("where"),
        "greeting": state.get("greeting"),
    }


@flask_app.get("/count/<int:n>")
def count(n: int) -> Response:
    def lines() -> Iterator[str]:
        for i in range(n):
            yield f"line {i}\n"

    return Response(lines(), mimetype="text/plain")


@flask_app.post("/upload")
def upload() -> dict[str, Any]:
    digest = hashlib.sha256()
    size = 0
    while chunk := request.stream.read(64 * 1024):  # as it arrives, never whole
        digest.update(chunk)
        size += len(chunk)
    return {"size": size, "sha256": digest.hexdigest()}


async def home(request: Request) -> JSONResponse:
    return JSONResponse({"asgikit": True, "greeting": request.state.greeting})


@asynccontextmanager
async def startup() -> AsyncIterator[dict[str, Any]]:
    yield {"greeting": "hello from the lifespan"}


app = lifespan(
    router(
        route("/", home),
        mount("/flask", WSGIMiddleware(flask_app)),
    ),
    startup,
)

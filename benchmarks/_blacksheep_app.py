"""BlackSheep's side of ``_scenarios.py`` (no postponed annotations: BlackSheep reads them)."""

import logging
from typing import Any

from _scenarios import FILE_SIZES, FILLER, ORIGIN, data_file, small_json
from blacksheep import Application, Request, Response, text
from blacksheep import json as bjson
from blacksheep.server.compression import GzipMiddleware
from blacksheep.server.responses import file as bfile
from blacksheep.server.routing import Router


async def hello(request: Request) -> Response:
    return text("Hello, world!")


async def user(request: Request) -> Response:
    return bjson(small_json(int(request.route_values["id"])))


async def echo(request: Request) -> Response:
    return bjson(await request.json())


async def other(request: Request) -> Response:
    return text("other")


async def small(request: Request) -> Response:
    return bjson(small_json(7))


async def add_header(request: Request, handler: Any) -> Response:
    response: Response = await handler(request)
    response.add_header(b"x-layer", b"1")
    return response


def _file_endpoint(size: int) -> Any:
    path = str(data_file(size))

    async def file(request: Request) -> Response:
        return bfile(path, "application/octet-stream")

    return file


def build() -> tuple[Any, Any]:
    """The BlackSheep app of every plain scenario, and its start coroutine function."""
    # Its 404s are logged at INFO by default: not what is measured here.
    logging.getLogger("blacksheep.server").setLevel(logging.WARNING)
    app = Application(show_error_details=False, router=Router())
    get = app.router.add_get
    get("/", hello)
    for path in FILLER:
        get(path.replace("{item:int}", "{int:item}"), other)
    get("/users/{int:id}", user)
    app.router.add_post("/echo", echo)
    for name, size in FILE_SIZES.items():
        get("/" + name, _file_endpoint(size))
    return app, app.start


def build_layered() -> tuple[Any, Any]:
    """JSON behind CORS, gzip and a header middleware."""
    app = Application(show_error_details=False, router=Router())
    app.router.add_get("/mw/small", small)
    app.use_cors(allow_methods="GET", allow_origins=ORIGIN)
    app.middlewares.append(GzipMiddleware(min_size=500, comp_level=6))
    app.middlewares.append(add_header)
    return app, app.start

"""Litestar's side of ``_scenarios.py`` (no postponed annotations: Litestar reads them)."""

from typing import Any

from _scenarios import FILE_SIZES, FILLER, data_file, small_json
from litestar import Litestar, MediaType, get, post
from litestar.response import File


@get("/", media_type=MediaType.TEXT)
async def hello() -> str:
    return "Hello, world!"


@get("/users/{id:int}")
async def user(id: int) -> dict[str, Any]:
    return small_json(id)


@post("/echo", status_code=200)
async def echo(data: dict[str, Any]) -> dict[str, Any]:
    return data


def _file_endpoint(name: str, size: int) -> Any:
    path = data_file(size)

    @get("/" + name, name=name)
    async def file() -> File:
        return File(path, media_type="application/octet-stream", content_disposition_type="inline")

    return file


def _other(index: int, path: str) -> Any:
    @get(path, name=f"other{index}", media_type=MediaType.TEXT)
    async def other(item: int) -> str:
        return "other"

    return other


def build() -> tuple[Any, None]:
    """The Litestar app of every plain scenario."""
    others = [_other(index, path) for index, path in enumerate(FILLER)]
    files = [_file_endpoint(name, size) for name, size in FILE_SIZES.items()]
    app = Litestar(route_handlers=[hello, *others, user, echo, *files], openapi_config=None)
    return app, None

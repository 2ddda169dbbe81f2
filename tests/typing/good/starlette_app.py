"""asgikit middleware in a Starlette app: must pass mypy --strict and pyright."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from asgikit import compress, cors, request_id, sessions, static_files


async def home(request: Request) -> PlainTextResponse:
    return PlainTextResponse("home")


app = Starlette(
    routes=[Route("/", home), Mount("/static", static_files(directory="."))],
    middleware=[
        Middleware(cors, allow_origins=["https://app.example.com"]),
        Middleware(compress, minimum_size=500),
        Middleware(sessions, secret_key="change me"),
    ],
)
app.add_middleware(request_id)

"""asgikit middleware in a Litestar app: must pass mypy --strict and pyright."""

from __future__ import annotations

from litestar import Litestar, get
from litestar.middleware import DefineMiddleware

from asgikit import compress, cors, sessions


@get("/")
async def home() -> str:
    return "home"


app = Litestar(
    route_handlers=[home],
    middleware=[
        DefineMiddleware(cors, allow_origins=["https://app.example.com"]),
        DefineMiddleware(compress, minimum_size=500),
        DefineMiddleware(sessions, secret_key="change me"),
    ],
)

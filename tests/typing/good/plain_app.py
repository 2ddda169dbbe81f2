"""A plain asgikit app, as the README writes it: must pass mypy --strict and pyright."""

from __future__ import annotations

import asgikit.authentication as auth
from asgikit import (
    JSONResponse,
    Request,
    compress,
    cors,
    route,
    router,
    server_errors,
    sessions,
    stack,
    trusted_host,
)
from asgikit.types import ASGIApp, Layer


async def user(request: Request) -> JSONResponse:
    return JSONResponse({"id": request.path_params["id"]})


api = router(route("/users/{id:int}", user, name="user"))

app: ASGIApp = stack(
    trusted_host(allowed_hosts=["example.com"]),
    cors(allow_origins=["https://app.example.com"], allow_credentials=True),
    server_errors(),
    compress(minimum_size=500),
    sessions(secret_key="change me"),
    api,
)
by_position: ASGIApp = cors(api, allow_origins=["*"])
by_keyword: ASGIApp = cors(app=api, allow_origins=["*"])
layer: Layer = compress(minimum_size=100)
wrapped: ASGIApp = layer(api)
anonymous: auth.BaseUser = auth.UnauthenticatedUser()

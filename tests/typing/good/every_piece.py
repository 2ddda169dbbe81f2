"""Every middleware, as a layer and around an app, the way the README and docstrings write them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from asgikit import (
    HTTPException,
    PlainTextResponse,
    Request,
    authentication,
    body_limit,
    csrf,
    exception_handlers,
    http_middleware,
    https_redirect,
    lifespan,
    proxy_headers,
    request_id,
    requires,
    route,
    router,
    security_headers,
    stack,
    timing,
    websocket_origin,
)
from asgikit.authentication import AuthCredentials, AuthResult, SimpleUser
from asgikit.requests import HTTPConnection
from asgikit.types import ASGIApp


class TokenBackend:
    async def authenticate(self, conn: HTTPConnection) -> AuthResult:
        if conn.headers.get("authorization") == "Bearer secret":
            return AuthCredentials(["read"]), SimpleUser("ada")
        return None


@requires("read")
async def secret(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"hello {request.user.display_name}")


async def not_found(request: Request, exc: Exception) -> PlainTextResponse:
    return PlainTextResponse("nothing here", status_code=404)


@http_middleware
async def powered_by(request: Request, call_next: object) -> PlainTextResponse:
    return PlainTextResponse("short-circuited")


@asynccontextmanager
async def resources() -> AsyncIterator[dict[str, object]]:
    yield {"started": True}


endpoints = router(route("/secret", secret))

app: ASGIApp = stack(
    lifespan(handler=resources),
    proxy_headers(trusted_hosts=["127.0.0.1"]),
    https_redirect(),
    security_headers(),
    request_id(),
    timing(),
    body_limit(max_size=2**20),
    csrf(secret_key="change me"),
    websocket_origin(allowed_origins=["https://app.example.com"]),
    exception_handlers(handlers={404: not_found, HTTPException: not_found}),
    authentication(backend=TokenBackend()),
    endpoints,
)
around: ASGIApp = lifespan(authentication(endpoints, TokenBackend()), resources)
function_layer: ASGIApp = powered_by(endpoints)

"""Attacks on exception_handlers: handlers that fail, recurse, or read a body that is gone."""

from __future__ import annotations

from typing import Any

import pytest

from asgikit.exceptions import HTTPException
from asgikit.middleware.exception_handlers import exception_handlers
from asgikit.middleware.server_errors import server_errors
from asgikit.requests import Request
from asgikit.responses import PlainTextResponse, Response
from asgikit.routing import route, router
from tests.conftest import SendRecorder, body_receive, disconnect_after, make_scope, run_app

pytestmark = pytest.mark.anyio


async def refuse(request: Request) -> Response:
    raise HTTPException(403, "no")


async def reading_handler(request: Request, exc: Exception) -> Response:
    body = await request.body()
    return PlainTextResponse(f"{len(body)} bytes", status_code=403)


@pytest.mark.parametrize("key", [403, HTTPException, Exception])
async def test_a_client_gone_mid_body_while_a_handler_reads_it_ends_quietly(key: Any) -> None:
    # The endpoint refused before reading; its handler reads the body, and the
    # client has left: nobody is there to answer, and no traceback should
    # reach the server's log (issue 12 #12, as routes do for the endpoint).
    app = exception_handlers(router(route("/", refuse, methods=["POST"])), {key: reading_handler})
    sent = await run_app(app, make_scope("POST"), disconnect_after(b"partial"))
    assert sent.messages == []


async def test_a_client_gone_while_a_handler_reads_is_quiet_outside_a_router_too() -> None:
    async def raw(scope: Any, receive: Any, send: Any) -> None:
        raise HTTPException(403, "no")

    app = exception_handlers(raw, {403: reading_handler})
    sent = await run_app(app, make_scope("POST"), disconnect_after(b"partial"))
    assert sent.messages == []


async def same_again(request: Request, exc: Exception) -> Response:
    raise exc


async def another(request: Request, exc: Exception) -> Response:
    raise RuntimeError("handler broke")


async def not_a_response(request: Request, exc: Exception) -> Any:
    return {"detail": "a dict"}


async def boom(request: Request) -> Response:
    raise ValueError("endpoint broke")


@pytest.mark.parametrize(
    ("handler", "escapes", "says"),
    [
        (same_again, ValueError, "endpoint broke"),
        (another, RuntimeError, "handler broke"),
        (not_a_response, TypeError, "not_a_response returned dict"),
    ],
)
@pytest.mark.parametrize("layers", [1, 2, 3])
async def test_a_failing_handler_runs_at_most_once_a_layer_and_ends_in_a_500(
    handler: Any, escapes: type[Exception], says: str, layers: int
) -> None:
    # A handler's failure is not handled again by its own layer or one inside
    # (a returned dict was: once at the route, then again by each layer, and
    # told "'dict' object is not callable" without naming the handler).  A
    # layer further out may still answer it (a layer of its own, as in
    # Starlette's nested apps): bounded by the layers, never a loop.
    calls = []

    async def counted(request: Request, exc: Exception) -> Any:
        calls.append(exc)
        return await handler(request, exc)

    counted.__qualname__ = handler.__qualname__
    app: Any = router(route("/", boom))
    for _ in range(layers):
        app = exception_handlers(app, {Exception: counted})
    send = SendRecorder()
    with pytest.raises(escapes, match=says):
        await server_errors(app)(make_scope(), body_receive(), send)
    assert len(calls) <= layers
    assert send.status == 500

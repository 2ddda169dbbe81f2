"""Attacks on timeout: stalls at each point of an exchange, under and over other layers.

Deadlines are tiny and the stalls endless, so each test asserts what was
answered (and what was cleaned up), never how long it took.
"""

from __future__ import annotations

import os
from typing import Any

import anyio
import pytest

from asgikit.middleware.exception_handlers import exception_handlers
from asgikit.middleware.server_errors import server_errors
from asgikit.middleware.timeout import timeout
from asgikit.requests import Request
from asgikit.responses import PlainTextResponse, Response
from asgikit.routing import route, router
from asgikit.types import Message, Receive, Scope, Send
from tests.conftest import SendRecorder, make_scope

pytestmark = pytest.mark.anyio

BOUNDARY = "t-boundary"


def stalls_after(*messages: Message) -> Receive:
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    return receive


def chunk(body: bytes, more: bool = True) -> Message:
    return {"type": "http.request", "body": body, "more_body": more}


UPLOAD_HEAD = (
    f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=f; filename=a\r\n\r\n".encode()
    + b"x" * 4096
)


async def upload(request: Request) -> Response:
    form = await request.form(spool_max_size=1024)
    return PlainTextResponse(str(len(form)))


def form_scope() -> Scope:
    content_type = f"multipart/form-data; boundary={BOUNDARY}".encode()
    return make_scope("POST", headers=[(b"content-type", content_type)])


async def on_error(request: Request, exc: Exception) -> Response:
    handled.append(exc)
    return PlainTextResponse("handled", status_code=418)


handled: list[BaseException] = []


def wrapped(app: Any, how: str) -> Any:
    if how == "alone":
        return timeout(app, body_idle=0.05, request=None)
    if how == "outside exception_handlers":
        return timeout(
            exception_handlers(app, {Exception: on_error}), body_idle=0.05, request=None
        )
    if how == "outside server_errors":
        return timeout(server_errors(app), body_idle=0.05, request=None)
    return server_errors(timeout(app, body_idle=0.05, request=None))  # inside server_errors


LAYOUTS = ["alone", "outside exception_handlers", "outside server_errors", "inside server_errors"]


@pytest.mark.parametrize("how", LAYOUTS)
@pytest.mark.parametrize(
    "messages",
    [
        pytest.param((), id="stall-before-any-body"),
        pytest.param((chunk(UPLOAD_HEAD),), id="stall-mid-file"),
        pytest.param(
            (chunk(b""), chunk(b""), chunk(UPLOAD_HEAD[:10])), id="empty-chunks-then-stall"
        ),
    ],
)
async def test_an_upload_that_stalls_anywhere_is_408_with_its_spooled_files_closed(
    how: str, messages: tuple[Message, ...]
) -> None:
    handled.clear()
    app = wrapped(router(route("/", upload, methods=["POST"])), how)
    fds = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    send = SendRecorder()
    with anyio.fail_after(10):
        await app(form_scope(), stalls_after(*messages), send)
    assert send.status == 408
    assert send.complete
    assert handled == []  # the deadline is no application error
    if fds is not None:
        assert len(os.listdir("/proc/self/fd")) == fds


async def test_a_client_that_never_reads_the_response_is_cut_off_at_the_deadline() -> None:
    cleaned: list[str] = []

    async def big(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for _ in range(1000):
                await send({"type": "http.response.body", "body": b"x" * 1024, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            cleaned.append("big")

    sent: list[Message] = []

    async def full_socket(message: Message) -> None:
        sent.append(message)
        if len(sent) > 2:
            await anyio.sleep_forever()  # the client stopped reading

    with anyio.fail_after(10):
        await timeout(big, request=0.05)(
            make_scope(), stalls_after(chunk(b"", False)), full_socket
        )
    assert cleaned == ["big"]
    assert not any(m["type"] == "http.response.body" and not m.get("more_body") for m in sent)


async def test_a_final_body_message_without_more_body_ends_the_body_for_the_idle_limit() -> None:
    # "more_body" absent is False (ASGI spec): waiting for the disconnect
    # afterwards is no stall, and the request deadline still bounds it (503).
    async def waits_for_disconnect(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await receive()

    send = SendRecorder()
    app = timeout(waits_for_disconnect, body_idle=0.01, request=0.1)
    with anyio.fail_after(10):
        await app(make_scope("POST"), stalls_after({"type": "http.request", "body": b"a"}), send)
    assert send.status == 503

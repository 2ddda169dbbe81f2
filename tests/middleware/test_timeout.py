"""timeout: 408 for a stalled body, 503 past the deadline, a cut-off once started.

Deadlines are tiny and the stalls endless (a ``receive`` that never answers),
so each test asserts what was answered, never how long it took.
"""

from __future__ import annotations

import socket

import anyio
import pytest

from asgikit import stack, timeout
from asgikit.requests import Request
from asgikit.responses import PlainTextResponse
from asgikit.types import Message, Receive, Scope, Send
from tests.conftest import SendRecorder, body_receive, make_scope, run_app
from tests.servers.live import serve

finally_ran: list[str] = []


async def read_body(scope: Scope, receive: Receive, send: Send) -> None:
    try:
        body = await Request(scope, receive).body()
    finally:
        finally_ran.append("read_body")
    await PlainTextResponse(f"got {len(body)}")(scope, receive, send)


async def never_answers(scope: Scope, receive: Receive, send: Send) -> None:
    try:
        await anyio.sleep_forever()
    finally:
        finally_ran.append("never_answers")


async def answers_after(scope: Scope, receive: Receive, send: Send) -> None:
    await anyio.sleep(0.2)
    await PlainTextResponse("late but fine")(scope, receive, send)


async def starts_then_hangs(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    await anyio.sleep_forever()


def stalls_mid_body(*chunks: bytes) -> Receive:
    """Some body with ``more_body=True``, then a client that never sends the rest."""
    pending: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": True} for chunk in chunks
    ]

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    return receive


def post() -> Scope:
    return make_scope("POST", headers=[(b"content-length", b"100")])


async def test_a_client_that_stalls_mid_body_gets_408_and_the_app_is_cancelled() -> None:
    finally_ran.clear()
    app = timeout(read_body, body_idle=0.05, request=None)
    with anyio.fail_after(10):
        sent = await run_app(app, post(), stalls_mid_body(b"x" * 10))
    assert sent.status == 408
    assert sent.header(b"connection") == [b"close"]
    assert sent.complete
    assert finally_ran == ["read_body"]


async def test_a_request_deadline_that_strikes_while_the_body_trickles_is_408() -> None:
    app = timeout(read_body, body_idle=None, request=0.05)
    with anyio.fail_after(10):
        sent = await run_app(app, post(), stalls_mid_body(b"a", b"b"))
    assert sent.status == 408


async def test_an_app_past_the_request_deadline_gets_503() -> None:
    finally_ran.clear()
    with anyio.fail_after(10):
        sent = await run_app(timeout(never_answers, request=0.05), make_scope())
    assert sent.status == 503
    assert sent.complete
    assert finally_ran == ["never_answers"]


async def test_a_started_response_is_cut_off_without_its_final_message() -> None:
    with anyio.fail_after(10):
        sent = await run_app(timeout(starts_then_hangs, request=0.05), make_scope())
    assert sent.status == 200  # one start only: no 503 after the fact
    assert sent.body == b"partial"
    assert not sent.complete  # the server closes the connection: visibly truncated


async def test_a_request_within_its_limits_is_untouched() -> None:
    app = timeout(read_body, request=10, body_idle=10)
    sent = await run_app(app, post(), body_receive(b"x" * 60, b"y" * 40))
    assert (sent.status, sent.body) == (200, b"got 100")


async def test_excluded_paths_have_no_request_deadline_but_keep_the_body_idle_limit() -> None:
    app = timeout(_by_path, request=0.05, body_idle=0.05, exclude=["/events"])
    with anyio.fail_after(10):
        slow = await run_app(app, make_scope("GET", "/events"))
        stalled = await run_app(app, make_scope("POST", "/events/upload"), stalls_mid_body(b"x"))
        other = await run_app(app, make_scope("GET", "/other"))
    assert (slow.status, slow.body) == (200, b"late but fine")
    assert stalled.status == 408
    assert other.status == 503


async def _by_path(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["path"] == "/events/upload":
        await read_body(scope, receive, send)
    else:
        await answers_after(scope, receive, send)


async def test_waiting_for_the_disconnect_after_the_body_is_not_a_stall() -> None:
    # A streaming response listens on receive() for http.disconnect once the
    # body is read: that wait is not a body, and no 408 comes of it.
    calls: list[int] = []

    async def body_then_disconnect_later() -> Message:
        calls.append(1)
        if len(calls) == 1:
            return {"type": "http.request", "body": b"", "more_body": False}
        await anyio.sleep(0.2)
        return {"type": "http.disconnect"}

    async def waits_for_disconnect(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        assert (await receive())["type"] == "http.disconnect"
        await PlainTextResponse("done")(scope, receive, send)

    app = timeout(waits_for_disconnect, body_idle=0.05, request=None)
    with anyio.fail_after(10):
        sent = await run_app(app, make_scope(), body_then_disconnect_later)
    assert (sent.status, sent.body) == (200, b"done")


async def test_websocket_and_lifespan_scopes_pass_through() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await anyio.sleep(0.1)
        seen.append(scope["type"])

    wrapped = timeout(app, request=0.01, body_idle=0.01)
    with anyio.fail_after(10):
        for kind in ("websocket", "lifespan"):
            await wrapped({"type": kind}, body_receive(), SendRecorder())
    assert seen == ["websocket", "lifespan"]


@pytest.mark.parametrize(
    "options", [{"request": 0}, {"body_idle": -1}, {"request": float("inf")}, {"body_idle": 0.0}]
)
def test_limits_must_be_positive_seconds(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="positive"):
        timeout(read_body, **options)


async def test_timeout_is_a_layer_for_stack() -> None:
    app = stack(timeout(request=0.05), never_answers)
    with anyio.fail_after(10):
        assert (await run_app(app, make_scope())).status == 503


def test_slowloris_body_through_uvicorn_gets_408_and_the_connection_closes() -> None:
    finally_ran.clear()
    with serve(timeout(read_body, body_idle=0.3), lifespan="off") as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=15) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
            answer = b""
            while chunk := sock.recv(4096):  # the server closes after the 408
                answer += chunk
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"connection: close" in answer.lower()
    assert finally_ran == ["read_body"]


async def test_background_work_after_a_complete_response_is_not_cut_off() -> None:
    done: list[str] = []

    async def answers_then_works(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("ok")(scope, receive, send)
        await anyio.sleep(0.2)  # a background task, past the request deadline
        done.append("background")

    with anyio.fail_after(10):
        sent = await run_app(timeout(answers_then_works, request=0.05), make_scope())
    assert (sent.status, sent.body) == (200, b"ok")
    assert done == ["background"]

"""Tests for asgikit.testing: the in-process httpx test client, sync and async."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote_plus

import anyio
import anyio.to_thread
import pytest

from asgikit import JSONResponse, RedirectResponse
from asgikit._httpx import httpx
from asgikit.exceptions import WebSocketDisconnect
from asgikit.testing import AsyncTestClient, LifespanFailed, TestClient, WebSocketDenialResponse
from asgikit.types import Message, Receive, Scope, Send

Backend = Literal["asyncio", "trio"]


class Boom(Exception):
    pass


async def read_body(receive: Receive) -> bytes:
    body: bytes = b""
    while True:
        message = await receive()
        assert message["type"] == "http.request"
        body += message["body"]
        if not message["more_body"]:
            return body


async def respond(send: Send, body: bytes = b"", status: int = 200) -> None:
    headers = [(b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def no_lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        raise RuntimeError("lifespan is not supported")


def scope_recorder() -> tuple[list[Scope], Any]:
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        if scope["type"] == "http":
            scopes.append(scope)
            await respond(send, b"ok")

    return scopes, app


# Scope shape


def test_http_scope_has_decoded_path_raw_path_query_and_lowercased_headers() -> None:
    scopes, app = scope_recorder()
    with TestClient(app) as client:
        response = client.get("/caf%C3%A9/a%2Fb?x=1&y=%20", headers={"X-Custom": "Value"})
    assert response.status_code == 200
    scope = scopes[0]
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/café/a/b"
    assert scope["raw_path"] == b"/caf%C3%A9/a%2Fb"
    assert scope["query_string"] == b"x=1&y=%20"
    assert scope["root_path"] == ""
    assert (b"host", b"testserver") in scope["headers"]
    assert (b"x-custom", b"Value") in scope["headers"]
    assert all(name == name.lower() for name, _ in scope["headers"])
    assert tuple(scope["client"]) == ("testclient", 50000)
    assert tuple(scope["server"]) == ("testserver", 80)
    assert set(scope["extensions"]) == {
        "http.response.pathsend",
        "http.response.trailers",
        "websocket.http.response",
    }


def test_scope_follows_base_url_client_and_root_path_options() -> None:
    scopes, app = scope_recorder()
    client = TestClient(
        app, "https://example.org:8443", root_path="/api", client=("10.0.0.1", 1234)
    )
    with client:
        client.get("/users/1")
    scope = scopes[0]
    assert scope["scheme"] == "https"
    assert tuple(scope["server"]) == ("example.org", 8443)
    assert tuple(scope["client"]) == ("10.0.0.1", 1234)
    # Like a server's --root-path behind a prefix-stripping proxy.
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/users/1"
    assert scope["raw_path"] == b"/api/users/1"


async def test_async_client_builds_the_same_http_scope() -> None:
    scopes, app = scope_recorder()
    async with TestClient(app) as client:
        assert isinstance(client, AsyncTestClient)
        response = await client.post("/a%20b?q=1", content=b"x")
    assert response.text == "ok"
    scope = scopes[0]
    assert (scope["method"], scope["path"], scope["raw_path"]) == ("POST", "/a b", b"/a%20b")
    assert scope["query_string"] == b"q=1"
    assert (b"content-length", b"1") in scope["headers"]


# Request bodies


def body_recorder() -> tuple[list[Message], Any]:
    messages: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        while True:
            message = await receive()
            messages.append(message)
            if not message.get("more_body"):
                break
        await respond(send)

    return messages, app


def test_request_body_reaches_the_app_chunk_by_chunk() -> None:
    messages, app = body_recorder()
    with TestClient(app) as client:
        client.post("/", content=iter([b"ab", b"", b"cd", b"e"]))
    assert messages == [
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cd", "more_body": True},
        {"type": "http.request", "body": b"e", "more_body": False},
    ]


async def test_async_request_body_reaches_the_app_chunk_by_chunk() -> None:
    messages, app = body_recorder()

    async def chunks() -> Any:
        yield b"one"
        yield b"two"

    async with TestClient(app) as client:
        await client.post("/", content=chunks())
    assert [(m["body"], m["more_body"]) for m in messages] == [(b"one", True), (b"two", False)]


def test_empty_request_body_is_one_final_message() -> None:
    messages, app = body_recorder()
    with TestClient(app) as client:
        client.get("/")
    assert messages == [{"type": "http.request", "body": b"", "more_body": False}]


async def test_receive_after_the_body_waits_for_the_response_then_reports_disconnect() -> None:
    events: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        await read_body(receive)

        async def listen() -> None:
            message = await receive()
            events.append(message["type"])

        async with anyio.create_task_group() as tg:
            tg.start_soon(listen)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await anyio.wait_all_tasks_blocked()
            events.append("response complete")
            await send({"type": "http.response.body", "body": b"done"})

    async with TestClient(app) as client:
        response = await client.get("/")
    assert response.text == "done"
    assert events == ["response complete", "http.disconnect"]


# Response streaming


def gated_stream_app() -> Any:
    """``/stream`` sends one chunk and waits until ``/release`` is requested."""
    gate: dict[str, anyio.Event] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        event = gate.setdefault("event", anyio.Event())
        if scope["path"] == "/release":
            event.set()
            await respond(send, b"released")
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await event.wait()
        await send({"type": "http.response.body", "body": b"second"})

    return app


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_response_chunks_reach_the_client_as_the_app_sends_them(backend: Backend) -> None:
    with (
        TestClient(gated_stream_app(), backend=backend) as client,
        client.stream("GET", "/stream") as response,
    ):
        chunks = response.iter_raw()
        assert next(chunks) == b"first"
        assert client.get("/release").text == "released"
        assert list(chunks) == [b"second"]


async def test_async_response_chunks_reach_the_client_as_the_app_sends_them() -> None:
    async with (
        TestClient(gated_stream_app()) as client,
        client.stream("GET", "/stream") as response,
    ):
        chunks = response.aiter_raw()
        assert await chunks.__anext__() == b"first"
        assert (await client.get("/release")).text == "released"
        assert [chunk async for chunk in chunks] == [b"second"]


def early_close_app(seen: list[object]) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await read_body(receive)
        seen.append((await receive())["type"])
        try:
            await send({"type": "http.response.body", "body": b"late", "more_body": True})
        except OSError as exc:
            seen.append(exc)

    return app


def test_closing_a_response_early_sends_http_disconnect_and_send_raises_oserror() -> None:
    seen: list[object] = []
    with TestClient(early_close_app(seen)) as client:
        with client.stream("GET", "/") as response:
            assert response.status_code == 200
        assert seen[0] == "http.disconnect"
        assert isinstance(seen[1], OSError)


async def test_async_closing_a_response_early_sends_http_disconnect() -> None:
    seen: list[object] = []
    async with TestClient(early_close_app(seen)) as client:
        async with client.stream("GET", "/") as response:
            assert response.status_code == 200
        assert seen[0] == "http.disconnect"
        assert isinstance(seen[1], OSError)


def test_head_response_has_no_body() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        await respond(send, b"body")

    with TestClient(app) as client:
        response = client.head("/")
    assert response.status_code == 200
    assert response.content == b""


def test_pathsend_streams_the_file(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"x" * 200_000)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        assert "http.response.pathsend" in scope["extensions"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": str(path)})

    with TestClient(app) as client:
        response = client.get("/")
    assert response.content == path.read_bytes()


def test_pathsend_is_refused_when_the_extension_is_not_advertised(tmp_path: Path) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        assert scope["extensions"] == {}
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": str(tmp_path)})

    with TestClient(app, extensions={}) as client, pytest.raises(RuntimeError, match="pathsend"):
        client.get("/")


def test_unknown_message_type_is_a_clear_error() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        await send({"type": "http.response.mystery"})

    with TestClient(app) as client, pytest.raises(RuntimeError, match=r"http\.response\.mystery"):
        client.get("/")


def test_body_before_response_start_is_a_clear_error() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        await send({"type": "http.response.body", "body": b"x"})

    with TestClient(app) as client, pytest.raises(RuntimeError, match="before"):
        client.get("/")


# Server exceptions


def failing_app(error: Exception, *, after_start: bool = False) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        if after_start:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise error

    return app


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_app_exception_is_reraised_unchanged(backend: Backend) -> None:
    error = Boom("bad")
    client = TestClient(failing_app(error), backend=backend)
    with client, pytest.raises(Boom) as info:
        client.get("/")
    assert info.value is error


async def test_async_app_exception_is_reraised_unchanged() -> None:
    error = Boom("bad")
    async with TestClient(failing_app(error)) as client:
        with pytest.raises(Boom) as info:
            await client.get("/")
    assert info.value is error


def test_exception_after_response_start_is_raised_while_reading_the_body() -> None:
    error = Boom("mid-body")
    client = TestClient(failing_app(error, after_start=True))
    with client, client.stream("GET", "/") as response:
        assert response.status_code == 200
        with pytest.raises(Boom) as info:
            response.read()
    assert info.value is error


def test_without_raise_server_exceptions_a_failing_app_answers_500_empty() -> None:
    with TestClient(failing_app(Boom()), raise_server_exceptions=False) as client:
        response = client.get("/")
    assert response.status_code == 500
    assert response.content == b""


def test_without_raise_server_exceptions_a_failure_mid_body_truncates_it() -> None:
    app = failing_app(Boom(), after_start=True)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/")
    assert (response.status_code, response.content) == (200, b"partial")


def test_app_that_returns_without_a_response_is_an_error_or_a_500() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)

    with TestClient(app) as client, pytest.raises(RuntimeError, match="without starting"):
        client.get("/")
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/").status_code == 500


# Lifespan


def lifespan_app(events: list[str], *, fail: str | None = None) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            assert scope["asgi"]["spec_version"] == "2.4"
            while True:
                message = await receive()
                phase = message["type"].split(".")[1]
                events.append(phase)
                if phase == "startup":
                    scope["state"]["db"] = "connection"
                if fail == phase:
                    await send({"type": f"lifespan.{phase}.failed", "message": f"{phase} broke"})
                    raise Boom(phase)
                await send({"type": f"lifespan.{phase}.complete"})
                if phase == "shutdown":
                    return
        events.append(f"request sees {scope['state']}")
        scope["state"]["leak"] = True  # a request must not change the shared state
        await respond(send)

    return app


def test_lifespan_runs_around_the_block_and_each_request_gets_a_copy_of_its_state() -> None:
    events: list[str] = []
    with TestClient(lifespan_app(events)) as client:
        assert events == ["startup"]
        client.get("/")
        client.get("/")
    assert events == [
        "startup",
        "request sees {'db': 'connection'}",
        "request sees {'db': 'connection'}",
        "shutdown",
    ]


async def test_async_lifespan_runs_around_the_block() -> None:
    events: list[str] = []
    async with TestClient(lifespan_app(events)) as client:
        await client.get("/")
    assert events == ["startup", "request sees {'db': 'connection'}", "shutdown"]


def test_lifespan_startup_failure_raises_with_the_apps_message() -> None:
    client = TestClient(lifespan_app([], fail="startup"))
    with pytest.raises(LifespanFailed, match="startup broke") as info, client:
        pass
    assert info.value.message == "startup broke"
    assert isinstance(info.value.__cause__, Boom)


async def test_async_lifespan_startup_failure_raises() -> None:
    with pytest.raises(LifespanFailed, match="startup broke"):
        async with TestClient(lifespan_app([], fail="startup")):
            pass


def test_lifespan_shutdown_failure_raises_on_exit() -> None:
    events: list[str] = []
    client = TestClient(lifespan_app(events, fail="shutdown"))
    with pytest.raises(LifespanFailed, match="shutdown broke"), client:
        client.get("/")
    assert events[-1] == "shutdown"


async def test_app_without_lifespan_support_still_serves_requests() -> None:
    async with TestClient(no_lifespan_ok) as client:
        assert (await client.get("/")).text == "{}"


async def no_lifespan_ok(scope: Scope, receive: Receive, send: Send) -> None:
    await no_lifespan(scope, receive, send)
    await respond(send, repr(scope["state"]).encode())


def test_without_a_with_block_requests_work_and_lifespan_does_not_run() -> None:
    events: list[str] = []
    response = TestClient(lifespan_app(events)).get("/")
    assert response.status_code == 200
    assert events == ["request sees {}"]


def test_no_thread_is_left_running_after_the_block() -> None:
    before = threading.active_count()
    with TestClient(lifespan_app([])) as client:
        client.get("/")
        assert threading.active_count() == before + 1
    TestClient(no_lifespan_ok).get("/")
    with pytest.raises(Boom):
        TestClient(failing_app(Boom())).get("/")
    assert threading.active_count() == before


def test_redirects_are_followed_and_cookies_kept() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        if scope["path"] == "/login":
            headers = [(b"location", b"/home"), (b"set-cookie", b"sid=abc; Path=/")]
            await send({"type": "http.response.start", "status": 303, "headers": headers})
            await send({"type": "http.response.body"})
            return
        cookie = dict(scope["headers"]).get(b"cookie", b"")
        await respond(send, scope["path"].encode() + b" " + cookie)

    with TestClient(app) as client:
        response = client.post("/login")
        assert (response.status_code, response.text) == (200, "/home sid=abc")
        assert client.cookies["sid"] == "abc"
    with TestClient(app, follow_redirects=False) as client:
        assert client.post("/login").status_code == 303


def test_closing_a_response_after_reading_part_of_it_sends_http_disconnect() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await read_body(receive)
        seen.append((await receive())["type"])

    with TestClient(app) as client:
        with client.stream("GET", "/") as response:
            # Held: httpx2 closes the response when its iterator is dropped.
            chunks = response.iter_raw()
            assert next(chunks) == b"first"
            assert seen == []
        assert seen == ["http.disconnect"]


# WebSockets


def websocket_app(log: list[Any]) -> Any:
    """Accepts, echoes frames, and obeys commands sent as text frames."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        assert scope["type"] == "websocket"
        log.append(scope)
        assert await receive() == {"type": "websocket.connect"}
        if scope["path"] == "/reject":
            await send({"type": "websocket.close", "code": 4403, "reason": "nope"})
            log.append(await receive())
            return
        if scope["path"] == "/deny":
            headers = [(b"content-type", b"text/plain")]
            await send(
                {"type": "websocket.http.response.start", "status": 403, "headers": headers}
            )
            await send({"type": "websocket.http.response.body", "body": b"go ", "more_body": True})
            await send({"type": "websocket.http.response.body", "body": b"away"})
            return
        subprotocol = scope["subprotocols"][-1] if scope["subprotocols"] else None
        await send(
            {"type": "websocket.accept", "subprotocol": subprotocol, "headers": [(b"x-a", b"1")]}
        )
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                log.append(message)
                return
            if message.get("text") == "close":
                await send({"type": "websocket.close", "code": 4000, "reason": "bye"})
                return
            if message.get("text") == "raise":
                raise Boom("websocket")
            await send(
                {"type": "websocket.send", **{k: message.get(k) for k in ("text", "bytes")}}
            )

    return app


def test_websocket_scope_and_handshake() -> None:
    log: list[Any] = []
    with TestClient(websocket_app(log), root_path="/r") as client:
        session = client.websocket_connect("/ws?x=1", subprotocols=["a", "b"])
        with session as ws:
            assert ws.accepted_subprotocol == "b"
            assert ws.extra_headers == [(b"x-a", b"1")]
    scope = log[0]
    assert scope["type"] == "websocket"
    assert scope["scheme"] == "ws"
    assert (scope["path"], scope["raw_path"], scope["root_path"]) == ("/r/ws", b"/r/ws", "/r")
    assert scope["query_string"] == b"x=1"
    assert scope["subprotocols"] == ["a", "b"]
    assert "method" not in scope
    headers = dict(scope["headers"])
    assert headers[b"upgrade"] == b"websocket"
    assert headers[b"sec-websocket-protocol"] == b"a, b"
    assert headers[b"host"] == b"testserver"


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_websocket_echoes_text_bytes_and_json(backend: Backend) -> None:
    with (
        TestClient(websocket_app([]), backend=backend) as client,
        client.websocket_connect("/ws") as ws,
    ):
        ws.send_text("héllo")
        assert ws.receive_text() == "héllo"
        ws.send_bytes(b"\x00\x01")
        assert ws.receive_bytes() == b"\x00\x01"
        ws.send_json({"a": [1, 2]})
        assert ws.receive_json() == {"a": [1, 2]}
        ws.send_json({"b": None}, mode="binary")
        assert ws.receive_json(mode="binary") == {"b": None}
        ws.send_bytes(b"raw")
        with pytest.raises(TypeError, match="text"):
            ws.receive_text()


async def test_async_websocket_echoes_text_bytes_and_json() -> None:
    log: list[Any] = []
    async with TestClient(websocket_app(log)) as client:
        async with client.websocket_connect("/ws", subprotocols=["chat"]) as ws:
            assert ws.accepted_subprotocol == "chat"
            await ws.send_text("hi")
            assert await ws.receive_text() == "hi"
            await ws.send_bytes(b"b")
            assert await ws.receive_bytes() == b"b"
            await ws.send_json([1], mode="binary")
            assert await ws.receive_json(mode="binary") == [1]
        assert log[-1] == {"type": "websocket.disconnect", "code": 1000, "reason": ""}


def test_app_closing_after_accept_raises_websocket_disconnect_with_code_and_reason() -> None:
    with TestClient(websocket_app([])) as client, client.websocket_connect("/ws") as ws:
        ws.send_text("close")
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_text()
        assert (info.value.code, info.value.reason) == (4000, "bye")
        assert ws.receive() == {"type": "websocket.close", "code": 4000, "reason": "bye"}


async def test_async_app_closing_after_accept_raises_websocket_disconnect() -> None:
    async with TestClient(websocket_app([])) as client, client.websocket_connect("/ws") as ws:
        await ws.send_text("close")
        with pytest.raises(WebSocketDisconnect) as info:
            await ws.receive_json()
    assert info.value.code == 4000


def test_client_close_sends_websocket_disconnect_with_code_and_reason() -> None:
    log: list[Any] = []
    with TestClient(websocket_app(log)) as client, client.websocket_connect("/ws") as ws:
        ws.close(code=4001, reason="done")
        assert log[-1] == {"type": "websocket.disconnect", "code": 4001, "reason": "done"}
        with pytest.raises(RuntimeError, match="closed"):
            ws.send_text("late")
    assert len(log) == 2  # the scope and one disconnect: leaving does not send another


def test_session_exit_sends_websocket_disconnect_1000() -> None:
    log: list[Any] = []
    with TestClient(websocket_app(log)) as client:
        with client.websocket_connect("/ws"):
            pass
        assert log[-1] == {"type": "websocket.disconnect", "code": 1000, "reason": ""}


def test_app_closing_before_accept_raises_websocket_disconnect() -> None:
    log: list[Any] = []
    with TestClient(websocket_app(log)) as client:
        with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect("/reject"):
            pass
        assert (info.value.code, info.value.reason) == (4403, "nope")
        assert log[-1]["type"] == "websocket.disconnect"


async def test_async_app_closing_before_accept_raises_websocket_disconnect() -> None:
    async with TestClient(websocket_app([])) as client:
        with pytest.raises(WebSocketDisconnect) as info:
            async with client.websocket_connect("/reject"):
                pass
    assert info.value.code == 4403


def test_websocket_denial_response_is_raised_with_status_headers_and_body() -> None:
    client = TestClient(websocket_app([]))
    with client, pytest.raises(WebSocketDenialResponse) as info, client.websocket_connect("/deny"):
        pass
    denial = info.value
    assert denial.status_code == 403
    assert denial.headers["content-type"] == "text/plain"
    assert (denial.content, denial.text) == (b"go away", "go away")


async def test_async_websocket_denial_response_is_raised() -> None:
    async with TestClient(websocket_app([])) as client:
        with pytest.raises(WebSocketDenialResponse) as info:
            async with client.websocket_connect("/deny"):
                pass
    assert info.value.status_code == 403


def test_websocket_denial_needs_the_extension() -> None:
    client = TestClient(websocket_app([]), extensions={})
    with client, pytest.raises(RuntimeError, match=r"websocket\.http\.response"):
        client.websocket_connect("/deny").__enter__()


def test_websocket_app_exception_is_reraised() -> None:
    with TestClient(websocket_app([])) as client, client.websocket_connect("/ws") as ws:
        ws.send_text("raise")
        with pytest.raises(Boom, match="websocket"):
            ws.receive_text()


async def test_async_websocket_app_exception_is_reraised_on_exit() -> None:
    async with TestClient(websocket_app([])) as client:
        with pytest.raises(Boom):
            async with client.websocket_connect("/ws") as ws:
                await ws.send_text("raise")


def test_websocket_app_exception_is_hidden_without_raise_server_exceptions() -> None:
    client = TestClient(websocket_app([]), raise_server_exceptions=False)
    with client, client.websocket_connect("/ws") as ws:
        ws.send_text("raise")
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_text()
    assert info.value.code == 1006


def test_websocket_without_a_with_block_works() -> None:
    with TestClient(websocket_app([])).websocket_connect("/ws") as ws:
        ws.send_text("x")
        assert ws.receive_text() == "x"


def test_unexpected_websocket_message_is_a_clear_error() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        await send({"type": "websocket.send", "text": "before accept"})

    with TestClient(app) as client, pytest.raises(RuntimeError, match=r"websocket\.send"):
        client.websocket_connect("/").__enter__()


# Parity with a real server


def test_http_scope_matches_uvicorn_for_the_same_request() -> None:
    from tests.servers.live import serve

    scopes, app = scope_recorder()
    target = "/caf%C3%A9/a%20b?x=1&y=%2F"
    with serve(app, lifespan="off", root_path="/r") as base_url:
        httpx.get(base_url + target)
    with TestClient(app, root_path="/r") as client:
        client.get(target)
    keys = ("type", "http_version", "method", "scheme", "path", "raw_path", "query_string")
    keys = (*keys, "root_path")
    served, tested = scopes
    assert {k: tested[k] for k in keys} == {k: served[k] for k in keys}
    assert tested["asgi"]["version"] == served["asgi"]["version"]
    assert dict(tested["headers"]).keys() >= {b"host", b"user-agent", b"accept"}


async def test_async_test_client_outside_async_with_is_a_clear_error() -> None:
    client = AsyncTestClient(no_lifespan_ok)
    with pytest.raises(RuntimeError, match="async with"):
        await client.get("/")
    await client.aclose()


async def test_async_test_client_can_be_used_directly() -> None:
    async with AsyncTestClient(no_lifespan_ok, root_path="/x") as client:
        assert (await client.get("/")).text == "{}"


# The HTTP client library: httpx2 when installed, else httpx


def test_httpx2_is_preferred_and_nothing_is_aliased_in_the_users_process() -> None:
    # In a fresh interpreter: importing the test client and the proxy adds
    # no import hook and never makes one library answer for the other.
    code = """
import importlib.util, sys
hooks = list(sys.meta_path)
import asgikit.testing, asgikit.proxy
from asgikit._httpx import httpx
assert sys.meta_path == hooks, sys.meta_path
has_httpx2 = importlib.util.find_spec("httpx2") is not None
assert httpx.__name__ == ("httpx2" if has_httpx2 else "httpx"), httpx.__name__
other = "httpx" if has_httpx2 else "httpx2"
assert other not in sys.modules, other
assert isinstance(asgikit.testing.TestClient(None), httpx.Client)
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


# Parity with Starlette's tests/test_testclient.py, behaviour by behaviour.
# Deliberate differences are pinned here and listed in asgikit/testing.py.


def json_app(make: Any) -> Any:
    """An app answering ``make(scope)`` as JSON; lifespan refused."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        if scope["type"] == "http":
            await JSONResponse(make(scope))(scope, receive, send)

    return app


def test_a_test_client_can_be_used_inside_an_app_to_stand_in_for_a_service() -> None:
    service = json_app(lambda scope: {"mock": "example"})

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        answer = await anyio.to_thread.run_sync(lambda: TestClient(service).get("/").json())
        await JSONResponse(answer)(scope, receive, send)

    assert TestClient(app).get("/").json() == {"mock": "example"}


def test_user_agent_is_testclient_unless_given_and_other_headers_keep_it() -> None:
    assert TestClient(None).headers["user-agent"] == "testclient"
    assert TestClient(None, headers={"user-agent": "mine"}).headers["user-agent"] == "mine"
    client = TestClient(None, headers={"Authentication": "Bearer 123"})
    assert client.headers["user-agent"] == "testclient"
    assert client.headers["authentication"] == "Bearer 123"


def test_one_event_loop_and_one_lifespan_task_per_with_block() -> None:
    seen: dict[str, list[object]] = {"loop": [], "startup": [], "shutdown": []}

    def current() -> object:
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            return None

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            seen["startup"].append(anyio.get_current_task().id)
            async with anyio.create_task_group():  # entered and left in one task
                await send({"type": "lifespan.startup.complete"})
                await receive()
            seen["shutdown"].append(anyio.get_current_task().id)
            await send({"type": "lifespan.shutdown.complete"})
            return
        seen["loop"].append(id(current()))
        await respond(send, b"ok")

    client = TestClient(app)
    with client:
        client.get("/")
        client.get("/")
    client.get("/")  # outside the block: a fresh loop, no lifespan
    with client:  # the block can be entered again, with a new lifespan
        client.get("/")
    loops = seen["loop"]
    assert loops[0] == loops[1]
    assert seen["startup"] == seen["shutdown"]
    assert len(seen["startup"]) == 2


def test_an_app_raising_on_the_lifespan_scope_is_taken_to_have_no_lifespan() -> None:
    # Deliberate difference: Starlette's client re-raises; asgikit's does what
    # servers do (ASGI lifespan spec: an app that raises before answering
    # startup does not support lifespan) and serves requests.  A startup that
    # fails with ``lifespan.startup.failed`` raises (LifespanFailed, above).
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            raise Boom("no lifespan here")
        await respond(send, b"served")

    with TestClient(app) as client:
        assert client.get("/").content == b"served"


def test_asgi2_apps_are_not_supported() -> None:
    # Deliberate difference: asgikit is ASGI 3 only; an ASGI 2 app (scope ->
    # instance) is called with three arguments and fails loudly.
    def asgi2(scope: Scope) -> Any:  # pragma: no cover - never called right
        raise AssertionError

    with pytest.raises(TypeError):
        TestClient(asgi2).get("/")


def test_a_streamed_response_is_available_before_its_first_chunk() -> None:
    release = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        assert await anyio.to_thread.run_sync(release.wait, 10)
        await send({"type": "http.response.body", "body": b"hello"})

    with TestClient(app).stream("GET", "/") as response:
        release.set()
        assert response.read() == b"hello"


def test_an_app_runs_at_most_a_few_chunks_ahead_of_the_reader() -> None:
    # Deliberate difference: Starlette's client holds the app at every chunk;
    # asgikit's lets it run a bounded 4 chunks ahead (memory stays bounded,
    # the app is not stopped on each send).
    produced: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for index in range(50):
            produced.append(index)
            await send({"type": "http.response.body", "body": b"x", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    with TestClient(app) as client, client.stream("GET", "/") as response:
        chunks = response.iter_raw()
        assert next(chunks) == b"x"
        ahead = len(produced)
        assert sum(1 for _ in chunks) == 49
    assert ahead <= 7


@pytest.mark.parametrize(("method", "chunk"), [("GET", b""), ("HEAD", b"chunk")])
def test_empty_chunks_and_head_bodies_never_reach_the_reader(method: str, chunk: bytes) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(1000):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    with TestClient(app).stream(method, "/") as response:
        assert response.read() == b""


def test_mutable_chunks_are_copied_when_sent() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        buffer = bytearray(b"one")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": memoryview(buffer), "more_body": True})
        buffer[:] = b"two"
        await send({"type": "http.response.body", "body": memoryview(buffer)})

    with TestClient(app).stream("GET", "/") as response:
        assert list(response.iter_raw()) == [b"one", b"two"]
    assert TestClient(app).get("/").content == b"onetwo"


def test_closing_an_unfinished_response_cancels_the_app() -> None:
    cancelled = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hello", "more_body": True})
        try:
            await send({"type": "http.response.body", "body": b"more", "more_body": True})
            with anyio.fail_after(10):
                await read_body(receive)
                await receive()  # http.disconnect once the client leaves
        finally:
            cancelled.set()

    with TestClient(app).stream("GET", "/") as response:
        chunks = response.iter_raw()
        assert next(chunks) == b"hello"
    assert cancelled.is_set()


@pytest.mark.parametrize("raise_server_exceptions", [True, False])
def test_closing_a_complete_response_waits_for_work_after_the_body(
    raise_server_exceptions: bool,
) -> None:
    completed = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        await respond(send, b"hello")
        await anyio.sleep(0.05)  # a background task
        completed.set()
        raise Boom("background failure")

    client = TestClient(app, raise_server_exceptions=raise_server_exceptions)
    expected = pytest.raises(Boom) if raise_server_exceptions else contextlib.nullcontext()
    with expected, client.stream("GET", "/") as response:
        chunks = response.iter_raw()
        assert next(chunks) == b"hello"
    assert completed.is_set()


def test_closing_a_response_inside_an_unrelated_except_still_waits_for_the_app() -> None:
    completed = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        await respond(send, b"hello")
        await anyio.sleep(0.05)
        completed.set()

    try:
        raise KeyError("unrelated")
    except KeyError:
        with TestClient(app).stream("GET", "/") as response:
            assert next(response.iter_raw()) == b"hello"
    assert completed.is_set()


def test_leaving_the_with_block_cancels_a_response_left_open() -> None:
    cancelled = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        await respond(send, b"hello")
        try:
            await anyio.sleep(10)
        finally:
            cancelled.set()

    with TestClient(app) as client:
        response = client.send(client.build_request("GET", "/"), stream=True)
        chunks = response.iter_raw()
        assert next(chunks) == b"hello"
    assert cancelled.is_set()


@pytest.mark.parametrize("raise_server_exceptions", [True, False])
def test_an_app_failing_after_its_body_fails_the_read(raise_server_exceptions: bool) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        await respond(send, b"body")
        await anyio.sleep(0)
        raise Boom("late failure")

    client = TestClient(app, raise_server_exceptions=raise_server_exceptions)
    expected = pytest.raises(Boom) if raise_server_exceptions else contextlib.nullcontext()
    with expected, client.stream("GET", "/") as response:
        assert response.read() == b"body"


def test_starlettes_debug_message_is_not_an_asgi_message() -> None:
    # Deliberate difference: ``http.response.debug`` is Starlette's private
    # message for its template tests; asgikit's client refuses it clearly.
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.debug", "info": {}})

    with pytest.raises(RuntimeError, match=r"http\.response\.debug"):
        TestClient(app).get("/")


def test_a_websocket_app_blocked_in_receive_still_sends() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        await receive()
        await send({"type": "websocket.accept"})

        async def talk() -> None:
            await send({"type": "websocket.send", "text": '{"message": "test"}'})

        async with anyio.create_task_group() as group:
            group.start_soon(talk)
            await receive()  # blocks: the client sends nothing

    with TestClient(app).websocket_connect("/") as websocket:
        assert websocket.receive_json() == {"message": "test"}


def test_leaving_a_websocket_session_never_blocks_on_an_app_that_waits() -> None:
    stopped = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        await receive()
        await send({"type": "websocket.accept"})
        try:
            with anyio.fail_after(10):
                while (await receive())["type"] != "websocket.disconnect":
                    pass
        finally:
            stopped.set()

    with TestClient(app).websocket_connect("/"):
        pass
    assert stopped.is_set()


@pytest.mark.parametrize("value", ["2020-07-14T00:00:00+00:00", "España", "voilà"])
def test_query_params_round_trip(value: str) -> None:
    app = json_app(lambda scope: scope["query_string"].decode("latin-1"))
    query = TestClient(app).get("/", params={"param": value}).json()
    assert unquote_plus(query.removeprefix("param=")) == value


@pytest.mark.parametrize(
    ("domain", "kept"),
    [
        ("testserver", True),
        ("testserver.local", True),
        ("localhost", False),
        ("example.com", False),
    ],
)
def test_cookies_for_another_domain_are_not_kept(domain: str, kept: bool) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        cookie = f"mycookie=myvalue; Path=/; Domain={domain}".encode()
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"set-cookie", cookie)]}
        )
        await send({"type": "http.response.body", "body": b"ok"})

    response = TestClient(app).get("/")
    assert (len(response.cookies) == 1) == kept


def test_redirects_are_followed_unless_told_not_to() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        if scope["path"] == "/ok":
            await respond(send, b"ok")
        else:
            await RedirectResponse("/ok")(scope, receive, send)

    assert TestClient(app).get("/").status_code == 200
    assert TestClient(app, follow_redirects=False).get("/").status_code == 307


def test_repeated_request_headers_reach_the_app_in_order() -> None:
    app = json_app(lambda scope: [v.decode() for k, v in scope["headers"] if k == b"x-token"])
    response = TestClient(app).get("/", headers=[("x-token", "foo"), ("x-token", "bar")])
    assert response.json() == ["foo", "bar"]


def test_a_base_url_with_a_path_is_merged_with_the_request_path() -> None:
    app = json_app(lambda scope: scope["path"])
    assert (
        TestClient(app, base_url="http://testserver/api/v1/").get("/bar").json() == "/api/v1/bar"
    )


def test_raw_path_has_no_query_string() -> None:
    app = json_app(lambda scope: scope["raw_path"].decode())
    assert TestClient(app).get("/hello-world", params={"foo": "bar"}).json() == "/hello-world"


@pytest.mark.parametrize(
    ("base_url", "server", "host"),
    [
        ("http://[::1]", ["::1", 80], "[::1]"),
        ("http://[::1]:8000", ["::1", 8000], "[::1]:8000"),
        ("http://[::1]:0", ["::1", 0], "[::1]:0"),
    ],
)
def test_an_ipv6_base_url_gives_server_and_host(
    base_url: str, server: list[Any], host: str
) -> None:
    app = json_app(lambda scope: [list(scope["server"]), dict(scope["headers"])[b"host"].decode()])
    assert TestClient(app, base_url=base_url).get("/").json() == [server, host]


def test_websocket_raw_path_has_no_query_string() -> None:
    # Deliberate difference: websocket_connect takes no ``params``; the query
    # goes in the URL, as for a real WebSocket client.
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "bytes": scope["raw_path"]})

    with TestClient(app).websocket_connect("/hello-world?foo=bar") as websocket:
        assert websocket.receive_bytes() == b"/hello-world"


def trailers_app(*messages: Message) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        assert "http.response.trailers" in scope["extensions"]
        for message in messages:
            await send(message)

    return app


START_WITH_TRAILERS: Message = {"type": "http.response.start", "status": 200, "trailers": True}


def test_trailers_are_captured_in_the_response_extensions() -> None:
    app = trailers_app(
        START_WITH_TRAILERS,
        {"type": "http.response.body", "body": b"hello"},
        {
            "type": "http.response.trailers",
            "headers": [(b"x-item", b"one")],
            "more_trailers": True,
        },
        {"type": "http.response.trailers", "headers": [(b"x-item", b"two")]},
    )
    response = TestClient(app).get("/", headers={"te": "trailers"})
    assert response.content == b"hello"
    assert response.extensions["http.response.trailers"] == [
        (b"x-item", b"one"),
        (b"x-item", b"two"),
    ]
    assert "x-item" not in response.headers


async def test_async_trailers_are_captured_in_the_response_extensions() -> None:
    app = trailers_app(
        START_WITH_TRAILERS,
        {"type": "http.response.body", "body": b"hello"},
        {"type": "http.response.trailers", "headers": [(b"x-item", b"one")]},
    )
    async with AsyncTestClient(app) as client:
        response = await client.get("/")
    assert response.extensions["http.response.trailers"] == [(b"x-item", b"one")]


@pytest.mark.parametrize("partial", [True, False])
def test_trailers_left_incomplete_keep_what_was_sent(partial: bool) -> None:
    messages: list[Message] = [
        START_WITH_TRAILERS,
        {"type": "http.response.body", "body": b"hello"},
    ]
    if partial:
        messages.append(
            {
                "type": "http.response.trailers",
                "headers": [(b"x-item", b"partial")],
                "more_trailers": True,
            }
        )
    response = TestClient(trailers_app(*messages)).get("/")
    assert response.content == b"hello"
    assert response.extensions["http.response.trailers"] == (
        [(b"x-item", b"partial")] if partial else []
    )


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([{"type": "http.response.trailers"}], "before http.response.start"),
        (
            [
                {"type": "http.response.start", "status": 200},
                {"type": "http.response.body"},
                {"type": "http.response.trailers"},
            ],
            "after the response was complete",
        ),
        (
            [
                {"type": "http.response.start", "status": 200, "trailers": False},
                {"type": "http.response.body", "more_body": True},
                {"type": "http.response.trailers"},
            ],
            "without declaring trailers",
        ),
        (
            [START_WITH_TRAILERS, {"type": "http.response.trailers"}],
            "before the body was complete",
        ),
        (
            [START_WITH_TRAILERS, {"type": "http.response.body"}, {"type": "http.response.body"}],
            "after the body was complete",
        ),
        (
            [
                START_WITH_TRAILERS,
                {"type": "http.response.body"},
                {"type": "http.response.trailers"},
                {"type": "http.response.trailers"},
            ],
            "after the response was complete",
        ),
    ],
)
def test_trailer_messages_out_of_order_are_a_clear_error(
    messages: list[Message], error: str
) -> None:
    with pytest.raises(RuntimeError, match=error):
        TestClient(trailers_app(*messages)).get("/")


@pytest.mark.parametrize("raise_server_exceptions", [True, False])
def test_an_app_failing_between_trailers_follows_raise_server_exceptions(
    raise_server_exceptions: bool,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        await send(START_WITH_TRAILERS)
        await send({"type": "http.response.body", "body": b"hello"})
        await send(
            {
                "type": "http.response.trailers",
                "headers": [(b"x-item", b"partial")],
                "more_trailers": True,
            }
        )
        raise Boom("trailer production failed")

    client = TestClient(app, raise_server_exceptions=raise_server_exceptions)
    if raise_server_exceptions:
        with pytest.raises(Boom, match="trailer production failed"):
            client.get("/")
    else:
        response = client.get("/")
        assert response.content == b"hello"
        assert response.extensions["http.response.trailers"] == [(b"x-item", b"partial")]


def test_closing_a_body_read_to_its_end_waits_for_the_trailers() -> None:
    sent = threading.Event()
    completed = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        await send(START_WITH_TRAILERS)
        await send({"type": "http.response.body", "body": b"hello"})
        await send({"type": "http.response.trailers", "headers": [(b"x-item", b"one")]})
        sent.set()
        await anyio.sleep(0.05)
        completed.set()

    with TestClient(app).stream("GET", "/") as response:
        chunks = response.iter_raw()
        assert next(chunks) == b"hello"
        assert sent.wait(10)
        assert response.extensions["http.response.trailers"] == [(b"x-item", b"one")]
    assert completed.is_set()


def test_without_the_extension_advertised_trailers_are_refused() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        await send(START_WITH_TRAILERS)
        await send({"type": "http.response.body", "body": b"hello"})
        await send({"type": "http.response.trailers", "headers": []})

    with pytest.raises(RuntimeError, match="unexpected ASGI message"):
        TestClient(app, extensions={}).get("/")


def slow_app(before_start: float, after_first_chunk: float) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await no_lifespan(scope, receive, send)
        await anyio.sleep(before_start)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await anyio.sleep(after_first_chunk)
        await send({"type": "http.response.body", "body": b"second"})

    return app


def test_a_timeout_given_with_a_request_bounds_the_wait_for_the_app() -> None:
    # Starlette's client ignores it (with a warning); asgikit's applies it.
    with pytest.raises(httpx.ReadTimeout):
        TestClient(slow_app(10, 0)).get("/", timeout=0.05)
    with (
        TestClient(slow_app(0, 10)) as client,
        # Room for a loaded machine to start the response; none for the stalled chunk.
        client.stream("GET", "/", timeout=2) as response,
    ):
        chunks = response.iter_raw()
        assert next(chunks) == b"first"
        with pytest.raises(httpx.ReadTimeout):
            next(chunks)


async def test_async_a_timeout_given_with_a_request_bounds_the_wait_for_the_app() -> None:
    async with AsyncTestClient(slow_app(10, 0)) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/", timeout=0.05)


def test_without_a_timeout_the_app_takes_the_time_it_needs() -> None:
    client = TestClient(slow_app(0.1, 0.1))
    assert client.timeout == httpx.Timeout(None)
    assert client.get("/").content == b"firstsecond"

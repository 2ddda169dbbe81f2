"""Tests for asgikit.testing: the in-process httpx test client, sync and async."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

from asgikit.testing import (
    AsyncTestClient,
    LifespanFailed,
    TestClient,
)
from asgikit.types import Message, Receive, Scope, Send


class Boom(Exception):
    pass


async def read_body(receive: Receive) -> bytes:
    body = b""
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
    assert set(scope["extensions"]) == {"http.response.pathsend", "websocket.http.response"}


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
def test_response_chunks_reach_the_client_as_the_app_sends_them(backend: str) -> None:
    with (
        TestClient(gated_stream_app(), backend=backend) as client,  # type: ignore[arg-type]
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
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
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
            assert next(response.iter_raw()) == b"first"
        assert seen[0] == "http.disconnect"
        assert isinstance(seen[1], OSError)


async def test_async_closing_a_response_early_sends_http_disconnect() -> None:
    seen: list[object] = []
    async with TestClient(early_close_app(seen)) as client:
        async with client.stream("GET", "/") as response:
            chunks = response.aiter_raw()
            assert await chunks.__anext__() == b"first"
            await chunks.aclose()
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
def test_app_exception_is_reraised_unchanged(backend: str) -> None:
    error = Boom("bad")
    client = TestClient(failing_app(error), backend=backend)  # type: ignore[arg-type]
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
    assert threading.active_count() == before

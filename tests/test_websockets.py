"""WebSocket: handshake, data both ways, disconnects, refusals, routing."""

from __future__ import annotations

import signal
from typing import Any

import anyio
import pytest

from asgikit.exceptions import HTTPException, WebSocketDisconnect
from asgikit.routing import mount, router, websocket_route
from asgikit.testing import AsyncTestClient, TestClient, WebSocketDenialResponse
from asgikit.types import Message, Receive, Scope, Send
from asgikit.websockets import WebSocket, WebSocketState
from tests.test_streaming import server_handles_sigterm

__all__ = ["server_handles_sigterm"]  # a fixture, used by name


def ws_scope(**extra: Any) -> Scope:
    scope: Scope = {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "path": "/ws",
        "raw_path": b"/ws",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "scheme": "ws",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 5000),
        "subprotocols": [],
    }
    scope.update(extra)
    return scope


class FakePeer:
    """A server side that feeds ``incoming`` and records what the app sent."""

    def __init__(self, *incoming: Message, fail_send: bool = False) -> None:
        self.incoming = [{"type": "websocket.connect"}, *incoming]
        self.sent: list[Message] = []
        self.fail_send = fail_send

    async def receive(self) -> Message:
        if self.incoming:
            return self.incoming.pop(0)
        await anyio.sleep_forever()
        raise AssertionError

    async def send(self, message: Message) -> None:
        if self.fail_send:
            raise OSError("gone")
        self.sent.append(message)


def echo_app() -> Any:
    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept(
            subprotocol=websocket.subprotocols[0] if websocket.subprotocols else None,
            headers={"x-hello": "1"},
        )
        async for text in websocket.iter_text():
            if text == "close":
                await websocket.close(4001, "asked to")
                return
            await websocket.send_text(text.upper())

    return router(websocket_route("/ws", endpoint))


def test_accept_with_subprotocol_and_headers() -> None:
    with (
        TestClient(echo_app()) as client,
        client.websocket_connect("/ws", subprotocols=["chat", "other"]) as session,
    ):
        assert session.accepted_subprotocol == "chat"
        assert (b"x-hello", b"1") in session.extra_headers
        session.send_text("hi")
        assert session.receive_text() == "HI"


async def test_text_bytes_and_json_round_trip() -> None:
    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.send_bytes(await websocket.receive_bytes())
        await websocket.send_json(await websocket.receive_json())
        await websocket.send_json(await websocket.receive_json(mode="binary"), mode="binary")

    async with (
        TestClient(router(websocket_route("/ws", endpoint))) as client,
        client.websocket_connect("/ws") as session,
    ):
        await session.send_text("héllo")
        assert await session.receive_text() == "héllo"
        await session.send_bytes(b"\x00\xff")
        assert await session.receive_bytes() == b"\x00\xff"
        await session.send_json({"a": [1, "é"]})
        assert await session.receive_json() == {"a": [1, "é"]}
        await session.send_json([1], mode="binary")
        assert await session.receive_json(mode="binary") == [1]


async def test_app_close_code_and_reason_reach_the_client() -> None:
    async with (
        TestClient(echo_app()) as client,
        client.websocket_connect("/ws") as session,
    ):
        await session.send_text("close")
        with pytest.raises(WebSocketDisconnect) as info:
            await session.receive_text()
    assert (info.value.code, info.value.reason) == (4001, "asked to")


async def test_iter_text_ends_cleanly_when_the_client_leaves() -> None:
    seen: list[Any] = []

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            seen.append(text)
        seen.append(("code", websocket.close_code, websocket.client_state))

    async with (
        TestClient(router(websocket_route("/ws", endpoint))) as client,
        client.websocket_connect("/ws") as session,
    ):
        await session.send_text("a")
        await session.close(4005)
    assert seen == ["a", ("code", 4005, WebSocketState.DISCONNECTED)]


@pytest.mark.parametrize("kind", ["iter_bytes", "iter_json"])
async def test_iter_bytes_and_json_end_on_disconnect(kind: str) -> None:
    peer = FakePeer(
        {"type": "websocket.receive", "bytes": b"[1]"},
        {"type": "websocket.disconnect", "code": 1001},
    )
    websocket = WebSocket(ws_scope(), peer.receive, peer.send)
    await websocket.accept()
    items = [item async for item in getattr(websocket, kind)()]
    assert items == ([b"[1]"] if kind == "iter_bytes" else [[1]])
    assert websocket.close_code == 1001


async def test_receive_after_disconnect_raises_with_the_code() -> None:
    peer = FakePeer({"type": "websocket.disconnect", "code": 1001, "reason": "bye"})
    websocket = WebSocket(ws_scope(), peer.receive, peer.send)
    await websocket.accept()
    with pytest.raises(WebSocketDisconnect) as info:
        await websocket.receive_text()
    assert (info.value.code, info.value.reason) == (1001, "bye")
    with pytest.raises(WebSocketDisconnect) as info:
        await websocket.send_text("late")
    assert info.value.code == 1001


async def test_sending_after_close_is_a_clear_error() -> None:
    peer = FakePeer()
    websocket = WebSocket(ws_scope(), peer.receive, peer.send)
    await websocket.accept()
    await websocket.close()
    with pytest.raises(RuntimeError, match="already closed"):
        await websocket.send_text("x")
    await websocket.close()  # a second close is harmless
    assert [m["type"] for m in peer.sent] == ["websocket.accept", "websocket.close"]


async def test_server_oserror_on_send_becomes_websocket_disconnect() -> None:
    peer = FakePeer()
    websocket = WebSocket(ws_scope(), peer.receive, peer.send)
    await websocket.accept()
    peer.fail_send = True
    with pytest.raises(WebSocketDisconnect) as info:
        await websocket.send_text("x")
    assert info.value.code == 1006
    await websocket.close()  # nothing left to close; no error


async def test_receiving_before_accept_is_refused() -> None:
    peer = FakePeer({"type": "websocket.receive", "text": "x"})
    websocket = WebSocket(ws_scope(), peer.receive, peer.send)
    with pytest.raises(RuntimeError, match="accept"):
        await websocket.receive_text()


async def test_unoffered_subprotocol_and_bad_headers_are_refused() -> None:
    peer = FakePeer()
    websocket = WebSocket(ws_scope(subprotocols=["a"]), peer.receive, peer.send)
    with pytest.raises(ValueError, match="did not offer"):
        await websocket.accept("b")
    with pytest.raises(ValueError, match="CR, LF"):
        await websocket.accept(headers={"x-a": "1\r\nx-b: 2"})
    assert peer.sent == []


async def test_close_before_accept_refuses_the_handshake() -> None:
    async def endpoint(websocket: WebSocket) -> None:
        await websocket.close()

    async with TestClient(router(websocket_route("/ws", endpoint))) as client:
        with pytest.raises(WebSocketDisconnect):
            async with client.websocket_connect("/ws"):
                pass


async def test_deny_sends_an_http_response_through_the_extension() -> None:
    async def endpoint(websocket: WebSocket) -> None:
        await websocket.deny(401, "who are you?", headers={"www-authenticate": "Bearer"})

    async with TestClient(router(websocket_route("/ws", endpoint))) as client:
        with pytest.raises(WebSocketDenialResponse) as info:
            async with client.websocket_connect("/ws"):
                pass
    assert info.value.status_code == 401
    assert info.value.text == "who are you?"
    assert info.value.headers["www-authenticate"] == "Bearer"


async def test_deny_without_the_extension_closes() -> None:
    peer = FakePeer()
    websocket = WebSocket(ws_scope(extensions={}), peer.receive, peer.send)
    await websocket.deny(401, "no")
    assert [m["type"] for m in peer.sent] == ["websocket.close"]
    with pytest.raises(RuntimeError, match="already"):
        await websocket.deny()


async def test_http_exception_before_accept_denies_the_handshake() -> None:
    async def endpoint(websocket: WebSocket) -> None:
        raise HTTPException(403, "forbidden here")

    async with TestClient(router(websocket_route("/ws", endpoint))) as client:
        with pytest.raises(WebSocketDenialResponse) as info:
            async with client.websocket_connect("/ws"):
                pass
    assert (info.value.status_code, info.value.text) == (403, "forbidden here")


async def test_path_params_and_url_for_through_a_mount() -> None:
    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        room = websocket.path_params["room"]
        await websocket.send_json(
            {"room": room, "url": str(websocket.url_for("rooms:room", room=room + 1))}
        )
        await websocket.close()

    app = router(
        mount(
            "/rooms", router(websocket_route("/{room:int}", endpoint, name="room")), name="rooms"
        )
    )
    async with TestClient(app) as client, client.websocket_connect("/rooms/7") as session:
        assert await session.receive_json() == {"room": 7, "url": "ws://testserver/rooms/8"}


async def test_unknown_websocket_path_is_refused_with_404() -> None:
    async with TestClient(router(websocket_route("/ws", echo_app()))) as client:
        with pytest.raises(WebSocketDenialResponse) as info:
            async with client.websocket_connect("/nope"):
                pass
    assert info.value.status_code == 404


def test_websocket_needs_a_websocket_scope() -> None:
    async def receive() -> Message:
        raise AssertionError

    async def send(message: Message) -> None:
        raise AssertionError

    with pytest.raises(ValueError, match="websocket"):
        WebSocket({"type": "http"}, receive, send)


async def raw_app(scope: Scope, receive: Receive, send: Send) -> None:
    websocket = WebSocket(scope, receive, send)
    await websocket.accept()
    await websocket.close(1000)


async def test_receive_json_on_deeply_nested_json_is_a_value_error() -> None:
    # json.loads raises RecursionError for "[[[[..."; the documented error is ValueError.
    caught: list[BaseException] = []

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await websocket.receive_json()
        except ValueError as exc:
            caught.append(exc)
        await websocket.close(1003)

    async with (
        TestClient(router(websocket_route("/ws", endpoint))) as client,
        client.websocket_connect("/ws") as session,
    ):
        await session.send_text("[" * 100_000)
        with pytest.raises(WebSocketDisconnect):
            await session.receive_text()
    assert len(caught) == 1


async def test_send_json_escapes_a_lone_surrogate_instead_of_failing() -> None:
    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        echoed = await websocket.receive_json()  # a client's "\ud800" escape
        await websocket.send_json(echoed)
        await websocket.send_json(echoed, mode="binary")
        await websocket.close()

    async with (
        TestClient(router(websocket_route("/ws", endpoint))) as client,
        client.websocket_connect("/ws") as session,
    ):
        await session.send_text('{"a": "\\ud800"}')
        assert await session.receive_text() == '{"a":"\\ud800"}'
        assert await session.receive_bytes() == b'{"a":"\\ud800"}'


async def test_iterators_close_with_1003_on_the_wrong_message_type_and_1007_on_bad_json() -> None:
    seen: list[str] = []

    async def texts(websocket: WebSocket) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            seen.append(text)

    async def objects(websocket: WebSocket) -> None:
        await websocket.accept()
        async for value in websocket.iter_json():
            seen.append(repr(value))

    app = router(websocket_route("/text", texts), websocket_route("/json", objects))
    async with AsyncTestClient(app) as client:
        async with client.websocket_connect("/text") as ws:
            await ws.send_text("one")
            await ws.send_bytes(b"two")
            with pytest.raises(WebSocketDisconnect) as closed:
                await ws.receive_text()
            assert closed.value.code == 1003
        async with client.websocket_connect("/json") as ws:
            await ws.send_text('{"a": 1}')
            await ws.send_text("{nope")
            with pytest.raises(WebSocketDisconnect) as closed:
                await ws.receive_text()
            assert closed.value.code == 1007
    assert seen == ["one", "{'a': 1}"]


async def test_iter_text_closes_with_1007_on_text_that_has_no_utf8_form() -> None:
    # A lone surrogate cannot come from a conforming server, but a faulty
    # layer can pass one; echoed, it would be a message no server can send.
    incoming: list[Message] = [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "caf\u00e9"},
        {"type": "websocket.receive", "text": "\ud800"},
    ]
    sent: list[Message] = []
    seen: list[str] = []

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/", "headers": [], "query_string": b""}
    websocket = WebSocket(scope, receive, send)
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text)
        seen.append(text)
    assert seen == ["caf\u00e9"]
    assert sent[-1] == {"type": "websocket.close", "code": 1007, "reason": "invalid text"}


# -- server shutdown ----------------------------------------------------------


class SignalWhenIdle(FakePeer):
    """A peer that sends nothing more, and delivers SIGTERM once the app waits on it."""

    async def receive(self) -> Message:
        if not self.incoming:
            signal.raise_signal(signal.SIGTERM)
        return await super().receive()


@pytest.mark.parametrize("when", ["while_receive_waits", "before_the_first_receive"])
async def test_an_open_websocket_closes_with_1001_when_the_server_gets_sigterm(
    server_handles_sigterm: list[int], when: str
) -> None:
    peer = SignalWhenIdle() if when == "while_receive_waits" else FakePeer()
    ended: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        if when == "before_the_first_receive":
            signal.raise_signal(signal.SIGTERM)
            await anyio.sleep(0.01)  # busy elsewhere when it comes
        async for _ in websocket.iter_text():
            pass  # the loop just ends
        ended.append(websocket.close_code or 0)
        await websocket.close()  # a no-op now, safe in a finally

    with anyio.fail_after(10):
        await app(ws_scope(), peer.receive, peer.send)
    assert peer.sent[1:] == [
        {"type": "websocket.close", "code": 1001, "reason": "server shutting down"}
    ]
    assert ended == [1001]
    assert server_handles_sigterm == [signal.SIGTERM]


# -- parity with Starlette's tests/test_websockets.py ---------------------------


def running(body: Any) -> Any:
    """An ASGI app that wraps the scope in a WebSocket and runs ``body(websocket)``."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await body(WebSocket(scope, receive, send))

    return app


def test_url_query_params_port_and_headers_of_the_handshake() -> None:
    async def body(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json(
            {
                "url": str(websocket.url),
                "port": websocket.url.port,
                "params": dict(websocket.query_params),
                "host": websocket.headers["host"],
                "version": websocket.headers["sec-websocket-version"],
            }
        )
        await websocket.close()

    client = TestClient(running(body))
    with client.websocket_connect("/123?a=abc&b=456") as session:
        data = session.receive_json()
    assert data["url"] == "ws://testserver/123?a=abc&b=456"
    assert data["params"] == {"a": "abc", "b": "456"}
    assert (data["host"], data["version"]) == ("testserver", "13")
    with client.websocket_connect("ws://example.com:123/x") as session:
        assert session.receive_json()["port"] == 123


def test_send_json_keeps_non_ascii_text_compact() -> None:
    async def body(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json(await websocket.receive_json())
        await websocket.close()

    with TestClient(running(body)).websocket_connect("/") as session:
        session.send_json({"test": "数据"})
        assert session.receive_text() == '{"test":"数据"}'


def test_a_reader_task_and_a_writer_share_one_websocket() -> None:
    async def body(websocket: WebSocket) -> None:
        await websocket.accept()
        sender, receiver = anyio.create_memory_object_stream[Any](1)

        async def reader() -> None:
            async with sender:
                async for data in websocket.iter_json():
                    await sender.send(data)

        async with anyio.create_task_group() as group:
            group.start_soon(reader)
            async with receiver:
                async for data in receiver:
                    await websocket.send_json(data)

    with TestClient(running(body)).websocket_connect("/") as session:
        session.send_json({"hello": "world"})
        assert session.receive_json() == {"hello": "world"}


def test_the_clients_close_code_and_reason_reach_the_app() -> None:
    seen: list[Any] = []

    async def body(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await websocket.receive_text()
        except WebSocketDisconnect as exc:
            seen.append((exc.code, exc.reason))

    with TestClient(running(body)).websocket_connect("/") as session:
        session.close(1001, "Going Away")
    assert seen == [(1001, "Going Away")]


def test_a_close_before_accept_reaches_the_client_with_its_code() -> None:
    async def body(websocket: WebSocket) -> None:
        assert await websocket.receive() == {"type": "websocket.connect"}
        await websocket.close(1001)

    with (
        pytest.raises(WebSocketDisconnect) as info,
        TestClient(running(body)).websocket_connect("/"),
    ):
        pass
    assert info.value.code == 1001


def test_a_denial_response_sent_as_raw_messages_in_several_bodies() -> None:
    # Starlette's send_denial_response(Response) has no counterpart: deny()
    # takes a status, a body and headers, and raw messages do the rest.
    async def body(websocket: WebSocket) -> None:
        await websocket.receive()
        await websocket.send(
            {
                "type": "websocket.http.response.start",
                "status": 404,
                "headers": [(b"content-type", b"text/plain"), (b"foo", b"bar")],
            }
        )
        await websocket.send(
            {"type": "websocket.http.response.body", "body": b"hard", "more_body": True}
        )
        await websocket.send({"type": "websocket.http.response.body", "body": b"body"})

    with (
        pytest.raises(WebSocketDenialResponse) as info,
        TestClient(running(body)).websocket_connect("/"),
    ):
        pass
    assert (info.value.status_code, info.value.content) == (404, b"hardbody")
    assert info.value.headers["foo"] == "bar"


async def test_a_second_denial_start_is_a_clear_error() -> None:
    peer = FakePeer()
    websocket = WebSocket(ws_scope(), peer.receive, peer.send)
    await websocket.receive()
    start = {"type": "websocket.http.response.start", "status": 404, "headers": []}
    await websocket.send(start)
    with pytest.raises(RuntimeError, match=r"expected websocket\.http\.response\.body"):
        await websocket.send(start)


def test_no_extra_handshake_headers_unless_given() -> None:
    async def body(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.close()

    with TestClient(running(body)).websocket_connect("/") as session:
        assert session.extra_headers == []


def test_an_exception_in_the_app_reaches_the_test_client() -> None:
    async def body(websocket: WebSocket) -> None:
        raise LookupError("boom")

    with pytest.raises(LookupError), TestClient(running(body)).websocket_connect("/"):
        pass


async def test_receiving_after_the_disconnect_is_a_clear_error() -> None:
    peer = FakePeer({"type": "websocket.disconnect", "code": 1000})
    websocket = WebSocket(ws_scope(), peer.receive, peer.send)
    await websocket.accept()
    assert (await websocket.receive())["type"] == "websocket.disconnect"
    with pytest.raises(RuntimeError, match="already disconnected"):
        await websocket.receive()


def test_a_websocket_is_a_read_only_mapping_of_its_scope_hashed_by_identity() -> None:
    async def nothing() -> Message:
        raise AssertionError

    async def ignore(message: Message) -> None:
        raise AssertionError

    scope = {"type": "websocket", "path": "/abc/", "headers": []}
    websocket = WebSocket(scope, nothing, ignore)
    assert websocket["path"] == "/abc/"
    assert dict(websocket) == scope
    assert len(websocket) == 3
    # Equal and hashed by identity, not by scope: usable as a dict key or in a set.
    assert websocket != WebSocket(dict(scope), nothing, ignore)
    assert {websocket} == {websocket}


async def test_an_unknown_json_mode_is_refused_not_taken_for_text() -> None:
    peer = FakePeer({"type": "websocket.receive", "text": "{}"})
    websocket = WebSocket(ws_scope(), peer.receive, peer.send)
    await websocket.accept()
    with pytest.raises(ValueError, match="mode"):
        await websocket.send_json({}, mode="invalid")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode"):
        await websocket.receive_json(mode="invalid")  # type: ignore[arg-type]
    assert [m["type"] for m in peer.sent] == ["websocket.accept"]


async def test_sending_before_accept_or_accepting_twice_is_a_clear_error() -> None:
    peer = FakePeer()
    websocket = WebSocket(ws_scope(), peer.receive, peer.send)
    await websocket.receive()
    with pytest.raises(RuntimeError, match="accept, close or deny"):
        await websocket.send({"type": "websocket.send", "text": "x"})
    await websocket.send({"type": "websocket.accept"})
    with pytest.raises(RuntimeError, match="unexpected message"):
        await websocket.send({"type": "websocket.accept"})


async def test_a_first_message_other_than_connect_is_a_clear_error() -> None:
    peer = FakePeer()
    peer.incoming = [{"type": "websocket.receive", "text": "x"}]
    websocket = WebSocket(ws_scope(), peer.receive, peer.send)
    with pytest.raises(RuntimeError, match=r"expected websocket\.connect"):
        await websocket.receive()


async def test_a_second_connect_is_a_clear_error() -> None:
    peer = FakePeer({"type": "websocket.connect"})
    websocket = WebSocket(ws_scope(), peer.receive, peer.send)
    await websocket.accept()
    with pytest.raises(RuntimeError, match="unexpected message"):
        await websocket.receive()


async def test_a_handshake_not_yet_answered_is_refused_at_shutdown(
    server_handles_sigterm: list[int],
) -> None:
    peer = FakePeer()
    websocket = WebSocket(ws_scope(), peer.receive, peer.send)
    assert (await websocket.receive())["type"] == "websocket.connect"
    signal.raise_signal(signal.SIGTERM)
    with anyio.fail_after(10):
        message = await websocket.receive()
    assert message["type"] == "websocket.disconnect"
    assert [m["type"] for m in peer.sent] == ["websocket.close"]
    with pytest.raises(WebSocketDisconnect):  # too late to accept
        await websocket.accept()

"""reverse_proxy over WebSockets, against real upstreams on loopback.

The upstream is an asgikit app under uvicorn (and, for a connection that
breaks, a raw socket server); the proxy is driven through the TestClient
and through a real uvicorn with the ``websockets`` client in front.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from asgikit import WebSocket, mount, router, websocket_route
from asgikit.exceptions import WebSocketDisconnect
from asgikit.proxy import reverse_proxy
from asgikit.testing import TestClient, WebSocketDenialResponse
from tests.servers.live import free_port, serve

CLOSED: dict[str, tuple[int, str]] = {}
CLOSED_EVENTS: dict[str, threading.Event] = {}


def closed_event(token: str) -> threading.Event:
    return CLOSED_EVENTS.setdefault(token, threading.Event())


async def echo(websocket: WebSocket) -> None:
    """Echoes; ``close:CODE:REASON`` closes; records how the client closed."""
    offered = websocket.subprotocols
    await websocket.accept(
        subprotocol=offered[-1] if offered else None,
        headers={"set-cookie": "ws=1", "x-upstream": "yes"},
    )
    token = websocket.query_params.get("token", "")
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            CLOSED[token] = (message.get("code", 1005), message.get("reason") or "")
            closed_event(token).set()
            return
        text = message.get("text")
        if text is not None and text.startswith("close:"):
            _, code, reason = text.split(":", 2)
            await websocket.close(int(code), reason)
            return
        if text is not None:
            await websocket.send_text(text)
        else:
            await websocket.send_bytes(message["bytes"])


async def describe(websocket: WebSocket) -> None:
    await websocket.accept()
    scope = websocket.scope
    await websocket.send_json(
        {
            "raw_path": scope["raw_path"].decode("latin-1"),
            "query": scope["query_string"].decode("latin-1"),
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
        }
    )
    await websocket.close()


async def refuse(websocket: WebSocket) -> None:
    await websocket.close(1008)  # before accepting: uvicorn answers 403


UPSTREAM = router(
    websocket_route("/echo", echo),
    websocket_route("/describe/{rest:path}", describe),
    websocket_route("/refuse", refuse),
)


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with serve(UPSTREAM) as base:
        yield base


def test_text_and_binary_round_trip(upstream: str) -> None:
    with TestClient(reverse_proxy(upstream)) as client, client.websocket_connect("/echo") as ws:
        ws.send_text("héllo")
        assert ws.receive_text() == "héllo"
        ws.send_bytes(b"\x00\x01" * 70000)  # larger than one read
        assert ws.receive_bytes() == b"\x00\x01" * 70000


def test_subprotocol_and_upstream_headers_come_back(upstream: str) -> None:
    with (
        TestClient(reverse_proxy(upstream)) as client,
        client.websocket_connect("/echo", subprotocols=["one", "two"]) as ws,
    ):
        assert ws.accepted_subprotocol == "two"
        headers = dict(ws.extra_headers)
    assert headers[b"set-cookie"] == b"ws=1"
    assert headers[b"x-upstream"] == b"yes"
    assert b"sec-websocket-accept" not in headers


def test_handshake_forwards_path_query_and_end_to_end_headers(upstream: str) -> None:
    app = router(mount("/ws", reverse_proxy(upstream + "/describe")))
    with (
        TestClient(app, client=("192.0.2.7", 1234)) as client,
        client.websocket_connect(
            "/ws/a%2Fb?x=1",
            headers={"cookie": "s=1", "connection": "upgrade, x-hop", "x-hop": "1"},
        ) as ws,
    ):
        seen: dict[str, Any] = ws.receive_json()
    names = [name for name, _ in seen["headers"]]
    assert seen["raw_path"] == "/describe/a%2Fb"
    assert seen["query"] == "x=1"
    assert ["cookie", "s=1"] in seen["headers"]
    assert ["x-forwarded-for", "192.0.2.7"] in seen["headers"]
    assert ["forwarded", "for=192.0.2.7;host=testserver;proto=http"] in seen["headers"]
    assert "keep-alive" not in names
    assert "te" not in names
    assert names.count("sec-websocket-key") == 1  # the proxy's own, not the client's too


def test_upstream_close_code_and_reason_reach_the_client(upstream: str) -> None:
    with TestClient(reverse_proxy(upstream)) as client, client.websocket_connect("/echo") as ws:
        ws.send_text("close:4001:upstream says bye")
        message = ws.receive()
    assert message == {"type": "websocket.close", "code": 4001, "reason": "upstream says bye"}


def test_client_close_code_and_reason_reach_the_upstream(upstream: str) -> None:
    token = uuid.uuid4().hex
    with TestClient(reverse_proxy(upstream)) as client:
        with client.websocket_connect(f"/echo?token={token}") as ws:
            ws.send_text("ping")
            assert ws.receive_text() == "ping"
            ws.close(4002, "client says bye")
        assert closed_event(token).wait(5)
    assert CLOSED[token] == (4002, "client says bye")


def test_upstream_refusal_refuses_the_client(upstream: str) -> None:
    with TestClient(reverse_proxy(upstream)) as client:
        with (
            pytest.raises(WebSocketDenialResponse) as refused,
            client.websocket_connect("/refuse"),
        ):
            pass  # pragma: no cover
        assert refused.value.status_code == 403
    # A server without the websocket.http.response extension: a close before accept.
    with (
        TestClient(reverse_proxy(upstream), extensions={}) as client,
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect("/refuse"),
    ):
        pass  # pragma: no cover


def test_unreachable_upstream_refuses_with_502() -> None:
    with (
        TestClient(reverse_proxy(f"http://127.0.0.1:{free_port()}")) as client,
        pytest.raises(WebSocketDenialResponse) as refused,
        client.websocket_connect("/anything"),
    ):
        pass  # pragma: no cover
    assert refused.value.status_code == 502


async def test_round_trip_on_both_event_loops(upstream: str) -> None:
    async with (
        TestClient(reverse_proxy(upstream)) as client,
        client.websocket_connect("/echo", subprotocols=["chat"]) as ws,
    ):
        assert ws.accepted_subprotocol == "chat"
        await ws.send_text("one")
        assert await ws.receive_text() == "one"
        await ws.send_text("close:1000:done")
        assert (await ws.receive())["code"] == 1000


def test_through_uvicorn_with_a_websockets_client(upstream: str) -> None:
    token = uuid.uuid4().hex
    with serve(reverse_proxy(upstream)) as front:
        url = front.replace("http://", "ws://")
        with connect(f"{url}/echo?token=x", subprotocols=["a", "b"]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "b"
            ws.send("text")
            assert ws.recv() == "text"
            ws.send(b"bytes")
            assert ws.recv() == b"bytes"
            ws.send("close:4003:from upstream")
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv()
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4003, "from upstream")

        with connect(f"{url}/echo?token={token}") as ws:
            ws.send("hi")
            assert ws.recv() == "hi"
            ws.close(4004, "from client")
        assert closed_event(token).wait(5)
    assert CLOSED[token] == (4004, "from client")


# -- an upstream that accepts, then drops the connection without a close ---------


def _handshake_then_drop(server: socket.socket) -> None:
    connection, _ = server.accept()
    with connection:
        request = b""
        while b"\r\n\r\n" not in request:
            request += connection.recv(4096)
        key = next(
            line.split(b":", 1)[1].strip()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        guid = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
        accept = base64.b64encode(hashlib.sha1(key + guid).digest())
        connection.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        connection.sendall(b"\x81\x02hi")  # one unmasked text frame, then gone


def test_upstream_lost_without_a_close_is_1014_bad_gateway() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        thread = threading.Thread(target=_handshake_then_drop, args=(server,), daemon=True)
        thread.start()
        port = server.getsockname()[1]
        with (
            TestClient(reverse_proxy(f"http://127.0.0.1:{port}")) as client,
            client.websocket_connect("/") as ws,
        ):
            assert ws.receive_text() == "hi"
            assert ws.receive()["code"] == 1014
        thread.join(5)


def test_an_upstream_message_over_the_size_limit_closes_with_1014(upstream: str) -> None:
    proxy = reverse_proxy(upstream, websocket_max_size=1000)
    with TestClient(proxy) as client, client.websocket_connect("/echo") as ws:
        ws.send_text("small")
        assert ws.receive_text() == "small"
        ws.send_bytes(b"x" * 5000)
        assert ws.receive()["code"] == 1014


def test_two_host_headers_refuse_the_websocket_with_400(upstream: str) -> None:
    # RFC 9112 §3.2; the upstream never sees the handshake.
    with (
        TestClient(reverse_proxy(upstream)) as client,
        pytest.raises(WebSocketDenialResponse) as refused,
        client.websocket_connect(
            "/describe/x", headers=[("host", "public.example"), ("host", "internal.example")]
        ),
    ):
        pass  # pragma: no cover
    assert refused.value.status_code == 400

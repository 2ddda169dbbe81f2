"""Attacks on reverse_proxy: a broken upstream, a hostile client, a slow one.

Each test names the attack it performs.  Upstreams are scripted raw sockets
(``tests/proxy/raw.py``) that send exactly the bytes a broken or malicious
server would, so the proxy's framing and pooling are judged byte by byte.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

import anyio
import anyio.to_thread

from asgikit.proxy import reverse_proxy
from asgikit.testing import AsyncTestClient
from tests.proxy.raw import Handler, RawServer, ok, read_request

SMUGGLED = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED"


def smuggler(first: bytes, later: bool) -> tuple[Handler, threading.Event]:
    """Answers the first request with ``first`` plus a whole smuggled response.

    With ``later`` the smuggled bytes go in a second write after the answer,
    so they arrive after the proxy has seen the end of the first response.
    Every other request on any connection gets ``genuine``.
    """
    sent = threading.Event()

    def handler(sock: socket.socket, index: int) -> None:
        if index == 1 and read_request(sock):
            if later:
                sock.sendall(first)
                sock.sendall(SMUGGLED)
            else:
                sock.sendall(first + SMUGGLED)
            sent.set()
        while read_request(sock):
            sock.sendall(ok(b"genuine"))

    return handler, sent


FIRST_ANSWERS = {
    "head_with_a_body": ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
    "204_with_a_body": ("GET", b"HTTP/1.1 204 No Content\r\n\r\nhello"),
    "304_with_a_body": ("GET", b"HTTP/1.1 304 Not Modified\r\n\r\nhello"),
    "more_than_content_length": ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhello"),
    "after_the_last_chunk": (
        "GET",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n0\r\n\r\nhello",
    ),
}


async def check_no_mixing(
    raw_server: Callable[[Handler], RawServer], case: str, later: bool
) -> None:
    method, first = FIRST_ANSWERS[case]
    handler, sent = smuggler(first, later)
    server = raw_server(handler)
    with anyio.fail_after(10):
        async with AsyncTestClient(reverse_proxy(server.url)) as client:
            await client.request(method, "/victim-1")
            assert await anyio.to_thread.run_sync(sent.wait, 5)
            second = await client.get("/victim-2")
    assert second.content == b"genuine"
    assert server.connections == 2


async def test_upstream_body_on_head_never_reaches_the_next_client(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    await check_no_mixing(raw_server, "head_with_a_body", later=False)
    await check_no_mixing(raw_server, "head_with_a_body", later=True)


async def test_upstream_body_on_204_never_reaches_the_next_client(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    await check_no_mixing(raw_server, "204_with_a_body", later=False)
    await check_no_mixing(raw_server, "204_with_a_body", later=True)


async def test_upstream_body_on_304_never_reaches_the_next_client(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    await check_no_mixing(raw_server, "304_with_a_body", later=False)
    await check_no_mixing(raw_server, "304_with_a_body", later=True)


async def test_bytes_past_content_length_never_reach_the_next_client(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    await check_no_mixing(raw_server, "more_than_content_length", later=False)
    await check_no_mixing(raw_server, "more_than_content_length", later=True)


async def test_bytes_past_the_last_chunk_never_reach_the_next_client(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    await check_no_mixing(raw_server, "after_the_last_chunk", later=False)
    await check_no_mixing(raw_server, "after_the_last_chunk", later=True)

"""A scripted raw-socket upstream for the proxy tests: it answers with exact bytes.

Each accepted connection runs ``handler(sock, index)`` in a thread, so a
test can script a broken server (extra bytes, a close mid-body, garbage)
that no real framework would produce.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

Handler = Callable[[socket.socket, int], None]


class RawServer:
    """Accepts connections and runs ``handler(sock, index)`` on each, in threads."""

    def __init__(self, handler: Handler) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.handler = handler
        self.connections = 0
        self.closed = threading.Event()  # set when a connection is closed here
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            index = self.connections
            threading.Thread(target=self._run, args=(sock, index), daemon=True).start()

    def _run(self, sock: socket.socket, index: int) -> None:
        # Each write leaves at once (no Nagle delay), so bytes a handler
        # sends before signalling are on their way when the test goes on.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with sock:
            try:
                self.handler(sock, index)
            except OSError:
                pass
        self.closed.set()

    def close(self) -> None:
        self.listener.close()


def read_request(sock: socket.socket) -> bytes:
    """One request head and its body (Content-Length or chunked); ``b""`` at EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lowered = head.lower()
    if b"content-length:" in lowered:
        length = int(lowered.split(b"content-length:")[1].split(b"\r\n")[0])
        while len(body) < length:
            body += sock.recv(65536)
    elif b"transfer-encoding: chunked" in lowered:
        while not body.endswith(b"0\r\n\r\n"):
            body += sock.recv(65536)
    return head


def ok(body: bytes = b"ok", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def answer_each(*responses: bytes, then_close: bool = False) -> Handler:
    """Answer requests on a connection with ``responses`` in turn."""

    def handler(sock: socket.socket, index: int) -> None:
        for response in responses:
            if not read_request(sock):
                return
            sock.sendall(response)
        if not then_close:
            while read_request(sock):
                sock.sendall(responses[-1])

    return handler

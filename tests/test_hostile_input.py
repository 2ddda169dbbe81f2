"""Hostile input against the two complete apps (examples/showcase.py, examples/tour.py).

The apps are driven directly as ASGI apps, as a server would: lifespan
startup first (the state is shallow-copied into every request scope), then
scopes built by hand with arbitrary methods, paths, ``raw_path``, query
strings, headers and bodies, whose body arrives in random chunks.  The
project's rule is checked on every answer: bad input gets a clear 4xx (or a
documented exception), never a 500, a hang, a malformed response, a header
carrying CR/LF/NUL, or a temporary file left open.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import anyio
import anyio.from_thread
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import asgikit.forms
from asgikit.exceptions import ClientDisconnect
from asgikit.types import ASGIApp, Message, Scope
from examples import showcase, tour

EXAMPLES = 300
#: How long a client waits for the rest of a response before it hangs up.
CLIENT_PATIENCE = 0.05
#: How long an app may take to finish once its client is gone.
APP_DEADLINE = 10.0

TOKEN = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


# -- A server in miniature: lifespan once, then one scope per example ---------------


class _TrackedSpool(tempfile.SpooledTemporaryFile):  # type: ignore[type-arg]
    """Every spooled upload file, so a test can check each was closed."""

    created: list[tempfile.SpooledTemporaryFile] = []  # type: ignore[type-arg]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _TrackedSpool.created.append(self)


@dataclass
class Outcome:
    """What an app did with one connection."""

    messages: list[Message] = field(default_factory=list)
    error: BaseException | None = None
    disconnected: bool = False  # receive() told the app the client had gone
    truncated: bool = False  # the client went away in the middle of its body

    @property
    def start(self) -> Message | None:
        return self.messages[0] if self.messages else None

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])

    @property
    def complete(self) -> bool:
        if len(self.messages) < 2:
            return False
        last = self.messages[-1]
        return last["type"] == "http.response.pathsend" or not last.get("more_body", False)

    @property
    def pathsend(self) -> bool:
        return any(m["type"] == "http.response.pathsend" for m in self.messages)


class Server:
    """One app with its lifespan running in a blocking portal (an event loop in a thread)."""

    def __init__(self, app: ASGIApp, portal: anyio.from_thread.BlockingPortal) -> None:
        self.app = app
        self.portal = portal
        self.state: dict[str, Any] = {}

    async def _lifespan(self, event: str) -> None:
        await self._to_app.send({"type": event})
        reply = await self._from_app.receive()
        assert reply["type"] == f"{event}.complete", reply

    def start(self) -> None:
        self._to_app, inbox = anyio.create_memory_object_stream[Message](1)
        outbox, self._from_app = anyio.create_memory_object_stream[Message](1)
        self._streams = (self._to_app, inbox, outbox, self._from_app)
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self.state}
        self._task = self.portal.start_task_soon(self.app, scope, inbox.receive, outbox.send)
        self.portal.call(self._lifespan, "lifespan.startup")

    def stop(self) -> None:
        try:
            self.portal.call(self._lifespan, "lifespan.shutdown")
            self._task.result(timeout=APP_DEADLINE)
        finally:
            for stream in self._streams:
                stream.close()

    def http(
        self,
        scope: Scope,
        chunks: list[bytes],
        *,
        truncate: bool = False,
        patience: float = CLIENT_PATIENCE,
    ) -> Outcome:
        return self.portal.call(self._http, scope, chunks, truncate, patience)

    async def _http(
        self, scope: Scope, chunks: list[bytes], truncate: bool, patience: float
    ) -> Outcome:
        outcome = Outcome(truncated=truncate)
        pending = list(chunks) or [b""]
        finished = anyio.Event()
        scope = {**scope, "state": dict(self.state)}

        async def receive() -> Message:
            if pending:
                chunk = pending.pop(0)
                more = bool(pending) or truncate
                return {"type": "http.request", "body": chunk, "more_body": more}
            if not truncate:
                # A client that has sent its request waits for the answer a
                # while, then hangs up (so endless streams end too).
                with anyio.move_on_after(patience):
                    await finished.wait()
            outcome.disconnected = True
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            outcome.messages.append(message)
            kind = message["type"]
            if kind == "http.response.pathsend" or (
                kind == "http.response.body" and not message.get("more_body")
            ):
                finished.set()

        with anyio.fail_after(APP_DEADLINE):
            try:
                await self.app(scope, receive, send)
            except Exception as exc:
                outcome.error = exc
        return outcome

    def websocket(self, scope: Scope, incoming: list[Message]) -> Outcome:
        return self.portal.call(self._websocket, scope, incoming)

    async def _websocket(self, scope: Scope, incoming: list[Message]) -> Outcome:
        outcome = Outcome()
        pending = [{"type": "websocket.connect"}, *incoming]
        scope = {**scope, "state": dict(self.state)}

        async def receive() -> Message:
            if pending:
                await anyio.sleep(0)
                return pending.pop(0)
            outcome.disconnected = True
            return {"type": "websocket.disconnect", "code": 1001}

        async def send(message: Message) -> None:
            outcome.messages.append(message)

        with anyio.fail_after(APP_DEADLINE):
            try:
                await self.app(scope, receive, send)
            except Exception as exc:
                outcome.error = exc
        return outcome


@contextmanager
def running(app: ASGIApp) -> Iterator[Server]:
    with anyio.from_thread.start_blocking_portal("asyncio") as portal:
        server = Server(app, portal)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module", autouse=True)
def tracked_spools() -> Iterator[None]:
    original = asgikit.forms.SpooledTemporaryFile
    asgikit.forms.SpooledTemporaryFile = _TrackedSpool  # type: ignore[misc]
    try:
        yield
    finally:
        asgikit.forms.SpooledTemporaryFile = original  # type: ignore[misc]


@pytest.fixture(scope="module")
def showcase_server() -> Iterator[Server]:
    with running(showcase.app) as server:
        yield server


@pytest.fixture(scope="module")
def tour_server() -> Iterator[Server]:
    tick = tour.TICK
    tour.TICK = 0
    try:
        with running(tour.app) as server:
            yield server
    finally:
        tour.TICK = tick


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@contextmanager
def no_leaks() -> Iterator[None]:
    """Every spooled file made inside is closed, and no file descriptor stays open."""
    _TrackedSpool.created.clear()
    before = open_fds()
    yield
    still_open = [f for f in _TrackedSpool.created if not f.closed]
    _TrackedSpool.created.clear()
    assert not still_open, f"{len(still_open)} spooled upload file(s) left open"
    assert open_fds() <= before, "a file descriptor was left open"


# -- What a well-formed answer looks like ---------------------------------------------


def bad_header_bytes(data: bytes) -> bool:
    return any(byte in data for byte in b"\r\n\x00")


def check_http(outcome: Outcome, scope: Scope, *, may_fail: bool = False) -> None:
    """The rules every HTTP answer obeys, whatever the request."""
    error = outcome.error
    if error is not None:
        # The one exception a request may end with: its client went away while
        # sending the body (then no one is listening to the answer anyway).
        assert outcome.truncated, repr(error)
        assert isinstance(error, ClientDisconnect), repr(error)
        return
    if not outcome.messages:
        # A route ends quietly when its client left mid-body: nobody to answer.
        assert outcome.truncated, "no response at all"
        return
    start = outcome.start
    assert start is not None
    assert start["type"] == "http.response.start", outcome.messages[:2]
    status = start["status"]
    assert isinstance(status, int)
    assert 200 <= status < 600, status
    if not may_fail:
        assert status < 500, (status, outcome.body[:300])
    names: list[bytes] = []
    for name, value in start.get("headers", []):
        assert isinstance(name, bytes), name
        assert isinstance(value, bytes), value
        assert name, "an empty header name"
        assert all(byte in TOKEN for byte in name), name
        assert not bad_header_bytes(value), (name, value)
        names.append(name.lower())
    for message in outcome.messages[1:-1]:
        assert message["type"] == "http.response.body", message["type"]
        assert isinstance(message.get("body", b""), bytes)
    if outcome.pathsend:
        last = outcome.messages[-1]
        assert last["type"] == "http.response.pathsend", outcome.messages
        assert "http.response.pathsend" in scope["extensions"]
        assert os.path.isfile(last["path"]), last
        assert scope["method"] == "GET"
        return
    if not outcome.complete:
        # Only a client that hung up may be left without the end of the body.
        assert outcome.disconnected, "the response never ended"
        return
    assert names.count(b"content-length") <= 1, start["headers"]
    lengths = [v for k, v in start["headers"] if k.lower() == b"content-length"]
    if scope["method"] == "HEAD" or status in (204, 304):
        assert outcome.body == b"", (status, outcome.body[:100])
    elif lengths:
        assert int(lengths[0]) == len(outcome.body), (lengths, len(outcome.body))


def documented_websocket_error(error: BaseException) -> bool:
    """The errors ``WebSocket`` documents for a client's bad message.

    ``receive_text()`` on a binary frame is a ``RuntimeError``, ``receive_json()``
    on malformed JSON a ``ValueError``; an endpoint that lets them out gets the
    server's 1011 close.
    """
    group = getattr(error, "exceptions", None)  # an ExceptionGroup from a task group
    if isinstance(group, tuple):
        return all(documented_websocket_error(e) for e in group)
    if isinstance(error, RuntimeError):
        return str(error) == "expected a text message, got a binary one"
    return type(error) in (ValueError, json.JSONDecodeError, UnicodeDecodeError)


def check_websocket(outcome: Outcome, scope: Scope) -> None:
    if outcome.error is not None:
        assert documented_websocket_error(outcome.error), repr(outcome.error)
    assert outcome.messages, "the handshake was never answered"
    first = outcome.messages[0]
    denials = ("websocket.http.response.start",)
    if "websocket.http.response" not in scope.get("extensions", {}):
        denials = ()
    assert first["type"] in ("websocket.accept", "websocket.close", *denials), first
    if first["type"] == "websocket.accept":
        chosen = first.get("subprotocol")
        assert chosen is None or chosen in scope.get("subprotocols", []), chosen
        for name, value in first.get("headers", []):
            assert not bad_header_bytes(name)
            assert not bad_header_bytes(value)
        for message in outcome.messages[1:]:
            assert message["type"] in ("websocket.send", "websocket.close"), message
            if message.get("text") is not None:
                message["text"].encode("utf-8")  # a server must be able to send it
            reason = message.get("reason")
            if reason:
                assert len(reason.encode("utf-8")) <= 123, reason
    elif first["type"] == "websocket.http.response.start":
        assert 400 <= first["status"] < 500, first
        for name, value in first.get("headers", []):
            assert not bad_header_bytes(name)
            assert not bad_header_bytes(value)
        rest = outcome.messages[1:]
        assert rest, "a denial response without its body"
        assert all(m["type"] == "websocket.http.response.body" for m in rest), rest
        assert not rest[-1].get("more_body", False)
    else:
        assert len(outcome.messages) == 1, outcome.messages


# -- Strategies ------------------------------------------------------------------------

SHOWCASE_PATHS = [
    "/", "/health", "/session", "/redirect", "/upload", "/big.bin", "/download",
    "/chat/lobby", "/clock/", "/clock/events", "/api/users", "/api/users/1",
    "/api/users/99", "/api/upload", "/static/", "/static/style.css", "/static/notes.txt",
    "/stream",
]  # fmt: skip
TOUR_PATHS = [
    "/", "/health", "/hello", "/redirect", "/api/users", "/api/users/1", "/api/users/7",
    "/api/stream", "/api/stream/file", "/static/style.css", "/static/", "/api",
]  # fmt: skip
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT"]

any_text = st.text(st.characters(codec=None, categories=None), max_size=40)
nasty_segments = st.sampled_from(
    ["", "/", "//", "..", "../..", "%", "%2e%2e", "%2F", "%00", "\x00", ".", "~", "?", "#",
     "\ud800", "\udcff", "é", "a" * 5000, "/./", "\\..\\", "%ff", ";x", "\n", " "]
)  # fmt: skip

methods = st.one_of(
    st.sampled_from(["GET", "GET", "POST", "POST", "HEAD"]),
    st.sampled_from(["GET", "GET", "POST", "POST", "HEAD"]),
    st.sampled_from(["GET", "GET", "POST", "POST", "HEAD"]),
    st.sampled_from(METHODS),
    st.sampled_from(METHODS).map(str.lower),
    st.text(st.sampled_from(TOKEN.decode()), min_size=1, max_size=12),
)


def paths(known: list[str]) -> st.SearchStrategy[str]:
    suffix = st.lists(st.one_of(nasty_segments, any_text), max_size=4).map("".join)
    return st.one_of(
        st.sampled_from(known),
        st.sampled_from(known),
        st.sampled_from(known),
        st.tuples(st.sampled_from(known), suffix).map("".join),
        suffix.map(lambda s: "/" + s),
    )


def raw_paths(path: str) -> st.SearchStrategy[bytes | None]:
    return st.one_of(
        st.none(),
        st.just(quote(path.encode("utf-8", "surrogatepass"), safe="/").encode("ascii")),
        st.binary(max_size=60),
    )


query_strings = st.one_of(
    st.just(b""),
    st.binary(max_size=200),
    st.lists(
        st.sampled_from(
            [
                b"page=2",
                b"page=0",
                b"page=-1",
                b"page=99999999999999999999",
                b"page_size=100",
                b"page_size=101",
                b"name=%3Cscript%3E",
                b"name=%ff%fe",
                b"%",
                b"%%",
                b"%zz",
                b"=",
                b"&",
                b"lines=10000",
                b"lines=10001",
                b"interval=nan",
                b"interval=inf",
                b"interval=1e308",
                b"interval=-1",
                b"page=%C2%B2",
                b"lines=%C2%B9",
                b"page_size=" + b"1" * 5000,
                b"interval=" + b"9" * 5000,
                b"page=\xb2",
                b"a=" + b"x" * 3000,
                b"\x00",
                b"+",
                b"%00=%00",
            ]
        ),
        max_size=6,
    ).map(b"&".join),
)

HEADER_NAMES = [
    b"host", b"cookie", b"content-type", b"content-length", b"range", b"if-range",
    b"if-none-match", b"if-modified-since", b"if-match", b"if-unmodified-since",
    b"accept-encoding", b"accept", b"origin", b"authorization", b"x-request-id",
    b"access-control-request-method", b"access-control-request-headers",
    b"last-event-id", b"transfer-encoding", b"x-forwarded-for", b"connection", b"upgrade",
    b"sec-websocket-protocol", b"sec-websocket-key", b"user-agent", b"referer",
]  # fmt: skip
HEADER_VALUES = [
    b"", b" ", b"bytes=0-0", b"bytes=-1", b"bytes=0-", b"bytes=5-1", b"bytes=0-0,0-0,0-0",
    b"bytes=1-2,3-4", b"bytes=999999999999999999999-", b"bytes=-0", b"bytes=abc", b"items=0-1",
    b"gzip", b"br", b"zstd", b"gzip;q=0", b"*;q=0", b"identity;q=0", b"br;q=nan", b"gzip;q=1e9",
    b"http://localhost:8000", b"http://localhost:3000", b"null", b"*",
    b"session=", b"session=abc.def", b"session=\"", b"a=b; a=c; session=x", b"=;=;;;",
    b"application/json", b"text/plain", b"multipart/form-data", b"multipart/form-data; boundary=",
    b"multipart/form-data; boundary=B", b"multipart/form-data; boundary=\"\"",
    b"application/x-www-form-urlencoded", b"application/json; charset=latin-1",
    b"-1", b"0", b"1", b"99999999999999999999", b"1e3", b"+5", b"\x00", b"\xff\xfe",
    b"W/\"x\"", b"\"x\"", b"Thu, 01 Jan 1970 00:00:00 GMT", b"not a date", b"chunked",
    b"Basic Og==", b"Bearer", b"x\r\nSet-Cookie: pwn=1", b"a" * 9000, b"\xc3\xa9\xe2\x82",
    b"text/html", b"GET", b"X-Custom, \x00", b"evil.com", b"localhost:8000", b"[::1]:99999",
    b"\xb2", b"1" * 5000, b"0" * 5000 + b"1", b"bytes=\xb2-", b"bytes=0-" + b"9" * 5000,
    b"1.2.3.4:\xb2", b"for=1.2.3.4", b"\xef\xbb\xbf", b"gzip;q=\xb2", b"gzip;q=0.\xb2",
    b"session=" + b"A" * 5000 + b".1.x", b"W/\"\xff\"", b"\"" * 3, b"bytes=0-0, " * 200,
    b"multipart/form-data; boundary=\xff", b"multipart/form-data; boundary=" + b"b" * 300,
    b"application/json; charset=\xff", b"text/plain; charset=utf-7", b"x" * 70_000,
]  # fmt: skip

header_names = st.one_of(st.sampled_from(HEADER_NAMES), st.binary(min_size=0, max_size=20))
header_values = st.one_of(st.sampled_from(HEADER_VALUES), st.binary(max_size=80))
header_lists = st.lists(st.tuples(header_names, header_values), max_size=12)


@st.composite
def multipart_bodies(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A multipart body and its content type, well-formed or broken at random."""
    boundary = draw(st.sampled_from([b"B", b"xyz", b"a" * 70, b"--", b'b"q', b" "]))
    declared = draw(st.sampled_from([boundary, boundary, b"other", b'"' + boundary + b'"']))
    parts = []
    for _ in range(draw(st.integers(0, 5))):
        name = draw(st.sampled_from([b"file", b"files", b"title", b"_charset_", b"", b"\xff"]))
        disposition = b'form-data; name="' + name + b'"'
        if draw(st.booleans()):
            disposition += b'; filename="' + draw(st.sampled_from([b"a.txt", b"", b"\xc3"])) + b'"'
        if draw(st.booleans()):
            disposition = draw(st.sampled_from([b"form-data", b"attachment", b"", b"form-data;;"]))
        head = b"Content-Disposition: " + disposition + b"\r\n"
        if draw(st.booleans()):
            head += b"Content-Type: " + draw(header_values) + b"\r\n"
        if draw(st.booleans()):
            head += draw(st.binary(max_size=30)) + b"\r\n"
        data = draw(st.one_of(st.binary(max_size=100), st.sampled_from([b"utf-8", b"base64"])))
        parts.append(b"--" + boundary + b"\r\n" + head + b"\r\n" + data + b"\r\n")
    ending = draw(st.sampled_from([b"--" + boundary + b"--\r\n", b"", b"--" + boundary, b"--"]))
    body = b"".join(parts) + ending
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(body)))
        body = body[:cut] + draw(st.binary(max_size=20)) + body[cut:]
    return body, b"multipart/form-data; boundary=" + declared


json_bodies = st.one_of(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=10,
    ).map(lambda value: json.dumps(value).encode()),
    st.sampled_from(
        [
            b"{",
            b"[" * 100_000,
            b'{"name": "x", "email": 1}',
            b'{"name": " ", "email": "e"}',
            b"\xff",
            b"NaN",
            b'"\\ud800"',
            b'{"name": "\\u0000", "email": "\\r\\n"}',
            b"1" * 5000,
            b'{"name": "\\ud800", "email": "\\udfff@x"}',
            b'{"name": "a", "email": "b", "id": 1e999}',
        ]
    ),
)


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, bytes | None]:
    kind = draw(st.sampled_from(["none", "raw", "multipart", "urlencoded", "json"]))
    if kind == "none":
        return b"", None
    if kind == "raw":
        return draw(st.binary(max_size=300)), draw(st.none() | header_values)
    if kind == "multipart":
        return draw(multipart_bodies())
    if kind == "urlencoded":
        return draw(query_strings), b"application/x-www-form-urlencoded"
    return draw(json_bodies), draw(st.sampled_from([b"application/json", b"text/plain"]))


servers = st.sampled_from([("testserver", 80), ("::1", 8000), ("/tmp/sock", None), None])
clients = st.sampled_from([("127.0.0.1", 50000), ("::1", 1), None])
extensions = st.sampled_from(
    [{}, {"http.response.pathsend": {}}, {"websocket.http.response": {}}, {"tls": {}}]
)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for point in points:
        out.append(data[last:point])
        last = point
    out.append(data[last:])
    return out


@st.composite
def http_requests(draw: st.DrawFn, known: list[str]) -> tuple[Scope, list[bytes], bool]:
    path = draw(paths(known))
    raw_path = draw(raw_paths(path))
    body, content_type = draw(bodies())
    headers = draw(header_lists)
    if content_type is not None:
        headers.insert(draw(st.integers(0, len(headers))), (b"content-type", content_type))
    if draw(st.booleans()):
        headers.append((b"content-length", str(len(body)).encode()))
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": draw(st.sampled_from(["1.0", "1.1", "2"])),
        "method": draw(methods),
        "scheme": draw(st.sampled_from(["http", "https"])),
        "path": path,
        "root_path": draw(st.sampled_from(["", "", "/prefix"])),
        "query_string": draw(query_strings),
        "headers": headers,
        "server": draw(servers),
        "client": draw(clients),
        "extensions": draw(extensions),
    }
    if raw_path is not None:
        scope["raw_path"] = raw_path
    chunks = chunked(body, draw(st.lists(st.integers(0, 10_000), max_size=4)))
    truncate = draw(st.integers(0, 9)) == 0
    return scope, chunks, truncate


@st.composite
def websocket_sessions(draw: st.DrawFn, known: list[str]) -> tuple[Scope, list[Message]]:
    path = draw(paths(known))
    scope: Scope = {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": draw(st.sampled_from(["ws", "wss"])),
        "path": path,
        "root_path": "",
        "query_string": draw(query_strings),
        "headers": draw(header_lists),
        "server": draw(servers),
        "client": draw(clients),
        "subprotocols": draw(st.lists(any_text, max_size=4)),
        "extensions": draw(extensions),
    }
    raw_path = draw(raw_paths(path))
    if raw_path is not None:
        scope["raw_path"] = raw_path
    message = st.one_of(
        st.builds(lambda t: {"type": "websocket.receive", "text": t}, any_text),
        st.builds(lambda b: {"type": "websocket.receive", "bytes": b}, st.binary(max_size=50)),
        st.sampled_from(
            [
                {"type": "websocket.receive", "text": '{"name": "a", "text": "b"}'},
                {"type": "websocket.receive", "text": "[" * 10_000},
                {"type": "websocket.receive", "text": '{"name": "' + "n" * 5000 + '"}'},
                {"type": "websocket.receive", "bytes": b"\xff"},
                {"type": "websocket.receive", "text": '{"name": "\\ud800", "text": "\\udc00"}'},
                {"type": "websocket.receive", "text": '"\\ud800"'},
                {"type": "websocket.receive", "text": "\ud800"},
            ]
        ),
    )
    return scope, draw(st.lists(message, max_size=5))


FUZZ = settings(
    max_examples=EXAMPLES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    deadline=None,
)

WS_CHAT = ["/chat/lobby/ws", "/chat/x/ws", "/chat//ws"]
WS_TOUR = ["/ws/chat", "/ws/json"]


# -- The fuzzers ---------------------------------------------------------------------


@FUZZ
@given(request=http_requests(SHOWCASE_PATHS))
def test_showcase_answers_any_http_request_cleanly(
    showcase_server: Server, request: tuple[Scope, list[bytes], bool]
) -> None:
    scope, chunks, truncate = request
    with no_leaks():
        outcome = showcase_server.http(scope, chunks, truncate=truncate)
    check_http(outcome, scope)


@FUZZ
@given(request=http_requests(TOUR_PATHS))
def test_tour_answers_any_http_request_cleanly(
    tour_server: Server, request: tuple[Scope, list[bytes], bool]
) -> None:
    scope, chunks, truncate = request
    with no_leaks():
        outcome = tour_server.http(scope, chunks, truncate=truncate)
    # /error fails on purpose (a JSON 500, then the exception for the server).
    deliberate = scope["path"] == "/error" or scope["path"].startswith("/error?")
    if deliberate:
        return
    check_http(outcome, scope)


@FUZZ
@given(session=websocket_sessions(WS_CHAT + SHOWCASE_PATHS))
def test_showcase_handles_any_websocket_session(
    showcase_server: Server, session: tuple[Scope, list[Message]]
) -> None:
    scope, incoming = session
    check_websocket(showcase_server.websocket(scope, incoming), scope)


@FUZZ
@given(session=websocket_sessions(WS_TOUR + TOUR_PATHS))
def test_tour_handles_any_websocket_session(
    tour_server: Server, session: tuple[Scope, list[Message]]
) -> None:
    scope, incoming = session
    check_websocket(tour_server.websocket(scope, incoming), scope)


# -- Targeted attacks -------------------------------------------------------------------


def request_scope(
    method: str, path: str, headers: list[tuple[bytes, bytes]], query: bytes = b""
) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("utf-8", "surrogatepass"),
        "root_path": "",
        "query_string": query,
        "headers": headers,
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
    }


def attack(server: Server, scope: Scope, body: bytes = b"") -> Outcome:
    with no_leaks():
        chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]
        outcome = server.http(scope, chunks, patience=APP_DEADLINE)
    check_http(outcome, scope)
    return outcome


def status(outcome: Outcome) -> int:
    assert outcome.start is not None
    code: int = outcome.start["status"]
    return code


def header(outcome: Outcome, name: bytes) -> list[bytes]:
    assert outcome.start is not None
    return [v for k, v in outcome.start["headers"] if k == name]


def test_ten_thousand_ranges_are_served_whole(showcase_server: Server) -> None:
    ranges = b"bytes=" + b",".join(b"%d-%d" % (i, i) for i in range(0, 20_000, 2))
    outcome = attack(showcase_server, request_scope("GET", "/big.bin", [(b"range", ranges)]))
    # Many separate tiny ranges are an amplification attack: ignored, the whole file.
    assert status(outcome) == 200
    assert len(outcome.body) == showcase.BIG_FILE_SIZE


def test_ten_thousand_adjacent_ranges_coalesce_into_one(showcase_server: Server) -> None:
    ranges = b"bytes=" + b",".join(b"%d-%d" % (i, i) for i in range(10_000))
    outcome = attack(showcase_server, request_scope("GET", "/big.bin", [(b"range", ranges)]))
    assert status(outcome) == 206
    assert header(outcome, b"content-range") == [b"bytes 0-9999/%d" % showcase.BIG_FILE_SIZE]


def test_overlapping_ranges_do_not_amplify(showcase_server: Server) -> None:
    ranges = b"bytes=" + b",".join([b"0-"] * 200)
    outcome = attack(showcase_server, request_scope("GET", "/big.bin", [(b"range", ranges)]))
    assert len(outcome.body) <= showcase.BIG_FILE_SIZE + 64 * 1024


@pytest.mark.parametrize("path", ["/upload", "/api/upload"])
def test_hundred_thousand_tiny_parts_hit_a_count_limit(showcase_server: Server, path: str) -> None:
    file_part = b'--B\r\nContent-Disposition: form-data; name="f"; filename="a"\r\n\r\nx\r\n'
    field_part = b'--B\r\nContent-Disposition: form-data; name="f"\r\n\r\nx\r\n'
    for part in (file_part, field_part):
        body = part * 100_000 + b"--B--\r\n"
        headers = [(b"content-type", b"multipart/form-data; boundary=B")]
        outcome = attack(showcase_server, request_scope("POST", path, headers), body)
        assert status(outcome) == 400, (status(outcome), outcome.body[:200])
        assert b"max_f" in outcome.body


def test_urlencoded_flood_hits_the_field_limit(showcase_server: Server) -> None:
    headers = [(b"content-type", b"application/x-www-form-urlencoded")]
    body = b"&".join([b"a=b"] * 100_000)
    outcome = attack(showcase_server, request_scope("POST", "/upload", headers), body)
    assert status(outcome) == 400


@pytest.mark.parametrize(
    "body", [b"[" * 200_000, b'{"a":' * 200_000, b"[" * 200_000 + b"]" * 200_000]
)
def test_deeply_nested_json_is_a_400(
    showcase_server: Server, tour_server: Server, body: bytes
) -> None:
    headers = [(b"content-type", b"application/json")]
    outcome = attack(showcase_server, request_scope("POST", "/api/users", headers), body)
    assert status(outcome) == 400
    outcome = attack(tour_server, request_scope("POST", "/api/users", headers), body[:16000])
    assert status(outcome) == 400


def test_ten_thousand_cookies(showcase_server: Server, tour_server: Server) -> None:
    cookie = b"; ".join(b"c%d=v%d" % (i, i) for i in range(10_000))
    for server, path in ((showcase_server, "/"), (tour_server, "/hello")):
        outcome = attack(server, request_scope("GET", path, [(b"cookie", cookie)] * 3))
        assert status(outcome) == 200


def test_ten_thousand_accept_encodings(showcase_server: Server) -> None:
    accept = b", ".join(b"x-enc%d;q=0.%d" % (i, i % 10) for i in range(10_000)) + b", gzip"
    outcome = attack(
        showcase_server, request_scope("GET", "/big.bin", [(b"accept-encoding", accept)])
    )
    assert status(outcome) == 200


def test_one_megabyte_query_string(showcase_server: Server, tour_server: Server) -> None:
    query = b"&".join([b"page=1"] * 150_000)[: 1024 * 1024]
    for server in (showcase_server, tour_server):
        for path in ("/api/users", "/redirect", "/"):
            attack(server, request_scope("GET", path, [], query))


@pytest.mark.parametrize(
    "value",
    [b"abc\r\nSet-Cookie: pwn=1", b"abc\nx: y", b"abc\x00", b"\xff\xfe", b"a" * 10_000, b" a "],
)
def test_request_id_is_never_reflected_raw(showcase_server: Server, value: bytes) -> None:
    outcome = attack(showcase_server, request_scope("GET", "/health", [(b"x-request-id", value)]))
    assert status(outcome) == 200
    reflected = header(outcome, b"x-request-id")
    assert len(reflected) == 1
    assert len(reflected[0]) <= 200


@pytest.mark.parametrize(
    "host",
    [b"evil.com\r\nSet-Cookie: x=1", b"evil.com/\\..", b"a" * 10_000, b"\xff", b"[::1", b"h:-1"],
)
def test_redirect_location_never_carries_a_raw_host(
    showcase_server: Server, tour_server: Server, host: bytes
) -> None:
    for server in (showcase_server, tour_server):
        outcome = attack(server, request_scope("GET", "/redirect", [(b"host", host)]))
        for location in header(outcome, b"location"):
            assert not bad_header_bytes(location)


@pytest.mark.parametrize("path", ["/api\r\nx: y", "/static/\r\n", "/api/users/", "//evil.com/"])
def test_reflected_paths_stay_out_of_headers(showcase_server: Server, path: str) -> None:
    attack(showcase_server, request_scope("GET", path, []))


def test_cors_preflight_with_hostile_request_headers(showcase_server: Server) -> None:
    headers = [
        (b"origin", b"http://localhost:8000"),
        (b"access-control-request-method", b"GET\r\nx: y"),
        (b"access-control-request-headers", b"a\r\nb, " + b"x," * 10_000),
    ]
    attack(showcase_server, request_scope("OPTIONS", "/api/users", headers))


def test_a_user_named_with_a_lone_surrogate_does_not_break_the_list(
    showcase_server: Server, tour_server: Server
) -> None:
    body = b'{"name": "\\ud800", "email": "e@example.com"}'
    headers = [(b"content-type", b"application/json")]
    for server in (showcase_server, tour_server):
        created = attack(server, request_scope("POST", "/api/users", headers), body)
        assert status(created) == 201
        assert json.loads(created.body)["name"] == "\ud800"
        listed = attack(server, request_scope("GET", "/api/users", [], b"page_size=100"))
        assert status(listed) == 200

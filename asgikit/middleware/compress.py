"""Response compression: gzip always, ``br`` and ``zstd`` when their packages are installed.

The coding is chosen by the client's ``Accept-Encoding`` (RFC 9110 §12.5.3):
the highest q-value wins, ``q=0`` means never, ``*`` stands for codings the
client did not name, ties go to the server's order (``zstd``, ``br``,
``gzip``), and an explicit ``identity`` weighted above all of them means no
compression; the negotiation and the encoders live in ``_encoding``.  A body
sent in one message is compressed at once and gets the new
``Content-Length``; a streamed body is compressed chunk by chunk, each chunk
flushed so it reaches the client as soon as it is produced, and loses its
``Content-Length``.  A strong ``ETag`` is weakened (the compressed bytes
are a different representation, RFC 9110 §8.8.1), ``Accept-Ranges`` is
dropped (ranges would name bytes of the uncompressed body), and ``Vary:
Accept-Encoding`` is added.

Left alone: bodies under ``minimum_size``, responses that already have a
``Content-Encoding``, ``Cache-Control: no-transform``, partial content,
``text/event-stream``, already-compressed media types (images, audio, video,
archives, web fonts), gRPC (``application/grpc``, ``+proto``, ``-web``…:
its frames carry their own compression, whatever ``skip_media_types``
says), HEAD requests, and ``http.response.pathsend`` responses (the server
sends the file as it is).  WebSocket and lifespan scopes pass straight
through.  A body is never buffered beyond one message.

``Vary: Accept-Encoding`` goes on every answer that another
``Accept-Encoding`` would have changed (RFC 9110 §12.5.5): the compressed
ones, and those left uncompressed only because this client accepts no
offered coding (no header, ``identity``, ``q=0``).  Answers compress would
leave alone for any client (the list above, and excluded paths) get none.

Bodies of ``thread_minimum_size`` bytes or more are compressed in a worker
thread.  A response that announces trailers gets no ``Content-Length``.
Deliberate differences from Starlette's ``GZipMiddleware``: br and zstd
besides gzip, chosen by q-values; the skip list is ``skip_media_types``
(``exclude`` names paths, as in every asgikit piece); gRPC is never
compressed, even with a cleared list; an empty streamed chunk is not sent
(its flush would only cost bytes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Collection, Iterable, Mapping, Sequence
from typing import Any

from anyio.to_thread import run_sync

from asgikit.composition import middleware
from asgikit.middleware._encoding import (
    Encoder,
    compress_whole,
    load_encodings,
    new_encoder,
    select_encoding,
)
from asgikit.middleware._exclude import Exclude, ScopePredicate, compile_exclude
from asgikit.middleware._http import RawHeaders
from asgikit.types import ASGIApp, Message, Receive, Scope, Send

#: Media types that are compressed already; ``type/*`` covers a whole type.
DEFAULT_SKIP_MEDIA_TYPES = frozenset(
    {
        "text/event-stream",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/avif",
        "image/heic",
        "image/jxl",
        "audio/*",
        "video/*",
        "font/woff",
        "font/woff2",
        "application/zip",
        "application/gzip",
        "application/x-gzip",
        "application/zstd",
        "application/x-bzip2",
        "application/x-xz",
        "application/x-7z-compressed",
        "application/vnd.rar",
        "application/x-rar-compressed",
        "application/pdf",
        "application/wasm",
    }
)

# Lengths of the response header names compress reads: other names are
# skipped without lower-casing them (most headers, on every response).
_SKIP_LENGTHS = frozenset(
    len(n)
    for n in (
        b"content-encoding",
        b"content-range",
        b"content-type",
        b"content-length",
        b"cache-control",
    )
)
_START_LENGTHS = frozenset((len(b"content-length"), len(b"etag"), len(b"accept-ranges")))
# gRPC and gRPC-Web, with any suffix (+proto, -text…): never an HTTP coding.
_GRPC = ("application/grpc",)
_CACHE_SIZE = 256  # distinct Accept-Encoding values remembered per instance
_CACHE_KEY_MAX = 256  # longer Accept-Encoding values are parsed each time, never kept


@middleware
def compress(
    app: ASGIApp,
    *,
    minimum_size: int = 500,
    compresslevel: int = 6,
    brotli_quality: int = 4,
    zstd_level: int = 3,
    encodings: Sequence[str] | None = None,
    skip_media_types: Collection[str] = DEFAULT_SKIP_MEDIA_TYPES,
    exclude: Exclude = None,
    thread_minimum_size: int = 128 * 1024,
) -> ASGIApp:
    """Compress responses with the best coding the client accepts.

    ``compresslevel`` is gzip's (zlib's default 6; 9 costs much more CPU for
    little), ``brotli_quality`` and ``zstd_level`` the others'.
    ``encodings`` is the server's preference order; by default ``zstd``,
    ``br`` (each only if its package is importable) and ``gzip``.  Naming an
    encoding whose package is missing raises ``ImportError`` here.
    ``skip_media_types`` lists media types left alone (``type/*`` for a
    whole type; parameters and case are ignored).  A body (or streamed
    chunk) of ``thread_minimum_size`` bytes or more is compressed in a
    worker thread, so that it does not stall the event loop.
    """
    if minimum_size < 0:
        raise ValueError("minimum_size must not be negative")
    if thread_minimum_size < 0:
        raise ValueError("thread_minimum_size must not be negative")
    modules = load_encodings(encodings)
    skipped = [_media_type(t) for t in skip_media_types]
    settings = _Settings(
        excluded=compile_exclude(exclude),
        minimum_size=minimum_size,
        thread_minimum_size=thread_minimum_size,
        modules=modules,
        available=tuple(modules),
        levels={"gzip": compresslevel, "br": brotli_quality, "zstd": zstd_level},
        skip_exact=frozenset(t for t in skipped if not t.endswith("/*")),
        skip_types=frozenset(t[:-1] for t in skipped if t.endswith("/*")),
    )
    return _Compress(app, settings)


_VARY_COVERED = frozenset({b"accept-encoding", b"*"})


def _vary_on_accept_encoding(headers: RawHeaders) -> None:
    """Add ``Accept-Encoding`` to ``Vary`` in ``headers``, in place, unless listed already.

    The same rule as ``add_vary``, written for this one token: a length test
    skips most names without lower-casing them (this runs on every answer).
    """
    first = -1
    for i, (name, value) in enumerate(headers):
        if len(name) == 4 and name.lower() == b"vary":
            if any(t.strip() in _VARY_COVERED for t in value.lower().split(b",")):
                return
            if first < 0:
                first = i
    if first < 0:
        headers.append((b"vary", b"Accept-Encoding"))
    else:
        name, value = headers[first]
        headers[first] = (
            name,
            value + b", Accept-Encoding" if value.strip() else b"Accept-Encoding",
        )


def _media_type(value: str) -> str:
    return value.partition(";")[0].strip().lower()


@dataclasses.dataclass(frozen=True)
class _Settings:
    """``compress()``'s options, checked and compiled."""

    excluded: ScopePredicate | None
    minimum_size: int
    thread_minimum_size: int
    modules: Mapping[str, Any]  # encoding name -> its loaded module, in preference order
    available: tuple[str, ...]
    levels: Mapping[str, int]
    skip_exact: frozenset[str]  # media types left alone
    skip_types: frozenset[str]  # "type/" prefixes left alone


class _Compress:
    """The layer ``compress()`` builds: its settings and its ``Accept-Encoding`` choices."""

    def __init__(self, app: ASGIApp, settings: _Settings) -> None:
        self.app = app
        self.settings = settings
        self.cache: dict[bytes, str | None] = {}
        self.minimum_digits = len(str(settings.minimum_size))

    def choose(self, accept: bytes) -> str | None:
        cached = self.cache.get(accept, "")
        if cached != "":
            return cached
        choice = select_encoding(accept.decode("latin-1"), self.settings.available)
        # Real values are short; remembering long ones would let a client park
        # _CACHE_SIZE header-sized keys in memory.
        if len(accept) <= _CACHE_KEY_MAX:
            if len(self.cache) >= _CACHE_SIZE:
                self.cache.clear()
            self.cache[accept] = choice
        return choice

    def encoder(self, encoding: str) -> Encoder:
        return new_encoder(
            encoding, self.settings.modules[encoding], self.settings.levels[encoding]
        )

    def whole(self, encoding: str, body: bytes) -> bytes:
        return compress_whole(
            encoding, self.settings.modules[encoding], self.settings.levels[encoding], body
        )

    def skip_response(self, headers: RawHeaders) -> bool | None:
        """``True`` to leave the answer alone; ``None`` if it is big enough by its length."""
        sized = False
        for name, value in headers:
            if len(name) not in _SKIP_LENGTHS:
                continue
            name = name.lower()
            if name == b"content-length":  # first: responses usually send it first
                # Fewer digits than minimum_size has: too small (or not a
                # number, which is left alone as well), without int().
                if (
                    len(value) < self.minimum_digits
                    or not value.isdigit()
                    or int(value) < self.settings.minimum_size
                ):
                    return True
                sized = True
            elif name == b"content-encoding" or name == b"content-range":
                return True
            elif name == b"content-type":
                media = value.partition(b";")[0].strip().lower().decode("latin-1")
                if media in self.settings.skip_exact or media.startswith(_GRPC):
                    return True
                if media.partition("/")[0] + "/" in self.settings.skip_types:
                    return True
            elif name == b"cache-control" and b"no-transform" in value.lower():
                return True
        return None if sized else False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "HEAD":
            await self.app(scope, receive, send)
            return
        if self.settings.excluded is not None and self.settings.excluded(scope):
            await self.app(scope, receive, send)
            return
        # The start message alone usually settles that there is nothing to do
        # (a small body, an image, a 304...): then every message goes straight
        # to the server, and neither Accept-Encoding is read nor the _Response
        # that holds a start back is made.  (Even with no coding to use, an
        # answer may need Vary: Accept-Encoding: the _Response sees to it.)
        request_headers = scope["headers"]
        response: _Response | None = None
        passing = False

        def send_compressed(message: Message) -> Awaitable[None]:
            nonlocal response, passing
            if passing:
                return send(message)
            if response is None:
                if message["type"] == "http.response.start":
                    headers = message.get("headers", ())
                    if type(headers) is not list and type(headers) is not tuple:
                        # Any iterable (ASGI), read more than once from here on.
                        message = {**message, "headers": list(headers)}
                    verdict = self.verdict(message)
                    if verdict:
                        passing = True
                        return send(message)
                    response = _Response(self, send, self.encoding_for(request_headers))
                    return response.start(message, verdict)
                response = _Response(self, send, self.encoding_for(request_headers))
            return response.send(message)

        await self.app(scope, receive, send_compressed)

    def encoding_for(self, headers: Iterable[tuple[bytes, bytes]]) -> str | None:
        """The coding to use for a request with these headers (``None``: none)."""
        accept: bytes | None = None
        for name, value in headers:
            if name == b"accept-encoding":
                accept = value if accept is None else accept + b"," + value
        if not accept:
            return None
        encoding = self.cache.get(accept, "")
        if encoding == "":
            encoding = self.choose(accept)
        return encoding

    def verdict(self, start: Message) -> bool | None:
        """``True`` to leave the answer alone; ``None`` if it is big enough by its length."""
        status = start["status"]
        if status < 200 or status in (204, 206, 304):
            return True
        return self.skip_response(start.get("headers", ()))


_FILE_SENDS = frozenset({"http.response.pathsend", "http.response.zerocopysend"})


class _Response:
    """One response's ``send``: holds the start until the body says whether to compress.

    Once it decides not to (``passing``), every later message goes straight
    through.  Messages of types it does not know always do.  With no
    ``encoding`` (the client accepts none), an answer that would have been
    compressed goes out as it is, with ``Vary: Accept-Encoding`` added.
    """

    __slots__ = ("encoder", "encoding", "owner", "passing", "pending", "server_send")

    def __init__(self, owner: _Compress, send: Send, encoding: str | None) -> None:
        self.owner = owner
        self.server_send = send
        self.encoding = encoding
        self.pending: Message | None = None
        self.encoder: Encoder | None = None
        self.passing = False

    async def send(self, message: Message) -> None:
        if self.passing:
            await self.server_send(message)
            return
        kind = message["type"]
        if kind == "http.response.start":
            await self.start(message, self.owner.verdict(message))
        elif kind == "http.response.body":
            await self.body(message)
        elif kind in _FILE_SENDS:
            # The server sends the file as it is: nothing to compress, and
            # the start goes out exactly as the app wrote it.
            start, self.pending = self.pending, None
            self.passing = True
            if start is not None:
                await self.server_send(start)
            await self.server_send(message)
        else:
            await self.server_send(message)

    async def start(self, message: Message, verdict: bool | None) -> None:
        """The start message, with :meth:`_Compress.verdict`'s answer for it."""
        if verdict:
            self.passing = True
            await self.server_send(message)
        elif verdict is None and self.encoding is None:
            # Long enough to have been compressed: say so now, no need to wait.
            await self.send_varied(message, None)
        else:
            # Held past the app's send: a copy, as the app may reuse its own
            # dict and header list once that send returned.
            self.pending = {**message, "headers": list(message.get("headers", ()))}

    async def body(self, message: Message) -> None:
        send = self.server_send
        body: bytes = message.get("body", b"")
        more: bool = message.get("more_body", False)
        encoder = self.encoder
        if encoder is not None:
            if more and not body:
                return  # a flush of nothing would still cost bytes
            step = encoder.chunk if more else encoder.last
            if len(body) >= self.owner.settings.thread_minimum_size:
                out = await run_sync(step, body)
            else:
                out = step(body)
            if out or not more:
                await send({**message, "body": out})
            return
        start, self.pending = self.pending, None
        if start is None:  # body before start: not ours to fix
            await send(message)
            return
        if not more:
            if len(body) < self.owner.settings.minimum_size:
                self.passing = True
                await send(start)
                await send(message)
                return
            if self.encoding is None:
                await self.send_varied(start, message)
                return
            if len(body) >= self.owner.settings.thread_minimum_size:
                out = await run_sync(self.owner.whole, self.encoding, body)
            else:
                out = self.owner.whole(self.encoding, body)
            # With trailers the body goes chunked: no Content-Length to add.
            length = None if start.get("trailers") else len(out)
            await send(self.compressed_start(start, length))
            await send({**message, "body": out})
            return
        if self.encoding is None:
            await self.send_varied(start, message)
            return
        encoder = self.encoder = self.owner.encoder(self.encoding)
        await send(self.compressed_start(start, None))
        if len(body) >= self.owner.settings.thread_minimum_size:
            out = await run_sync(encoder.chunk, body)
        else:
            out = encoder.chunk(body)
        if out:
            await send({**message, "body": out})

    async def send_varied(self, start: Message, message: Message | None) -> None:
        """Send an answer uncompressed, saying it depends on ``Accept-Encoding``."""
        self.passing = True
        headers: RawHeaders = list(start.get("headers", ()))
        _vary_on_accept_encoding(headers)
        await self.server_send({**start, "headers": headers})
        if message is not None:
            await self.server_send(message)

    def compressed_start(self, start: Message, length: int | None) -> Message:
        headers: RawHeaders = []
        for pair in start.get("headers", ()):
            if len(pair[0]) in _START_LENGTHS:
                name, value = pair
                lower = name.lower()
                # Accept-Ranges offers ranges of the identity body (a 206 passes
                # uncompressed): not of this representation (RFC 9110 §14.3).
                if lower == b"content-length" or lower == b"accept-ranges":
                    continue
                if lower == b"etag" and not value.startswith(b"W/"):
                    pair = (name, b"W/" + value)
            headers.append(pair)
        assert self.encoding is not None
        headers.append((b"content-encoding", self.encoding.encode("ascii")))
        if length is not None:
            headers.append((b"content-length", str(length).encode("ascii")))
        _vary_on_accept_encoding(headers)
        return {**start, "headers": headers}


__all__ = ["DEFAULT_SKIP_MEDIA_TYPES", "compress", "select_encoding"]

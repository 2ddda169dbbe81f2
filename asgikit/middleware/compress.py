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
are a different representation, RFC 9110 §8.8.1) and ``Vary:
Accept-Encoding`` is added.

Left alone: bodies under ``minimum_size``, responses that already have a
``Content-Encoding``, ``Cache-Control: no-transform``, partial content,
``text/event-stream``, already-compressed media types (images, audio, video,
archives, web fonts), HEAD requests, and ``http.response.pathsend``
responses (the server sends the file as it is).  WebSocket and lifespan
scopes pass straight through.  A body is never buffered beyond one message.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from asgikit._send import wrap_send
from asgikit.composition import middleware
from asgikit.middleware._encoding import (
    Encoder,
    compress_whole,
    load_encodings,
    new_encoder,
    select_encoding,
)
from asgikit.middleware._exclude import Exclude, compile_exclude
from asgikit.middleware._http import RawHeaders, add_vary
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
_START_LENGTHS = frozenset((len(b"content-length"), len(b"etag")))
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
) -> ASGIApp:
    """Compress responses with the best coding the client accepts.

    ``compresslevel`` is gzip's (zlib's default 6; 9 costs much more CPU for
    little), ``brotli_quality`` and ``zstd_level`` the others'.
    ``encodings`` is the server's preference order; by default ``zstd``,
    ``br`` (each only if its package is importable) and ``gzip``.  Naming an
    encoding whose package is missing raises ``ImportError`` here.
    ``skip_media_types`` lists media types left alone (``type/*`` for a
    whole type).
    """
    return _Compress(
        app,
        minimum_size=minimum_size,
        compresslevel=compresslevel,
        brotli_quality=brotli_quality,
        zstd_level=zstd_level,
        encodings=encodings,
        skip_media_types=skip_media_types,
        exclude=exclude,
    )


class _Compress:
    def __init__(
        self,
        app: ASGIApp,
        *,
        minimum_size: int,
        compresslevel: int,
        brotli_quality: int,
        zstd_level: int,
        encodings: Sequence[str] | None,
        skip_media_types: Collection[str],
        exclude: Exclude,
    ) -> None:
        if minimum_size < 0:
            raise ValueError("minimum_size must not be negative")
        self.app = app
        self.excluded = compile_exclude(exclude)
        self.minimum_size = minimum_size
        self.modules = load_encodings(encodings)
        self.available = tuple(self.modules)
        self.levels = {"gzip": compresslevel, "br": brotli_quality, "zstd": zstd_level}
        self.skip_exact = frozenset(t.lower() for t in skip_media_types if not t.endswith("/*"))
        self.skip_types = frozenset(t[:-1].lower() for t in skip_media_types if t.endswith("/*"))
        self.cache: dict[bytes, str | None] = {}

    def choose(self, accept: bytes) -> str | None:
        cached = self.cache.get(accept, "")
        if cached != "":
            return cached
        choice = select_encoding(accept.decode("latin-1"), self.available)
        # Real values are short; remembering long ones would let a client park
        # _CACHE_SIZE header-sized keys in memory.
        if len(accept) <= _CACHE_KEY_MAX:
            if len(self.cache) >= _CACHE_SIZE:
                self.cache.clear()
            self.cache[accept] = choice
        return choice

    def encoder(self, encoding: str) -> Encoder:
        return new_encoder(encoding, self.modules[encoding], self.levels[encoding])

    def whole(self, encoding: str, body: bytes) -> bytes:
        return compress_whole(encoding, self.modules[encoding], self.levels[encoding], body)

    def skip_response(self, headers: RawHeaders) -> bool:
        for name, value in headers:
            if len(name) not in _SKIP_LENGTHS:
                continue
            name = name.lower()
            if name == b"content-encoding" or name == b"content-range":
                return True
            if name == b"content-type":
                media = value.partition(b";")[0].strip().lower().decode("latin-1")
                if media in self.skip_exact:
                    return True
                if media.partition("/")[0] + "/" in self.skip_types:
                    return True
            elif name == b"content-length":
                if not value.isdigit() or int(value) < self.minimum_size:
                    return True
            elif name == b"cache-control" and b"no-transform" in value.lower():
                return True
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "HEAD":
            await self.app(scope, receive, send)
            return
        accept: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"accept-encoding":
                accept = value if accept is None else accept + b"," + value
        encoding = self.choose(accept) if accept else None
        if encoding is None or (self.excluded is not None and self.excluded(scope)):
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, self._wrap(send, encoding))

    def _wrap(self, send: Send, encoding: str) -> Send:
        pending: Message | None = None
        encoder: Encoder | None = None
        passing = False
        coding = encoding.encode("ascii")

        def compressed_start(start: Message, length: int | None) -> Message:
            headers: RawHeaders = []
            for pair in start.get("headers", ()):
                if len(pair[0]) in _START_LENGTHS:
                    name, value = pair
                    lower = name.lower()
                    if lower == b"content-length":
                        continue
                    if lower == b"etag" and not value.startswith(b"W/"):
                        pair = (name, b"W/" + value)
                headers.append(pair)
            headers.append((b"content-encoding", coding))
            if length is not None:
                headers.append((b"content-length", str(length).encode("ascii")))
            add_vary(headers, b"Accept-Encoding")
            return {**start, "headers": headers}

        async def on_start(message: Message) -> None:
            nonlocal pending, passing
            status = message["status"]
            if (
                status < 200
                or status in (204, 206, 304)
                or self.skip_response(message.get("headers", ()))
            ):
                passing = True
                await send(message)
            else:
                pending = message

        async def on_body(message: Message) -> None:
            nonlocal pending, encoder, passing
            if passing:
                await send(message)
                return
            body: bytes = message.get("body", b"")
            more: bool = message.get("more_body", False)
            if encoder is not None:
                if more and not body:
                    return  # a flush of nothing would still cost bytes
                out = encoder.chunk(body) if more else encoder.last(body)
                if out or not more:
                    await send({**message, "body": out})
                return
            start, pending = pending, None
            if start is None:  # body before start: not ours to fix
                await send(message)
                return
            if not more:
                if len(body) < self.minimum_size:
                    passing = True
                    await send(start)
                    await send(message)
                    return
                out = self.whole(encoding, body)
                await send(compressed_start(start, len(out)))
                await send({**message, "body": out})
                return
            encoder = self.encoder(encoding)
            await send(compressed_start(start, None))
            out = encoder.chunk(body)
            if out:
                await send({**message, "body": out})

        async def on_pathsend(message: Message) -> None:
            # The server sends the file as it is: nothing to compress, and
            # the start goes out exactly as the app wrote it.
            nonlocal pending, passing
            start, pending = pending, None
            passing = True
            if start is not None:
                await send(start)
            await send(message)

        return wrap_send(
            send,
            {
                "http.response.start": on_start,
                "http.response.body": on_body,
                "http.response.pathsend": on_pathsend,
                "http.response.zerocopysend": on_pathsend,
            },
        )


__all__ = ["DEFAULT_SKIP_MEDIA_TYPES", "compress", "select_encoding"]

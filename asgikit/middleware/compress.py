"""Response compression: gzip always, ``br`` and ``zstd`` when their packages are installed.

The coding is chosen by the client's ``Accept-Encoding`` (RFC 9110 §12.5.3):
the highest q-value wins, ``q=0`` means never, ``*`` stands for codings the
client did not name, ties go to the server's order (``zstd``, ``br``,
``gzip``), and an explicit ``identity`` weighted above all of them means no
compression.  A body sent in one message is compressed at once and gets the
new ``Content-Length``; a streamed body is compressed chunk by chunk, each
chunk flushed so it reaches the client as soon as it is produced, and loses
its ``Content-Length``.  A strong ``ETag`` is weakened (the compressed bytes
are a different representation, RFC 9110 §8.8.1) and ``Vary:
Accept-Encoding`` is added.

Left alone: bodies under ``minimum_size``, responses that already have a
``Content-Encoding``, ``Cache-Control: no-transform``, partial content,
``text/event-stream``, already-compressed media types (images, audio, video,
archives, web fonts), HEAD requests, and ``http.response.pathsend``
responses (the server sends the file as it is).  WebSocket and lifespan
scopes pass straight through.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Collection, Sequence
from typing import Any, Protocol

from asgikit._send import wrap_send
from asgikit.composition import middleware
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

# RFC 9110 §12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")
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
_MAX_CODINGS = 32  # entries of Accept-Encoding looked at; the rest is ignored
_CACHE_SIZE = 256  # distinct Accept-Encoding values remembered per instance


def select_encoding(accept_encoding: str, available: Sequence[str]) -> str | None:
    """The coding of ``available`` (in server preference order) to use, or ``None``.

    ``None`` means send the body as it is: nothing acceptable was offered,
    or the client prefers ``identity``.  Malformed entries are ignored; this
    never raises for any header value.
    """
    weights: dict[str, float] = {}
    for entry in accept_encoding.split(",", _MAX_CODINGS)[:_MAX_CODINGS]:
        coding, _, params = entry.partition(";")
        coding = coding.strip().lower()
        if not coding:
            continue
        q: float | None = 1.0
        if params:
            for param in params.split(";"):
                key, _, value = param.partition("=")
                if key.strip().lower() == "q":
                    value = value.strip()
                    q = float(value) if _QVALUE.fullmatch(value) else None
        if q is None:
            continue
        if coding == "x-gzip":  # RFC 9110 §8.4.1.3
            coding = "gzip"
        # A coding listed twice gets its lower weight: q=0 anywhere means never.
        weights[coding] = min(q, weights.get(coding, q))
    star = weights.get("*")
    best: str | None = None
    best_q = 0.0
    for coding in available:
        q = weights.get(coding, star if star is not None else 0.0)
        if q > best_q:
            best, best_q = coding, q
    # Only an explicit "identity;q=..." competes: an unlisted identity is
    # merely acceptable (§12.5.3), not preferred over what was listed.
    identity_q = weights.get("identity", 0.0)
    if best is None or identity_q > best_q:
        return None
    return best


class _Encoder(Protocol):
    def chunk(self, data: bytes) -> bytes: ...
    def last(self, data: bytes) -> bytes: ...


class _Gzip:
    def __init__(self, level: int) -> None:
        self._z = zlib.compressobj(level, zlib.DEFLATED, 31)  # 16 + 15: gzip framing

    def chunk(self, data: bytes) -> bytes:
        return self._z.compress(data) + self._z.flush(zlib.Z_SYNC_FLUSH)

    def last(self, data: bytes) -> bytes:
        return self._z.compress(data) + self._z.flush(zlib.Z_FINISH)


class _Brotli:
    def __init__(self, module: Any, quality: int) -> None:
        self._b = module.Compressor(quality=quality)

    def chunk(self, data: bytes) -> bytes:
        out: bytes = self._b.process(data) + self._b.flush()
        return out

    def last(self, data: bytes) -> bytes:
        out: bytes = self._b.process(data) + self._b.finish()
        return out


class _Zstd:
    def __init__(self, module: Any, level: int) -> None:
        # One ZstdCompressor per response: its context is not shareable
        # between interleaved streams.
        self._module = module
        self._z = module.ZstdCompressor(level=level).compressobj()

    def chunk(self, data: bytes) -> bytes:
        out: bytes = self._z.compress(data) + self._z.flush(self._module.COMPRESSOBJ_FLUSH_BLOCK)
        return out

    def last(self, data: bytes) -> bytes:
        out: bytes = self._z.compress(data) + self._z.flush()
        return out


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


def _load(encoding: str, required: bool) -> Any:
    names = {"br": "brotli", "zstd": "zstandard", "gzip": None}
    if encoding not in names:
        raise ValueError(f"unknown encoding {encoding!r}; choose from gzip, br, zstd")
    module_name = names[encoding]
    if module_name is None:
        return zlib
    try:
        return __import__(module_name)
    except ImportError:
        if required:
            raise ImportError(
                f"encoding {encoding!r} needs the {module_name!r} package "
                f"(pip install 'asgikit[{'brotli' if encoding == 'br' else 'zstd'}]')"
            ) from None
        return None


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
        if isinstance(encodings, str):
            raise TypeError("encodings must be a list, not a single string")
        self.app = app
        self.excluded = compile_exclude(exclude)
        self.minimum_size = minimum_size
        self.modules: dict[str, Any] = {}
        for name in encodings if encodings is not None else ("zstd", "br", "gzip"):
            module = _load(name, required=encodings is not None)
            if module is not None:
                self.modules[name] = module
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
        if len(self.cache) >= _CACHE_SIZE:
            self.cache.clear()
        self.cache[accept] = choice
        return choice

    def encoder(self, encoding: str) -> _Encoder:
        level = self.levels[encoding]
        if encoding == "gzip":
            return _Gzip(level)
        if encoding == "br":
            return _Brotli(self.modules["br"], level)
        return _Zstd(self.modules["zstd"], level)

    def whole(self, encoding: str, body: bytes) -> bytes:
        if encoding == "zstd":
            # The one-shot API writes the content size into the frame header.
            out: bytes = (
                self.modules["zstd"].ZstdCompressor(level=self.levels["zstd"]).compress(body)
            )
            return out
        return self.encoder(encoding).last(body)

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
        encoder: _Encoder | None = None
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

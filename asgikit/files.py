"""``FileResponse``: a file from disk with RFC 9110 validators, preconditions and ranges.

Every response carries ``Content-Length``, ``Last-Modified``, a strong
``ETag`` and ``Accept-Ranges: bytes``.  For a 2xx response the preconditions
of RFC 9110 §13 are evaluated (304/412); for a 200 to a GET, ``Range`` and
``If-Range`` (§14) give a 206 with one range or a ``multipart/byteranges``
body, or a 416.  The sending itself lives in ``asgikit._sendfile``.

The file is read in chunks in a worker thread, never whole (a file of at
most one chunk is opened and read in one thread hop and sent as one
message); a body longer than one chunk is sent while a listener watches for
``http.disconnect``, and the file is closed when the client leaves.  With
``read_on_loop`` (opt-in) a small file is read on the event loop instead.
When the server offers the ``http.response.pathsend`` extension and the
whole file is sent, the server sends it.  A file that is missing, or is not
a regular file (a directory, a FIFO), is a ``RuntimeError``: this is for
files the application chose; to serve names from the URL, use
``static_files``, which answers 404.
"""

from __future__ import annotations

import functools
import mimetypes
import os
import stat as stat_module
from collections.abc import Mapping
from typing import BinaryIO
from urllib.parse import quote

from asgikit._fileio import close_opened, give_back, in_thread, take_spare
from asgikit._sendfile import (
    FileChanged,
    FileRequest,
    open_and_prefetch,
    open_with_head,
    send_file,
)
from asgikit.background import BackgroundTask
from asgikit.datastructures import validate_header
from asgikit.responses import Response
from asgikit.types import Receive, Scope, Send

_ENCODING_TYPES = {
    "gzip": "application/gzip",
    "br": "application/x-brotli",
    "bzip2": "application/x-bzip2",
    "xz": "application/x-xz",
    "compress": "application/x-compress",
}
# RFC 8187 attr-char, besides letters and digits (which quote always keeps).
_ATTR_CHAR = "!#$&+-.^_`|~"


def guess_media_type(name: str) -> str:
    """The media type for a file name; a compressed file (``.gz``…) is its archive type.

    Guessed once per base name (``mimetypes`` takes microseconds, a good
    share of serving a small file), so ``mimetypes.add_type`` calls belong
    at start-up, before the first response.  A name longer than a file
    name can be (a download name from a client) is guessed, not kept.
    """
    basename = os.path.basename(name)
    if len(basename) > _CACHED_NAME_MAX:
        return _guess.__wrapped__(basename)
    return _guess(basename)


# NAME_MAX on common file systems: a longer name is no file's, and not cached.
_CACHED_NAME_MAX = 255


@functools.lru_cache(maxsize=1024)
def _guess(basename: str) -> str:
    # A leading "/" keeps mimetypes from reading "data:..." as a URL scheme.
    media_type, encoding = mimetypes.guess_type("/" + basename)
    if encoding is not None:
        return _ENCODING_TYPES.get(encoding, "application/octet-stream")
    return media_type or "application/octet-stream"


def content_disposition(kind: str, filename: str) -> str:
    """A ``Content-Disposition`` value, with an RFC 8187 ``filename*`` when one is needed."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in filename)
    value = f'{kind}; filename="{fallback}"'
    if fallback != filename:
        value += "; filename*=UTF-8''" + quote(filename, safe=_ATTR_CHAR)
    return value


class FileResponse(Response):
    """The file at ``path``, with validators, conditional requests and byte ranges.

    ``media_type`` is guessed from ``filename`` or ``path`` when not given.
    ``filename`` adds ``Content-Disposition: <content_disposition_type>;
    filename=...`` (with an RFC 8187 ``filename*`` for names that are not
    plain ASCII).  ``stat_result`` saves a ``stat`` when the caller has one.
    An ``ETag`` or ``Last-Modified`` given in ``headers`` replaces the
    computed one and is what preconditions are evaluated against.

    ``read_on_loop`` (bytes; off by default) opens and stats the file on the
    event loop's thread, and reads it there too when it has at most that
    many bytes (and at most ``chunk_size``): a small file is then answered
    with no worker-thread hop, most of what serving it costs.  It is for
    files on a local disk that stay in the page cache: on a slow disk or a
    network file system each of those calls blocks every request of the
    process while it lasts, which is why it is not the default.  A larger
    file is still read in worker threads.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTask | None = None,
        filename: str | None = None,
        stat_result: os.stat_result | None = None,
        content_disposition_type: str = "attachment",
        *,
        chunk_size: int = 256 * 1024,
        read_on_loop: int = 0,
    ) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.status_code = status_code
        self.filename = filename
        self.media_type = media_type or guess_media_type(filename or self.path)
        self.background = background
        self.stat_result = stat_result
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        self.chunk_size = chunk_size
        if read_on_loop < 0:
            raise ValueError("read_on_loop must not be negative")
        self.read_on_loop = min(read_on_loop, chunk_size)
        self._raw_headers = self._init_headers(headers)
        if filename is not None:
            value = content_disposition(content_disposition_type, filename).encode("latin-1")
            validate_header(b"content-disposition", value)
            self._raw_headers.append((b"content-disposition", value))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method", "GET")
        request = FileRequest.from_headers(scope.get("headers", ()))
        pathsend = method == "GET" and "http.response.pathsend" in (scope.get("extensions") or {})
        file: BinaryIO | None = None
        data: bytes | memoryview | None = None
        buffer: bytearray | None = None
        if method == "HEAD" or (pathsend and request.range is None):
            if self.stat_result is not None:
                info = self.stat_result
            elif self.read_on_loop:
                info = _stat_regular(self.path)
            else:
                info = await in_thread(_stat_regular, self.path)
        elif self.read_on_loop:
            # Opted in: blocking calls on the loop (see the class docs).  A
            # small file is read whole, even for a Range: it is small.
            file, info, data = _open_or_fail(self.path, self.read_on_loop, False, None)
        else:
            # Without a Range, a small file is read in the same thread hop
            # that opens it (one hop in all), and a larger one's first chunk
            # is (unless a precondition may make the body unneeded).
            limit = 0 if request.range is not None else self.chunk_size
            head = request.range is None and not request.has_preconditions()
            buffer = take_spare(self.chunk_size) if head else None
            file, info, data = await in_thread(
                _open_or_fail, self.path, limit, head, buffer, release=close_opened
            )
            if buffer is not None and not isinstance(data, memoryview):
                give_back(buffer)  # a small file: nothing was read into it
                buffer = None
        try:
            completed = await send_file(
                scope,
                receive,
                send,
                path=self.path,
                info=info,
                file=file,
                status_code=self.status_code,
                headers=self._header_list(),
                request=request,
                chunk_size=self.chunk_size,
                prefetched=data,
                buffer=buffer,
            )
        except FileChanged as exc:  # a RuntimeError, as for a file that is not there
            raise RuntimeError(f"{exc} (at path {self.path})") from exc
        if completed and self.background is not None:
            await self.background()


def _stat_regular(path: str) -> os.stat_result:
    try:
        info = os.stat(path)
    except OSError as exc:
        raise RuntimeError(f"File at path {path} does not exist.") from exc
    if not stat_module.S_ISREG(info.st_mode):
        raise RuntimeError(f"File at path {path} is not a file.")
    return info


def _open_or_fail(
    path: str, limit: int, head: bool, buffer: bytearray | None
) -> tuple[BinaryIO | None, os.stat_result, bytes | memoryview | None]:
    try:
        if head:
            return open_with_head(path, limit, buffer)
        return open_and_prefetch(path, limit)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise RuntimeError(f"File at path {path} does not exist or is not a file.") from exc


__all__ = ["FileResponse", "content_disposition", "guess_media_type"]

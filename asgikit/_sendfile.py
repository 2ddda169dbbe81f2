"""Sending a file as an HTTP response: validators, preconditions, ranges, streaming.

The engine behind ``FileResponse`` and ``static_files``.  ``send_file``
takes a file's path and stat (and the file itself if it is already open),
plans the answer from the request's conditional and range headers (RFC 9110
§13 and §14, through ``asgikit._conditional`` and ``asgikit._ranges``), and
sends it:

- HEAD: the headers of the GET answer, no body;
- a whole file where the server offers ``http.response.pathsend``: that;
- a body of at most one chunk: one read in a worker thread, one message;
- anything longer: chunks read in a worker thread and sent while a listener
  watches for ``http.disconnect`` (``streaming.run_until_disconnect``); the file is
  closed when the client leaves.

Opening refuses anything but a regular file, without blocking on a FIFO.

Every blocking call goes through ``asgikit._fileio.in_thread`` (asgikit's
own file threads on asyncio), and chunks are read into a buffer from
``asgikit._fileio.take_buffer``.
"""

from __future__ import annotations

import functools
import os
import secrets
import stat as stat_module
from typing import BinaryIO

from asgikit._conditional import (
    FileRequest,
    evaluate,
    http_date,
    if_range_holds,
    make_etag,
    parse_http_date,
)
from asgikit._fileio import close_after_read, close_opened, give_back, in_thread, take_buffer
from asgikit._ranges import Multipart, content_range, parse_range
from asgikit.streaming import run_until_disconnect, wait_for_disconnect
from asgikit.types import Message, Receive, Scope, Send

RawHeaders = list[tuple[bytes, bytes]]
# A piece of the body: bytes to send first (a multipart part header), then
# the file's bytes in [start, stop).
Piece = tuple[bytes, int, int]

# RFC 9110 §15.4.5: what a 304 repeats from the 200 it stands for.
_NOT_MODIFIED_FIELDS = frozenset(
    {b"cache-control", b"content-location", b"date", b"etag", b"expires", b"vary"}
    | {b"last-modified"}
)


@functools.lru_cache(maxsize=512)
def _last_modified(seconds: int) -> bytes:
    return http_date(seconds).encode("latin-1")


# How often a small file that changed while it was read is read again.
_REREADS = 3


class FileChanged(FileNotFoundError):
    """The file changed size while it was being read: what was read is not one version of it."""


def open_regular(path: str) -> tuple[BinaryIO, os.stat_result]:
    """Open ``path`` for reading if it is a regular file (blocking; run it in a thread).

    ``O_NONBLOCK`` keeps a FIFO from blocking the open; ``IsADirectoryError``
    or ``FileNotFoundError`` is raised for anything that is not a regular file.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    return adopt_regular(fd, path)


def adopt_regular(fd: int, path: str) -> tuple[BinaryIO, os.stat_result]:
    """``open_regular`` for a descriptor already open; closes it when it is not a regular file."""
    try:
        info = os.fstat(fd)
        if stat_module.S_ISDIR(info.st_mode):
            raise IsADirectoryError(path)
        if not stat_module.S_ISREG(info.st_mode):
            raise FileNotFoundError(f"not a regular file: {path}")
        return open(fd, "rb"), info
    except BaseException:
        os.close(fd)
        raise


def open_and_prefetch(
    path: str, prefetch_limit: int
) -> tuple[BinaryIO | None, os.stat_result, bytes | memoryview | None]:
    """``open_regular``, and a file of at most ``prefetch_limit`` bytes read and closed at once.

    Returns ``(file, stat, None)``, or ``(None, stat, content)`` for a small file.
    """
    return prefetch(*open_regular(path), prefetch_limit)


def open_with_head(
    path: str, limit: int, buffer: bytearray | None
) -> tuple[BinaryIO | None, os.stat_result, bytes | memoryview | None]:
    """``open_and_prefetch``, and for a larger file its first ``limit`` bytes read as well.

    Returns ``(None, stat, content)`` for a file of at most ``limit`` bytes,
    else ``(file, stat, head)``: the file open and ``head`` its first bytes,
    read into ``buffer`` (from ``take_spare(limit)``) in the same
    worker-thread hop as the open (one hop fewer a response).  Without a
    buffer, see ``with_head``.
    """
    return with_head(*open_regular(path), limit, buffer)


def with_head(
    file: BinaryIO, info: os.stat_result, limit: int, buffer: bytearray | None
) -> tuple[BinaryIO | None, os.stat_result, bytes | memoryview | None]:
    """``open_with_head`` for a file already open.

    Without ``buffer`` (none was spare), only a file of at most
    ``READ_INTO_ABOVE`` bytes is read: a larger one is left to be read into
    a buffer the event loop allocates, never into memory of this thread.
    """
    size = info.st_size
    if size <= limit and (size <= READ_INTO_ABOVE or buffer is not None):
        return prefetch(file, info, limit, buffer)
    if buffer is None:
        return file, info, None
    try:
        return file, info, memoryview(buffer)[: _read_into(file, 0, memoryview(buffer)[:limit])]
    except BaseException:
        file.close()
        raise


def prefetch(
    file: BinaryIO, info: os.stat_result, prefetch_limit: int, buffer: bytearray | None = None
) -> tuple[BinaryIO | None, os.stat_result, bytes | memoryview | None]:
    """The open ``file`` as ``open_and_prefetch`` returns it.

    With ``buffer`` (from ``take_buffer(prefetch_limit)``), a file of more
    than ``READ_INTO_ABOVE`` bytes is read into it (the content is then a
    view of it).  A small file whose length changes while it is read
    (rewritten in place by a deploy) is read again, a few times; then
    ``FileChanged`` is raised rather than answer with a body that does not
    match its ``Content-Length``.
    """
    if info.st_size > prefetch_limit:
        return file, info, None
    with file:
        content = _read_whole(file, info.st_size, buffer)
        for _ in range(_REREADS):
            if len(content) == info.st_size:
                return None, info, content
            info = os.fstat(file.fileno())
            if info.st_size > prefetch_limit:
                break
            file.seek(0)
            content = _read_whole(file, info.st_size, buffer)
        if len(content) == info.st_size:
            return None, info, content
        raise FileChanged(f"the file changed while it was read: {file.name!r}")


def _read_whole(file: BinaryIO, size: int, buffer: bytearray | None) -> bytes | memoryview:
    # One byte more than the size says, to see a file that grew; never the
    # limit: a read allocates what it is asked for.
    if buffer is None or size <= READ_INTO_ABOVE:
        return file.read(size + 1)
    view = memoryview(buffer)
    got: int = file.readinto(view[: size + 1])  # type: ignore[attr-defined]
    return view[:got]


#: A whole file larger than this is read into the buffer, when there is one;
#: a smaller one is read as bytes: no copy, and too small for page faults.
READ_INTO_ABOVE = 16 * 1024


def _read_into(file: BinaryIO, start: int, target: memoryview, close: bool = False) -> int:
    try:
        file.seek(start)
        got: int = file.readinto(target)  # type: ignore[attr-defined]
        return got
    finally:
        if close:
            file.close()


def _read_pieces(file: BinaryIO, pieces: list[Piece], trailer: bytes) -> bytes:
    with file:  # closed in this hop, its last
        out = bytearray()
        for head, start, stop in pieces:
            out += head
            file.seek(start)
            data = file.read(stop - start)
            if len(data) != stop - start:  # nothing sent yet: see send_file
                raise FileChanged("the file shrank while it was being sent")
            out += data
        out += trailer
        return bytes(out)


class _Plan:
    """What to answer: a status, its headers, and the body as pieces of the file."""

    __slots__ = ("headers", "length", "pieces", "status", "trailer")

    def __init__(
        self,
        status: int,
        headers: RawHeaders,
        pieces: list[Piece] | None = None,
        trailer: bytes = b"",
        length: int = 0,
    ) -> None:
        self.status = status
        self.headers = headers
        self.pieces = pieces  # None: an answer without a body (304, 412, 416)
        self.trailer = trailer
        self.length = length


def _plan(
    method: str,
    request: FileRequest,
    info: os.stat_result,
    status_code: int,
    base_headers: RawHeaders,
) -> _Plan:
    size = info.st_size
    headers = list(base_headers)
    etag = last_modified = media_type = None
    for name, value in headers:
        if name == b"etag":
            etag = value.decode("latin-1")
        elif name == b"last-modified":
            last_modified = parse_http_date(value.decode("latin-1"))
        elif name == b"content-type":
            media_type = value.decode("latin-1")
    if etag is None:
        etag = make_etag(size, info.st_mtime_ns)
        headers.append((b"etag", etag.encode("latin-1")))
    if last_modified is None:
        last_modified = int(info.st_mtime)
        headers.append((b"last-modified", _last_modified(last_modified)))

    # RFC 9110 §13.2.1: preconditions only apply where the answer would be 2xx.
    if 200 <= status_code < 300 and request.has_preconditions():
        outcome = evaluate(method, request, etag, last_modified)
        if outcome == 304:
            return _Plan(304, [(k, v) for k, v in headers if k in _NOT_MODIFIED_FIELDS])
        if outcome == 412:
            return _Plan(412, [(b"content-length", b"0")])

    ranges = None
    if status_code == 200:
        headers.append((b"accept-ranges", b"bytes"))
        # §14.2: GET is the only method with range semantics.
        if (
            method == "GET"
            and request.range is not None
            and (request.if_range is None or if_range_holds(request.if_range, etag, last_modified))
        ):
            ranges = parse_range(request.range, size)
            if ranges == []:
                unsatisfied = f"bytes */{size}".encode()
                return _Plan(416, [(b"content-range", unsatisfied), (b"content-length", b"0")])

    if ranges is None:
        plan = _Plan(status_code, headers, [(b"", 0, size)], length=size)
    elif len(ranges) == 1:
        start, stop = ranges[0]
        headers.append((b"content-range", content_range(start, stop, size).encode()))
        plan = _Plan(206, headers, [(b"", start, stop)], length=stop - start)
    else:
        multipart = Multipart(ranges, size, media_type, secrets.token_hex(16))
        headers = [(k, v) for k, v in headers if k != b"content-type"]
        headers.append((b"content-type", multipart.content_type.encode("latin-1")))
        plan = _Plan(206, headers, multipart.parts, multipart.trailer, multipart.content_length)
    headers.append((b"content-length", str(plan.length).encode()))
    return plan


async def send_file(
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    path: str,
    info: os.stat_result,
    file: BinaryIO | None,
    status_code: int,
    headers: RawHeaders,
    request: FileRequest,
    chunk_size: int,
    prefetched: bytes | memoryview | None = None,
    buffer: bytearray | None = None,
) -> bool:
    """Answer with the file at absolute ``path`` (``info`` its stat, ``file`` it open or ``None``).

    ``prefetched`` is the whole file when the caller already read it, or,
    with ``file`` open, its first bytes (``open_with_head``) in ``buffer``.
    ``buffer`` (from ``take_buffer(chunk_size)``), if given, is this
    function's: the chunks are read into it, and it is given back.
    Whatever file is open is closed before this returns.  Returns ``False``
    if the client left before the response was complete.  ``FileChanged``
    is raised when the file changed so that nothing could be sent (a body
    of one chunk); a file that shrinks while it streams is a ``RuntimeError``
    (its headers are sent).
    """
    streamed = owned = reading = False
    try:
        method = scope.get("method", "GET")
        plan = _plan(method, request, info, status_code, headers)
        pieces = plan.pieces
        if pieces is None or method == "HEAD":
            return await _send_empty(send, plan.status, plan.headers)
        start: Message = {
            "type": "http.response.start",
            "status": plan.status,
            "headers": plan.headers,
        }
        if plan.status == 200 and "http.response.pathsend" in (scope.get("extensions") or {}):
            try:
                await send(start)
                await send({"type": "http.response.pathsend", "path": path})
            except OSError:
                return False
            return True
        if prefetched is not None and file is None:  # the whole file
            return await _send_whole(send, start, _slice_pieces(prefetched, pieces, plan.trailer))
        if file is None:
            file = (await in_thread(open_regular, path, release=close_opened))[0]
        opened = file
        if plan.length <= chunk_size:
            # One read and one message: no disconnect watcher is worth its task here.
            reading = True
            if info.st_size <= chunk_size:
                # The whole file, read as a prefetch is: read again if its size
                # changed since the open (a deploy rewriting it), and the answer
                # planned again for what was read; never the new file cut to
                # the old length.  ``FileChanged`` if it will not hold still.
                if buffer is None and info.st_size > READ_INTO_ABOVE:
                    buffer = take_buffer(chunk_size)
                _, read, content = await in_thread(prefetch, opened, info, chunk_size, buffer)
                reading = False
                assert content is not None
                if read is not info:
                    plan = _plan(method, request, read, status_code, headers)
                    if plan.pieces is None:
                        return await _send_empty(send, plan.status, plan.headers)
                    start = {**start, "status": plan.status, "headers": plan.headers}
                    pieces = plan.pieces
                return await _send_whole(send, start, _slice_pieces(content, pieces, plan.trailer))
            if len(pieces) == 1 and not plan.trailer and plan.length > READ_INTO_ABOVE:
                if buffer is None:
                    buffer = take_buffer(chunk_size)
                target = memoryview(buffer)[: plan.length]
                got = await in_thread(_read_into, opened, pieces[0][1], target, True)
                reading = False
                if got != plan.length:
                    raise FileChanged("the file shrank while it was being sent")
                return await _send_whole(send, start, bytes(target))
            body = await in_thread(_read_pieces, opened, pieces, plan.trailer)
            reading = False
            return await _send_whole(send, start, body)

        if prefetched is not None and len(prefetched) < min(chunk_size, info.st_size):
            # The head read with the open is short: the file shrank, and nothing is sent yet.
            raise FileChanged("the file shrank while it was being sent")
        head: bytes | memoryview = b""
        if prefetched and len(pieces) == 1 and not plan.trailer and pieces[0][:2] == (b"", 0):
            # The whole file from its first byte: its head was read with the open.
            head = prefetched[: pieces[0][2]]
            pieces = [(b"", len(head), pieces[0][2])]

        async def produce() -> None:
            nonlocal head, owned
            await send(start)
            if head:
                more = pieces[0][1] < pieces[0][2]
                body = bytes(head)  # copied out of the buffer the rest is read into
                message = {"type": "http.response.body", "body": body, "more_body": more}
                head = b""  # not held while the rest streams
                await send(message)
                del message, body
            owned = True  # _stream closes the file
            await _stream(send, opened, pieces, plan.trailer, chunk_size, buffer)

        streamed = True  # the buffer is _stream's now
        return await run_until_disconnect(scope, receive, produce)
    finally:
        if file is not None and not owned:
            if reading:
                await close_after_read(file)
            else:
                file.close()
        if buffer is not None and not streamed and not reading:
            give_back(buffer)


async def _stream(
    send: Send,
    file: BinaryIO,
    pieces: list[Piece],
    trailer: bytes,
    chunk_size: int,
    buffer: bytearray | None,
) -> None:
    reading = False
    try:
        if buffer is None:
            buffer = take_buffer(chunk_size)
        view = memoryview(buffer)
        last_piece = len(pieces) - 1
        for index, (head, start, stop) in enumerate(pieces):
            if head:
                await send({"type": "http.response.body", "body": head, "more_body": True})
            position = start
            while position < stop:
                want = min(chunk_size, stop - position)
                position += want
                # The file is closed in the hop of its last read.
                last = position == stop and index == last_piece
                target = view[:want]
                reading = True
                got = await in_thread(_read_into, file, position - want, target, last)
                reading = False
                if got != want:
                    raise RuntimeError("the file shrank while it was being sent")
                more = position < stop or index < last_piece or bool(trailer)
                body = bytes(target)  # copied here: the loop's thread allocates the body
                await send({"type": "http.response.body", "body": body, "more_body": more})
                del body
        if trailer:
            await send({"type": "http.response.body", "body": trailer})
        # Given back only now: a read of a cancelled hop may still be writing into it.
        give_back(buffer)
    finally:
        if reading:
            await close_after_read(file)
        else:
            file.close()


def _slice_pieces(content: bytes | memoryview, pieces: list[Piece], trailer: bytes) -> bytes:
    # A view of a buffer is copied out of it here, on the event loop's thread.
    if len(pieces) == 1 and not pieces[0][0] and not trailer:
        _, start, stop = pieces[0]
        return bytes(content if (start, stop) == (0, len(content)) else content[start:stop])
    return b"".join([*(head + content[start:stop] for head, start, stop in pieces), trailer])


async def _send_whole(send: Send, start: Message, body: bytes) -> bool:
    try:
        await send(start)
        await send({"type": "http.response.body", "body": body})
    except OSError:
        return False  # ASGI 2.4: the client is gone.
    return True


async def _send_empty(send: Send, status: int, headers: RawHeaders) -> bool:
    try:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
    except OSError:
        return False
    return True


__all__ = [
    "READ_INTO_ABOVE",
    "FileChanged",
    "FileRequest",
    "Piece",
    "RawHeaders",
    "adopt_regular",
    "open_and_prefetch",
    "open_regular",
    "open_with_head",
    "prefetch",
    "send_file",
    "wait_for_disconnect",
    "with_head",
]

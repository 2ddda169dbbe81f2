"""``static_files``: serve a directory as a standalone ASGI app, safe against hostile paths.

Mount it anywhere (it looks at the path below ``root_path``) or serve it
alone.  Only GET and HEAD are answered (405 with ``Allow`` otherwise); files
get the full RFC 9110 treatment of ``FileResponse``: validators,
preconditions (304/412) and byte ranges (206/416).

Which file a path names is decided first by a pure function
(``asgikit._safepath``): ``..``, empty segments, backslashes, NUL, drive
letters and the like never reach the file system and answer 404.  Names
that start with ``.`` (``.env``, ``.git/config``, in any segment) are
hidden, 404, except ``.well-known`` (RFC 8615); ``allow_dotfiles=True``
serves them.  Then the file is opened by ``asgikit._safeopen``: unless
``follow_symlink=True``, one name at a time from the directory without
following symlinks, so a symlink (or a directory swapped for one during the
request) cannot lead out; symlinks whose target stays inside are served,
unless the target is hidden (a link to ``.env`` is as hidden as ``.env``).
A tree that changes under a request (a deploy, an attacker) answers 404,
never another file and never a 500; a small file rewritten while it is read
is read again.  Unreadable files answer 403; a name that is not there (or
not a file) answers 404; any other OS error (``EIO``, ``EMFILE``) is raised,
not disguised as a 404 a cache would keep.  With the server's
``http.response.pathsend``, the server opens the checked path again itself:
the walk above cannot cover that second open.  A file asked for with a
trailing slash (``/site.css/``) is served, as Starlette does: Litestar adds
that slash to every path it hands a mounted app.

Options: ``html=True`` serves ``index.html`` for a directory (redirecting
``/dir`` to ``/dir/`` when there is one) and ``404.html`` with status 404 when present;
``fallback="index.html"`` answers unknown paths with that file (for
single-page apps); ``precompressed`` serves ``name.br`` / ``name.gz`` next to
``name`` to clients that accept them (q-values honoured, ``q=0`` means
never), with ``Vary: Accept-Encoding``; ``max_age`` and ``immutable`` give a
``Cache-Control``; ``read_on_loop`` (opt-in) answers small files without a
worker thread.  It does not list directories, and does not compress on
the fly (put ``compress`` in front for that).

Deliberate differences from Starlette's ``StaticFiles``: dotfiles are hidden
(Starlette serves them); an unreadable file is 403 (Starlette: 401, which
asks for credentials that would not help); no ``packages=`` (pass the
directory, e.g. from ``importlib.resources.files``); a directory missing at
request time (``check_dir=False``) is a 404, not a ``RuntimeError``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import stat as stat_module
from collections.abc import Callable
from typing import BinaryIO, NamedTuple
from urllib.parse import quote

from asgikit._fileio import give_back, in_thread, take_spare
from asgikit._safeopen import NOT_OPENED, is_absent, open_inside
from asgikit._safepath import request_segments
from asgikit._sendfile import (
    FileChanged,
    FileRequest,
    adopt_regular,
    prefetch,
    send_file,
    with_head,
)
from asgikit.datastructures import full_path, parse_accept_encoding, route_path
from asgikit.exceptions import HTTPException
from asgikit.files import guess_media_type
from asgikit.responses import RedirectResponse, http_exception_response
from asgikit.types import ASGIApp, Receive, Scope, Send

# Precompressed siblings, best first when the client likes them equally.
_ENCODINGS = (("br", ".br"), ("gzip", ".gz"))
_SUFFIXES = dict(_ENCODINGS)
# With follow_symlink: any symlink is followed; O_NONBLOCK keeps a FIFO from blocking.
_FOLLOW_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)
# RFC 8615: the one dot-directory meant to be public.
_PUBLIC_DOTDIR = ".well-known"
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_QUERY_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "#")
_RAISE_KEY = "asgikit.raise_http_exceptions"


@functools.lru_cache(maxsize=64)
def accepted_encodings(value: str) -> tuple[str, ...]:
    """The precompressed codings ``Accept-Encoding`` allows, best first (RFC 9110 §12.5.3).

    A coding is allowed when it, or ``*`` for a coding not listed, has a
    q-value above 0; a malformed member is ignored.  Equal q-values prefer
    ``br``.  ``x-gzip`` counts as ``gzip`` (§8.4.1.3).
    """
    weights = parse_accept_encoding(value)
    star = weights.get("*", 0.0)
    ranked = [
        (-weights.get(coding, star), index, coding)
        for index, (coding, _) in enumerate(_ENCODINGS)
        if weights.get(coding, star) > 0
    ]
    return tuple(coding for _, _, coding in sorted(ranked))


def _hidden(segments: list[str]) -> bool:
    """Whether a name on the path is hidden: starts with ``.`` and is not ``.well-known``."""
    return any(s[0] == "." and s != _PUBLIC_DOTDIR for s in segments)


class _Found:
    """What a lookup decided: a file to send (open, or read whole), a redirect, or an error."""

    __slots__ = (
        "cacheable",
        "content",
        "encoding",
        "file",
        "info",
        "name",
        "path",
        "status",
        "vary",
    )

    def __init__(self, status: int) -> None:
        self.status = status
        self.path = ""
        self.name = ""
        self.file: BinaryIO | None = None
        self.info: os.stat_result | None = None
        self.content: bytes | memoryview | None = None
        self.encoding: str | None = None
        self.vary = False
        # Only a file found at the requested path gets Cache-Control, never
        # a fallback or 404 page standing in for it.
        self.cacheable = False


class _Read(NamedTuple):
    """What the lookup reads of the file it opens: at most ``limit`` bytes, and how."""

    limit: int  # a file of at most this many bytes is read whole
    head: bool = False  # and of a larger one, its first ``limit`` bytes (``with_head``)
    buffer: bytearray | None = None  # into this spare buffer, if there was one

    def read(
        self, file: BinaryIO, info: os.stat_result
    ) -> tuple[BinaryIO | None, os.stat_result, bytes | memoryview | None]:
        if self.head:
            return with_head(file, info, self.limit, self.buffer)
        return prefetch(file, info, self.limit)


def _close_found(found: _Found) -> None:
    if found.file is not None:
        found.file.close()


@dataclasses.dataclass(frozen=True)
class _Settings:
    """``static_files()``'s options, checked and compiled."""

    directory: str  # resolved, unless symlinks are followed
    html: bool
    follow_symlink: bool
    precompressed: bool
    chunk_size: int
    immutable: bool | Callable[[str], bool]
    fallback: list[str] | None  # the fallback file's path segments
    # (plain, immutable) Cache-Control headers, or None without max_age.
    cache_control: tuple[tuple[bytes, bytes], tuple[bytes, bytes]] | None
    allow_dotfiles: bool
    read_on_loop: int  # 0: every file-system call in a worker thread


class StaticFiles:
    """The app ``static_files()`` builds, from its checked options; see the module docs."""

    def __init__(self, settings: _Settings) -> None:
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "websocket":
                await receive()
                await send({"type": "websocket.close", "code": 1000})
            # Lifespan: returning at once says "not supported", as the spec asks.
            return
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await self._error(scope, receive, send, 405, {"Allow": "GET, HEAD"})
            return
        path = route_path(scope)
        request = FileRequest.from_headers(scope.get("headers", ()))
        encodings: tuple[str, ...] = ()
        if self.settings.precompressed and request.accept_encoding:
            encodings = accepted_encodings(request.accept_encoding[:1024])
        pathsend = "http.response.pathsend" in (scope.get("extensions") or {})
        trailing = full_path(scope).endswith("/")
        buffer: bytearray | None = None
        if self.settings.read_on_loop:
            # Opted in: the lookup on the loop (see static_files); a small
            # file is read whole, even for a Range: it is small.
            limit = self.settings.read_on_loop if method == "GET" and not pathsend else 0
            found = self._find(path, trailing, encodings, _Read(limit))
        else:
            # A file of at most one chunk is read whole in the lookup's thread
            # hop; a larger one's first chunk too, unless a precondition may
            # make the body unneeded (one hop fewer a response).
            read = _Read(0)
            if method == "GET" and not request.range and not pathsend:
                size = self.settings.chunk_size
                if request.has_preconditions():
                    read = _Read(size)
                else:
                    read = _Read(size, True, take_spare(size))
            found = await in_thread(
                self._find, path, trailing, encodings, read, release=_close_found
            )
            buffer = read.buffer
            if buffer is not None and not isinstance(found.content, memoryview):
                give_back(buffer)  # not read into: a small file, or no file
                buffer = None
        if found.status == 307:
            await self._redirect(scope, receive, send)
            return
        if found.info is None:
            await self._error(scope, receive, send, found.status)
            return
        try:
            await send_file(
                scope,
                receive,
                send,
                path=found.path,
                info=found.info,
                file=found.file,
                status_code=found.status,
                headers=self._headers(found, path),
                request=request,
                chunk_size=self.settings.chunk_size,
                prefetched=found.content,
                buffer=buffer,
            )
        except FileChanged:  # rewritten until nothing could be sent of it: as if absent
            await self._error(scope, receive, send, 404)

    def _headers(self, found: _Found, path: str) -> list[tuple[bytes, bytes]]:
        media_type = guess_media_type(found.name)
        if media_type.startswith("text/"):
            media_type += "; charset=utf-8"
        headers = [(b"content-type", media_type.encode("latin-1"))]
        if found.encoding is not None:
            assert found.info is not None
            headers.append((b"content-encoding", found.encoding.encode()))
            # The encoded file is another representation: its own strong ETag.
            info = found.info
            etag = f'"{info.st_mtime_ns:x}-{info.st_size:x}-{found.encoding}"'
            headers.append((b"etag", etag.encode()))
        if found.vary:
            headers.append((b"vary", b"Accept-Encoding"))
        if found.cacheable and self.settings.cache_control is not None:
            immutable = (
                self.settings.immutable(path)
                if callable(self.settings.immutable)
                else self.settings.immutable
            )
            headers.append(self.settings.cache_control[1 if immutable else 0])
        return headers

    # -- the file-system part, run in a worker thread -----------------------

    def _find(self, path: str, trailing: bool, encodings: tuple[str, ...], read: _Read) -> _Found:
        segments = request_segments(path)
        if segments is not None and (self.settings.allow_dotfiles or not _hidden(segments)):
            try:
                found = self._lookup(segments, trailing, encodings, read)
            except PermissionError:
                return _Found(403)
            if found is not None:
                found.cacheable = True
                return found
        pages: list[tuple[list[str] | None, int]] = [
            (self.settings.fallback, 200),
            (["404.html"] if self.settings.html else None, 404),
        ]
        for page, status in pages:
            if page is not None:
                try:
                    found = self._open(page, encodings, read, status)
                except PermissionError:
                    found = None
                if found is not None:
                    return found
        return _Found(404)

    def _open_fd(self, segments: list[str]) -> tuple[int, str]:
        """A descriptor of what ``segments`` name, and the path it was opened by."""
        if self.settings.follow_symlink:
            path = os.path.join(self.settings.directory, *segments)
            try:
                return os.open(path, _FOLLOW_FLAGS), path
            except PermissionError:
                if os.path.isdir(path):  # Windows cannot open a directory
                    return NOT_OPENED, path
                raise
        # A symlink to a hidden name (.env, .git/) is as hidden as the name.
        refuse = None if self.settings.allow_dotfiles else _hidden
        return open_inside(self.settings.directory, segments, refuse)

    def _try_open(self, segments: list[str]) -> tuple[int, str] | None:
        """``_open_fd``, or ``None`` when there is nothing to serve by that name now."""
        try:
            return self._open_fd(segments)
        except OSError as exc:
            if is_absent(exc):
                return None
            raise  # PermissionError (403) or a real failure (500), never a silent 404
        except ValueError:  # a name the OS cannot take
            return None

    def _lookup(
        self, segments: list[str], trailing: bool, encodings: tuple[str, ...], read: _Read
    ) -> _Found | None:
        opened = self._try_open(segments)
        if opened is None:
            return None
        fd, target = opened
        if fd == NOT_OPENED:
            is_dir = True
        else:
            try:
                is_dir = stat_module.S_ISDIR(os.fstat(fd).st_mode)
            except BaseException:
                os.close(fd)
                raise
        if is_dir:
            if fd != NOT_OPENED:
                os.close(fd)
            if not self.settings.html:
                return None
            if not trailing:
                # Redirect only to an index that is there (else a plain 404, as Starlette).
                index = os.path.join(target, "index.html")
                return _Found(307) if os.path.isfile(index) else None
            return self._open([*segments, "index.html"], encodings, read, 200)
        # A file asked for with a trailing slash is served, as Starlette does:
        # Litestar hands every mounted app its path with one added.
        return self._open(segments, encodings, read, 200, (fd, target))

    def _open(
        self,
        segments: list[str],
        encodings: tuple[str, ...],
        read: _Read,
        status: int,
        opened: tuple[int, str] | None = None,
    ) -> _Found | None:
        """Open the file (or its best precompressed sibling); ``None`` if there is none.

        ``opened`` is the file's descriptor and path when the caller has
        them; it is closed here whatever happens.
        """
        found = _Found(status)
        found.name = segments[-1]
        try:
            if self.settings.precompressed:
                self._open_sibling(found, segments, encodings, read)
            if found.info is None:
                if opened is None:
                    opened = self._try_open(segments)
                    if opened is None:
                        return None
                (fd, found.path), opened = opened, None
                if fd == NOT_OPENED:
                    return None  # a directory, not a file
                try:
                    file, info = adopt_regular(fd, found.path)
                    found.file, found.info, found.content = read.read(file, info)
                except OSError as exc:
                    if is_absent(exc):
                        return None
                    raise
        finally:
            if opened is not None and opened[0] != NOT_OPENED:
                os.close(opened[0])
        return found

    def _open_sibling(
        self, found: _Found, segments: list[str], encodings: tuple[str, ...], read: _Read
    ) -> None:
        """Open the best ``name.br`` / ``name.gz`` this client accepts into ``found``, if any."""
        for coding in encodings:  # best first
            sibling = [*segments[:-1], segments[-1] + _SUFFIXES[coding]]
            try:
                opened = self._try_open(sibling)
            except PermissionError:
                continue  # the plain file may still be readable
            if opened is None:
                continue
            fd, path = opened
            if fd == NOT_OPENED:
                continue
            try:
                file, info = adopt_regular(fd, path)
                found.file, found.info, found.content = read.read(file, info)
            except OSError as exc:
                if is_absent(exc):
                    continue
                raise
            found.path, found.encoding, found.vary = path, coding, True
            return
        # Whether or not this client gets one, the answer depends on
        # Accept-Encoding as soon as a sibling exists.
        base = os.path.join(self.settings.directory, *segments)
        found.vary = any(
            os.path.isfile(base + suffix)
            for coding, suffix in _ENCODINGS
            if coding not in encodings
        )

    # -- answers that are not files ----------------------------------------

    async def _redirect(self, scope: Scope, receive: Receive, send: Send) -> None:
        location = quote(full_path(scope), safe=_PATH_SAFE) + "/"
        query = scope.get("query_string", b"")
        if query:
            # Quote the bytes themselves: a raw \xe9 stays %E9, not %C3%A9.
            location += "?" + quote(query, safe=_QUERY_SAFE)
        await RedirectResponse(location)(scope, receive, send)

    async def _error(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        status: int,
        headers: dict[str, str] | None = None,
    ) -> None:
        exc = HTTPException(status, headers=headers)
        if scope.get(_RAISE_KEY):
            raise exc
        await http_exception_response(scope, exc)(scope, receive, send)


def static_files(
    directory: str | os.PathLike[str],
    *,
    html: bool = False,
    follow_symlink: bool = False,
    check_dir: bool = True,
    max_age: int | None = None,
    immutable: bool | Callable[[str], bool] = False,
    fallback: str | None = None,
    precompressed: bool = True,
    chunk_size: int = 256 * 1024,
    allow_dotfiles: bool = False,
    read_on_loop: int = 0,
) -> ASGIApp:
    """An ASGI app serving the files in ``directory`` (see the module docs).

    ``immutable`` adds ``immutable`` to ``Cache-Control`` (with ``max_age``),
    for every file or for the request paths a predicate accepts (hashed
    asset names, say).  ``check_dir=False`` allows a directory that does
    not exist yet.  ``allow_dotfiles=True`` serves names starting with
    ``.``, hidden by default.  ``follow_symlink=True`` follows symlinks that
    lead out of the directory too.

    ``read_on_loop`` (bytes; off by default) looks the file up (the
    symlink-safe walk included) on the event loop's thread, and reads it
    there too when it has at most that many bytes (and at most
    ``chunk_size``): a small file is then answered with no worker-thread
    hop, most of what serving it costs.  For a directory on a local disk
    that stays in the page cache only: on a slow disk or a network file
    system each call blocks every request of the process while it lasts,
    which is why it is not the default.  A larger file is still read in
    worker threads.
    """
    directory = os.fspath(directory)
    if check_dir and not os.path.isdir(directory):
        if os.path.exists(directory):
            raise RuntimeError(f"'{directory}' is not a directory")
        raise RuntimeError(f"Directory '{directory}' does not exist")
    segments: list[str] | None = None
    if fallback is not None:
        segments = request_segments("/" + fallback.lstrip("/"))
        if not segments:
            raise ValueError(f"fallback must name a file inside the directory: {fallback!r}")
    cache_control: tuple[tuple[bytes, bytes], tuple[bytes, bytes]] | None = None
    if read_on_loop < 0:
        raise ValueError("read_on_loop must not be negative")
    if max_age is not None:
        if max_age < 0:
            raise ValueError("max_age must not be negative")
        value = f"public, max-age={max_age}"
        cache_control = (
            (b"cache-control", value.encode()),
            (b"cache-control", (value + ", immutable").encode()),
        )
    settings = _Settings(
        # Without follow_symlink, containment is checked on resolved paths, so
        # the root must be resolved too (it may itself be a symlink).
        directory=os.path.abspath(directory) if follow_symlink else os.path.realpath(directory),
        html=html,
        follow_symlink=follow_symlink,
        precompressed=precompressed,
        chunk_size=chunk_size,
        immutable=immutable,
        fallback=segments,
        cache_control=cache_control,
        allow_dotfiles=allow_dotfiles,
        read_on_loop=min(read_on_loop, chunk_size),
    )
    return StaticFiles(settings)


__all__ = ["StaticFiles", "accepted_encodings", "static_files"]

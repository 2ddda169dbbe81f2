"""Forms and uploads: ``await request.form()`` and ``async with request.form() as form``.

Two encodings are read, both incrementally as the body streams in:

- ``application/x-www-form-urlencoded``, per the URL standard §5.1 (``+`` is a
  space, percent-escapes are decoded to bytes, the bytes are UTF-8 with
  U+FFFD for what is not; ``&`` alone separates pairs).
- ``multipart/form-data`` (RFC 7578), through the ``multipart`` package's
  non-blocking push parser.  Text fields are decoded with their part's
  charset (else the form's ``_charset_`` field, RFC 7578 §4.6, else UTF-8);
  a charset outside the WHATWG Encoding Standard's list (EBCDIC, UTF-7,
  UTF-16, punycode...) is a 400, since it can hide markup from a filter.
  Files go to ``SpooledTemporaryFile``s that move to disk past
  ``spool_max_size``; whatever touches the disk runs in a worker thread, so
  the event loop never waits on it.

Every limit has a safe default and a name (see ``FormContext``).  Past a size
limit ``form()`` raises ``HTTPException(413)``, past a count limit or on a
malformed body ``HTTPException(400)``, each with a message naming the limit
or the fault; spooled files are closed (and so deleted) on any error.  What
one form holds in memory is bounded as a whole (``max_memory_size``), not
only per field: past it files go to disk and text fields answer 413.

Where Starlette differs, on purpose: it allows 1000 files by default, each
of which may hold a descriptor, where asgikit allows 100 (``max_files``; a
16 MiB body could otherwise hold ~1000 descriptors, the whole of a common
``ulimit -n``); it answers 400 for size limits too; it
decodes text parts with a ``charset`` parameter of the form's own
``Content-Type`` (which RFC 7578 does not define) and falls back to latin-1,
where asgikit uses the part's charset, ``_charset_``, then UTF-8 with
U+FFFD; and a repeated name gives its last value to ``form[name]`` there,
its first here (``getlist`` gives all, in order, in both).

Another content type (or none) gives an empty ``FormData`` and leaves the body
unread, as Starlette does, so ``form()`` is harmless on a ``GET``.  The
deprecated ``Content-Transfer-Encoding`` part header (RFC 7578 §4.7) and
nested ``multipart/mixed`` parts are not interpreted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from tempfile import SpooledTemporaryFile
from types import TracebackType
from typing import IO, Any

import anyio
import anyio.to_thread

from asgikit.datastructures import Headers, ImmutableMultiDict
from asgikit.types import Scope

#: The scope key under which the forms read for a request are kept, so the
#: route that ran the endpoint can close their files once the response is sent.
FORMS_SCOPE_KEY = "asgikit.forms"

_MIB = 1024 * 1024


@dataclass(frozen=True)
class FormLimits:
    """The limits a form is read with: ``request.form(**limits)`` takes these, keyword-only.

    - ``max_files`` (100): file parts; more is 400.  Each file on disk holds
      a file descriptor until the response is sent, and fields that fill
      ``max_memory_size`` send every later file to disk, however small: the
      bound on descriptors per request is this one (Django's default too).
    - ``max_fields`` (1000): non-file fields, in either encoding; more is 400.
    - ``max_part_size`` (1 MiB): bytes in one non-file field (Starlette's name
      and meaning); in the urlencoded form, the whole ``name=value`` pair.  413.
    - ``max_file_size`` (``None``, no cap of its own): bytes in one file.  413.
    - ``max_body_size`` (1 GiB, ``None`` lifts it): bytes in the whole body.  413.
    - ``spool_max_size`` (1 MiB): bytes a file keeps in memory before it moves
      to a temporary file on disk.
    - ``max_memory_size`` (16 MiB): bytes the whole form holds in memory, its
      text fields and the files not yet on disk together.  Past it, files move
      to disk (the ones in memory first, then each new one as it comes); text
      fields that pass it alone answer 413.

    So memory per form stays about ``max_memory_size``, plus a few buffers of
    the size of a body chunk, whatever the body holds.
    """

    max_files: int = 100
    max_fields: int = 1000
    max_part_size: int = _MIB
    max_file_size: int | None = None
    max_body_size: int | None = 1024 * _MIB
    spool_max_size: int = _MIB
    max_memory_size: int = 16 * _MIB

    def __post_init__(self) -> None:
        for name in (
            "max_files",
            "max_fields",
            "max_part_size",
            "spool_max_size",
            "max_memory_size",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (1 if name == "spool_max_size" else 0):
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        for name in ("max_file_size", "max_body_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} must be a non-negative int or None, got {value!r}")


class UploadFile:
    """A file from a multipart form.

    ``filename`` and ``content_type`` are as the client sent them (either may be
    ``None``), ``headers`` are the part's headers and ``size`` the bytes written
    so far.  ``file`` is the underlying binary file for synchronous code (in a
    worker thread); the async methods keep the event loop free, touching the
    disk only from a worker thread.
    """

    __slots__ = ("file", "filename", "headers", "size")

    def __init__(
        self,
        file: IO[bytes],
        *,
        filename: str | None = None,
        headers: Headers | None = None,
        size: int | None = None,
    ) -> None:
        self.file = file
        self.filename = filename
        self.headers = headers if headers is not None else Headers()
        self.size = size

    @property
    def content_type(self) -> str | None:
        """The part's ``Content-Type`` header, if it had one."""
        value: str | None = self.headers.get("content-type")
        return value

    def _in_memory(self, extra: int = 0) -> bool:
        """Whether an operation (writing ``extra`` more bytes) stays off the disk."""
        # SpooledTemporaryFile keeps ``_rolled`` and ``_max_size`` (stable since
        # Python 2.6); any other file is assumed to be on disk.
        file = self.file
        if getattr(file, "_rolled", True):
            return False
        return extra == 0 or file.tell() + extra <= getattr(file, "_max_size", 0)

    async def write(self, data: bytes) -> None:
        """Append ``data`` at the current position (a roll-over runs in a thread)."""
        if self._in_memory(len(data)):
            self.file.write(data)
        else:
            await anyio.to_thread.run_sync(self.file.write, data)
        if self.size is not None:
            self.size += len(data)

    async def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes from the current position (all that is left by default)."""
        if self._in_memory():
            return self.file.read(size)
        return await anyio.to_thread.run_sync(self.file.read, size)

    async def seek(self, offset: int) -> None:
        """Move to ``offset`` bytes from the start."""
        if self._in_memory():
            self.file.seek(offset)
        else:
            await anyio.to_thread.run_sync(self.file.seek, offset)

    async def close(self) -> None:
        """Close the file; a spooled file on disk is deleted.  Safe to call twice."""
        if self.file.closed:
            return
        if self._in_memory():
            self.file.close()
        else:
            await anyio.to_thread.run_sync(self.file.close)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(filename={self.filename!r}, "
            f"size={self.size!r}, content_type={self.content_type!r})"
        )


def new_upload(filename: str | None, headers: Headers, spool_max_size: int) -> UploadFile:
    """An empty ``UploadFile`` backed by a ``SpooledTemporaryFile``."""
    # The UploadFile owns the file; FormData.close() or the route closes it.
    file = SpooledTemporaryFile(max_size=spool_max_size, mode="w+b")  # noqa: SIM115
    return UploadFile(file, filename=filename, headers=headers, size=0)


def in_memory(upload: UploadFile) -> bool:
    """Whether ``upload``'s bytes are still held in memory (not yet on disk)."""
    return upload._in_memory()


async def spool_to_disk(upload: UploadFile) -> None:
    """Move an upload still held in memory to disk (in a worker thread)."""
    rollover = getattr(upload.file, "rollover", None)
    if rollover is not None and upload._in_memory():
        await anyio.to_thread.run_sync(rollover)


class FormData(ImmutableMultiDict[str | UploadFile]):
    """An immutable multi-dict of a form's fields: ``str`` values and ``UploadFile``s."""

    __slots__ = ()

    async def close(self) -> None:
        """Close every ``UploadFile`` in the form."""
        for _, value in self._list:
            if isinstance(value, UploadFile):
                await value.close()


def close_files_now(items: list[tuple[str, str | UploadFile]]) -> None:
    """Close every file in ``items`` at once, for error paths (may run while cancelled)."""
    for _, value in items:
        if isinstance(value, UploadFile):
            value.file.close()


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    """A media type, lower-cased, and its parameters (RFC 9110 §8.3.1)."""
    kind, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for item in rest.split(";"):
        name, eq, param = item.partition("=")
        if not eq:
            continue
        param = param.strip()
        if len(param) >= 2 and param[0] == param[-1] == '"':
            param = param[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        params.setdefault(name.strip().lower(), param)
    return kind.strip().lower(), params


async def close_request_forms(scope: Scope) -> None:
    """Close the files of every form read for this request (the route calls this)."""
    forms = scope.get(FORMS_SCOPE_KEY)
    if forms:
        with anyio.CancelScope(shield=True):
            for form in forms:
                await form.close()


class FormContext:
    """What ``request.form(...)`` returns: await it, or use it as ``async with``.

    ``form = await request.form()`` reads the form; ``async with
    request.form() as form:`` also closes every ``UploadFile`` on exit.  Files
    are closed anyway once the route that ran the endpoint has sent its
    response.  The limits (``request.form(max_files=...)``) are ``FormLimits``.
    """

    __slots__ = ("_form", "_limits", "_read")

    def __init__(
        self, read: Callable[[FormLimits], Awaitable[FormData]], limits: FormLimits
    ) -> None:
        self._read = read
        self._limits = limits
        self._form: FormData | None = None

    def __await__(self) -> Generator[Any, None, FormData]:
        return self._read(self._limits).__await__()

    async def __aenter__(self) -> FormData:
        self._form = await self._read(self._limits)
        return self._form

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._form is not None:
            with anyio.CancelScope(shield=True):
                await self._form.close()


__all__ = [
    "FORMS_SCOPE_KEY",
    "FormContext",
    "FormData",
    "FormLimits",
    "UploadFile",
    "close_files_now",
    "close_request_forms",
    "in_memory",
    "new_upload",
    "parse_content_type",
    "spool_to_disk",
]

"""Streaming ``multipart/form-data`` (RFC 7578) on the ``multipart`` package's push parser.

Each body chunk is pushed into ``multipart.PushMultipartParser`` as it
arrives; the parser yields a segment (the part's headers), the part's bytes,
and ``None`` at its end.  A part with a ``filename`` parameter is a file and
streams into an ``UploadFile`` (memory, then disk past ``spool_max_size``, the
disk part in a worker thread); any other part is a text field, kept as bytes
until the body has ended and then decoded, because a ``_charset_`` field
(RFC 7578 §4.6) may name the default charset for the fields before it.

Part headers are read as latin-1, so any byte is accepted there; the ``name``
and ``filename`` parameters are then taken as UTF-8 (what browsers send, per
the HTML standard's form submission) with U+FFFD for invalid sequences.  A
preamble before the first boundary and an epilogue after the last one are
ignored (RFC 2046 §5.1.1).  A part with two ``Content-Disposition`` headers
or a repeated parameter in one is refused (400): parsers disagree on which
one counts, and a proxy inspecting the body must see the fields the app sees.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import AsyncIterator

from multipart import (  # type: ignore[import-untyped]
    MultipartError,
    MultipartSegment,
    ParserLimitReached,
    PushMultipartParser,
    parse_content_disposition,
)

from asgikit.datastructures import Headers
from asgikit.exceptions import HTTPException
from asgikit.forms import (
    FormData,
    FormLimits,
    UploadFile,
    close_files_now,
    in_memory,
    new_upload,
    spool_to_disk,
)

#: Bytes of a file gathered before they are written (in a worker thread, on disk).
WRITE_BATCH = 512 * 1024


def _utf8(text: str) -> str:
    """``text`` read from the wire as latin-1, taken as UTF-8 instead."""
    return text.encode("latin-1").decode("utf-8", "replace")


#: The codecs a field may be decoded with: those of the WHATWG Encoding
#: Standard (§4, "Encodings"), the ones a browser can submit a form in,
#: as Python names them.  Anything else is refused: EBCDIC (cp037, cp500)
#: makes "<" and quotes out of bytes a filter in front reads as harmless;
#: UTF-7 does the same ("+ADw-script+AD4-"); UTF-16/32 hide ASCII from it
#: (and a browser submits a UTF-16 form as UTF-8, HTML §4.10.21.8); and
#: transforms such as punycode (quadratic in CPython: 256 KiB of field took
#: 7 s of event-loop CPU) or the escape codecs are not charsets at all.
_FORM_CHARSETS = frozenset(
    {
        "utf-8",
        "cp866",
        "ascii",  # WHATWG reads "ascii" and "latin1" as windows-1252, a superset
        *(f"iso8859-{n}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 10, 13, 14, 15, 16)),
        "koi8-r",
        "koi8-u",
        "mac-roman",
        "mac-cyrillic",
        "cp874",
        *(f"cp{n}" for n in range(1250, 1259)),
        "gbk",
        "gb18030",
        "big5",
        "euc_jp",
        "iso2022_jp",
        "shift_jis",
        "euc_kr",
    }
)
#: Encoding Standard labels Python's codec registry does not know.
_LABELS = {
    "windows-874": "cp874",
    "x-mac-cyrillic": "mac-cyrillic",
    "x-mac-ukrainian": "mac-cyrillic",
    "iso-8859-8-i": "iso8859-8",
    "csiso88598i": "iso8859-8",
}


def _decode_field(data: bytes | bytearray, charset: str) -> str:
    try:
        label = charset.strip().lower()
        codec = codecs.lookup(_LABELS.get(label, label)).name
        if codec not in _FORM_CHARSETS:
            raise LookupError(charset)
        return data.decode(codec, "replace")
    except (LookupError, ValueError, TypeError):
        # LookupError: no such codec, or not one a form is written in.
        raise HTTPException(
            400, f"Malformed multipart body: unknown charset {charset!r}"
        ) from None


# A parameter of a part header: name, "=", a quoted-string or a token.
_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*(?:"(?:[^"\\]|\\.)*"?|[^;]*)')
_AMBIGUOUS = (
    "Malformed multipart body: a part names itself twice (two Content-Disposition "
    "headers, or a repeated name or filename parameter)"
)


def _repeated_param(disposition: str) -> bool:
    """Whether a ``Content-Disposition`` repeats a parameter.

    Parsers disagree on which one counts (the ``multipart`` package takes the
    last, others the first): a proxy or WAF inspecting the body and the app
    would see different fields, so the part is refused instead.
    """
    names = [m.group(1).lower() for m in _PARAM.finditer(disposition)]
    return len(names) != len(set(names))


def _parser_error(err: MultipartError) -> HTTPException:
    if isinstance(err, ParserLimitReached) and "count" not in str(err):
        return HTTPException(413, f"Multipart part headers too large: {err}")
    return HTTPException(400, f"Malformed multipart body: {err}")


class _Reader:
    """The parse of one body: the items so far and the part being read."""

    __slots__ = (
        "buffer",
        "buffered",
        "default_charset",
        "field_bytes",
        "fields",
        "file_bytes",
        "files",
        "items",
        "limits",
        "memory_files",
        "name",
        "pending",
        "text",
        "upload",
    )

    def __init__(self, limits: FormLimits) -> None:
        self.limits = limits
        self.items: list[tuple[str, str | UploadFile]] = []
        # Fields wait here for decoding: (index in items, bytes, own charset).
        self.pending: list[tuple[int, bytes | bytearray, str | None]] = []
        self.files = 0
        self.fields = 0
        self.default_charset = "utf-8"
        self.name = ""
        self.upload: UploadFile | None = None
        self.text: bytearray | None = None
        # File data waits here until there is enough to be worth one trip to
        # a worker thread (one per 64 KiB message would dominate the cost).
        self.buffer: list[bytes] = []
        self.buffered = 0
        # What the form holds in memory (max_memory_size): text fields, and
        # files not on disk yet (finished ones are listed in memory_files).
        self.field_bytes = 0
        self.file_bytes = 0
        self.memory_files: list[UploadFile] = []

    def start(self, segment: MultipartSegment) -> None:
        limits = self.limits
        dispositions = [v for k, v in segment.headerlist if k == "Content-Disposition"]
        if len(dispositions) > 1 or _repeated_param(dispositions[0]):
            raise HTTPException(400, _AMBIGUOUS)
        _, name, filename = parse_content_disposition(dispositions[0])
        if name is None:
            raise HTTPException(400, "Malformed multipart body: a part has no name")
        self.name = _utf8(name)
        if filename is not None:
            self.files += 1
            if self.files > limits.max_files:
                raise HTTPException(
                    400, f"Too many files: more than {limits.max_files} (max_files)"
                )
            headers = Headers(
                raw=[
                    (k.lower().encode("latin-1"), v.encode("latin-1"))
                    for k, v in segment.headerlist
                ]
            )
            self.upload = new_upload(_utf8(filename), headers, limits.spool_max_size)
            self.items.append((self.name, self.upload))
        else:
            self.fields += 1
            if self.fields > limits.max_fields:
                raise HTTPException(
                    400, f"Too many form fields: more than {limits.max_fields} (max_fields)"
                )
            self.text = bytearray()
            self.pending.append((len(self.items), b"", segment.charset))
            self.items.append((self.name, ""))

    async def data(self, chunk: bytes) -> None:
        limits = self.limits
        if self.upload is not None:
            self.buffered += len(chunk)
            size = (self.upload.size or 0) + self.buffered
            if limits.max_file_size is not None and size > limits.max_file_size:
                raise HTTPException(
                    413, f"File larger than {limits.max_file_size} bytes (max_file_size)"
                )
            self.buffer.append(chunk)
            if self.buffered >= WRITE_BATCH:
                await self.flush(self.upload)
        elif self.text is not None:
            if len(self.text) + len(chunk) > limits.max_part_size:
                raise HTTPException(
                    413, f"Form field larger than {limits.max_part_size} bytes (max_part_size)"
                )
            self.field_bytes += len(chunk)
            if self.field_bytes + self.file_bytes > limits.max_memory_size:
                await self.spool_files()
                if self.field_bytes > limits.max_memory_size:
                    raise HTTPException(
                        413,
                        f"Form fields larger than {limits.max_memory_size} bytes in all "
                        "(max_memory_size)",
                    )
            self.text += chunk

    async def spool_files(self) -> None:
        """Move every finished file still in memory to disk."""
        for upload in self.memory_files:
            await spool_to_disk(upload)
        self.memory_files.clear()
        self.file_bytes = 0

    async def flush(self, upload: UploadFile) -> None:
        data = self.buffer[0] if len(self.buffer) == 1 else b"".join(self.buffer)
        self.buffer.clear()
        self.buffered = 0
        held = upload.size or 0  # all of it in memory, while the file is
        memory = in_memory(upload)
        if memory and self.field_bytes + self.file_bytes + len(data) > self.limits.max_memory_size:
            await spool_to_disk(upload)
            self.file_bytes -= held
            memory = False
        await upload.write(data)
        if memory:
            if in_memory(upload):
                self.file_bytes += len(data)
            else:  # it passed spool_max_size and moved to disk by itself
                self.file_bytes -= held

    async def end(self) -> None:
        if self.upload is not None:
            if self.buffer:
                await self.flush(self.upload)
            await self.upload.seek(0)
            if in_memory(self.upload):
                self.memory_files.append(self.upload)
            self.upload = None
        elif self.text is not None:
            index, _, charset = self.pending[-1]
            data = self.text
            self.pending[-1] = (index, data, charset)
            if self.name == "_charset_":
                declared = data.decode("ascii", "replace").strip()
                _decode_field(b"", declared)  # an unknown one is a 400 now
                self.default_charset = declared
            self.text = None

    def finish(self) -> FormData:
        # Popped, so each field's bytes go as soon as its text exists.
        while self.pending:
            index, data, charset = self.pending.pop()
            name = self.items[index][0]
            self.items[index] = (name, _decode_field(data, charset or self.default_charset))
            del data
        return FormData(self.items)


async def parse_multipart(
    body: AsyncIterator[bytes], boundary: str, limits: FormLimits
) -> FormData:
    """Read ``body`` to its end as a multipart form delimited by ``boundary``."""
    reader = _Reader(limits)
    done = False
    try:
        try:
            parser = PushMultipartParser(boundary, header_charset="latin1")
            async for chunk in body:
                for event in parser.parse(chunk):
                    if event is None:
                        await reader.end()
                    elif isinstance(event, bytes):
                        await reader.data(event)
                    else:
                        reader.start(event)
            parser.close()  # raises if the closing boundary never came
        except MultipartError as err:
            raise _parser_error(err) from None
        form = reader.finish()
        done = True
        return form
    finally:
        if not done:
            close_files_now(reader.items)


__all__ = ["WRITE_BATCH", "parse_multipart"]
